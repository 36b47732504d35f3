"""Costs: what Runpod bills for serverless GPU time, per job and per endpoint, and a budget guard.

- `_prices`: Runpod's per-second flex and active prices per GPU pool, dated (`RUNPOD_PRICES`);
  `use_prices` swaps in another table (negotiated rates, the local endpoint's).
- `_estimate`: `JobCost` (a job's estimate with its parts and how it was made), `EndpointRates`
  (what prices an endpoint: pools, GPUs per worker, active workers, idle timeout) and the
  `CostEstimator` the job manager prices ending jobs with; `_lookup` reads an endpoint's rates
  from the management API.
- `_budget`: `Budget`, the rule that refuses a submission that would pass it.

This package knows no job object: the job manager feeds it times and endpoint ids, and the
public API (`rp_notebook.budget`, `%runpod cost`) sums what the ledger recorded.
"""

from ._budget import WARN_AT, Budget, current_budget, set_budget
from ._estimate import (
    DEFAULT_IDLE_TIMEOUT_S,
    CostEstimator,
    EndpointRates,
    JobCost,
    estimate_job_cost,
    usd_text,
)
from ._lookup import endpoint_rates_lookup, rates_of
from ._prices import RUNPOD_PRICES, PoolPrice, PriceTable, current_prices, use_prices

__all__ = [
    "DEFAULT_IDLE_TIMEOUT_S",
    "RUNPOD_PRICES",
    "WARN_AT",
    "Budget",
    "CostEstimator",
    "EndpointRates",
    "JobCost",
    "PoolPrice",
    "PriceTable",
    "current_budget",
    "current_prices",
    "endpoint_rates_lookup",
    "estimate_job_cost",
    "rates_of",
    "set_budget",
    "usd_text",
    "use_prices",
]
