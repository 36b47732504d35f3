"""What this user spent, summed from the job ledger, and the budget checked before each submission.

- `budget(usd=5)` / `budget(usd=20, per="day")`: a limit that `submit`, the `*_many` batches, the
  magics and the panels check before sending anything (see `costs._budget.Budget.check`). The
  spend it compares with is the jobs' estimated costs (`Job.cost`): this kernel's jobs for
  "session"; for "day", every job the ledger saw end since local midnight, other kernels included.
  The cost of the next job is the model's recent average (its last `RECENT_JOBS` priced jobs).
- `cost_report()`: the figures `%runpod cost` shows, read from the ledger so that they survive a
  kernel restart: per job, per endpoint (its jobs, the idle timeouts after their workers' last
  jobs, and the active workers of endpoints deployed from here), per day, and this notebook's total.

Idle time is the endpoint's: after each job, its worker stays up (billed at the flex rate) until the
next job on the same worker starts or the idle timeout passes, whichever comes first.
"""

from __future__ import annotations

import datetime
import time
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from .costs import (
    DEFAULT_IDLE_TIMEOUT_S,
    Budget,
    EndpointRates,
    JobCost,
    current_budget,
    current_prices,
    set_budget,
)
from .jobs import Job, get_manager
from .jobs._ledger import EndpointChange, LedgerEntry
from .jobs._recorder import notebook_name

__all__ = ["BudgetWarning", "CostReport", "EndpointSpend", "budget", "check_budget", "cost_report", "spent"]

#: How many of a model's latest priced jobs its cost per job is averaged over.
RECENT_JOBS = 10
#: Jobs the ledger is read back for a report (older ones are left out of the per-job list only).
REPORT_WINDOW_DAYS = 30


class BudgetWarning(UserWarning):
    """A submission took the spend past 80 % of the budget."""


def budget(usd: float | None = None, *, per: str = "session", off: bool = False) -> Budget | None:
    """Set a spending limit: `budget(usd=5)` for this session, `budget(usd=20, per="day")` per day.

    Submissions that would pass it are refused (BudgetExceededError) before any request. With no
    arguments, returns the budget in force (None when there is none); `budget(off=True)` removes it.
    """
    if off:
        set_budget(None)
        return None
    if usd is None:
        return current_budget()
    chosen = Budget(usd=usd, per=per)  # type: ignore[arg-type]  # Budget checks `per` itself
    set_budget(chosen)
    return chosen


def spent(per: str = "session") -> float:
    """USD spent (estimated) this session, or today (every kernel's jobs, from the ledger)."""
    manager = get_manager()
    if per == "day":
        ledger = manager.ledger
        midnight = _local_midnight()
        if ledger is not None:
            return sum(_usd(entry.cost) or 0.0 for entry in ledger.ended_since(midnight))
        return sum(_usd(job.cost) or 0.0 for job in manager.jobs() if (job.ended_at or 0) >= midnight)
    return sum(_usd(job.cost) or 0.0 for job in manager.jobs())


def cost_per_job(model: str) -> float | None:
    """The model's recent cost per job (USD), from the ledger or this session; None if none is priced."""
    manager = get_manager()
    ledger = manager.ledger
    newest_first = (
        [(entry.model, entry.cost) for entry in ledger.recent(200)]
        if ledger is not None
        else [(job.model, job.cost) for job in reversed(manager.jobs())]
    )
    priced = [usd for of, cost in newest_first if of == model and (usd := _usd(cost)) is not None]
    recent = priced[:RECENT_JOBS]
    return sum(recent) / len(recent) if recent else None


def check_budget(model: str, count: int = 1) -> None:
    """Refuse `count` more jobs of `model` that would pass the budget (BudgetExceededError, before
    any request); warn (BudgetWarning) past 80 % of it. No budget: nothing to check."""
    limit = current_budget()
    if limit is None:
        return
    what = f"{count} {model} job{'s' if count != 1 else ''}"
    warning = limit.check(spent(limit.per), cost_per_job(model), count, what=what)
    if warning is not None:
        warnings.warn(warning, BudgetWarning, stacklevel=3)


# -- the report of %runpod cost ------------------------------------------------------------------------


@dataclass
class EndpointSpend:
    endpoint_id: str
    jobs: int = 0
    jobs_usd: float = 0.0
    idle_usd: float = 0.0
    #: Active workers (workersMin) of an endpoint deployed from here, since it was deployed.
    active_usd: float = 0.0
    #: USD per hour its active workers cost now (None: none, or no price).
    running_per_hour: float | None = None

    @property
    def total_usd(self) -> float:
        return self.jobs_usd + self.idle_usd + self.active_usd


@dataclass
class CostReport:
    jobs: list[LedgerEntry] = field(default_factory=list)
    endpoints: dict[str, EndpointSpend] = field(default_factory=dict)
    days: dict[str, float] = field(default_factory=dict)
    notebook: str | None = None
    notebook_usd: float = 0.0
    unpriced_jobs: int = 0
    prices_label: str = ""

    @property
    def total_usd(self) -> float:
        return sum(spend.total_usd for spend in self.endpoints.values())


