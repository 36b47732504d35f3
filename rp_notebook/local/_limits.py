"""Runpod's per-endpoint rate limits, enforced by the local endpoint: 429 with Retry-After, counted.

The limits are the client's own table (`rp_notebook.client.RUNPOD_RATE_LIMITS`, Runpod's documented
numbers), so a client that keeps under its budget is never refused here, and one that does not
learns it locally instead of on a paid endpoint. A server takes its own table
(`LocalEndpoint(rate_limits=...)`, tiny ones in tests) or None for no limits.

Per (endpoint, operation group), as Runpod counts:

- rate: a sliding-window log of the requests let through. Refused requests are not logged, so a
  client that waits for Retry-After gets in once the window has moved on.
- concurrency: requests being handled (a status-sync long-poll holds its place while it waits).
- over either: 429, JSON `{"error": ...}` and `Retry-After` in whole seconds (until the oldest
  logged request leaves the window; 1 when only concurrency is over).

Every request to the job API is counted per endpoint and operation, let through or refused, so
benchmarks and tests can read requests per job and refusals from the server's side
(`LocalEndpoint.rate_limit_stats`, or `GET /_local/{endpoint_id}/rate-limits` from another process).
Worker-protocol routes are neither limited nor counted. Everything runs on the server's event-loop
thread, so there are no locks.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..client._budget import RateLimit, RateLimits

__all__ = ["EndpointRateLimiter", "RateLimitStats"]


@dataclass(frozen=True)
class RateLimitStats:
    """What one endpoint's job API was asked: per operation let through and refused (429);
    per operation group the most requests that were in flight at once."""

    endpoint_id: str
    accepted: Mapping[str, int]
    refused: Mapping[str, int]
    peak_in_flight: Mapping[str, int]

    @property
    def total_accepted(self) -> int:
        return sum(self.accepted.values())

    @property
    def total_refused(self) -> int:
        return sum(self.refused.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint_id": self.endpoint_id,
            "accepted": dict(self.accepted),
            "refused": dict(self.refused),
            "peak_in_flight": dict(self.peak_in_flight),
            "total_accepted": self.total_accepted,
            "total_refused": self.total_refused,
        }


@dataclass(eq=False)
class _Window:
    limit: RateLimit
    admitted_at: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    peak_in_flight: int = 0


@dataclass(eq=False)
class _EndpointCounts:
    accepted: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    windows: dict[str, _Window] = field(default_factory=dict)


class EndpointRateLimiter:
    """Admits or refuses each job-API request of every endpoint of one server, and counts them."""

    def __init__(self, limits: RateLimits | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._endpoints: dict[str, _EndpointCounts] = {}

    def admit(self, endpoint_id: str, operation: str) -> float | None:
        """None when the request may go on (then call `release` when it is answered), else the
        seconds the client should wait (the request is refused and counted as such)."""
        counts = self._endpoints.setdefault(endpoint_id, _EndpointCounts())
        window = self._window(counts, operation)
        if window is not None:
            retry_after = self._over_by(window)
            if retry_after is not None:
                counts.refused[operation] += 1
                return retry_after
            window.admitted_at.append(self._clock())
            window.in_flight += 1
            window.peak_in_flight = max(window.peak_in_flight, window.in_flight)
        counts.accepted[operation] += 1
        return None

    def release(self, endpoint_id: str, operation: str) -> None:
        window = self._window(self._endpoints[endpoint_id], operation)
        if window is not None:
            window.in_flight -= 1

    def describe(self, operation: str) -> str:
        """The limit of an operation's group in words, for the 429 message."""
        group = self.limits.group_of(operation) if self.limits is not None else None
        if self.limits is None or group is None:
            return f"/{operation} is not limited"
        limit = self.limits.limit_of(group)
        text = f"/{operation} allows {limit.requests} requests per {limit.per_s:g} s"
        if limit.concurrent is not None:
            text += f" and {limit.concurrent} at once"
        return text + " per endpoint"

    def stats(self, endpoint_id: str) -> RateLimitStats:
        counts = self._endpoints.get(endpoint_id, _EndpointCounts())
        return RateLimitStats(
            endpoint_id=endpoint_id,
            accepted=dict(counts.accepted),
            refused=dict(counts.refused),
            peak_in_flight={group: window.peak_in_flight for group, window in counts.windows.items()},
        )

    def _window(self, counts: _EndpointCounts, operation: str) -> _Window | None:
        if self.limits is None:
            return None
        group = self.limits.group_of(operation)
        if group is None:
            return None
        window = counts.windows.get(group)
        if window is None:
            window = counts.windows[group] = _Window(self.limits.limit_of(group))
        return window

    def _over_by(self, window: _Window) -> float | None:
        now = self._clock()
        window_start = now - window.limit.per_s
        while window.admitted_at and window.admitted_at[0] <= window_start:
            window.admitted_at.popleft()
        if len(window.admitted_at) >= window.limit.requests:
            # Whole seconds (HTTP's delay-seconds), rounded up so a client that obeys gets in.
            return max(1, math.ceil(window.admitted_at[0] - window_start))
        if window.limit.concurrent is not None and window.in_flight >= window.limit.concurrent:
            return 1
        return None
