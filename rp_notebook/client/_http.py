"""One HTTP call to a Runpod API, with retries that know which calls are safe to repeat.

Retry policy (why, not only what):

- A request that never reached the server (connection refused, DNS, connect timeout) is retried
  for every call: nothing happened server-side.
- 429 is retried for every call: a refused request did not run. The wait is not this call's own:
  `Retry-After` (or a backoff when the server gives none) pauses the endpoint's whole operation
  group in the shared RequestBudget (`_budget.py`), so every thread waits it out, and the retry
  passes through the same gate as any other request.
- 5xx, dropped connections and read timeouts are retried only for idempotent calls (status,
  status-sync, stream, health, cancel, purge), with exponential backoff and jitter
  (`RetryPolicy`). Asking again cannot change anything on the server, so it is always safe.
- A `run` (or `runsync`) that may have reached the server is never re-sent. Why: Runpod's job API
  has no idempotency key, so a second POST queues a second job, billed on its own; and it has no
  way to list an endpoint's jobs, so a client cannot check whether the first one arrived. When the
  connection drops or times out after the request was sent, the job may or may not exist, and only
  the lost answer held its id. The call ends at once in `RunAnswerLostError` (JobsClient.run):
  it says that a job may have been queued and billed, why it was not re-sent, and where to look for
  it. A 5xx answer to a run is just as ambiguous (the gateway may fail after queueing), so it ends in
  a ServerError that says the same. Only a 429 and a request that provably never left this machine
  (connection refused, connect timeout) are re-sent: nothing ran.

Before every attempt the request takes a slot in the RequestBudget, which keeps us under Runpod's
per-endpoint rate and concurrency limits (blocking the calling thread until a slot is free), so a
well-behaved client rarely sees a 429 at all.

HTTP errors become the exception tree in rp_notebook.errors; every message is redacted of the key.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from .. import __version__
from ..config import Settings
from ..errors import (
    APIError,
    AuthenticationError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from ._budget import RequestBudget, default_budget, split_job_path

__all__ = ["HTTPTransport", "RetryPolicy"]

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
        base = min(self.max_delay, self.backoff * 2**attempt)
        return base * (0.5 + random.random() / 2)


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
        # Kept connections: as many as the job manager has threads sending at once, else every
        # request past the pool opens (and then drops) a new TCP connection.
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
        #: Retries by cause: "unreachable" (never sent), "no_answer" (dropped or timed out),
        #: "server_error" (5xx), "rate_limited" (429). Read with `retry_counts()`.
        self._retries: Counter[str] = Counter()
        self._retries_lock = threading.Lock()

    def retry_counts(self) -> dict[str, int]:
        """How many requests were sent again, by cause (see `_retries`)."""
        with self._retries_lock:
            return dict(self._retries)

    def _count_retry(self, cause: str) -> None:
        with self._retries_lock:
            self._retries[cause] += 1

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
        key = self.settings.require_key()
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            if max_body_bytes is not None and len(data) > max_body_bytes:
                raise PayloadTooLargeError(
                    f"the request is {len(data) / 1e6:.1f} MB; {path.rsplit('/', 1)[-1]} accepts at most "
                    f"{max_body_bytes / 1e6:.0f} MB (send large media as a URL instead)",
                    status_code=413,
                )
        headers = {
            "Authorization": f"Bearer {key.reveal()}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        if data is not None:
            headers["Content-Type"] = "application/json"
        url = f"{self.base_url}/{path.lstrip('/')}"
        endpoint_id, operation = split_job_path(path)
        for attempt in range(self.retry.attempts):
            last = attempt == self.retry.attempts - 1
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
                if (idempotent or never_sent) and not last:
                    self._count_retry("unreachable" if never_sent else "no_answer")
                    self._sleep(self.retry.delay(attempt))
                    continue
                raise TransportError(
                    self._transport_message(method, url, exc, never_sent, attempt + 1),
                    maybe_delivered=not never_sent,
                ) from None
            if response.status_code == 429:
                wait = _retry_after(response)
                if wait is None:
                    wait = self.retry.delay(attempt)
                # Every thread on this endpoint and group waits, this retry included (in slot()).
                self.budget.pause(self.base_url, endpoint_id, operation, wait)
                if not last and wait <= self.retry.max_retry_after:
                    self._count_retry("rate_limited")
                    continue
            if response.status_code >= 500 and idempotent and not last:
                self._count_retry("server_error")
                self._sleep(self.retry.delay(attempt))
                continue
            return self._decode(response, what)
        raise AssertionError("unreachable")  # the last attempt always returns or raises

    def _decode(self, response: requests.Response, what: str) -> Any:
        status = response.status_code
        try:
            payload: Any = response.json()
        except ValueError:
            payload = response.text
        if status < 400:
            if isinstance(payload, str) and payload:
                raise APIError(
                    f"expected JSON from {response.url}, got: {self.settings.redact(payload)[:200]!r}",
                    status_code=status,
                )
            return payload
        detail = self.settings.redact(_error_text(payload))
        subject = f"{what}: " if what else ""
        if status in (401, 403):
            raise AuthenticationError(
                f"{subject}the API key was refused ({status}). Check RUNPOD_API_KEY (its value is never shown)."
                + (f" Server said: {detail}" if detail else ""),
                status_code=status,
                body=payload,
            )
        if status == 404:
            raise NotFoundError(
                f"{subject}not found (404){': ' + detail if detail else ''}", status_code=404, body=payload
            )
        if status == 413:
            raise PayloadTooLargeError(
                f"{subject}request too large (413): {detail}", status_code=413, body=payload
            )
        if status == 429:
            raise RateLimitedError(
                f"{subject}rate limited (429) after {self.retry.attempts} attempts: {detail}",
                body=payload,
                retry_after=_retry_after(response),
            )
        if status >= 500:
            raise ServerError(f"{subject}server error ({status}): {detail}", status_code=status, body=payload)
        raise APIError(f"{subject}HTTP {status}: {detail}", status_code=status, body=payload)

    def _transport_message(
        self, method: str, url: str, exc: Exception, never_sent: bool, attempts: int
    ) -> str:
        reason = self.settings.redact(f"{type(exc).__name__}: {exc}")
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        if never_sent:
            return f"could not reach {self.base_url}{tries} ({reason})"
        return f"{method} {url} got no answer{tries} ({reason})"


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request provably never reached the server, so even a POST is safe to repeat."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)
        return isinstance(reason, NewConnectionError | ConnectTimeoutError)
    return False


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_text(payload: Any) -> str:
    if isinstance(payload, dict):
        for key in ("error", "message", "detail", "title"):
            if payload.get(key):
                return str(payload[key])
        return json.dumps(payload)[:500]
    return str(payload)[:500]
