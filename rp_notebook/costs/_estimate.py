"""What a job cost, and what an endpoint costs while it keeps workers running.

Runpod bills a serverless worker from the moment it is told to wake up until it has fully stopped,
per second, at its pool's rate times its GPU count (docs.runpod.io/serverless/pricing): its start
(the cold start), the jobs it runs, and the idle timeout it waits after the last one. The job API
tells us, for every job, `delayTime` (from submission to the start on a worker), `executionTime`
and `workerId`; from those:

- execution: the job's `executionTime` at the flex rate of its endpoint's pool;
- cold start: when the job is the first one this process saw on its worker, the worker was started
  for it and billed while the job waited, so the job's `delayTime` counts too; a job that ran on a
  worker already seen (warm) waited in the queue, which is not billed;
- the idle timeout after a worker's last job is the endpoint's cost, not a job's (`%runpod cost`
  adds it per endpoint), and so are active workers (`workersMin`), billed around the clock at the
  active rate (`EndpointRates.running_per_hour`).

Which pool ran a job is not in the job API: the estimate uses the first priced pool of the
endpoint's list (the order Runpod fills them in) and says so in `JobCost.basis`. An endpoint with
no priced pool (a CPU endpoint, a pool the table lacks) gets a cost with `usd=None` and the reason.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._prices import PriceTable, current_prices

__all__ = ["DEFAULT_IDLE_TIMEOUT_S", "CostEstimator", "EndpointRates", "JobCost", "estimate_job_cost"]

#: Runpod's default idle timeout (docs.runpod.io/serverless/pricing: "default: 5 seconds").
DEFAULT_IDLE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class EndpointRates:
    """What prices an endpoint's workers: its GPU pools (in order), GPUs per worker, scaling."""

    endpoint_id: str
    pools: tuple[str, ...]
    gpu_count: int = 1
    workers_min: int = 0
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S

    def running_per_hour(self, prices: PriceTable | None = None) -> float | None:
        """USD per hour of the active workers (`workersMin`, billed always); None without a price."""
        price = (prices or current_prices()).first_priced(self.pools)
        if price is None:
            return None
        return self.workers_min * self.gpu_count * price.active_per_hour


