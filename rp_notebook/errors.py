"""Every error rp_notebook raises, in one tree.

    RunpodError                   every error carries endpoint_id and job_id where they are known
    ├── ConfigurationError        no API key, no endpoint for a model, a bad setting
    ├── InputError (ValueError)   a model input out of range, of the wrong type, or unknown;
    │                             names the field and what it allows, raised before any request
    ├── BudgetExceededError       a submission would go past the budget (rp_notebook.budget):
    │                             names the spend so far, the estimate and the budget; nothing sent
    ├── TransportError            the server could not be reached, or the connection broke
    │   └── RunAnswerLostError    a run was sent but its answer lost: a job may be queued (not re-sent)
    ├── APIError                  the job API answered with an HTTP error (`status_code`, `body`)
    │   ├── BadRequestError       400 and other 4xx: the request itself was refused
    │   ├── AuthenticationError   401/403: missing or wrong API key
    │   ├── NotFoundError         404: unknown endpoint, or a job that expired (TTL, retention)
    │   ├── RateLimitedError      429: over the per-endpoint request budget; carries retry_after
    │   ├── PayloadTooLargeError  413, or a request the client knows is over the size limit
    │   ├── ServerError           5xx
    │   └── MalformedAnswerError  a 2xx answer that is not the JSON the API documents
    ├── ProvisioningError         the management API (GraphQL, REST v2) refused a request; GraphQL
    │                             sends these with HTTP 200 in `errors`; the server's message, unchanged
    ├── JobError                  a job ended without a result; carries job_id and status
    │   ├── JobFailedError        FAILED: carries the worker's error, parsed from its JSON
    │   ├── JobCancelledError     CANCELLED
    │   ├── JobTimedOutError      TIMED_OUT: the endpoint's execution timeout ran out
    │   ├── JobLostError          it can no longer be followed (Runpod forgot it, the key was
    │   │                         refused, its saved result is unreadable, or it was never queued)
    │   └── RetryRefusedError     retry() on a job that did not fail or time out
    └── WaitTimeoutError (TimeoutError)
                                  `job.result(timeout=...)` gave up waiting; the job goes on

In a notebook these print as one line (`_render_traceback_`), not as a Python traceback, yet they
are still real exceptions: nbval and callers see them.

Messages never contain the API key: `redact` is applied to every message built from server text.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ConfigurationError",
    "InputError",
    "JobCancelledError",
    "JobError",
    "JobFailedError",
    "JobLostError",
    "JobTimedOutError",
    "MalformedAnswerError",
    "NotFoundError",
    "PayloadTooLargeError",
    "ProvisioningError",
    "RateLimitedError",
    "RetryRefusedError",
    "RunAnswerLostError",
    "RunpodError",
    "ServerError",
    "TransportError",
    "WaitTimeoutError",
]


class RunpodError(Exception):
    """Base class of every rp_notebook error; never raised itself.

    `endpoint_id` and `job_id` name what the error is about, when it is about one (None otherwise).
    """

    def __init__(self, message: str, *, endpoint_id: str | None = None, job_id: str | None = None) -> None:
        self.endpoint_id = endpoint_id
        self.job_id = job_id
        super().__init__(message)

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing a traceback: users want the message, not our frames.
        return [f"\x1b[31m{type(self).__name__}\x1b[0m: {self}"]


class ConfigurationError(RunpodError):
    """Something needed to talk to Runpod is missing or malformed (API key, endpoint id, URL)."""


class InputError(RunpodError, ValueError):
    """A model input is invalid. `field` names it; the message says what is allowed."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class BudgetExceededError(RunpodError):
    """A submission was refused before any request: it would take the spend past the budget.

    `spent`, `estimate` (of what was refused; None when no cost per job is known yet) and `budget`
    are in USD; `per` is "session" or "day".
    """

    def __init__(
        self, message: str, *, spent: float, estimate: float | None, budget: float, per: str
    ) -> None:
        self.spent = spent
        self.estimate = estimate
        self.budget = budget
        self.per = per
        super().__init__(message)


class TransportError(RunpodError):
    """The request did not get an HTTP answer (connection refused or dropped, read timeout).

    `maybe_delivered` is False when the request provably never reached the server (connection
    refused, connect timeout), True when it may have been received and acted on.
    """

    def __init__(
        self,
        message: str,
        *,
        maybe_delivered: bool = True,
        endpoint_id: str | None = None,
        job_id: str | None = None,
    ) -> None:
        self.maybe_delivered = maybe_delivered
        super().__init__(message, endpoint_id=endpoint_id, job_id=job_id)


class RunAnswerLostError(TransportError):
    """A run (or runsync) request was sent, but its answer never came: a job may have been queued.

    Not retried, on purpose: why, and where to look for the job, is in rp_notebook.client._http's
    docstring and in the message. `endpoint_id` names the endpoint; `maybe_delivered` is True.
    """

    def __init__(self, endpoint_id: str, message: str) -> None:
        super().__init__(message, maybe_delivered=True, endpoint_id=endpoint_id)


