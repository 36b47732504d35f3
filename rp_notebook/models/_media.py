"""Media inputs (a voice clip, a picture) as bytes: base64, a data: URL, or an http(s) URL.

Shared by the workers and the client. Standard library, plus requests for URLs (the runpod SDK
brings it into every worker image; imported lazily so the specs stay standard-library only).

The header sniffers (`image_size`, `audio_format`) read a file's first bytes only. They let a
spec refuse a picture that is too large or a clip that is not audio while it validates the input,
in the client before any request and in the worker before any decoding, with the same message.
They never decide that a file *is* readable: a format they do not know is left to the decoder
(Pillow, libsndfile), which has the last word.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Callable

from ..errors import InputError

__all__ = ["audio_format", "decode_base64", "download_input", "image_size", "media_bytes"]

#: JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic...): they carry the size.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
#: Segments read before giving up on a JPEG's size. Real files reach their SOF within a handful;
#: the cap keeps a crafted run of marker bytes from costing seconds (the decoder then decides).
_JPEG_MAX_SEGMENTS = 512


def media_bytes(value: str, *, field: str, fetch: Callable[[str], bytes]) -> bytes:
    """The file a media field carries: downloaded with `fetch` for a URL, else decoded from base64."""
    if value.startswith(("http://", "https://")):
        return fetch(value)
    return decode_base64(value, field=field)


def decode_base64(value: str, *, field: str, hint: str = "") -> bytes:
    """The bytes of base64 text or of a base64 `data:` URL; InputError naming `field` otherwise.

    Line breaks and spaces are dropped first: the `base64` tool and many encoders wrap their
    output every 76 characters, and that is still the same data. `hint` ends the error message.
    """
    payload = value
    if value.startswith("data:"):
        header, comma, payload = value.partition(",")
        if not comma:
            raise InputError(field, f"is a data: URL with no data (nothing after a ','){hint}")
        if not header.endswith(";base64"):
            raise InputError(field, f"is a data: URL that is not base64 (';base64,' is missing){hint}")
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InputError(field, f"is not valid base64 and not a URL{hint}") from None


def image_size(raw: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, JPEG, GIF, WebP, BMP or TIFF file; None for any
    other format or a header too short to read."""
    if raw.startswith(b"\x89PNG\r\n\x1a\n") and raw[12:16] == b"IHDR" and len(raw) >= 24:
        width, height = struct.unpack(">II", raw[16:24])
        return width, height
    if raw[:6] in (b"GIF87a", b"GIF89a") and len(raw) >= 10:
        width, height = struct.unpack("<HH", raw[6:10])
        return width, height
    if raw[:2] == b"BM" and len(raw) >= 26:
        if struct.unpack("<I", raw[14:18])[0] == 12:  # the old OS/2 header: 16-bit sides
            width, height = struct.unpack("<HH", raw[18:22])
        else:
            width, height = struct.unpack("<ii", raw[18:26])  # height < 0: stored top-down
        return abs(width), abs(height)
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return _webp_size(raw)
    if raw[:3] == b"\xff\xd8\xff":
        return _jpeg_size(raw)
    if raw[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_size(raw)
    return None


def audio_format(raw: bytes) -> str | None:
    """The container a clip's first bytes announce ("wav", "flac", "ogg", "mp3", "aiff", "au",
    "caf"), or None when they match none of the formats the TTS worker's decoder reads.

    A RIFF or FORM file too short to show its form type counts as its likely format: only the
    decoder can refuse what cannot be told apart from a broken clip.
    """
    short = len(raw) < 12
    if raw[:4] in (b"RIFF", b"RIFX", b"RF64") and (short or raw[8:12] == b"WAVE"):
        return "wav"
    if raw[:4] == b"fLaC":
        return "flac"
    if raw[:4] == b"OggS":
        return "ogg"
    if raw[:3] == b"ID3" or (len(raw) >= 2 and raw[0] == 0xFF and raw[1] & 0xE0 == 0xE0):
        return "mp3"  # an ID3 tag, or an MPEG audio frame's sync bits
    if raw[:4] == b"FORM" and (short or raw[8:12] in (b"AIFF", b"AIFC")):
        return "aiff"
    if raw[:4] == b".snd":
        return "au"
    if raw[:4] == b"caff":
        return "caf"
    return None


def _webp_size(raw: bytes) -> tuple[int, int] | None:
    chunk = raw[12:16]
    if chunk == b"VP8X" and len(raw) >= 30:  # extended: 24-bit sides minus one
        return 1 + int.from_bytes(raw[24:27], "little"), 1 + int.from_bytes(raw[27:30], "little")
    if chunk == b"VP8L" and len(raw) >= 25 and raw[20] == 0x2F:  # lossless: 14-bit sides minus one
        bits = int.from_bytes(raw[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(raw) >= 30 and raw[23:26] == b"\x9d\x01\x2a":  # lossy key frame
        width, height = struct.unpack("<HH", raw[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _jpeg_size(raw: bytes) -> tuple[int, int] | None:
    at = 2
    for _ in range(_JPEG_MAX_SEGMENTS):
        if at + 9 > len(raw) or raw[at] != 0xFF:
            return None
        marker = raw[at + 1]
        if marker == 0xFF:  # a fill byte before the marker
            at += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or the pixel data began: no frame header seen
            return None
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", raw[at + 5 : at + 9])
            return width, height
        at += 2 + struct.unpack(">H", raw[at + 2 : at + 4])[0]
    return None


def _tiff_size(raw: bytes) -> tuple[int, int] | None:
    order = "<" if raw[:2] == b"II" else ">"
    (at,) = struct.unpack(f"{order}I", raw[4:8])
    if at + 2 > len(raw):
        return None
    (entries,) = struct.unpack(f"{order}H", raw[at : at + 2])
    sides: dict[int, int] = {}
    for entry in range(entries):
        start = at + 2 + 12 * entry
        if start + 12 > len(raw):
            return None
        tag, kind = struct.unpack(f"{order}HH", raw[start : start + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength: a SHORT or a LONG
            if kind == 3:
                (sides[tag],) = struct.unpack(f"{order}H", raw[start + 8 : start + 10])
            elif kind == 4:
                (sides[tag],) = struct.unpack(f"{order}I", raw[start + 8 : start + 12])
            if len(sides) == 2:
                return sides[256], sides[257]
    return None


def download_input(url: str, *, field: str, max_bytes: int) -> bytes:
    """The body at `url`, or an InputError naming `field` (unreachable, HTTP error, or over `max_bytes`)."""
    import requests

    try:
        with requests.get(url, timeout=(10, 60), stream=True) as response:
            response.raise_for_status()
            data = bytearray()
            for block in response.iter_content(1 << 16):
                data += block
                if len(data) > max_bytes:
                    raise InputError(field, f"the download is over the {max_bytes / 1e6:.0f} MB limit")
            return bytes(data)
    except requests.RequestException as err:
        # Only scheme, host and path: the query of a presigned URL is a credential.
        shown = url.split("?", 1)[0]
        raise InputError(field, f"could not be downloaded from {shown}: {type(err).__name__}") from None