@dataclass(frozen=True)
class JobCost:
    """An estimate of what one job cost, with its parts and how it was made."""

    #: The total in USD; None when no price applies (`basis` says why).
    usd: float | None
    execution_s: float
    cold_start_s: float
    pool: str | None
    #: The flex rate used, USD per worker-second (the pool's per-GPU rate times the GPU count).
    per_s: float | None
    prices_as_of: str
    #: How the estimate was made, in words (which pool, which price, what was counted).
    basis: str

    @property
    def execution_usd(self) -> float | None:
        return None if self.per_s is None else self.execution_s * self.per_s

    @property
    def cold_start_usd(self) -> float | None:
        return None if self.per_s is None else self.cold_start_s * self.per_s

    @property
    def parts(self) -> str:
        """What was counted, in a few words: "ran 12.3 s + cold start 2.0 s on ADA_24"."""
        counted = f"ran {self.execution_s:.1f} s"
        if self.cold_start_s:
            counted += f" + cold start {self.cold_start_s:.1f} s"
        return counted + (f" on {self.pool}" if self.pool else "")

    def short(self) -> str:
        """ "$0.0031" (or "no price")."""
        return "no price" if self.usd is None else usd_text(self.usd)

    def to_json(self) -> dict[str, Any]:
        # Spelled out: dataclasses.asdict deep-copies every field, a cost the ledger's writer paid
        # for each of 500 ending jobs.
        return {
            "usd": self.usd,
            "execution_s": self.execution_s,
            "cold_start_s": self.cold_start_s,
            "pool": self.pool,
            "per_s": self.per_s,
            "prices_as_of": self.prices_as_of,
            "basis": self.basis,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobCost:
        def number(name: str) -> float | None:
            value = data.get(name)
            return float(value) if isinstance(value, int | float) else None

        return cls(
            usd=number("usd"),
            execution_s=number("execution_s") or 0.0,
            cold_start_s=number("cold_start_s") or 0.0,
            pool=data.get("pool"),
            per_s=number("per_s"),
            prices_as_of=str(data.get("prices_as_of") or ""),
            basis=str(data.get("basis") or ""),
        )


def usd_text(usd: float) -> str:
    """Dollars with the digits a per-second price needs: $0.00012, $0.0031, $0.420, $12.50."""
    if usd == 0:
        return "$0"
    if abs(usd) < 0.00001:
        return "<$0.00001"
    if abs(usd) < 0.001:
        return f"${usd:.5f}"
    if abs(usd) < 0.01:
        return f"${usd:.4f}"
    if abs(usd) < 1:
        return f"${usd:.3f}"
    return f"${usd:,.2f}"


def estimate_job_cost(
    *,
    execution_s: float,
    delay_s: float,
    cold_start: bool,
    rates: EndpointRates | None,
    prices: PriceTable | None = None,
    unknown_why: str = "the endpoint's GPU pools are not known",
) -> JobCost:
    """A job's cost: (execution + the cold start it waited for) x its pool's flex rate x GPUs."""
    table = prices or current_prices()
    cold_s = max(0.0, delay_s) if cold_start else 0.0
    execution_s = max(0.0, execution_s)
    if rates is None:
        return JobCost(None, execution_s, cold_s, None, None, table.as_of, f"no price: {unknown_why}")
    price = table.first_priced(rates.pools)
    if price is None:
        why = (
            "the endpoint names no GPU pool (it runs on a CPU)"
            if not rates.pools
            else f"no price for {', '.join(rates.pools)} in {table.label}"
        )
        return JobCost(None, execution_s, cold_s, None, None, table.as_of, f"no price: {why}")
    per_s = price.flex_per_s * rates.gpu_count
    gpus = f" x {rates.gpu_count} GPUs" if rates.gpu_count != 1 else ""
    first = "" if rates.pools[0] == price.pool else f" (the first priced of {', '.join(rates.pools)})"
    counted = f"ran {execution_s:.1f} s" + (f" + cold start {cold_s:.1f} s" if cold_start else "")
    basis = (
        f"{counted} x ${price.flex_per_s:.5f}/s{gpus}, the flex price of {price.pool}{first} from "
        f"{table.label}; the pool of the worker that ran it is not reported, so the endpoint's is used"
    )
    return JobCost((execution_s + cold_s) * per_s, execution_s, cold_s, price.pool, per_s, table.as_of, basis)


#: Looks up an endpoint's rates by its id (None: no such endpoint); may do HTTP, so it runs off the loop.
RatesLookup = Callable[[str], EndpointRates | None]


@dataclass(frozen=True)
class _Ended:
    """A job's end as pricing needs it (kept until its endpoint's rates are known)."""

    delay_s: float
    execution_s: float
    cold: bool
    on_priced: Callable[[JobCost], None]

    def estimate(self, rates: EndpointRates | None, why: str) -> JobCost:
        # An active worker (workersMin) is billed by the endpoint whether it runs jobs or not.
        cold = self.cold and not (rates is not None and rates.workers_min > 0)
        return estimate_job_cost(
            execution_s=self.execution_s, delay_s=self.delay_s, cold_start=cold, rates=rates, unknown_why=why
        )


def _ignore(_cost: JobCost) -> None:
    pass


class CostEstimator:
    """Prices jobs as they end, for one job manager.

    The endpoint's pools come from the management API, read once per endpoint in a background
    thread when its first job is submitted (`prepare`), so a job's end never waits for the network:
    a job that ends before that read is priced with what is known then (`usd=None` and why), and
    again, through its `on_priced`, when the read is done.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rates: dict[tuple[str, str], EndpointRates | None] = {}
        self._why: dict[tuple[str, str], str] = {}
        self._seen_workers: set[tuple[str, str, str]] = set()
        self._pending: dict[tuple[str, str], concurrent.futures.Future[None]] = {}
        # Jobs that ended while their endpoint's lookup ran: priced when it ends.
        self._waiting: dict[tuple[str, str], list[_Ended]] = {}
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def set_rates(self, base_url: str, rates: EndpointRates) -> None:
        """What deploying or scaling from here knows; also for tests and the local endpoint."""
        with self._lock:
            self._rates[(base_url, rates.endpoint_id)] = rates

    def rates(self, base_url: str, endpoint_id: str) -> EndpointRates | None:
        with self._lock:
            return self._rates.get((base_url, endpoint_id))

    def prepare(self, base_url: str, endpoint_id: str, lookup: RatesLookup) -> None:
        """Read the endpoint's rates in the background, once (`lookup` may do HTTP)."""
        key = (base_url, endpoint_id)
        with self._lock:
            if key in self._rates or key in self._pending:
                return
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rp-notebook-costs")
            future = self._pending[key] = self._pool.submit(self._look_up, key, lookup)
        # However it ends (cancelled by a shutdown included), it is no longer under way.
        future.add_done_callback(lambda _: self._forget_pending(key, future))

    def _forget_pending(self, key: tuple[str, str], future: concurrent.futures.Future[None]) -> None:
        with self._lock:
            if self._pending.get(key) is future:
                del self._pending[key]

    def wait_prepared(self, timeout: float | None = None) -> None:
        """Wait for the lookups under way (tests, and `%runpod cost` before it reads the ledger)."""
        with self._lock:
            pool = self._pool
        if pool is not None:
            pool.submit(lambda: None).result(timeout)

    def _look_up(self, key: tuple[str, str], lookup: RatesLookup) -> None:
        try:
            rates, why = lookup(key[1]), "the management API does not list this endpoint"
        except Exception as exc:  # noqa: BLE001 - a cost is an estimate; the job goes on without one
            rates, why = None, f"the endpoint's GPU pools could not be read ({exc})"
        with self._lock:
            self._rates.setdefault(key, rates)
            if rates is None:
                self._why[key] = why
            rates, why = self._rates[key], self._why.get(key, why)
            waiting = self._waiting.pop(key, [])
        for ended in waiting:  # jobs that ended while this was read: priced now
            ended.on_priced(ended.estimate(rates, why))

    def job_ended(
        self,
        *,
        base_url: str,
        endpoint_id: str,
        worker_id: str | None,
        delay_s: float,
        execution_s: float,
        on_priced: Callable[[JobCost], None] | None = None,
    ) -> JobCost:
        """The job's cost with what is known now. Never waits: while the endpoint's pools are still
        being read, the cost says so, and `on_priced` gets the full estimate once they are."""
        key = (base_url, endpoint_id)
        with self._lock:
            cold = worker_id is not None and (base_url, endpoint_id, worker_id) not in self._seen_workers
            if worker_id is not None:
                self._seen_workers.add((base_url, endpoint_id, worker_id))
            ended = _Ended(delay_s, execution_s, cold, on_priced or _ignore)
            rates = self._rates.get(key)
            # Looked up already (a None answer too): waiting now would wait for ever, as the
            # lookup's end may be seen here before its Future leaves `_pending`.
            if key not in self._rates and key in self._pending and on_priced is not None:
                self._waiting.setdefault(key, []).append(ended)
            why = self._why.get(key, "the endpoint's GPU pools were not read yet")
        return ended.estimate(rates, why)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
