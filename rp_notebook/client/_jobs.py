"""JobsClient: Runpod's serverless job API (`{RUNPOD_ENDPOINT_BASE_URL}/{endpoint_id}/...`).

Thin on purpose: one method per operation, plain dicts in and out (the job bodies are Runpod's own
shapes, shared/docs/runpod-platform.md §1). The Job handle and the poller in rp_notebook.jobs build
the notebook experience on top of it.

Under faults every call ends in a result or in one clear error (the transport, `_http.py`, retries
what is safe to retry):

- status, status-sync, stream, health, cancel, purge-queue: retried with backoff on dropped
  connections, timeouts, 5xx and 429; after the last attempt, the error of that attempt.
- run, runsync: a lost answer is not retried and ends in `RunAnswerLostError`. How a lost run
  answer is handled, and why: the request may have queued a job (which is billed if it runs), and
  only the lost answer held its id. Runpod's job API has no idempotency key, so sending the run again
  could queue and bill the same work twice; and it cannot list an endpoint's jobs, so the client
  cannot look for the first one either. The error therefore says that a job may exist and be
  billed, that nothing was re-sent, and where a person can find it (the endpoint's requests in the
  Runpod console, its /health counts) and cancel it. A 5xx answer to a run is treated the same way
  (a ServerError with that advice): a gateway can fail after the job was queued.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..config import Settings, current_settings
from ..errors import APIError, NotFoundError, RunAnswerLostError, ServerError, TransportError
from ._budget import RequestBudget
from ._http import HTTPTransport, RetryPolicy
from ._status import TERMINAL_STATES, JobStatus

__all__ = ["MAX_RUNSYNC_BYTES", "MAX_RUN_BYTES", "TERMINAL_STATES", "JobStatus", "JobsClient"]

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


class JobsClient:
    """Every operation of the job API. Raises rp_notebook.errors exceptions, never returns an error body."""

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

    # -- submit -----------------------------------------------------------------------------------

    def run(
        self,
        endpoint_id: str,
        input: dict[str, Any],
        *,
        webhook: str | None = None,
        policy: dict[str, Any] | None = None,
        s3_config: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Queue a job; returns `{"id", "status"}`.

        Not retried once the request may have reached the server: a lost answer (dropped
        connection, read timeout) raises RunAnswerLostError and a 5xx a ServerError, both saying
        that a job may have been queued and billed and how to find it (see the module docstring).
        A 429 and a request that never left this machine are retried, as nothing ran.
        """
        body = _job_body(input, webhook, policy, s3_config)
        with self._run_outcome_unknown(endpoint_id):
            return self.http.request(
                "POST",
                f"{endpoint_id}/run",
                body=body,
                idempotent=False,
                max_body_bytes=MAX_RUN_BYTES,
                what=f"endpoint {endpoint_id}",
            )

    def runsync(
        self,
        endpoint_id: str,
        input: dict[str, Any],
        *,
        wait_ms: int = 90_000,
        webhook: str | None = None,
        policy: dict[str, Any] | None = None,
        s3_config: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run and wait up to `wait_ms` (1,000-300,000) server-side; the body may still be non-final."""
        wait_ms = _clamp(wait_ms, 1_000, 300_000)
        body = _job_body(input, webhook, policy, s3_config)
        with self._run_outcome_unknown(endpoint_id):
            return self.http.request(
                "POST",
                f"{endpoint_id}/runsync",
                body=body,
                params={"wait": wait_ms},
                idempotent=False,
                max_body_bytes=MAX_RUNSYNC_BYTES,
                timeout=wait_ms / 1000 + 15,
                what=f"endpoint {endpoint_id}",
            )

    @contextlib.contextmanager
    def _run_outcome_unknown(self, endpoint_id: str) -> Iterator[None]:
        """Turn the errors after which a job may exist into ones that say so and where to look."""
        try:
            yield
        except TransportError as exc:
            if not exc.maybe_delivered:
                raise  # never reached the server: nothing was queued
            advice = _where_to_look(self.http.base_url, endpoint_id)
            raise RunAnswerLostError(endpoint_id, f"{exc}. {advice}") from None
        except ServerError as exc:
            advice = _where_to_look(self.http.base_url, endpoint_id)
            raise ServerError(f"{exc}. {advice}", status_code=exc.status_code, body=exc.body) from None

    # -- observe ----------------------------------------------------------------------------------

    def status(self, endpoint_id: str, job_id: str) -> dict[str, Any]:
        return self.http.request(
            "GET", f"{endpoint_id}/status/{job_id}", idempotent=True, what=f"job {job_id}"
        )

    def status_sync(self, endpoint_id: str, job_id: str, *, wait_ms: int = 30_000) -> dict[str, Any]:
        """Long-poll: returns as soon as the job ends, or after `wait_ms` (1,000-90,000) with its status.

        status-sync is not in Runpod's docs (the JS SDK uses it). Where a server lacks it, this
        falls back to one plain status call and remembers not to try again.
        """
        if not self.status_sync_supported:
            return self.status(endpoint_id, job_id)
        wait_ms = _clamp(wait_ms, 1_000, 90_000)
        try:
            return self.http.request(
                "GET",
                f"{endpoint_id}/status-sync/{job_id}",
                params={"wait": wait_ms},
                idempotent=True,
                timeout=wait_ms / 1000 + 15,
                what=f"job {job_id}",
            )
        except (NotFoundError, APIError) as exc:
            if exc.status_code not in (404, 405):
                raise
            body = self.status(endpoint_id, job_id)  # raises NotFoundError itself if the job is gone
            self.status_sync_supported = False
            return body

    def stream(self, endpoint_id: str, job_id: str) -> dict[str, Any]:
        """New stream chunks since the last call (`{"status", "stream": [{"output": ...}]}`); reading consumes them."""
        return self.http.request(
            "GET", f"{endpoint_id}/stream/{job_id}", idempotent=True, what=f"job {job_id}"
        )

    def health(self, endpoint_id: str) -> dict[str, Any]:
        return self.http.request(
            "GET", f"{endpoint_id}/health", idempotent=True, what=f"endpoint {endpoint_id}"
        )

    # -- control ----------------------------------------------------------------------------------

    def cancel(self, endpoint_id: str, job_id: str) -> dict[str, Any]:
        # Cancelling twice is harmless, so a lost answer is simply asked again.
        return self.http.request(
            "POST", f"{endpoint_id}/cancel/{job_id}", idempotent=True, what=f"job {job_id}"
        )

    def retry(self, endpoint_id: str, job_id: str) -> dict[str, Any]:
        """Re-queue a FAILED or TIMED_OUT job under the same id with its original input."""
        return self.http.request(
            "POST", f"{endpoint_id}/retry/{job_id}", idempotent=False, what=f"job {job_id}"
        )

    def purge_queue(self, endpoint_id: str) -> dict[str, Any]:
        """Remove every queued (not running) job of the endpoint; returns `{"removed", "status"}`."""
        return self.http.request(
            "POST", f"{endpoint_id}/purge-queue", idempotent=True, what=f"endpoint {endpoint_id}"
        )


def _job_body(
    input: dict[str, Any],
    webhook: str | None,
    policy: dict[str, Any] | None,
    s3_config: dict[str, Any] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"input": input}
    if webhook:
        body["webhook"] = webhook
    if policy:
        body["policy"] = policy
    if s3_config:
        body["s3Config"] = s3_config
    return body


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, int(value)))
