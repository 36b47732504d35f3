"""AsyncHTTPTransport: `HTTPTransport`'s asyncio twin, on aiohttp, for the job manager's event loop.

Same retries, same budget, same errors (the decisions live in `_http`: `Attempts`, `answer`); only
the I/O differs. Why aiohttp: the job manager follows hundreds of jobs with long-polls from one
event-loop thread, and measured against the local endpoint (1,500 requests, 100 in flight) aiohttp
spent 101 us of CPU per request, requests on 32 threads 556 us and httpx's AsyncClient 3,604 us.
Its connector keeps HTTP/1.1 connections alive, so a long-poll after a run reuses the socket.

aiohttp is imported when the first transport is made, never on `import rp_notebook`.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import TransportError
from ._budget import RequestBudget, default_budget, split_job_path
from ._http import (
    Attempts,
    RetryPolicy,
    _RetryCounts,
    answer,
    encode_body,
    no_answer_message,
    path_ids,
    request_headers,
    retry_after_seconds,
)

if TYPE_CHECKING:
    pass

__all__ = ["AsyncHTTPTransport"]


class AsyncHTTPTransport:
    """An aiohttp session bound to one base URL and key, raising rp_notebook errors.

    Create and use it on one event loop (the session belongs to it); `aclose()` there too.
    """

    def __init__(
        self,
        settings: Settings,
        base_url: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        budget: RequestBudget | None = None,
        max_connections: int = 0,
    ) -> None:
        """max_connections: sockets kept open at once; 0 leaves it to the budget's concurrency limits."""
        import aiohttp

        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.budget = budget or default_budget()
        # Proxy and CA bundle from the environment, read once here: aiohttp's trust_env reads them
        # again on every request, iterating os.environ, which measured as most of a request's CPU.
        self._proxy = _proxy_for(self.base_url)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=max_connections, limit_per_host=0, keepalive_timeout=60, ssl=_ssl_context()
            ),
            trust_env=False,
        )
        #: Count of HTTP requests actually sent (benchmarks report requests per job).
        self.requests_sent = 0
        self._retries = _RetryCounts()

    def retry_counts(self) -> dict[str, int]:
        return self._retries.snapshot()

    async def aclose(self) -> None:
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        idempotent: bool,
        timeout: float | None = None,
        max_body_bytes: int | None = None,
        what: str = "",
    ) -> Any:
        """Send one API call; return its decoded JSON body or raise an rp_notebook error."""
        import aiohttp

        endpoint_id, operation = split_job_path(path)
        data = encode_body(body, path, max_body_bytes, endpoint_id)
        headers = request_headers(self.settings, has_body=data is not None)
        url = f"{self.base_url}/{path.lstrip('/')}"
        client_timeout = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=timeout or self.timeout)
        attempts = Attempts(self.retry, idempotent=idempotent, count=self._retries.count)
        for attempt in attempts:
            try:
                async with self.budget.aslot(
                    self.base_url, endpoint_id, operation, max_wait=self.retry.max_retry_after
                ):
                    self.requests_sent += 1
                    async with self._session.request(
                        method,
                        url,
                        data=data,
                        params=params,
                        headers=headers,
                        timeout=client_timeout,
                        proxy=self._proxy,
                    ) as response:
                        status = response.status
                        text = await response.text()
                        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                        answered_url = str(response.url)
            except (TimeoutError, aiohttp.ClientError) as exc:
                never_sent = _never_sent(exc)
                delay = attempts.after_no_answer(never_sent)
                if delay is None:
                    raise TransportError(
                        no_answer_message(
                            self.settings, self.base_url, method, url, exc, never_sent, attempt + 1
                        ),
                        maybe_delivered=not never_sent,
                        endpoint_id=endpoint_id,
                        job_id=path_ids(path)[1],
                    ) from None
                await asyncio.sleep(delay)
                continue
            delay = attempts.after_status(
                status,
                retry_after,
                lambda wait: self.budget.pause(self.base_url, endpoint_id, operation, wait),
            )
            if delay is None:
                return answer(
                    self.settings,
                    status,
                    text,
                    url=answered_url,
                    path=path,
                    what=what,
                    retry_after=retry_after,
                    attempts=self.retry.attempts,
                )
            if delay:
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # the last attempt always returns or raises


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), as requests reads it."""
    scheme, host = urllib.parse.urlsplit(url).scheme, urllib.parse.urlsplit(url).hostname or ""
    if urllib.request.proxy_bypass_environment(host):  # type: ignore[attr-defined]  # untyped, public
        return None
    return urllib.request.getproxies_environment().get(scheme)


def _ssl_context() -> ssl.SSLContext:
    """The system's CAs, or the bundle REQUESTS_CA_BUNDLE / SSL_CERT_FILE names (as requests honours)."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    return ssl.create_default_context(cafile=bundle) if bundle else ssl.create_default_context()


def _never_sent(exc: BaseException) -> bool:
    """True when the request provably never reached the server (refused, DNS, connect timeout)."""
    import aiohttp

    return isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
