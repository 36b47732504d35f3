"""A spending limit that refuses a submission before it is sent.

`Budget.check(spent, per_job, count)` is the whole rule: with `spent` USD already spent in the
budget's period and `per_job` the model's recent cost per job (None when no job of it has a cost
yet), `count` more jobs are refused when `spent + count x per_job` would pass the budget, and always
once `spent` has reached it. Within 80 % the check returns a warning to show. A batch is checked
once, as a whole, before its first job is sent.

What counts as spent (job costs of this session, or of today from the ledger) is the caller's
(`rp_notebook._api`), which knows the job manager; this module knows no job.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

from ..errors import BudgetExceededError, InputError
from ._estimate import usd_text

__all__ = ["WARN_AT", "Budget", "current_budget", "set_budget"]

Period = Literal["session", "day"]
PERIODS: tuple[Period, ...] = ("session", "day")
#: The share of the budget past which a submission is allowed with a warning.
WARN_AT = 0.8


@dataclass(frozen=True)
class Budget:
    usd: float
    per: Period = "session"

    def __post_init__(self) -> None:
        if isinstance(self.usd, bool) or not isinstance(self.usd, int | float) or not self.usd > 0:
            raise InputError("usd", f"the budget must be a number of dollars above 0, got {self.usd!r}")
        if self.per not in PERIODS:
            raise InputError("per", f"must be 'session' or 'day', got {self.per!r}")

    @property
    def period_words(self) -> str:
        return "this session" if self.per == "session" else "today"

    def check(self, spent: float, per_job: float | None, count: int = 1, *, what: str = "") -> str | None:
        """Raise BudgetExceededError if `count` more jobs would pass the budget; return a warning
        when the spend would pass 80 % of it, else None."""
        what = what or ("1 job" if count == 1 else f"{count} jobs")
        estimate = None if per_job is None else per_job * count
        after = spent + (estimate or 0.0)
        spent_words = f"{usd_text(spent)} spent {self.period_words}"
        limit = f"the budget of {usd_text(self.usd)} per {self.per}"
        if spent >= self.usd:
            why = f"{spent_words} has reached {limit}"
        elif estimate is not None and after > self.usd:
            why = (
                f"about {usd_text(estimate)} ({usd_text(per_job or 0.0)} per job, the recent cost of "
                f"this model) on top of {spent_words} would pass {limit}"
            )
        else:
            why = ""
        if why:
            raise BudgetExceededError(
                f"{what} refused: {why}. Nothing was sent. Raise the budget with "
                "rp_notebook.budget(usd=...) or %runpod budget USD, or remove it with %runpod budget off",
                spent=spent,
                estimate=estimate,
                budget=self.usd,
                per=self.per,
            )
        if after >= WARN_AT * self.usd:
            return (
                f"{usd_text(after)} of {limit} used {self.period_words} with {what} ({after / self.usd:.0%})"
            )
        return None

    def __str__(self) -> str:
        return f"{usd_text(self.usd)} per {self.per}"


_lock = threading.Lock()
_budget: Budget | None = None


def set_budget(budget: Budget | None) -> Budget | None:
    """Set (or with None, remove) this process's budget; returns the one before."""
    global _budget
    with _lock:
        before, _budget = _budget, budget
    return before


def current_budget() -> Budget | None:
    with _lock:
        return _budget
