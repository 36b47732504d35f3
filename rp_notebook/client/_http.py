"""One HTTP call to a Runpod API, with retries that know which calls are safe to repeat.

`HTTPTransport` (requests, for threads and scripts) and its asyncio twin `AsyncHTTPTransport`
(`_async_http`, aiohttp, for the job manager's event loop) make the same decisions: both walk an
`Attempts` and turn answers into errors with `answer()`, both defined here.

Retry policy (why, not only what):

- A request that never reached the server (connection refused, DNS, connect timeout) is retried
  for every call: nothing happened server-side.
- 429 is retried for every call: a refused request did not run. The wait is not this call's own:
  `Retry-After` (or a backoff when the server gives none) pauses the endpoint's whole operation
  group in the shared RequestBudget (`_budget.py`), so every caller waits it out, and the retry
  passes through the same gate as any other request.
- 5xx, dropped connections and read timeouts are retried only for idempotent calls (status,
  status-sync, stream, health, cancel, purge), with exponential backoff and jitter
  (`RetryPolicy`). Asking again cannot change anything on the server, so it is always safe.
- A `run` (or `runsync`) that may have reached the server is never re-sent. Why: Runpod's job API
  has no idempotency key, so a second POST queues a second job, billed on its own; and it has no
  way to list an endpoint's jobs, so a client cannot check whether the first one arrived. When the
  connection drops or times out after the request was sent, the job may or may not exist, and only
  the lost answer held its id. The call ends at once in `RunAnswerLostError` (`JobsClient.run`):
  it says that a job may have been queued and billed, why it was not re-sent, and where to look for
  it. A 5xx answer to a run is just as ambiguous (the gateway may fail after queueing), so it ends in
  a ServerError that says the same. Only a 429 and a request that provably never left this machine
  (connection refused, connect timeout) are re-sent: nothing ran. This is the one place this is
  explained; the errors and the client refer here.

Before every attempt the request takes a slot in the RequestBudget, which keeps us under Runpod's
per-endpoint rate and concurrency limits (waiting until a slot is free), so a well-behaved client
rarely sees a 429 at all.

HTTP errors become the exception tree in rp_notebook.errors, carrying the endpoint and job ids of
the path; every message is redacted of the key.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from .. import __version__
from ..config import Settings
from ..errors import (
    AuthenticationError,
    BadRequestError,
    MalformedAnswerError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from ._budget import RequestBudget, default_budget, split_job_path

__all__ = ["Attempts", "HTTPTransport", "RetryPolicy", "answer", "request_headers"]

USER_AGENT = f"rp_notebook/{__version__}"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff: float = 0.25  # first delay, doubled each attempt, with jitter
    max_delay: float = 8.0
    #: Longest Retry-After we will wait out inside one call; longer ones surface as RateLimitedError
    #: (and still pause the budget, so other calls do not run into the same 429).
    max_retry_after: float = 30.0

    def delay(self, attempt: int) -> float:
        base = min(self.max_delay, self.backoff * 2.0**attempt)
        return float(base * (0.5 + random.random() / 2))


class Attempts:
    """The attempts of one call and what to do after each outcome (the policy in the docstring).

    Iterate it for the attempt numbers; after a failed attempt, `after_no_answer` or
    `after_status` say how long to wait before the next one, or None to give up.
    """

    def __init__(self, policy: RetryPolicy, *, idempotent: bool, count: Callable[[str], None]) -> None:
        self.policy = policy
        self.idempotent = idempotent
        self.attempt = 0
        self._count = count

    def __iter__(self) -> Iterator[int]:
        for attempt in range(self.policy.attempts):
            self.attempt = attempt
            yield attempt

    @property
    def last(self) -> bool:
        return self.attempt == self.policy.attempts - 1

    def after_no_answer(self, never_sent: bool) -> float | None:
        """No HTTP answer: retry (after the returned delay) only if nothing can have happened."""
        if (self.idempotent or never_sent) and not self.last:
            self._count("unreachable" if never_sent else "no_answer")
            return self.policy.delay(self.attempt)
        return None

    def after_status(
        self, status: int, retry_after: float | None, pause: Callable[[float], None]
    ) -> float | None:
        """An HTTP answer: how long to wait before asking again, or None when it is the answer.

        A 429 pauses the endpoint's whole budget key (`pause`) and is retried at once: the wait is
        the budget's, not this call's.
        """
        if status == 429:
            wait = retry_after if retry_after is not None else self.policy.delay(self.attempt)
            pause(wait)
            if not self.last and wait <= self.policy.max_retry_after:
                self._count("rate_limited")
                return 0.0
            return None
        if status >= 500 and self.idempotent and not self.last:
            self._count("server_error")
            return self.policy.delay(self.attempt)
        return None


def request_headers(settings: Settings, *, has_body: bool) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {settings.require_key().reveal()}",
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
    }
    if has_body:
        headers["Content-Type"] = "application/json"
    return headers


def encode_body(body: Any, path: str, max_body_bytes: int | None, endpoint_id: str) -> bytes | None:
    if body is None:
        return None
    data = json.dumps(body, separators=(",", ":")).encode()
    if max_body_bytes is not None and len(data) > max_body_bytes:
        raise PayloadTooLargeError(
            f"the request is {len(data) / 1e6:.1f} MB; {path.rsplit('/', 1)[-1]} accepts at most "
            f"{max_body_bytes / 1e6:.0f} MB (send large media as a URL instead)",
            status_code=413,
            endpoint_id=endpoint_id,
        )
    return data


def path_ids(path: str) -> tuple[str, str | None]:
    """(endpoint id, job id or None) of a job-API path `"{endpoint}/{operation}[/{job}]"`."""
    endpoint_id, _, rest = path.strip("/").partition("/")
    job_id = rest.partition("/")[2].partition("?")[0] or None
    return endpoint_id, job_id


def decode_body(text: str) -> Any:
    """An answer's body as JSON, or as the text itself when it is not JSON (None when empty)."""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def answer(
    settings: Settings,
    status: int,
    payload: Any,
    *,
    url: str,
    path: str,
    what: str,
    retry_after: float | None,
    attempts: int,
) -> Any:
    """The decoded JSON of a 2xx answer, or the rp_notebook error an error answer stands for.
    payload: the body as `decode_body` gives it."""
    endpoint_id, job_id = path_ids(path)
    ids: dict[str, Any] = {"endpoint_id": endpoint_id or None, "job_id": job_id}
    if status < 400:
        if isinstance(payload, str) and payload:
            raise MalformedAnswerError(
                f"expected JSON from {url}, got: {settings.redact(payload)[:200]!r}",
                status_code=status,
                **ids,
            )
        return payload
    detail = settings.redact(_error_text(payload))
    subject = f"{what}: " if what else ""
    if status in (401, 403):
        raise AuthenticationError(
            f"{subject}the API key was refused ({status}). Check RUNPOD_API_KEY (its value is never shown)."
            + (f" Server said: {detail}" if detail else ""),
            status_code=status,
            body=payload,
            **ids,
        )
    if status == 404:
        raise NotFoundError(
            f"{subject}not found (404){': ' + detail if detail else ''}", status_code=404, body=payload, **ids
        )
    if status == 413:
        raise PayloadTooLargeError(
            f"{subject}request too large (413): {detail}", status_code=413, body=payload, **ids
        )
    if status == 429:
        raise RateLimitedError(
            f"{subject}rate limited (429) after {attempts} attempts: {detail}",
            body=payload,
            retry_after=retry_after,
            **ids,
        )
    if status >= 500:
        raise ServerError(
            f"{subject}server error ({status}): {detail}", status_code=status, body=payload, **ids
        )
    raise BadRequestError(f"{subject}HTTP {status}: {detail}", status_code=status, body=payload, **ids)


