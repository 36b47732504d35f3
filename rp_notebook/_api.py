"""The Python API behind the magics, the panels and the CLI: validate, submit, follow.

Validation happens here, before any request, with the model's own field definitions, so bad input
costs no GPU time and the message names the field and what it allows.
"""

from __future__ import annotations

import atexit
import base64
import errno
import io
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config
from ._spend import check_budget
from .config import Settings, check_endpoint_id, configure, current_settings
from .costs import PriceTable, use_prices
from .errors import ConfigurationError, InputError, NotFoundError
from .jobs import Batch, BatchInputError, Job, RunOptions, get_manager
from .models import LAYERS, MODELS, ModelSpec
from .models._media import image_size, media_bytes, probe_url
from .models.layers import check_image_size

if TYPE_CHECKING:
    from .local import LocalEndpoint

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

#: Runs in flight at once while a batch is submitted.
BATCH_PARALLEL = 32

#: Role -> endpoint id on the local endpoint (`rp-notebook local up`).
LOCAL_ENDPOINTS = {"tts": "local-tts", "layers": "local-layers"}
#: An image given as a URL is sent as the URL, and the worker downloads it with this cap (its
#: MAX_IMAGE_DOWNLOAD_BYTES, workers/qwen_image_layered/layers_images.py); the job API's body limits
#: (10 MB /run, 20 MB /runsync) apply to the few bytes of the URL only. Checked before submitting.
MAX_IMAGE_URL_BYTES = 64_000_000


