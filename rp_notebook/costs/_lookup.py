"""Reading an endpoint's pools and scaling from the management API, for pricing its jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import Settings
from ..errors import InputError
from ._estimate import DEFAULT_IDLE_TIMEOUT_S, EndpointRates, RatesLookup

if TYPE_CHECKING:
    from ..provisioning import Endpoint

__all__ = ["endpoint_rates_lookup", "rates_of"]


def rates_of(endpoint: Endpoint) -> EndpointRates:
    """The rates of a provisioning `Endpoint` (its pools in order, GPUs per worker, scaling)."""
    return EndpointRates(
        endpoint_id=endpoint.id,
        pools=tuple(endpoint.gpu_pools),
        gpu_count=endpoint.gpu_count or 1,
        workers_min=endpoint.workers_min,
        idle_timeout_s=float(endpoint.idle_timeout_s or DEFAULT_IDLE_TIMEOUT_S),
    )


def endpoint_rates_lookup(settings: Settings) -> RatesLookup:
    """A lookup of an endpoint's rates through the management API of `settings` (one request).

    None when the account has no such endpoint; raises when the API cannot be read (no key, offline).
    """

    def lookup(endpoint_id: str) -> EndpointRates | None:
        settings.require_key()
        from ..provisioning import Provisioner  # only when a job is priced: not on import

        with Provisioner(settings) as provisioner:
            try:
                return rates_of(provisioner.endpoint(endpoint_id))
            except InputError:
                return None

    return lookup
