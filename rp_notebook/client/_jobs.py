"""JobsClient: Runpod's serverless job API (`{RUNPOD_ENDPOINT_BASE_URL}/{endpoint_id}/...`).

Thin on purpose: one method per operation, plain dicts in and out (the job bodies are Runpod's own
shapes, shared/docs/runpod-platform.md §1). `JobsClient` is blocking (requests); `AsyncJobsClient`
is its asyncio twin with the same method names (aiohttp), which the job manager's event loop uses.
Both build their calls from the same `_Call` definitions below, so they cannot drift apart.

Under faults every call ends in a result or in one clear error (the transports, `_http`, retry what
is safe to retry): status, status-sync, stream, health, cancel and purge-queue are retried with
backoff; a run whose answer is lost is not, and ends in `RunAnswerLostError` (why: `_http`'s
docstring), and a 5xx answer to a run in a ServerError that says the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack, cast

from ..config import Settings, current_settings
from ..errors import APIError, RunAnswerLostError, ServerError, TransportError
from ._budget import RequestBudget
from ._http import HTTPTransport, RetryPolicy
from ._status import TERMINAL_STATES, JobStatus

__all__ = [
    "MAX_RUNSYNC_BYTES",
    "MAX_RUN_BYTES",
    "TERMINAL_STATES",
    "AsyncJobsClient",
    "JobStatus",
    "JobsClient",
    "RunOptions",
]


class RunOptions(TypedDict, total=False):
    """What a run request carries besides its input, passed to Runpod as it is."""

    #: A URL Runpod POSTs the job's result to when it ends (retried twice, 10 s apart).
    webhook: str
    #: {"executionTimeout": ms (>= 5 s), "ttl": ms (>= 10 s), "lowPriority": bool}.
    policy: dict[str, Any]
    #: {"accessId", "accessSecret", "bucketName", "endpointUrl"}: the worker may put large results there.
    s3_config: dict[str, str]


MAX_RUN_BYTES = 10 * 1024 * 1024
MAX_RUNSYNC_BYTES = 20 * 1024 * 1024


def _where_to_look(base_url: str, endpoint_id: str) -> str:
    return (
        "A job may have been queued, and it is billed if it runs. It was not sent again: Runpod has no "
        "idempotency key, so a second run would queue (and bill) a second job, and no API lists an "
        "endpoint's jobs, so rp_notebook cannot look for the first one. To find it, see the "
        f"endpoint's requests in the Runpod console, or GET {base_url}/{endpoint_id}/health "
        "(inQueue/inProgress); cancel it there, or purge the endpoint's queue, before submitting the "
        "same input again."
    )


@dataclass(frozen=True)
class _Call:
    """One job-API request, as both clients send it."""

    method: str
    path: str
    idempotent: bool
    what: str
    body: Any = None
    params: dict[str, Any] | None = None
    timeout: float | None = None
    max_body_bytes: int | None = None

    def send(self) -> dict[str, Any]:
        return {
            "body": self.body,
            "params": self.params,
            "idempotent": self.idempotent,
            "timeout": self.timeout,
            "max_body_bytes": self.max_body_bytes,
            "what": self.what,
        }


def _run_call(endpoint_id: str, input: dict[str, Any], options: RunOptions) -> _Call:
    return _Call(
        "POST",
        f"{endpoint_id}/run",
        idempotent=False,
        what=f"endpoint {endpoint_id}",
        body=_job_body(input, options),
        max_body_bytes=MAX_RUN_BYTES,
    )


def _runsync_call(endpoint_id: str, input: dict[str, Any], wait_ms: int, options: RunOptions) -> _Call:
    wait_ms = _clamp(wait_ms, 1_000, 300_000)
    return _Call(
        "POST",
        f"{endpoint_id}/runsync",
        idempotent=False,
        what=f"endpoint {endpoint_id}",
        body=_job_body(input, options),
        params={"wait": wait_ms},
        timeout=wait_ms / 1000 + 15,
        max_body_bytes=MAX_RUNSYNC_BYTES,
    )


def _job_call(method: str, endpoint_id: str, operation: str, job_id: str, *, idempotent: bool) -> _Call:
    return _Call(method, f"{endpoint_id}/{operation}/{job_id}", idempotent=idempotent, what=f"job {job_id}")


def _status_sync_call(endpoint_id: str, job_id: str, wait_ms: int) -> _Call:
    wait_ms = _clamp(wait_ms, 1_000, 90_000)
    return _Call(
        "GET",
        f"{endpoint_id}/status-sync/{job_id}",
        idempotent=True,
        what=f"job {job_id}",
        params={"wait": wait_ms},
        timeout=wait_ms / 1000 + 15,
    )


def _endpoint_call(method: str, endpoint_id: str, operation: str) -> _Call:
    # purge-queue is idempotent too: purging an empty queue again changes nothing.
    return _Call(method, f"{endpoint_id}/{operation}", idempotent=True, what=f"endpoint {endpoint_id}")


@contextlib.contextmanager
def _run_outcome_unknown(base_url: str, endpoint_id: str) -> Iterator[None]:
    """Around a run (sync or async): the errors after which a job may exist become ones that say
    so and where to look (`_http`); a request that never left this machine stays as it is."""
    try:
        yield
    except TransportError as exc:
        if not exc.maybe_delivered:
            raise
        raise RunAnswerLostError(endpoint_id, f"{exc}. {_where_to_look(base_url, endpoint_id)}") from None
    except ServerError as exc:
        advice = _where_to_look(base_url, endpoint_id)
        raise ServerError(
            f"{exc}. {advice}", status_code=exc.status_code, body=exc.body, endpoint_id=endpoint_id
        ) from None


def _status_sync_unsupported(exc: APIError) -> bool:
    """status-sync is not in Runpod's docs (the JS SDK uses it): a server without it says 404/405."""
    return exc.status_code in (404, 405)