def prepare_input(spec: ModelSpec, values: dict[str, Any]) -> dict[str, Any]:
    """Validated input for `spec`.

    Media fields may be given as a file path, bytes or a PIL image: they become base64 first. An
    image is also opened (header only) to refuse a non-image or an oversized picture here, before
    it is uploaded, with the same limit the worker applies.
    """
    prepared = dict(values)
    for field in spec.fields:
        if field.media and prepared.get(field.name) is not None:
            prepared[field.name] = _media_value(field.name, prepared[field.name])
    clean = spec.validate(prepared)
    if spec is LAYERS:
        if clean["image"].startswith(("http://", "https://")):
            _check_image_url(clean["image"])
        else:
            _check_image(clean["image"])
    return clean


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
    max_parallel: int = BATCH_PARALLEL,
    **common: Any,
) -> Batch:
    """One job per input (each a dict of fields, over the `common` ones); returns a Batch at once.

    Every input is validated first: if any is bad, BatchInputError lists them all by index and
    nothing is sent. The Batch comes back at once; the `run` requests go out in the background, a
    few at a time, from the job manager's thread.
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
    return config._local_hint


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
_local: LocalEndpoint | None = None
_replaced: _Replaced | None = None
#: The job API URL of the local endpoint stop_local() last stopped (None: none was stopped, or
#: one runs again).
_stopped: str | None = None
#: The price table in force before start_local swapped in the local endpoint's (put back by stop_local).
_prices_before: PriceTable | None = None


def start_local(*, port: int = 0, prices: PriceTable | None = None) -> LocalEndpoint:
    """Start the local Runpod-compatible endpoint in this process and point rp_notebook at it.

    Runs the CPU engines of the workers, needs no account and no GPU. Both APIs point at it: the
    job API and the management API (GraphQL, REST v2), so provisioning works there too. The
    settings change for this process only; nothing is written to disk, and `stop_local()` puts
    back the ones it replaced. port: 0 picks a free one. Starting twice returns the running one.
    prices: the serverless price table its endpoints are billed by (default Runpod's), which
    job costs and budgets use while it runs.
    """
    global _local, _replaced, _stopped, _prices_before
    if _local is not None and _local.running:
        return _local
    if _local is not None:  # it died: put its settings back first, so they are the ones kept now
        stop_local()
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigurationError(f"port must be a number from 1 to 65535 (or 0 for a free one), got {port!r}")
    from .local import LocalEndpoint

    try:
        server = LocalEndpoint(port=port, prices=prices).start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"port {port} is in use on 127.0.0.1 (another program, or another local endpoint, "
                "listens there): choose another port, or leave it out for a free one"
            ) from None
        raise ConfigurationError(
            f"the local endpoint cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}"
        ) from None
    _local = server
    atexit.register(server.stop)
    key = config.Secret(server.api_key)
    local: dict[str, Any] = {
        "api_key": key,
        "endpoint_base_url": server.job_api_url,
        "api_base_url": server.management_url,
    }
    with config._lock:
        overrides, sources = config._overrides, config._override_sources
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
    atexit.unregister(server.stop)
    _stopped = server.job_api_url
    use_prices(_prices_before)
    if replaced is None:
        return
    with config._lock:
        overrides, sources = config._overrides, config._override_sources
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


def local_endpoint() -> LocalEndpoint | None:
    return _local if _local is not None and _local.running else None


def stopped_local_url() -> str | None:
    """The job API URL of the local endpoint `stop_local()` last stopped, while none runs."""
    return _stopped if local_endpoint() is None else None


def _spec(model: str) -> ModelSpec:
    try:
        return MODELS[model]
    except KeyError:
        raise InputError("model", f"unknown model {model!r}; known: {', '.join(MODELS)}") from None


def _media_value(name: str, value: Any) -> Any:
    if hasattr(value, "save") and hasattr(value, "mode") and hasattr(value, "size"):  # a PIL image
        if name == "image":
            check_image_size(*value.size)  # before spending time encoding a picture that is refused
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Path) or (
        isinstance(value, str)
        and not value.startswith(("http://", "https://", "data:"))
        and len(value) < 4096
        and _looks_like_path(value)
    ):
        path = Path(value).expanduser()
        if not path.is_file():
            raise InputError(name, f"no such file: {path}")
        return base64.b64encode(path.read_bytes()).decode()
    return value


def _no_fetch(url: str) -> bytes:
    raise AssertionError("URLs are checked by _check_image_url")


def _check_image(data: str) -> None:
    raw = media_bytes(data, field="image", fetch=_no_fetch)
    size = _picture_size(raw)
    if size is None:
        raise InputError("image", "is not a picture Pillow can read (PNG, JPEG, WebP, ...)")
    check_image_size(*size)


def _check_image_url(url: str) -> None:
    """Refuse an image URL the worker could not use, before the job is sent: unreachable, an HTTP
    error, over MAX_IMAGE_URL_BYTES, not a picture, or over the pixel limit. Reads its first bytes only.

    A picture is told by its first bytes (a header Pillow reads) or, where they do not settle it
    (a JPEG whose metadata runs past them), by an image/* content type; the worker has the last word.
    """
    probe = probe_url(url, field="image", max_bytes=MAX_IMAGE_URL_BYTES)
    size = image_size(probe.head) or _picture_size(probe.head)
    if size is not None:
        check_image_size(*size)
        return
    looks_like_text = probe.head.lstrip()[:1] in (b"<", b"{", b"[")
    if (
        probe.content_type.startswith("image/")
        and probe.content_type != "image/svg+xml"
        and not looks_like_text
    ):
        return
    seen = f"its content type is {probe.content_type}" if probe.content_type else "it has no content type"
    raise InputError(
        "image",
        f"{probe.shown} is not an image: {seen}, and its first bytes are not a picture Pillow can read "
        "(PNG, JPEG, WebP, ...)",
    )


def _picture_size(raw: bytes) -> tuple[int, int] | None:
    """(width, height) from a picture's header, read by Pillow; None when Pillow cannot identify it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # The size is checked by the caller with a clear message; Pillow's bomb warning would only add noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as image:  # reads the header only
                width, height = image.size
                return width, height
    except Image.DecompressionBombError:
        raise InputError(
            "image", "is far over the pixel limit (Pillow refused it as a decompression bomb)"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def _looks_like_path(value: str) -> bool:
    # base64 never contains a dot, so "voice.wav" is a path; "/" alone proves nothing (base64 uses it).
    if "." in value:
        return True
    try:
        return Path(value).expanduser().is_file()
    except OSError:  # e.g. a base64 clip longer than a file name may be
        return False