def no_answer_message(
    settings: Settings,
    base_url: str,
    method: str,
    url: str,
    reason: str,
    never_sent: bool,
    attempts: int,
) -> str:
    """reason: why no answer came, as "ExceptionType: message"."""
    reason = settings.redact(reason)
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if never_sent:
        return f"could not reach {base_url}{tries} ({reason})"
    return f"{method} {url} got no answer{tries} ({reason})"


def retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class _RetryCounts:
    """Retries by cause: "unreachable" (never sent), "no_answer" (dropped or timed out),
    "server_error" (5xx), "rate_limited" (429)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, cause: str) -> None:
        with self._lock:
            self._counts[cause] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class HTTPTransport:
    """A requests.Session bound to one base URL and key, raising rp_notebook errors."""

    def __init__(
        self,
        settings: Settings,
        base_url: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        budget: RequestBudget | None = None,
        max_connections: int = 64,
    ) -> None:
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        #: Shared by every transport of the process unless given: the server counts per endpoint.
        self.budget = budget or default_budget()
        self._sleep = sleep
        self._session = session or requests.Session()
        # Kept connections: as many as the threads sending at once, else every request past the
        # pool opens (and then drops) a new TCP connection.
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=4, pool_maxsize=max_connections, max_retries=0
        )
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        # requests reads proxy and CA-bundle settings from os.environ again on every call, which is
        # a fifth of a request's CPU time; the base URL is fixed, so read them once, here.
        environment = self._session.merge_environment_settings(self.base_url, {}, None, None, None)
        self._session.trust_env = False
        self._session.proxies.update(environment["proxies"])
        self._session.verify = environment["verify"]
        #: Count of HTTP requests actually sent (benchmarks report requests per job).
        self.requests_sent = 0
        self._retries = _RetryCounts()

    def retry_counts(self) -> dict[str, int]:
        """How many requests were sent again, by cause (see `_RetryCounts`)."""
        return self._retries.snapshot()

    def close(self) -> None:
        self._session.close()

    def request(
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
        headers = request_headers(self.settings, has_body=data is not None)
        url = f"{self.base_url}/{path.lstrip('/')}"
        attempts = Attempts(self.retry, idempotent=idempotent, count=self._retries.count)
        for attempt in attempts:
            try:
                with self.budget.slot(
                    self.base_url, endpoint_id, operation, max_wait=self.retry.max_retry_after
                ):
                    self.requests_sent += 1
                    response = self._session.request(
                        method,
                        url,
                        data=data,
                        params=params,
                        headers=headers,
                        timeout=(5.0, timeout or self.timeout),
                    )
            except requests.RequestException as exc:
                never_sent = _never_sent(exc)
                delay = attempts.after_no_answer(never_sent)
                if delay is None:
                    raise TransportError(
                        no_answer_message(
                            self.settings,
                            self.base_url,
                            method,
                            url,
                            f"{type(exc).__name__}: {exc}",
                            never_sent,
                            attempt + 1,
                        ),
                        maybe_delivered=not never_sent,
                        endpoint_id=endpoint_id,
                        job_id=path_ids(path)[1],
                    ) from None
                self._sleep(delay)
                continue
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            delay = attempts.after_status(
                response.status_code,
                retry_after,
                lambda wait: self.budget.pause(self.base_url, endpoint_id, operation, wait),
            )
            if delay is None:
                return answer(
                    self.settings,
                    response.status_code,
                    decode_body(response.text),
                    url=response.url,
                    path=path,
                    what=what,
                    retry_after=retry_after,
                    attempts=self.retry.attempts,
                )
            if delay:
                self._sleep(delay)
        raise AssertionError("unreachable")  # the last attempt always returns or raises


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request provably never reached the server, so even a POST is safe to repeat."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)
        return isinstance(reason, NewConnectionError | ConnectTimeoutError)
    return False


def _error_text(payload: Any) -> str:
    if isinstance(payload, dict):
        for key in ("error", "message", "detail", "title"):
            if payload.get(key):
                return str(payload[key])
        return json.dumps(payload)[:500]
    return str(payload)[:500]
