"""Per-endpoint request budget: stay under Runpod's rate limits instead of running into them.

Runpod limits every endpoint per operation (shared/docs/runpod-platform.md §1.5): so many requests
per 10 s, and so many in flight at once. One table, `RUNPOD_RATE_LIMITS`, holds those numbers; the
client (`RequestBudget`, used by `HTTPTransport`) and the local endpoint (which enforces them and
answers 429) both read it, so they cannot drift apart.

How the client keeps under the limits:

- A budget key is (base URL, endpoint id, operation group). Operations that Runpod counts together
  share a group (`/status`, `/status-sync` and `/stream` are one row of the table).
- Rate: a sliding-window log of send times. At most `floor(requests * safety)` requests start in
  any window of `per_s` seconds. A token bucket would allow a full burst on top of a full refill,
  i.e. up to twice the limit inside one window; a log can never do that, whichever way the server
  counts (fixed or sliding windows).
- Concurrency: a count of requests in flight, held from before the send until the response body has
  been read. That interval contains the server's own view of the request, so the server never sees
  more in flight than we allow.
- The safety margin (default 90 %) leaves room for other clients of the same endpoint (another
  kernel, a CLI) and for clock skew between our send times and the server's arrival times.
- 429: `pause(key, seconds)` stops the whole key until then: every thread's next request on that
  endpoint and group waits, not only the one that was refused, so a refused burst is not followed
  by another one. The transport's retry then goes through the same gate; there is no second
  backoff for 429 anywhere.
- Waiting blocks on a condition variable with a timeout equal to the time until the next slot frees
  (or until a request in flight ends): no spinning, and nothing wakes up early for nothing. The
  asyncio twin, `aslot`, shares the same state (a thread's requests and the event loop's count
  together); it sleeps until the window frees a slot, or in 5 ms steps while the key is full of
  requests in flight, which the limits here (hundreds) make rare.

Operations the table does not list are not limited, except `/health` and `/retry`: Runpod's table
does not name them, so `/health` is treated like `/status` and `/retry` like `/run` (it queues a job),
each in a group of its own. The documented effective limit can be higher on endpoints with many
running workers (`running_workers x requests_per_worker`); the base numbers are the safe floor.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from ..errors import RateLimitedError

__all__ = [
    "RUNPOD_RATE_LIMITS",
    "BudgetStats",
    "RateLimit",
    "RateLimits",
    "RequestBudget",
    "default_budget",
    "split_job_path",
]


@dataclass(frozen=True)
class RateLimit:
    """At most `requests` per `per_s` seconds, and at most `concurrent` in flight (None: unlimited)."""

    requests: int
    per_s: float = 10.0
    concurrent: int | None = None

    def __post_init__(self) -> None:
        if self.requests < 1 or self.per_s <= 0:
            raise ValueError(f"a rate limit needs requests >= 1 and per_s > 0, got {self}")
        if self.concurrent is not None and self.concurrent < 1:
            raise ValueError(f"concurrent must be >= 1 or None, got {self.concurrent}")


@dataclass(frozen=True)
class RateLimits:
    """Limits per operation group, and which job-API operation (the URL segment) is in which group."""

    groups: Mapping[str, RateLimit]
    operations: Mapping[str, str]

    def group_of(self, operation: str | None) -> str | None:
        """The group an operation counts against; None when it is not limited."""
        group = self.operations.get(operation or "")
        return group if group in self.groups else None

    def limit_of(self, group: str) -> RateLimit:
        return self.groups[group]

    def with_limits(self, **limits: RateLimit | None) -> RateLimits:
        """A copy with some groups changed (None removes a group's limit), e.g. in tests:
        `RUNPOD_RATE_LIMITS.with_limits(run=RateLimit(5, per_s=1))`. Group names use `_` for `-`."""
        groups = dict(self.groups)
        for name, limit in limits.items():
            group = name.replace("_", "-")
            if group not in self.operations.values():
                raise ValueError(
                    f"no operation group {group!r}; groups: {sorted(set(self.operations.values()))}"
                )
            if limit is None:
                groups.pop(group, None)
            else:
                groups[group] = limit
        return replace(self, groups=groups)


_STATUS_LIMIT = RateLimit(2000, concurrent=400)

#: Runpod's documented per-endpoint limits (runpod-platform.md §1.5; the table "Rate limits and
#: quotas" of runpod/docs serverless/endpoints/send-requests.mdx and operations.mdx, which also puts
#: /status-sync with /status and /stream). `health` and `retry` are not in Runpod's table: they take
#: the numbers of `status` and `run` (see the module docstring).
RUNPOD_RATE_LIMITS = RateLimits(
    groups={
        "runsync": RateLimit(2000, concurrent=400),
        "run": RateLimit(1000, concurrent=200),
        "status": _STATUS_LIMIT,
        "cancel": RateLimit(100, concurrent=20),
        "purge-queue": RateLimit(2),
        "requests": RateLimit(10, concurrent=2),  # GET /requests: "10 requests per 10 seconds, 2 concurrent"
        "health": _STATUS_LIMIT,
        "retry": RateLimit(1000, concurrent=200),
    },
    operations={
        "runsync": "runsync",
        "run": "run",
        "status": "status",
        "status-sync": "status",
        "stream": "status",
        "cancel": "cancel",
        "purge-queue": "purge-queue",
        "requests": "requests",
        "health": "health",
        "retry": "retry",
    },
)


def split_job_path(path: str) -> tuple[str, str]:
    """`"{endpoint_id}/{operation}[/{job_id}]"` -> (endpoint_id, operation)."""
    endpoint_id, _, rest = path.strip("/").partition("/")
    return endpoint_id, rest.partition("/")[0]


@dataclass(frozen=True)
class BudgetStats:
    """What one budget key has done so far (a snapshot)."""

    sent: int  # requests let through
    waited: int  # of those, how many had to wait for a slot or a pause
    wait_s: float  # total time spent waiting
    refusals: int  # 429s reported through pause()
    in_flight: int
    max_requests: int  # the window's allowance after the safety margin
    max_in_flight: int | None


@dataclass(eq=False)
class _Key:
    """The state of one (base URL, endpoint, group): its send-time log, in-flight count and pause."""

    max_requests: int
    window_s: float
    max_in_flight: int | None
    cond: threading.Condition = field(default_factory=threading.Condition)
    sent_at: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    paused_until: float = 0.0
    sent: int = 0
    waited: int = 0
    wait_s: float = 0.0
    refusals: int = 0

    def snapshot(self) -> BudgetStats:
        with self.cond:
            return BudgetStats(
                self.sent,
                self.waited,
                self.wait_s,
                self.refusals,
                self.in_flight,
                self.max_requests,
                self.max_in_flight,
            )


class RequestBudget:
    """Rate and concurrency limits per (base URL, endpoint, operation group), shared by threads.

    limits: the table (default Runpod's). safety: the fraction of each limit we allow ourselves.
    One budget is meant to be shared by every client of a process (`default_budget()`), since the
    server counts per endpoint, not per client object.
    """

    def __init__(
        self,
        limits: RateLimits = RUNPOD_RATE_LIMITS,
        *,
        safety: float = 0.9,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < safety <= 1:
            raise ValueError(f"safety must be in (0, 1], got {safety}")
        self.limits = limits
        self.safety = safety
        self._clock = clock
        self._keys: dict[tuple[str, str, str], _Key] = {}
        self._keys_lock = threading.Lock()

    @contextlib.contextmanager
    def slot(
        self, base_url: str, endpoint_id: str, operation: str | None, *, max_wait: float | None = None
    ) -> Iterator[None]:
        """Hold one request's place: blocks until the window and the in-flight count allow it.

        Raises RateLimitedError without waiting when the key is paused (after a 429) for longer
        than `max_wait` seconds: the caller would rather hear it now than block that long.
        """
        state = self._state(base_url, endpoint_id, operation)
        if state is None:
            yield
            return
        started, waited = self._clock(), False
        with state.cond:
            while (
                timeout := self._take(state, started, waited, endpoint_id, operation or "", max_wait)
            ) != 0.0:
                waited = True
                state.cond.wait(timeout)
        try:
            yield
        finally:
            self._release(state)

    @contextlib.asynccontextmanager
    async def aslot(
        self, base_url: str, endpoint_id: str, operation: str | None, *, max_wait: float | None = None
    ) -> AsyncIterator[None]:
        """`slot` for a coroutine: waits with asyncio.sleep, never blocking the event loop."""
        state = self._state(base_url, endpoint_id, operation)
        if state is None:
            yield
            return
        started, waited = self._clock(), False
        while True:
            with state.cond:
                timeout = self._take(state, started, waited, endpoint_id, operation or "", max_wait)
            if timeout == 0.0:
                break
            waited = True
            await asyncio.sleep(_CONCURRENCY_POLL_S if timeout is None else timeout)
        try:
            yield
        finally:
            self._release(state)

    def pause(self, base_url: str, endpoint_id: str, operation: str | None, seconds: float) -> None:
        """The server refused a request (429): nothing more on this key for `seconds`."""
        state = self._state(base_url, endpoint_id, operation)
        if state is None:
            return
        with state.cond:
            state.refusals += 1
            state.paused_until = max(state.paused_until, self._clock() + max(0.0, seconds))
            state.cond.notify_all()  # waiters re-compute how long to sleep

    def stats(self) -> dict[tuple[str, str, str], BudgetStats]:
        """A snapshot per (base URL, endpoint id, group) used so far."""
        with self._keys_lock:
            keys = dict(self._keys)
        return {key: state.snapshot() for key, state in keys.items()}

    # -- internals ----------------------------------------------------------------------------------

    def _state(self, base_url: str, endpoint_id: str, operation: str | None) -> _Key | None:
        group = self.limits.group_of(operation)
        if group is None:
            return None
        key = (base_url.rstrip("/"), endpoint_id, group)
        with self._keys_lock:
            state = self._keys.get(key)
            if state is None:
                limit = self.limits.limit_of(group)
                state = self._keys[key] = _Key(
                    max_requests=max(1, math.floor(limit.requests * self.safety)),
                    window_s=limit.per_s,
                    max_in_flight=None
                    if limit.concurrent is None
                    else max(1, math.floor(limit.concurrent * self.safety)),
                )
            return state

    def _take(
        self,
        state: _Key,
        started: float,
        waited: bool,
        endpoint_id: str,
        operation: str,
        max_wait: float | None,
    ) -> float | None:
        """Under state.cond: take a slot (0.0), or say how long to wait (None: until a release)."""
        now = self._clock()
        timeout = self._time_to_slot(state, now)
        if timeout == 0.0:
            state.sent_at.append(now)
            state.in_flight += 1
            state.sent += 1
            if waited:
                state.waited += 1
                state.wait_s += now - started
            return 0.0
        paused_for = state.paused_until - now
        if max_wait is not None and paused_for > max_wait:
            raise RateLimitedError(
                f"endpoint {endpoint_id}: {operation} requests are paused for another "
                f"{paused_for:.0f} s after a 429 from the server; not sent",
                retry_after=paused_for,
                endpoint_id=endpoint_id,
            )
        return timeout

    @staticmethod
    def _release(state: _Key) -> None:
        with state.cond:
            state.in_flight -= 1
            state.cond.notify_all()

    @staticmethod
    def _time_to_slot(state: _Key, now: float) -> float | None:
        """0.0 when a request may start now, else how long to wait (None: until one in flight ends)."""
        if state.paused_until > now:
            return state.paused_until - now
        window_start = now - state.window_s
        while state.sent_at and state.sent_at[0] <= window_start:
            state.sent_at.popleft()
        if len(state.sent_at) >= state.max_requests:
            return state.sent_at[0] - window_start
        if state.max_in_flight is not None and state.in_flight >= state.max_in_flight:
            return None
        return 0.0


_CONCURRENCY_POLL_S = 0.005

_default: RequestBudget | None = None
_default_lock = threading.Lock()


def default_budget() -> RequestBudget:
    """The process-wide budget (Runpod's limits) that every client shares unless given its own."""
    global _default
    with _default_lock:
        if _default is None:
            _default = RequestBudget()
        return _default
