"""A model's input as the client sends it: media encoded and every field checked, before any request.

One path for the Python API, the magics, the panels and the CLI (`prepare_input`), so bad input
costs no GPU time and the message names the field and what it allows. Media fields may be given as
a file path, bytes or a PIL image (`encode_media`); a picture is opened (header only) to refuse a
non-image or an oversized one before it is uploaded (`check_image`), and an image or voice clip
URL is probed (first bytes only) before a worker is asked to download it (`check_image_url`,
`check_voice_url`). The model's fields themselves (names, ranges, formats) are defined once, in
`rp_notebook.models`.
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError
from .models import LAYERS, TTS, ModelSpec
from .models._media import UrlProbe, audio_format, image_size, media_bytes, probe_url
from .models.layers import check_image_size

__all__ = [
    "MAX_IMAGE_URL_BYTES",
    "MAX_VOICE_URL_BYTES",
    "check_image",
    "check_image_url",
    "check_voice_url",
    "encode_media",
    "prepare_input",
]

#: An image given as a URL is sent as the URL, and the worker downloads it with this cap (its
#: MAX_IMAGE_DOWNLOAD_BYTES, workers/qwen_image_layered/layers_images.py); the job API's body limits
#: (10 MB /run, 20 MB /runsync) apply to the few bytes of the URL only. Checked before submitting.
MAX_IMAGE_URL_BYTES = 64_000_000
#: A voice clip given as a URL, likewise: the TTS worker's MAX_VOICE_DOWNLOAD_BYTES
#: (workers/chatterbox_tts/tts_audio.py).
MAX_VOICE_URL_BYTES = 20_000_000


def prepare_input(spec: ModelSpec, values: dict[str, Any]) -> dict[str, Any]:
    """Validated input for `spec`.

    Media fields may be given as a file path, bytes or a PIL image: they become base64 first. An
    image is also opened (header only) to refuse a non-image or an oversized picture here, before
    it is uploaded, with the same limit the worker applies. A media URL (an image, a voice clip)
    is probed, its first bytes only: a job that would start a GPU worker only to fail on its
    download is refused here.
    """
    prepared = dict(values)
    for field in spec.fields:
        if field.media and prepared.get(field.name) is not None:
            prepared[field.name] = encode_media(field.name, prepared[field.name])
    clean = spec.validate(prepared)
    if spec is LAYERS:
        if clean["image"].startswith(("http://", "https://")):
            check_image_url(clean["image"])
        else:
            check_image(clean["image"])
    voice = clean.get("voice") if spec is TTS else None
    if isinstance(voice, str) and voice.startswith(("http://", "https://")):
        check_voice_url(voice)
    return clean


def encode_media(name: str, value: Any) -> Any:
    """A media field's value as sent: a PIL image, bytes or a file path become base64; a URL, a
    data: URL or base64 is given back as it is (the field's own check comes after)."""
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
    raise AssertionError("URLs are checked by check_image_url")


def check_image(data: str) -> None:
    """Refuse an image given as base64 or a data: URL that Pillow cannot read or that is over the
    pixel limit (the worker's own limit), reading its header only."""
    raw = media_bytes(data, field="image", fetch=_no_fetch)
    size = _picture_size(raw)
    if size is None:
        raise InputError("image", "is not a picture Pillow can read (PNG, JPEG, WebP, ...)")
    check_image_size(*size)


def check_image_url(url: str) -> None:
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
    if probe.content_type == "image/svg+xml":  # a text format Pillow does not read
        raise _not_a(probe, _IMAGE)
    _typed_as(probe, _IMAGE)


def check_voice_url(url: str) -> None:
    """Refuse a voice clip URL the TTS worker could not use, before the job is sent: unreachable, an
    HTTP error, over MAX_VOICE_URL_BYTES, or not audio. Reads its first bytes only.

    A clip is told by its first bytes (a WAV, FLAC, OGG or MP3 header) or, where they do not settle
    it, by an audio/* content type; the worker's decoder has the last word."""
    probe = probe_url(url, field="voice", max_bytes=MAX_VOICE_URL_BYTES)
    if audio_format(probe.head) is None:
        _typed_as(probe, _VOICE)


@dataclass(frozen=True)
class _Kind:
    """What a media URL must hold, as its messages name it."""

    field: str
    noun: str  # "an image"
    media_type: str  # the Content-Type prefix that names it: "image/"
    formats: str  # what its first bytes may be


_IMAGE = _Kind("image", "an image", "image/", "a picture Pillow can read (PNG, JPEG, WebP, ...)")
_VOICE = _Kind("voice", "an audio file", "audio/", "WAV, FLAC, OGG or MP3")


def _typed_as(probe: UrlProbe, kind: _Kind) -> None:
    """Accept a file whose first bytes did not settle what it is when the server names its kind
    and it does not start like text (an error page served as the file)."""
    looks_like_text = probe.head.lstrip()[:1] in (b"<", b"{", b"[")
    if not probe.content_type.startswith(kind.media_type) or looks_like_text:
        raise _not_a(probe, kind)


def _not_a(probe: UrlProbe, kind: _Kind) -> InputError:
    seen = f"its content type is {probe.content_type}" if probe.content_type else "it has no content type"
    return InputError(
        kind.field, f"{probe.shown} is not {kind.noun}: {seen}, and its first bytes are not {kind.formats}"
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
