"""Pictures in and out of the layered-image worker: the `image` input, the output size, PNG encoding.

The input is refused by its header, before any pixel is decoded: `Image.open` only parses the
header, so a small file that claims a huge canvas (a decompression bomb) costs nothing to turn
away. Only then does `load()` decode the pixels.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Callable

from PIL import Image, ImageOps, UnidentifiedImageError

from rp_notebook.errors import InputError
from rp_notebook.models._media import download_input, media_bytes
from rp_notebook.models.layers import MAX_IMAGE_PIXELS, check_image_size

__all__ = [
    "MAX_IMAGE_DOWNLOAD_BYTES",
    "MIN_OUTPUT_SIDE",
    "OUTPUT_MULTIPLE",
    "base64_length",
    "encode_png",
    "fetch_url",
    "output_size",
    "read_image",
    "resize_note",
]

#: A URL may point anywhere; cap the download. A 4096x4096 PNG of a photo is about 30-50 MB.
MAX_IMAGE_DOWNLOAD_BYTES = 64_000_000
#: The pipeline floors its output to a multiple of vae_scale_factor * 2 (8 * 2 for the real VAE).
OUTPUT_MULTIPLE = 16
#: An aspect ratio so extreme that a side would be under two latent patches is refused.
MIN_OUTPUT_SIDE = 32


def output_size(width: int, height: int, resolution: int, multiple: int = OUTPUT_MULTIPLE) -> tuple[int, int]:
    """The layers' (width, height) for an input of this size, as QwenImageLayeredPipeline computes it.

    diffusers' `calculate_dimensions(resolution**2, width / height)` (same area, same aspect, each
    side rounded to /32), then floored to `multiple`. Raises InputError naming `image` when the
    aspect ratio is so extreme that a side would come out under MIN_OUTPUT_SIDE pixels.
    """
    ratio = width / height
    out_w = math.sqrt(resolution * resolution * ratio)
    out_h = out_w / ratio
    out_w = round(out_w / 32) * 32 // multiple * multiple
    out_h = round(out_h / 32) * 32 // multiple * multiple
    if min(out_w, out_h) < MIN_OUTPUT_SIDE:
        raise InputError(
            "image",
            f"is {width}x{height}, an aspect ratio too extreme for resolution {resolution}: "
            f"the layers would be {out_w}x{out_h}; crop it closer to square",
        )
    return out_w, out_h


def resize_note(width: int, height: int, resolution: int) -> str | None:
    """The `warnings` entry that says the layers are not the input's size, and why; None when they are.

    Both engines resize: the pipeline works at its bucket, whatever size the picture is.
    """
    out_w, out_h = output_size(width, height, resolution)
    if (out_w, out_h) == (width, height):
        return None
    return (
        f"resolution: resized {width}x{height} -> {out_w}x{out_h}: Qwen-Image-Layered works at 640 or "
        f"1024 px (resolution={resolution}: an area of about {resolution}x{resolution}, the picture's "
        "aspect ratio kept, each side a multiple of 32)"
    )


def fetch_url(url: str) -> bytes:
    """Download a picture, refusing anything over MAX_IMAGE_DOWNLOAD_BYTES."""
    return download_input(url, field="image", max_bytes=MAX_IMAGE_DOWNLOAD_BYTES)


def read_image(value: str, *, fetch: Callable[[str], bytes] = fetch_url) -> Image.Image:
    """Decode the `image` input (base64, data: URL or http(s) URL) into an RGBA picture.

    The picture's own alpha is kept (an engine that wants none drops it). EXIF orientation is
    applied, so a phone photo is split the way it is seen. Raises InputError naming `image` when
    it cannot be fetched or decoded, or has more than MAX_IMAGE_PIXELS pixels.
    """
    raw = media_bytes(value, field="image", fetch=fetch)
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own limit (89 MP); ours is lower and checked right below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(raw))
    except Image.DecompressionBombError:
        raise InputError(
            "image",
            f"is over {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels; the limit is {MAX_IMAGE_PIXELS:,}",
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise InputError(
            "image", "is not a picture this worker can read; send PNG, JPEG or WebP (or GIF, BMP, TIFF)"
        ) from None
    check_image_size(*picture.size)
    try:
        picture.load()
        picture = ImageOps.exif_transpose(picture)
        return picture.convert("RGBA")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise InputError("image", f"could not be decoded ({_short_error(err)})") from None


def encode_png(layer: Image.Image) -> bytes:
    """One layer as an RGBA PNG file, in memory."""
    buffer = io.BytesIO()
    # Level 6 (zlib's default) is within a few percent of 9 on mostly transparent layers, at a
    # fraction of the time.
    layer.convert("RGBA").save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def base64_length(size: int) -> int:
    """How many characters `size` bytes take in base64 (with padding)."""
    return 4 * ((size + 2) // 3)


_QUERY = re.compile(r"((?:https?://|/)[^\s?'\"]*)\?[^\s'\")]*")


def _short_error(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    # requests' messages repeat the URL, query string included.
    text = _QUERY.sub(r"\1?...", text)
    return text if len(text) <= 300 else text[:297] + "..."
