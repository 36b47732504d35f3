"""Job handles, batches of them, and the one background manager that follows them."""

from ._batch import Batch, BatchInputError
from ._job import Job
from ._manager import JobManager, get_manager

__all__ = ["Batch", "BatchInputError", "Job", "JobManager", "get_manager"]
