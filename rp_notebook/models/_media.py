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
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InputError

__all__ = [
    "UrlProbe",
    "audio_format",
    "decode_base64",
    "download_input",
    "image_size",
    "media_bytes",
    "probe_url",
    "shown_url",
]

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


def shown_url(url: str) -> str:
    """`url` as it may be shown: scheme, host and path only (the query of a presigned URL is a credential)."""
    return url.split("?", 1)[0].split("#", 1)[0]


@dataclass(frozen=True)
class UrlProbe:
    """What `probe_url` learnt about a URL without downloading all of it."""

    #: The URL as it may be shown (`shown_url`).
    shown: str
    #: The media type the server gives (`image/png`), lower case, without parameters; "" if none.
    content_type: str
    #: The body's size in bytes, when the server said it or the body was read to its end.
    size: int | None
    #: The body's first bytes (up to `head_bytes`): enough for a file header.
    head: bytes


#: `Content-Range: bytes 0-65535/1234567` (the total is `*` when the server does not know it).
_CONTENT_RANGE = re.compile(r"bytes\s+\d+-\d+/(\d+)")


def probe_url(
    url: str,
    *,
    field: str,
    max_bytes: int,
    head_bytes: int = 1 << 16,
    timeout: float = 10.0,
    read_budget_s: float = 20.0,
) -> UrlProbe:
    """Check that `url` can be downloaded and is at most `max_bytes`, reading only its first bytes.

    A HEAD first (its Content-Length refuses a file that is too large without a byte of it), then
    a GET for the first `head_bytes` (a Range request; from a server that ignores Range, no more of
    the body is read than needed). When no header gives the size, the body is read on, up to
    `max_bytes` (for at most `read_budget_s` seconds; after that its size stays unknown). Raises
    InputError naming `field`: unreachable, an HTTP error status, empty, or too large.

    A HEAD answered with an error status decides nothing: some servers, and presigned URLs (signed
    for GET only), refuse HEAD yet serve the file. `timeout`: seconds to connect (at most 5) and
    between bytes.
    """
    import requests

    shown = shown_url(url)
    timeouts = (min(timeout, 5.0), timeout)
    size: int | None = None
    content_type = ""
    body = bytearray()
    try:
        head = requests.head(url, timeout=timeouts, allow_redirects=True)
        if head.ok:
            content_type = _media_type(head.headers.get("Content-Type"))
            if not head.headers.get("Content-Encoding"):  # else the length is the compressed one
                size = _header_int(head.headers.get("Content-Length"))
            _check_download_size(field, shown, size, max_bytes)
        with requests.get(
            url,
            headers={"Range": f"bytes=0-{head_bytes - 1}", "Accept-Encoding": "identity"},
            timeout=timeouts,
            stream=True,
        ) as response:
            if response.status_code == 416:  # not even byte 0 to give: an empty file
                raise InputError(field, f"{shown} is empty (0 bytes)")
            if response.status_code >= 400:
                reason = f" {response.reason}" if response.reason else ""
                raise InputError(
                    field, f"could not be downloaded from {shown}: HTTP {response.status_code}{reason}"
                )
            content_type = _media_type(response.headers.get("Content-Type")) or content_type
            partial = response.status_code == 206
            if partial:
                total = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                size = int(total.group(1)) if total else size
            elif _header_int(response.headers.get("Content-Length")) is not None:
                size = _header_int(response.headers.get("Content-Length"))
            _check_download_size(field, shown, size, max_bytes)
            read_on = not partial and size is None  # only reading tells the size
            deadline = time.monotonic() + read_budget_s
            ended = True
            for block in response.iter_content(1 << 16):
                body += block
                if len(body) > max_bytes:
                    raise InputError(field, f"{shown} is {_over(max_bytes)}")
                if len(body) >= head_bytes and (not read_on or time.monotonic() > deadline):
                    ended = False
                    break
    except requests.RequestException as err:
        raise InputError(field, f"could not be downloaded from {shown}: {type(err).__name__}") from None
    if ended and (not partial or len(body) < head_bytes):  # the whole file was read: its size is known
        size = len(body)
    if not body or size == 0:
        raise InputError(field, f"{shown} is empty (0 bytes)")
    return UrlProbe(shown=shown, content_type=content_type, size=size, head=bytes(body[:head_bytes]))


def _over(max_bytes: int) -> str:
    return f"over the {_megabytes(max_bytes)} limit (the most the worker downloads): make the file smaller"


def _check_download_size(field: str, shown: str, size: int | None, max_bytes: int) -> None:
    if size is not None and size > max_bytes:
        raise InputError(field, f"{shown} is {_megabytes(size)}, {_over(max_bytes)}")


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB" if size % 1_000_000 else f"{size // 1_000_000:,} MB"


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _header_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
