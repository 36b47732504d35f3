"""Job handles, batches of them, the one background manager that follows them, and the job ledger
that keeps them across kernel restarts (`_ledger`: SQLite; `_recorder`: what the manager writes;
`_saved`: results saved as files as they arrive)."""

from ._batch import Batch, BatchInputError
from ._job import Job
from ._manager import JobManager, get_manager

__all__ = ["Batch", "BatchInputError", "Job", "JobManager", "get_manager"]
