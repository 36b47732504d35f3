"""Fault injection for the local endpoint's job API: what a flaky network or gateway does to a client.

For tests only. A `Faults` object hangs on every LocalEndpoint (`server.faults`); it does nothing until
rules are set, at construction (`LocalEndpoint(faults=Faults(drop=0.1, seed=1))`) or at runtime:

    server.faults.set(drop=0.1, error_500=0.1, rate_429=0.1, slow=0.2, slow_s=0.3)
    server.faults.set(drop=0.5, routes=["run"])      # only /run changes; other routes keep theirs
    server.faults.clear()

Per request, one draw picks at most one of:

- `drop`: close the connection without answering. With probability `drop_after` the route runs
  first and only its answer is lost (a `run` then created a job nobody heard of); otherwise the
  request is dropped before anything happens. Both are counted apart (`drop_before`,
  `drop_after`), and the ids of jobs whose run/runsync answer was lost are kept
  (`lost_run_answers`), so a test can check a client against what really happened.
- `error_500`: answer 500 with a JSON error, before the route runs (nothing happened).
- `rate_429`: answer 429 with `Retry-After: retry_after_s`, before the route runs.

and, in a second draw, `slow` (probability; 1 by default) delays the answer by `slow_s` seconds.

Injected faults come after the API key and endpoint checks and before the rate limiter, so an
injected 429 is not counted as a real one and a dropped request is not counted as let through.
Worker routes are never touched: the faults are between the client and the API, not inside Runpod.

Reproducible: decisions come from one `random.Random(seed)` (seed 0 unless given), drawn in the
order requests arrive; the same sequence of requests gets the same faults.

Zero cost when off: the routes check one boolean (`active`) and skip everything else.

This module holds the rules and the draws, with no HTTP in it (`Faults` is a public name of
`rp_notebook.local`, importable without the server); `_fault_routes` applies a drawn plan to a
job-API request.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["FAULT_ROUTES", "FaultPlan", "FaultRule", "Faults"]

#: Job-API operations faults can be set for (the URL segment after the endpoint id).
FAULT_ROUTES = (
    "run",
    "runsync",
    "status",
    "status-sync",
    "stream",
    "cancel",
    "retry",
    "purge-queue",
    "health",
)


@dataclass(frozen=True)
class FaultRule:
    """The faults of one route; probabilities per request."""

    drop: float = 0.0
    error_500: float = 0.0
    rate_429: float = 0.0
    slow: float = 1.0
    slow_s: float = 0.0
    drop_after: float = 0.5
    retry_after_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("drop", "error_500", "rate_429", "slow", "drop_after"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault {name} must be a probability in [0, 1], got {value!r}")
        if self.drop + self.error_500 + self.rate_429 > 1.0:
            raise ValueError("drop + error_500 + rate_429 must not exceed 1")
        if self.slow_s < 0:
            raise ValueError(f"slow_s must be >= 0, got {self.slow_s!r}")
        if self.retry_after_s <= 0:
            raise ValueError(f"retry_after_s must be > 0, got {self.retry_after_s!r}")

    @property
    def active(self) -> bool:
        return bool(self.drop or self.error_500 or self.rate_429 or (self.slow and self.slow_s))


@dataclass(frozen=True)
class FaultPlan:
    """What happens to one request: `kind` is "", "drop_before", "drop_after", "error_500" or
    "rate_429"; `delay_s` is added before the answer."""

    operation: str
    kind: str
    delay_s: float
    retry_after_s: float


class Faults:
    """Injected faults of one server's job API; see the module docstring.

    Rules are set from any thread; decisions are made on the server's loop thread. `counts`,
    `counts_by_route` and `lost_run_answers` are snapshots, safe to read from any thread.
    """

    def __init__(self, *, seed: int | None = 0, routes: Iterable[str] | None = None, **rule: float) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._rules: Mapping[str, FaultRule] = {}
        self._counts: dict[str, Counter[str]] = {}
        self._lost: list[str] = []
        #: True while any route has a rule that can fire; the routes check only this when off.
        self.active = False
        if rule:
            self.set(routes=routes, seed=None, **rule)

    def set(self, *, routes: Iterable[str] | None = None, seed: int | None = None, **rule: float) -> None:
        """Replace the rule of `routes` (default: every job-API route) with `rule`'s values
        (drop, error_500, rate_429, slow, slow_s, drop_after, retry_after_s). seed: restart the
        random sequence. Counts are kept (see `reset_counts`)."""
        new = FaultRule(**rule)
        names = _route_names(routes)
        with self._lock:
            rules = dict(self._rules)
            for name in names:
                rules[name] = new
            self._rules = {name: r for name, r in rules.items() if r.active}
            if seed is not None:
                self._rng = random.Random(seed)
            self.active = bool(self._rules)

    def clear(self, routes: Iterable[str] | None = None) -> None:
        """No more faults on `routes` (default: all)."""
        names = set(_route_names(routes))
        with self._lock:
            self._rules = {name: r for name, r in self._rules.items() if name not in names}
            self.active = bool(self._rules)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts = {}
            self._lost = []

    @property
    def rules(self) -> dict[str, FaultRule]:
        with self._lock:
            return dict(self._rules)

    @property
    def counts(self) -> dict[str, int]:
        """Totals over all routes: requests (seen while active), drop_before, drop_after,
        error_500, rate_429, slow; and run_answers_lost (run/runsync answers dropped after the
        job was created)."""
        total: Counter[str] = Counter()
        with self._lock:
            for counter in self._counts.values():
                total.update(counter)
            total["run_answers_lost"] = len(self._lost)
        return dict(total)

    @property
    def counts_by_route(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {route: dict(counter) for route, counter in self._counts.items()}

    @property
    def lost_run_answers(self) -> list[str]:
        """Ids of the jobs a run/runsync created whose answer was then dropped."""
        with self._lock:
            return list(self._lost)

    # ------------------------------------------------------------------ the routes' side
    def decide(self, operation: str) -> FaultPlan | None:
        """The fate of one request of `operation`; None when no rule applies."""
        with self._lock:
            rule = self._rules.get(operation)
            if rule is None:
                return None
            counter = self._counts.setdefault(operation, Counter())
            counter["requests"] += 1
            draw = self._rng.random()
            kind = ""
            if draw < rule.drop:
                kind = "drop_after" if self._rng.random() < rule.drop_after else "drop_before"
            elif draw < rule.drop + rule.error_500:
                kind = "error_500"
            elif draw < rule.drop + rule.error_500 + rule.rate_429:
                kind = "rate_429"
            delay = rule.slow_s if rule.slow_s and self._rng.random() < rule.slow else 0.0
            if kind:
                counter[kind] += 1
            if delay:
                counter["slow"] += 1
            return FaultPlan(operation, kind, delay, rule.retry_after_s)

    def answer_lost(self, job_id: str) -> None:
        """Note a job whose run/runsync answer a fault lost (`lost_run_answers`)."""
        with self._lock:
            self._lost.append(job_id)


def _route_names(routes: Iterable[str] | None) -> tuple[str, ...]:
    if routes is None:
        return FAULT_ROUTES
    if isinstance(routes, str):
        routes = (routes,)
    names = tuple(routes)
    unknown = sorted(set(names) - set(FAULT_ROUTES))
    if unknown:
        raise ValueError(f"no job-API route {', '.join(unknown)}; routes: {', '.join(FAULT_ROUTES)}")
    return names
