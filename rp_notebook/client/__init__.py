"""Our own thin client for Runpod's APIs, on `requests` (the runpod SDK is heavy and has known bugs)."""

from ._budget import (
    RUNPOD_RATE_LIMITS,
    BudgetStats,
    RateLimit,
    RateLimits,
    RequestBudget,
    default_budget,
)
from ._http import HTTPTransport, RetryPolicy
from ._jobs import MAX_RUN_BYTES, MAX_RUNSYNC_BYTES, TERMINAL_STATES, JobsClient, JobStatus

__all__ = [
    "MAX_RUNSYNC_BYTES",
    "MAX_RUN_BYTES",
    "RUNPOD_RATE_LIMITS",
    "TERMINAL_STATES",
    "BudgetStats",
    "HTTPTransport",
    "JobStatus",
    "JobsClient",
    "RateLimit",
    "RateLimits",
    "RequestBudget",
    "RetryPolicy",
    "default_budget",
]