class JobsClient:
    """Every operation of the job API, blocking. Raises rp_notebook.errors exceptions, never returns an
    error body."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        budget: RequestBudget | None = None,
        max_connections: int = 64,
    ) -> None:
        """budget: the rate/concurrency budget (default: the process-wide one, Runpod's limits).
        max_connections: HTTP connections kept open, at least the number of threads that use it."""
        self.settings = settings or current_settings()
        self.http = HTTPTransport(
            self.settings,
            self.settings.endpoint_base_url,
            retry=retry,
            timeout=timeout,
            budget=budget,
            max_connections=max_connections,
        )
        #: Set once a server answers status-sync with 404/405 for a job that /status knows.
        self.status_sync_supported = True

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> JobsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, call: _Call) -> dict[str, Any]:
        return cast(dict[str, Any], self.http.request(call.method, call.path, **call.send()))

    # -- submit -----------------------------------------------------------------------------------

    def run(self, endpoint_id: str, input: dict[str, Any], **options: Unpack[RunOptions]) -> dict[str, Any]:
        """Queue a job; returns `{"id", "status"}`. A lost answer raises RunAnswerLostError and a 5xx
        a ServerError, both saying a job may have been queued; nothing is re-sent (see `_http`)."""
        with _run_outcome_unknown(self.http.base_url, endpoint_id):
            return self._send(_run_call(endpoint_id, input, options))

    def runsync(
        self, endpoint_id: str, input: dict[str, Any], *, wait_ms: int = 90_000, **options: Unpack[RunOptions]
    ) -> dict[str, Any]:
        """Run and wait up to `wait_ms` (1,000-300,000) server-side; the body may still be non-final."""
        with _run_outcome_unknown(self.http.base_url, endpoint_id):
            return self._send(_runsync_call(endpoint_id, input, wait_ms, options))

    # -- observe ----------------------------------------------------------------------------------

    def status(self, endpoint_id: str, job_id: str) -> dict[str, Any]:
        return self._send(_job_call("GET", endpoint_id, "status", job_id, idempotent=True))

    def status_sync(self, endpoint_id: str, job_id: str, *, wait_ms: int = 30_000) -> dict[str, Any]:
        """Long-poll: returns as soon as the job ends, or after `wait_ms` (1,000-90,000) with its status.
        Where a server lacks status-sync, falls back to plain status and remembers not to try again."""
        if not self.status_sync_supported:
            return self.status(endpoint_id, job_id)
        try:
            return self._send(_status_sync_call(endpoint_id, job_id, wait_ms))
        except APIError as exc:
            if not _status_sync_unsupported(exc):
                raise
            body = self.status(endpoint_id, job_id)  # raises NotFoundError itself if the job is gone
            self.status_sync_supported = False
            return body

    def stream(self, endpoint_id: str, job_id: str) -> dict[str, Any]:
        """New stream chunks since the last call (`{"status", "stream": [{"output": ...}]}`); reading consumes them."""
        return self._send(_job_call("GET", endpoint_id, "stream", job_id, idempotent=True))

    def health(self, endpoint_id: str) -> dict[str, Any]:
        return self._send(_endpoint_call("GET", endpoint_id, "health"))

    # -- control ----------------------------------------------------------------------------------

    def cancel(self, endpoint_id: str, job_id: str) -> dict[str, Any]:
        # Cancelling twice is harmless, so a lost answer is simply asked again.
        return self._send(_job_call("POST", endpoint_id, "cancel", job_id, idempotent=True))

    def retry(self, endpoint_id: str, job_id: str) -> dict[str, Any]:
        """Re-queue a FAILED or TIMED_OUT job under the same id with its original input."""
        return self._send(_job_call("POST", endpoint_id, "retry", job_id, idempotent=False))

    def purge_queue(self, endpoint_id: str) -> dict[str, Any]:
        """Remove every queued (not running) job of the endpoint; returns `{"removed", "status"}`."""
        return self._send(_endpoint_call("POST", endpoint_id, "purge-queue"))


class AsyncJobsClient:
    """`JobsClient`'s asyncio twin: the same methods, awaited. Use it on one event loop."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        budget: RequestBudget | None = None,
        max_connections: int = 0,
    ) -> None:
        from ._async_http import AsyncHTTPTransport

        self.settings = settings or current_settings()
        self.http = AsyncHTTPTransport(
            self.settings,
            self.settings.endpoint_base_url,
            retry=retry,
            timeout=timeout,
            budget=budget,
            max_connections=max_connections,
        )
        self.status_sync_supported = True

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _send(self, call: _Call) -> dict[str, Any]:
        return cast(dict[str, Any], await self.http.request(call.method, call.path, **call.send()))

    async def run(
        self, endpoint_id: str, input: dict[str, Any], **options: Unpack[RunOptions]
    ) -> dict[str, Any]:
        """See `JobsClient.run`."""
        with _run_outcome_unknown(self.http.base_url, endpoint_id):
            return await self._send(_run_call(endpoint_id, input, options))

    async def status(self, endpoint_id: str, job_id: str) -> dict[str, Any]:
        return await self._send(_job_call("GET", endpoint_id, "status", job_id, idempotent=True))

    async def status_sync(self, endpoint_id: str, job_id: str, *, wait_ms: int = 30_000) -> dict[str, Any]:
        """See `JobsClient.status_sync`."""
        if not self.status_sync_supported:
            return await self.status(endpoint_id, job_id)
        try:
            return await self._send(_status_sync_call(endpoint_id, job_id, wait_ms))
        except APIError as exc:
            if not _status_sync_unsupported(exc):
                raise
            body = await self.status(endpoint_id, job_id)
            self.status_sync_supported = False
            return body

    async def stream(self, endpoint_id: str, job_id: str) -> dict[str, Any]:
        return await self._send(_job_call("GET", endpoint_id, "stream", job_id, idempotent=True))

    async def health(self, endpoint_id: str) -> dict[str, Any]:
        return await self._send(_endpoint_call("GET", endpoint_id, "health"))

    async def cancel(self, endpoint_id: str, job_id: str) -> dict[str, Any]:
        return await self._send(_job_call("POST", endpoint_id, "cancel", job_id, idempotent=True))

    async def retry(self, endpoint_id: str, job_id: str) -> dict[str, Any]:
        return await self._send(_job_call("POST", endpoint_id, "retry", job_id, idempotent=False))

    async def purge_queue(self, endpoint_id: str) -> dict[str, Any]:
        return await self._send(_endpoint_call("POST", endpoint_id, "purge-queue"))


def _job_body(input: dict[str, Any], options: RunOptions) -> dict[str, Any]:
    body: dict[str, Any] = {"input": input}
    if options.get("webhook"):
        body["webhook"] = options["webhook"]
    if options.get("policy"):
        body["policy"] = options["policy"]
    if options.get("s3_config"):
        body["s3Config"] = options["s3_config"]
    return body


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, int(value)))
