"""The Python API behind the magics, the panels and the CLI: validate, submit, follow.

Validation happens here, before any request, with the model's own field definitions, so bad input
costs no GPU time and the message names the field and what it allows.
"""

from __future__ import annotations

import atexit
import base64
import io
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import check_endpoint_id, configure, current_settings
from .errors import InputError
from .jobs import Batch, BatchInputError, Job, RunOptions, get_manager
from .models import LAYERS, MODELS, ModelSpec
from .models._media import media_bytes
from .models.layers import check_image_size

if TYPE_CHECKING:
    from .local import LocalEndpoint

__all__ = [
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
    if spec is LAYERS and not clean["image"].startswith(("http://", "https://")):
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
    settings = current_settings()
    endpoint_id = check_endpoint_id(endpoint) if endpoint is not None else settings.endpoint_for(model)
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
    settings = current_settings()
    endpoint_id = check_endpoint_id(endpoint) if endpoint is not None else settings.endpoint_for(model)
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


_local: LocalEndpoint | None = None


def start_local(*, port: int = 0) -> LocalEndpoint:
    """Start the local Runpod-compatible endpoint in this process and point rp_notebook at it.

    Runs the CPU engines of the workers, needs no account and no GPU. Both APIs point at it: the
    job API and the management API (GraphQL, REST v2), so provisioning works there too. The
    settings change for this process only; nothing is written to disk. Starting twice returns the
    running one.
    """
    global _local
    if _local is not None and _local.running:
        return _local
    from .local import LocalEndpoint

    _local = LocalEndpoint(port=port).start()
    atexit.register(_local.stop)
    configure(
        api_key=_local.api_key,
        endpoint_base_url=_local.job_api_url,
        api_base_url=_local.management_url,
        endpoints=LOCAL_ENDPOINTS,
    )
    return _local


def stop_local() -> None:
    """Stop the local endpoint started by `start_local()` and its worker processes."""
    global _local
    if _local is not None:
        _local.stop()
        _local = None


def local_endpoint() -> LocalEndpoint | None:
    return _local if _local is not None and _local.running else None


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
    raise AssertionError("URLs are left for the worker to fetch")


def _check_image(data: str) -> None:
    from PIL import Image, UnidentifiedImageError

    raw = media_bytes(data, field="image", fetch=_no_fetch)
    try:
        with warnings.catch_warnings():
            # The size is checked below with a clear message; Pillow's bomb warning would only add noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as image:  # reads the header only
                width, height = image.size
    except Image.DecompressionBombError:
        raise InputError(
            "image", "is far over the pixel limit (Pillow refused it as a decompression bomb)"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise InputError("image", "is not a picture Pillow can read (PNG, JPEG, WebP, ...)") from None
    check_image_size(width, height)


def _looks_like_path(value: str) -> bool:
    # base64 never contains a dot, so "voice.wav" is a path; "/" alone proves nothing (base64 uses it).
    if "." in value:
        return True
    try:
        return Path(value).expanduser().is_file()
    except OSError:  # e.g. a base64 clip longer than a file name may be
        return False
