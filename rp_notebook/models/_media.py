"""Media inputs (a voice clip, a picture) as bytes: base64, a data: URL, or an http(s) URL.

Shared by the workers and the client. Standard library, plus requests for URLs (the runpod SDK
brings it into every worker image; imported lazily so the specs stay standard-library only).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from ..errors import InputError

__all__ = ["download_input", "media_bytes"]


def media_bytes(value: str, *, field: str, fetch: Callable[[str], bytes]) -> bytes:
    """The file a media field carries: downloaded with `fetch` for a URL, else decoded from base64."""
    if value.startswith(("http://", "https://")):
        return fetch(value)
    payload = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(field, "is not valid base64 and not a URL") from None


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
