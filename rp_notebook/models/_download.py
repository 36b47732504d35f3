"""Downloading a media input given as a URL, for the workers (stdlib + requests, which the runpod
SDK brings into every worker image; imported lazily so the specs stay standard-library only)."""

from __future__ import annotations

from ..errors import InputError

__all__ = ["download_input"]


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
