"""Our own thin client for Runpod's APIs, on `requests` (the runpod SDK is heavy and has known bugs)."""

from ._http import HTTPTransport, RetryPolicy
from ._jobs import MAX_RUN_BYTES, MAX_RUNSYNC_BYTES, TERMINAL_STATES, JobsClient, JobStatus

__all__ = [
    "MAX_RUNSYNC_BYTES",
    "MAX_RUN_BYTES",
    "TERMINAL_STATES",
    "HTTPTransport",
    "JobStatus",
    "JobsClient",
    "RetryPolicy",
]
