"""Fetch result files that a worker stored in S3 and returned as (presigned) URLs.

The Runpod API key is never sent here: these URLs point at the user's bucket, not at Runpod, and
a presigned URL carries its own authorisation. Transient failures are retried with backoff.
"""

from __future__ import annotations

import time

import requests

from ..errors import TransportError

__all__ = ["download"]


def download(url: str, *, timeout: float = 60.0, attempts: int = 4) -> bytes:
    """The body of `url`; raises TransportError once retries are spent or on a 4xx."""
    problem = ""
    for attempt in range(attempts):
        try:
            response = requests.get(url, timeout=(5.0, timeout))
        except requests.RequestException as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if response.ok:
                return response.content
            problem = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                break  # an expired or wrong URL does not get better by asking again
        if attempt < attempts - 1:
            time.sleep(0.5 * 2**attempt)
    raise TransportError(f"could not download a result file ({problem}): {_without_query(url)}")


def _without_query(url: str) -> str:
    # The query of a presigned URL is a credential of sorts; keep it out of messages.
    return url.split("?", 1)[0]
