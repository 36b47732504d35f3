"""Job states of Runpod's job API: one definition for the client and the local endpoint."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["TERMINAL_STATES", "JobStatus"]


class JobStatus(StrEnum):
    """Runpod's job states, and three a client has before or without Runpod's word."""

    #: Client side: the run request is on its way; the job has no id yet.
    SUBMITTING = "SUBMITTING"
    #: Client side: the run request failed; the job's error says whether one may have been queued.
    SUBMIT_FAILED = "SUBMIT_FAILED"
    #: Client side: a job attached by id before its first status, or one that can no longer be read.
    UNKNOWN = "UNKNOWN"
    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    #: Listed in Runpod's docs but sent by no SDK; treated as running, never as an end state.
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"


#: The one set of end states. (The runpod SDK has two, and its stream() never ends on CANCELLED.)
TERMINAL_STATES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT})
