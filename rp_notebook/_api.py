"""The Python API behind the magics, the panels and the CLI: validate, submit, follow.

Every input is checked before any request (`_inputs.prepare_input`, with the model's own field
definitions), so bad input costs no GPU time and the message names the field and what it allows.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config
from ._inputs import MAX_IMAGE_URL_BYTES, prepare_input
from ._spend import check_budget
from .config import Settings, check_endpoint_id, configure, current_settings
from .costs import PriceTable, use_prices
from .errors import ConfigurationError, InputError, NotFoundError
from .jobs import Batch, BatchInputError, Job, RunOptions, get_manager
from .models import MODELS, ModelSpec

if TYPE_CHECKING:
    from .local import LocalEndpointProcess

__all__ = [
    "MAX_IMAGE_URL_BYTES",
    "check_endpoint",
    "layers",
    "layers_many",
    "prepare_input",
    "start_local",
    "stop_local",
    "submit",
    "submit_many",
    "tts",
    "tts_many",
]

#: Role -> endpoint id on the local endpoint (`rp-notebook local up`).
LOCAL_ENDPOINTS = {"tts": "local-tts", "layers": "local-layers"}


def submit(
    model: str,
    *,
    endpoint: str | None = None,
    s3_config: dict[str, str] | None = None,
    policy: dict[str, Any] | None = None,
    webhook: str | None = None,
    **inputs: Any,
) -> Job:
    """Validate `inputs` for `model` ("tts", ...) and queue a job; returns its handle at once.

    s3_config ({"accessId", "accessSecret", "bucketName", "endpointUrl"}) lets the worker put a large
    result in your bucket and return URLs, which the result then fetches. policy and webhook are
    passed to Runpod as they are (executionTimeout, ttl, lowPriority; a URL called on completion).
    """
    clean = prepare_input(_spec(model), inputs)
    settings, endpoint_id = _target(model, endpoint)
    check_budget(model)
    return get_manager().submit(
        endpoint_id, clean, model=model, settings=settings, **_run_options(s3_config, policy, webhook)
    )


def _run_options(
    s3_config: dict[str, str] | None, policy: dict[str, Any] | None, webhook: str | None
) -> RunOptions:
    options = RunOptions()
    if s3_config:
        options["s3_config"] = s3_config
    if policy:
        options["policy"] = policy
    if webhook:
        options["webhook"] = webhook
    return options


def tts(text: str, *, endpoint: str | None = None, **params: Any) -> Job:
    """Speak `text`. Params: exaggeration, cfg_weight, temperature, seed, language, voice, format."""
    return submit("tts", endpoint=endpoint, text=text, **params)


def layers(image: Any, *, endpoint: str | None = None, **params: Any) -> Job:
    """Split `image` (a path, URL, bytes or PIL image) into RGBA layers. Params: layers, resolution,
    prompt, negative_prompt, num_inference_steps, true_cfg_scale, seed, cfg_normalize, use_en_prompt."""
    return submit("layers", endpoint=endpoint, image=image, **params)


def submit_many(
    model: str,
    inputs: Iterable[Mapping[str, Any]],
    *,
    endpoint: str | None = None,
    max_parallel: int | None = None,
    **common: Any,
) -> Batch:
    """One job per input (each a dict of fields, over the `common` ones); returns a Batch at once.

    Every input is validated first: if any is bad, BatchInputError lists them all by index and
    nothing is sent. The Batch comes back at once; the `run` requests go out in the background,
    `max_parallel` at a time (default: the job manager's `SUBMIT_PARALLEL`), from its thread.
    """
    spec = _spec(model)
    items = list(inputs)
    if not items:
        raise InputError("inputs", "the batch is empty")
    clean: list[dict[str, Any]] = []
    errors: list[tuple[int, InputError]] = []
    for index, item in enumerate(items):
        try:
            clean.append(prepare_input(spec, {**common, **item}))
        except InputError as exc:
            errors.append((index, exc))
    if errors:
        raise BatchInputError(errors, len(items))
    settings, endpoint_id = _target(model, endpoint)
    check_budget(model, len(clean))  # the batch as a whole, before its first job
    manager = get_manager()
    jobs = manager.submit_many(endpoint_id, clean, model=model, settings=settings, max_parallel=max_parallel)
    return Batch(model, endpoint_id, jobs, manager=manager)


def tts_many(
    texts: Iterable[str | Mapping[str, Any]], *, endpoint: str | None = None, **params: Any
) -> Batch:
    """Speak each text as its own job; returns a Batch. An item may also be a dict of fields
    ({"text": ..., "voice": ...}) overriding `params` for that input."""
    if isinstance(texts, str):
        raise InputError("texts", "expected a list of texts; for a single text use tts()")
    items = [item if isinstance(item, Mapping) else {"text": item} for item in texts]
    return submit_many("tts", items, endpoint=endpoint, **params)


def layers_many(images: Iterable[Any], *, endpoint: str | None = None, **params: Any) -> Batch:
    """Split each image (path, URL, bytes, PIL image, or a dict of fields) into layers; returns a Batch."""
    if isinstance(images, str | bytes | Path):
        raise InputError("images", "expected a list of images; for a single image use layers()")
    items = [item if isinstance(item, Mapping) else {"image": item} for item in images]
    return submit_many("layers", items, endpoint=endpoint, **params)


def _target(model: str, endpoint: str | None) -> tuple[Settings, str]:
    """The settings in force and the endpoint a job for `model` goes to; a ConfigurationError
    that says so when that is the local endpoint this process stopped."""
    settings = current_settings()
    try:
        endpoint_id = check_endpoint_id(endpoint) if endpoint is not None else settings.endpoint_for(model)
        settings.require_key()
    except ConfigurationError as exc:
        if _stopped is not None and local_endpoint() is None:
            raise ConfigurationError(
                f"The local endpoint was stopped and nothing else is configured for {model}: "
                f"{_local_hint()} starts it again. To use Runpod instead: {exc}"
            ) from None
        raise
    if _stopped is not None and local_endpoint() is None and settings.endpoint_base_url == _stopped:
        raise ConfigurationError(
            f"The local endpoint at {_stopped} was stopped, yet the job API is still set to it: "
            f"{_local_hint()} starts a new one (at a new address, which is then used).",
            endpoint_id=endpoint_id,
        )
    return settings, endpoint_id


def _local_hint() -> str:
    """How to start the local endpoint, as the reader would (the magics: `%runpod local start`)."""
    return config.local_hint()


def check_endpoint(endpoint_id: str, *, settings: Settings | None = None) -> dict[str, Any] | None:
    """Ask the job API whether `endpoint_id` exists (`GET {job API}/{id}/health`); returns its health.

    An unknown id (404) raises InputError naming the id and the URL asked; a refused key, an
    unreachable server and other errors raise as the client raises them. None when there is no
    API key to ask with.
    """
    from .client import JobsClient, RetryPolicy

    endpoint_id = check_endpoint_id(endpoint_id)
    settings = settings or current_settings()
    if settings.api_key is None or not settings.api_key.reveal():
        return None
    url = f"{settings.endpoint_base_url}/{endpoint_id}/health"
    with JobsClient(settings, retry=RetryPolicy(attempts=2), timeout=10) as client:
        try:
            return client.health(endpoint_id)
        except NotFoundError:
            raise InputError(
                "endpoint",
                f"there is no endpoint {endpoint_id!r}: GET {url} answered 404 (not found). "
                "Check the id (`%runpod endpoints` lists yours) and the job API URL.",
            ) from None


@dataclass(frozen=True)
class _Replaced:
    """The settings `start_local()` replaced, for `stop_local()` to put back."""

    #: api_key, endpoint_base_url, api_base_url -> their configure() value before (absent: none).
    values: dict[str, Any]
    #: Where those values came from, when not configure() (a key typed into the login panel).
    sources: dict[str, str]
    #: LOCAL_ENDPOINTS' models -> their configure() endpoint before (absent: none).
    endpoints: dict[str, str]
    #: What start_local() set: a value changed since (a key typed in meanwhile) is kept.
    local: dict[str, Any]


_SWAPPED = ("api_key", "endpoint_base_url", "api_base_url")
_local: LocalEndpointProcess | None = None
_replaced: _Replaced | None = None
#: The job API URL of the local endpoint stop_local() last stopped (None: none was stopped, or
#: one runs again).
_stopped: str | None = None
#: The price table in force before start_local swapped in the local endpoint's (put back by stop_local).
_prices_before: PriceTable | None = None


def start_local(*, port: int = 0, prices: PriceTable | None = None) -> LocalEndpointProcess:
    """Start the local Runpod-compatible endpoint in a process of its own and point rp_notebook at it.

    Runs the CPU engines of the workers, needs no account and no GPU. Both APIs point at it: the
    job API and the management API (GraphQL, REST v2), so provisioning works there too. The
    settings change for this process only; nothing is written to disk, and `stop_local()` puts
    back the ones it replaced. port: 0 picks a free one. Starting twice returns the running one.
    prices: the serverless price table its endpoints are billed by (default Runpod's), which
    job costs and budgets use while it runs. Its own process keeps a batch of jobs from sharing a
    kernel's interpreter with the cells; the handle returned has `LocalEndpoint`'s endpoint and
    inspection methods (`add_endpoint`, `workers`, `job`, ...), each a call into that process.
    """
    global _local, _replaced, _stopped, _prices_before
    if _local is not None and _local.running:
        return _local
    if _local is not None:  # it died: put its settings back first, so they are the ones kept now
        stop_local()
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigurationError(f"port must be a number from 1 to 65535 (or 0 for a free one), got {port!r}")
    from .local import LocalEndpointProcess

    try:
        server = LocalEndpointProcess(port, prices=prices).start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"port {port} is in use on 127.0.0.1 (another program, or another local endpoint, "
                "listens there): choose another port, or leave it out for a free one"
            ) from None
        raise ConfigurationError(
            f"the local endpoint cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}"
        ) from None
    _local = server  # it stops itself at exit too
    key = config.Secret(server.api_key)
    local: dict[str, Any] = {
        "api_key": key,
        "endpoint_base_url": server.job_api_url,
        "api_base_url": server.management_url,
    }
    with config.editing_overrides() as (overrides, sources):
        _replaced = _Replaced(
            values={key: overrides[key] for key in _SWAPPED if key in overrides},
            sources={key: sources[key] for key in _SWAPPED if key in sources},
            endpoints={
                model: endpoint
                for model, endpoint in overrides.get("endpoints", {}).items()
                if model in LOCAL_ENDPOINTS
            },
            local=local,
        )
    configure(
        api_key=key,
        endpoint_base_url=server.job_api_url,
        api_base_url=server.management_url,
        endpoints=LOCAL_ENDPOINTS,
    )
    _stopped = None
    _prices_before = use_prices(server.prices)
    return server


def stop_local() -> None:
    """Stop the local endpoint started by `start_local()` and its worker processes, and put back
    the settings it replaced: the key and URLs configured before (unless changed since), and the
    endpoint of each model as it was (a choice made while it ran named one of its endpoints)."""
    global _local, _replaced, _stopped
    server, replaced = _local, _replaced
    _local, _replaced = None, None
    if server is None:
        return
    server.stop()
    _stopped = server.job_api_url
    use_prices(_prices_before)
    if replaced is None:
        return
    with config.editing_overrides() as (overrides, sources):
        for key in _SWAPPED:
            if key in overrides and overrides[key] != replaced.local[key]:
                continue  # set again while the local endpoint ran: the user's, kept
            overrides.pop(key, None)
            sources.pop(key, None)
            if key in replaced.values:
                overrides[key] = replaced.values[key]
            if key in replaced.sources:
                sources[key] = replaced.sources[key]
        endpoints = {
            model: endpoint
            for model, endpoint in overrides.get("endpoints", {}).items()
            if model not in LOCAL_ENDPOINTS
        }
        endpoints.update(replaced.endpoints)
        overrides["endpoints"] = endpoints


def local_endpoint() -> LocalEndpointProcess | None:
    return _local if _local is not None and _local.running else None


def stopped_local_url() -> str | None:
    """The job API URL of the local endpoint `stop_local()` last stopped, while none runs."""
    return _stopped if local_endpoint() is None else None


def _spec(model: str) -> ModelSpec:
    try:
        return MODELS[model]
    except KeyError:
        raise InputError("model", f"unknown model {model!r}; known: {', '.join(MODELS)}") from None
