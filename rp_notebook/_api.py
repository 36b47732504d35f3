"""The Python API behind the magics, the panels and the CLI: validate, submit, follow.

Validation happens here, before any request, with the model's own field definitions, so bad input
costs no GPU time and the message names the field and what it allows.
"""

from __future__ import annotations

import atexit
import base64
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import configure, current_settings
from .errors import InputError
from .jobs import Job, get_manager
from .models import LAYERS, MODELS, ModelSpec
from .models.layers import check_image_size

if TYPE_CHECKING:
    from .local import LocalEndpoint

__all__ = ["layers", "prepare_input", "start_local", "stop_local", "submit", "tts"]

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
    try:
        spec = MODELS[model]
    except KeyError:
        raise InputError("model", f"unknown model {model!r}; known: {', '.join(MODELS)}") from None
    clean = prepare_input(spec, inputs)
    settings = current_settings()
    endpoint_id = endpoint or settings.endpoint_for(model)
    options = {"s3_config": s3_config, "policy": policy, "webhook": webhook}
    return get_manager().submit(
        endpoint_id, clean, model=model, settings=settings, **{k: v for k, v in options.items() if v}
    )


def tts(text: str, *, endpoint: str | None = None, **params: Any) -> Job:
    """Speak `text`. Params: exaggeration, cfg_weight, temperature, seed, language, voice, format."""
    return submit("tts", endpoint=endpoint, text=text, **params)


def layers(image: Any, *, endpoint: str | None = None, **params: Any) -> Job:
    """Split `image` (a path, URL, bytes or PIL image) into RGBA layers. Params: layers, resolution,
    prompt, negative_prompt, num_inference_steps, true_cfg_scale, seed, cfg_normalize, use_en_prompt."""
    return submit("layers", endpoint=endpoint, image=image, **params)


_local: LocalEndpoint | None = None


def start_local(*, port: int = 0) -> LocalEndpoint:
    """Start the local Runpod-compatible endpoint in this process and point rp_notebook at it.

    Runs the CPU engines of the workers, needs no account and no GPU. The settings change for this
    process only; nothing is written to disk. Starting twice returns the running one.
    """
    global _local
    if _local is not None and _local.running:
        return _local
    from .local import LocalEndpoint

    _local = LocalEndpoint(port=port).start()
    atexit.register(_local.stop)
    configure(api_key=_local.api_key, endpoint_base_url=_local.job_api_url, endpoints=LOCAL_ENDPOINTS)
    return _local


def stop_local() -> None:
    """Stop the local endpoint started by `start_local()` and its worker processes."""
    global _local
    if _local is not None:
        _local.stop()
        _local = None


def local_endpoint() -> LocalEndpoint | None:
    return _local if _local is not None and _local.running else None


def _media_value(name: str, value: Any) -> Any:
    if hasattr(value, "save") and hasattr(value, "mode") and hasattr(value, "size"):  # a PIL image
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


def _check_image(data: str) -> None:
    from PIL import Image, UnidentifiedImageError

    payload = data.split(",", 1)[1] if data.startswith("data:") else data
    try:
        with Image.open(io.BytesIO(base64.b64decode(payload))) as image:  # reads the header only
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError):
        raise InputError("image", "is not a picture Pillow can read (PNG, JPEG, WebP, ...)") from None
    check_image_size(width, height)


def _looks_like_path(value: str) -> bool:
    # base64 never contains a dot, so "voice.wav" is a path; "/" alone proves nothing (base64 uses it).
    return "." in value or Path(value).expanduser().is_file()
