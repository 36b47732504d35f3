"""AsyncHTTPTransport: `HTTPTransport`'s asyncio twin, on aiohttp, for the job manager's event loop.

Same retries, same budget, same errors (the decisions live in `_http`: `Attempts`, `answer`); only
the I/O differs. Why aiohttp: the job manager follows hundreds of jobs with long-polls from one
event-loop thread, and measured against the local endpoint (1,500 requests, 100 in flight) aiohttp
spent 101 us of CPU per request, requests on 32 threads 556 us and httpx's AsyncClient 3,604 us.
Its connector keeps HTTP/1.1 connections alive, so a long-poll after a run reuses the socket.

Each request's bytes go through `_exchange`: in this process, or, in a Jupyter kernel, in a helper
process that keeps hundreds of them off the kernel's interpreter.

aiohttp is imported when the first transport is made, never on `import rp_notebook`.
"""

from __future__ import annotations

import asyncio
import urllib.parse
import urllib.request
from typing import Any

from ..config import Settings
from ..errors import TransportError
from ._budget import RequestBudget, default_budget, split_job_path
from ._exchange import (
    Answered,
    Exchange,
    HelperProcess,
    NoAnswer,
    exchange_here,
    helper_wanted,
    new_session,
)
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
        helper: bool | None = None,
    ) -> None:
        """max_connections: sockets kept open at once; 0 leaves it to the budget's concurrency limits
        (in this process: a helper's session always leaves it to the budget, which holds its
        requests too).
        helper: send the requests through a helper process (`_exchange`) once it has started (it
        starts with the first request); None: where `helper_wanted()` says (in a Jupyter kernel)."""
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.budget = budget or default_budget()
        self._proxy = _proxy_for(self.base_url)
        self._session = new_session(max_connections)
        self._helper = HelperProcess()
        self._use_helper = helper_wanted() if helper is None else helper
        #: Count of HTTP requests actually sent (benchmarks report requests per job).
        self.requests_sent = 0
        #: How many of those the helper process carried.
        self.requests_via_helper = 0
        self._retries = _RetryCounts()

    def retry_counts(self) -> dict[str, int]:
        return self._retries.snapshot()

    @property
    def helper_pid(self) -> int | None:
        """The helper process's pid while it serves this transport's requests, else None."""
        return self._helper.pid if self._helper.ready else None

    async def aclose(self) -> None:
        await self._helper.aclose()
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
        endpoint_id, operation = split_job_path(path)
        data = encode_body(body, path, max_body_bytes, endpoint_id)
        url = f"{self.base_url}/{path.lstrip('/')}"
        exchange = Exchange(
            method,
            url,
            data,
            params,
            request_headers(self.settings, has_body=data is not None),
            timeout or self.timeout,
            self._proxy,
        )
        attempts = Attempts(self.retry, idempotent=idempotent, count=self._retries.count)
        for attempt in attempts:
            try:
                async with self.budget.aslot(
                    self.base_url, endpoint_id, operation, max_wait=self.retry.max_retry_after
                ):
                    self.requests_sent += 1
                    answered = await self._exchange(exchange)
            except NoAnswer as exc:
                delay = attempts.after_no_answer(exc.never_sent)
                if delay is None:
                    raise TransportError(
                        no_answer_message(
                            self.settings, self.base_url, method, url, exc.reason, exc.never_sent, attempt + 1
                        ),
                        maybe_delivered=not exc.never_sent,
                        endpoint_id=endpoint_id,
                        job_id=path_ids(path)[1],
                    ) from None
                await asyncio.sleep(delay)
                continue
            status = answered.status
            retry_after = retry_after_seconds(answered.retry_after)
            delay = attempts.after_status(
                status,
                retry_after,
                lambda wait: self.budget.pause(self.base_url, endpoint_id, operation, wait),
            )
            if delay is None:
                return answer(
                    self.settings,
                    status,
                    answered.body,
                    url=answered.url,
                    path=path,
                    what=what,
                    retry_after=retry_after,
                    attempts=self.retry.attempts,
                )
            if delay:
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # the last attempt always returns or raises

    async def _exchange(self, exchange: Exchange) -> Answered:
        if self._helper.ready:
            self.requests_via_helper += 1
            return await self._helper.exchange(exchange)
        if self._use_helper:
            self._helper.start()  # in the background: this request and those until it is ready go from here
        return await exchange_here(self._session, exchange)


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), as requests reads it."""
    scheme, host = urllib.parse.urlsplit(url).scheme, urllib.parse.urlsplit(url).hostname or ""
    if urllib.request.proxy_bypass_environment(host):  # type: ignore[attr-defined]  # untyped, public
        return None
    return urllib.request.getproxies_environment().get(scheme)
