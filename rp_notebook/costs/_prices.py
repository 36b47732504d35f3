"""Runpod's serverless prices per GPU pool: per second, flex and active, dated.

Runpod does not serve serverless prices through an API: GraphQL's `gpuTypes` prices
(`securePrice`, `communityPrice`, `lowestPrice`) and REST v2's `/v2/catalog/gpus` are Pod prices per
GPU-hour, not the per-second rates a serverless worker is billed at. So the table here is copied
from Runpod's serverless pricing page, with the date it was read; every place that shows a price
shows that date too. A user with other rates (a negotiated active-worker discount) passes their own
`PriceTable` to `use_prices`.

Flex workers scale to zero and are billed at the flex rate while they start, run and idle; active
workers (an endpoint's `workersMin`) run all the time at the active rate. Prices are per GPU: a
worker with `gpuCount` GPUs costs that many times the rate.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["RUNPOD_PRICES", "PoolPrice", "PriceTable", "current_prices", "use_prices"]

SECONDS_PER_HOUR = 3600


@dataclass(frozen=True)
class PoolPrice:
    """One serverless GPU pool's rates, in USD per GPU-second."""

    pool: str
    #: The GPUs as the pricing page names them.
    gpus: str
    memory_gb: int
    flex_per_s: float
    active_per_s: float

    @property
    def flex_per_hour(self) -> float:
        return self.flex_per_s * SECONDS_PER_HOUR

    @property
    def active_per_hour(self) -> float:
        return self.active_per_s * SECONDS_PER_HOUR


@dataclass(frozen=True)
class PriceTable:
    """Prices by pool id, where they come from and the day they were read (ISO date)."""

    prices: Mapping[str, PoolPrice]
    as_of: str
    source: str
    #: Pools Runpod has but the source gives no price for, and why (shown instead of a price).
    unpriced: Mapping[str, str] = field(default_factory=dict)

    def get(self, pool: str) -> PoolPrice | None:
        return self.prices.get(pool)

    def first_priced(self, pools: Iterable[str]) -> PoolPrice | None:
        """The first of `pools` with a price: Runpod fills an endpoint's pools in the order given."""
        for pool in pools:
            price = self.prices.get(pool)
            if price is not None:
                return price
        return None

    @property
    def label(self) -> str:
        """Where the prices come from, for a footnote: "Runpod's serverless pricing page, 2026-12-05"."""
        return f"{self.source}, read {self.as_of}"


#: https://docs.runpod.io/serverless/pricing ("GPU pricing", flex and active cost per second), read
#: 2026-12-05. The page groups GPUs as Runpod's pools do (shared/docs/runpod-platform.md §3): "4090
#: PRO" is ADA_24, "H100 PRO" ADA_80_PRO, "H200 PRO" HOPPER_141, "L40, L40S, 6000 Ada PRO" ADA_48_PRO.
RUNPOD_PRICES = PriceTable(
    prices={
        price.pool: price
        for price in (
            PoolPrice("AMPERE_16", "A4000, A4500, RTX 4000", 16, 0.00016, 0.00011),
            PoolPrice("AMPERE_24", "L4, A5000, 3090", 24, 0.00019, 0.00013),
            PoolPrice("ADA_24", "4090 PRO", 24, 0.00031, 0.00021),
            PoolPrice("AMPERE_48", "A6000, A40", 48, 0.00034, 0.00024),
            PoolPrice("ADA_48_PRO", "L40, L40S, 6000 Ada PRO", 48, 0.00053, 0.00037),
            PoolPrice("AMPERE_80", "A100", 80, 0.00076, 0.00060),
            PoolPrice("ADA_80_PRO", "H100 PRO", 80, 0.00116, 0.00093),
            PoolPrice("HOPPER_141", "H200 PRO", 141, 0.00155, 0.00124),
            PoolPrice("BLACKWELL_180", "B200", 180, 0.00240, 0.00190),
        )
    },
    as_of="2026-12-05",
    source="Runpod's serverless pricing page (docs.runpod.io/serverless/pricing)",
    unpriced={
        "ADA_32_PRO": "not on Runpod's serverless pricing page",
        "BLACKWELL_96": "not on Runpod's serverless pricing page",
    },
)

_lock = threading.Lock()
_current = RUNPOD_PRICES


def current_prices() -> PriceTable:
    """The price table costs are estimated with (Runpod's, unless `use_prices` gave another)."""
    with _lock:
        return _current


def use_prices(table: PriceTable | None) -> PriceTable:
    """Estimate costs with `table` from now on in this process (None: Runpod's again); returns the
    table used before, so a caller can put it back."""
    global _current
    with _lock:
        before, _current = _current, table or RUNPOD_PRICES
    return before