class APIError(RunpodError):
    """The job API answered with an HTTP error status; the subclasses say which. Never raised itself."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: Any = None,
        endpoint_id: str | None = None,
        job_id: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.body = body
        super().__init__(message, endpoint_id=endpoint_id, job_id=job_id)


class BadRequestError(APIError):
    """400, 409, 422 and any other 4xx without a class of its own: the request was refused as it is."""


class AuthenticationError(APIError):
    """401/403: the API key is missing, wrong, or lacks the scope for this call."""


class NotFoundError(APIError):
    """404: the endpoint id is unknown, or the job is gone (TTL expired, result retention over)."""


class RateLimitedError(APIError):
    """429: the endpoint's request budget is spent. `retry_after` is in seconds, when the server said."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 429,
        body: Any = None,
        retry_after: float | None = None,
        endpoint_id: str | None = None,
        job_id: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status_code=status_code, body=body, endpoint_id=endpoint_id, job_id=job_id)


class PayloadTooLargeError(APIError):
    """The request body is over the job API's limit (10 MB for /run, 20 MB for /runsync)."""


class ServerError(APIError):
    """5xx from the job API."""


class MalformedAnswerError(APIError):
    """The job API answered 2xx with something that is not the JSON it documents (a proxy's page)."""


class ProvisioningError(RunpodError):
    """The management API refused a template or endpoint request; `str()` is the server's message.

    `status_code` is the HTTP status when the refusal came as one (REST v2); None when it came in a
    GraphQL answer's `errors` (which Runpod sends with HTTP 200). `body` is the answer, when any.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body: Any = None,
        endpoint_id: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.body = body
        super().__init__(message, endpoint_id=endpoint_id)


class JobError(RunpodError):
    """A job ended, or was given up, without a result. Never raised itself."""

    def __init__(self, message: str, *, job_id: str, status: str, endpoint_id: str | None = None) -> None:
        self.status = status
        super().__init__(message, endpoint_id=endpoint_id, job_id=job_id)


class JobFailedError(JobError):
    """The job FAILED. `error` is the worker's message; `details` the parsed JSON, when it was JSON.

    The runpod worker SDK reports an uncaught handler exception as a JSON *string* with
    error_type, error_message and error_traceback; a handler that returns {"error": ...} gives
    its own text. Both are kept here, nothing is dropped.
    """

    def __init__(self, job_id: str, error: Any, *, endpoint_id: str | None = None) -> None:
        self.raw_error = error
        self.details: dict[str, Any] | None = parse_worker_error(error)
        if self.details is not None:
            self.error = str(self.details.get("error_message") or self.details.get("error") or error)
            self.worker_traceback: str | None = self.details.get("error_traceback")
            kind = self.details.get("error_type", "")
            prefix = f"{_short_type(kind)}: " if kind else ""
        else:
            self.error = "" if error is None else str(error)
            self.worker_traceback = None
            prefix = ""
        super().__init__(
            f"job {job_id} failed: {prefix}{self.error}",
            job_id=job_id,
            status="FAILED",
            endpoint_id=endpoint_id,
        )


class JobCancelledError(JobError):
    """The job was CANCELLED (by this client, another client, or a purge)."""


class JobTimedOutError(JobError):
    """The job TIMED_OUT: it ran past the endpoint's (or the request's) execution timeout."""


class JobLostError(JobError):
    """The job cannot be followed to its end: Runpod no longer knows it (its TTL or result retention
    ran out), the API key was refused, its saved result cannot be read, or its run was never
    answered. `cause` is the error behind it, when there is one (also `__cause__`)."""

    def __init__(
        self,
        message: str,
        *,
        job_id: str,
        status: str,
        endpoint_id: str | None = None,
        cause: BaseException | None = None,
    ) -> None:
        self.cause = cause
        super().__init__(message, job_id=job_id, status=status, endpoint_id=endpoint_id)


class RetryRefusedError(JobError):
    """`retry()` on a job that did not end FAILED or TIMED_OUT: Runpod retries only those."""


class WaitTimeoutError(RunpodError, TimeoutError):
    """The caller stopped waiting. The job itself is still running; wait again or cancel it."""


def parse_worker_error(error: Any) -> dict[str, Any] | None:
    """The worker SDK's JSON error string as a dict; None when it is plain text."""
    if isinstance(error, dict):
        return error
    if isinstance(error, str) and error.lstrip().startswith("{"):
        try:
            parsed = json.loads(error)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def _short_type(error_type: str) -> str:
    # The SDK writes str(type(err)): "<class 'ValueError'>" -> "ValueError".
    if error_type.startswith("<class '") and error_type.endswith("'>"):
        return error_type[8:-2].rsplit(".", 1)[-1]
    return error_type