def cost_report(*, now: float | None = None) -> CostReport:
    """Every figure of `%runpod cost`, from the ledger (this session's jobs where there is none)."""
    now = time.time() if now is None else now
    manager = get_manager()
    manager.costs.wait_prepared(timeout=10)
    ledger = manager.ledger
    since = now - REPORT_WINDOW_DAYS * 86_400
    entries = (
        [entry for entry in ledger.ended_since(since) if entry.cost is not None]
        if ledger is not None
        else [_entry_of(job) for job in manager.jobs() if job.cost is not None and job.ended_at]
    )
    changes = ledger.endpoint_changes() if ledger is not None else []
    report = CostReport(prices_label=current_prices().label, notebook=notebook_name())
    for entry in entries:
        assert entry.cost is not None
        spend = report.endpoints.setdefault(entry.endpoint_id, EndpointSpend(entry.endpoint_id))
        spend.jobs += 1
        if entry.cost.usd is None:
            report.unpriced_jobs += 1
            continue
        report.jobs.append(entry)
        spend.jobs_usd += entry.cost.usd
        day = datetime.date.fromtimestamp(entry.ended_at or now).isoformat()
        report.days[day] = report.days.get(day, 0.0) + entry.cost.usd
        if report.notebook is None or entry.notebook == report.notebook:
            report.notebook_usd += entry.cost.usd
    # Each endpoint's idle timeout: as deployed or scaled from here, else as the management API gave it.
    idle_timeouts = {
        entry.endpoint_id: rates.idle_timeout_s
        for entry in report.jobs
        if (rates := manager.costs.rates(entry.base_url, entry.endpoint_id)) is not None
    }
    idle_timeouts.update({c.rates.endpoint_id: c.rates.idle_timeout_s for c in changes})
    for endpoint_id, idle_usd in _idle_costs(report.jobs, idle_timeouts, now).items():
        report.endpoints[endpoint_id].idle_usd = idle_usd
    for endpoint_id, (active_usd, per_hour) in _active_costs(changes, now).items():
        spend = report.endpoints.setdefault(endpoint_id, EndpointSpend(endpoint_id))
        spend.active_usd, spend.running_per_hour = active_usd, per_hour
    report.jobs.sort(key=lambda entry: -(entry.ended_at or 0))
    return report


def _idle_costs(
    entries: Iterable[LedgerEntry], idle_timeouts: dict[str, float], now: float
) -> dict[str, float]:
    """Per endpoint: after each job, min(idle timeout, time until the next job on its worker started)."""
    by_worker: dict[tuple[str, str], list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        if entry.worker_id and entry.ended_at is not None:
            by_worker[(entry.endpoint_id, entry.worker_id)].append(entry)
    idle: dict[str, float] = defaultdict(float)
    for (endpoint_id, _worker), jobs in by_worker.items():
        jobs.sort(key=lambda entry: entry.ended_at or 0.0)
        timeout = idle_timeouts.get(endpoint_id, DEFAULT_IDLE_TIMEOUT_S)
        for this, after in zip(jobs, [*jobs[1:], None], strict=True):
            assert this.ended_at is not None and this.cost is not None and this.cost.per_s is not None
            if after is not None and after.ended_at is not None:
                gap = after.ended_at - (after.execution_s or 0.0) - this.ended_at
            else:
                gap = now - this.ended_at
            idle[endpoint_id] += max(0.0, min(timeout, gap)) * this.cost.per_s
    return dict(idle)


def _active_costs(changes: list[EndpointChange], now: float) -> dict[str, tuple[float, float | None]]:
    """Per endpoint deployed or scaled from here: (USD of its active workers so far, USD/h now)."""
    by_endpoint: dict[str, list[EndpointChange]] = defaultdict(list)
    for change in changes:
        by_endpoint[change.rates.endpoint_id].append(change)
    prices = current_prices()
    result: dict[str, tuple[float, float | None]] = {}
    for endpoint_id, history in by_endpoint.items():
        total = 0.0
        for this, after in zip(history, [*history[1:], None], strict=True):
            per_hour = this.rates.running_per_hour(prices)
            end = after.changed_at if after is not None else now
            total += (per_hour or 0.0) * max(0.0, end - this.changed_at) / 3600
        last = history[-1]
        now_per_hour = None if last.deleted else last.rates.running_per_hour(prices)
        if total or now_per_hour:
            result[endpoint_id] = (total, now_per_hour or None)
    return result


def record_endpoint(base_url: str, rates: EndpointRates, *, deleted: bool = False) -> None:
    """Note an endpoint deployed, scaled or deleted from here: its jobs are priced with these rates
    at once, and `%runpod cost` counts its active workers from now on."""
    manager = get_manager()
    manager.costs.set_rates(base_url, rates)
    ledger = manager.ledger
    if ledger is not None:
        ledger.record_endpoint_change(base_url, rates, deleted=deleted)


def _usd(cost: JobCost | None) -> float | None:
    return None if cost is None else cost.usd


def _entry_of(job: Job) -> LedgerEntry:
    return LedgerEntry(
        job_id=job.id,
        endpoint_id=job.endpoint_id,
        base_url=job.base_url,
        model=job.model,
        status=str(job.status),
        submitted_at=job.submitted_at,
        updated_at=job.ended_at or job.submitted_at,
        ended_at=job.ended_at,
        parameters={},
        result_path=None,
        error=None,
        notebook=notebook_name(),
        worker_id=job.worker_id,
        delay_s=job.delay_time,
        execution_s=job.execution_time,
        cost=job.cost,
    )


def _local_midnight() -> float:
    today = datetime.date.today()
    return time.mktime(today.timetuple())
