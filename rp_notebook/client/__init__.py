"""Our own thin client for Runpod's job API (the runpod SDK is heavy and has known bugs): `JobsClient`
on requests, and its asyncio twin `AsyncJobsClient` on aiohttp (imported only when one is made)."""

from ._budget import (
    RUNPOD_RATE_LIMITS,
    BudgetStats,
    RateLimit,
    RateLimits,
    RequestBudget,
    default_budget,
)
from ._http import HTTPTransport, RetryPolicy
from ._jobs import (
    MAX_RUN_BYTES,
    MAX_RUNSYNC_BYTES,
    TERMINAL_STATES,
    AsyncJobsClient,
    JobsClient,
    JobStatus,
    RunOptions,
)

__all__ = [
    "MAX_RUNSYNC_BYTES",
    "MAX_RUN_BYTES",
    "RUNPOD_RATE_LIMITS",
    "TERMINAL_STATES",
    "AsyncJobsClient",
    "BudgetStats",
    "HTTPTransport",
    "JobStatus",
    "JobsClient",
    "RateLimit",
    "RateLimits",
    "RequestBudget",
    "RetryPolicy",
    "RunOptions",
    "default_budget",
]
