"""Jobs: their state (`Job`), batches of them (`Batch`), and the one background `JobManager` that
submits and follows them from an event loop of its own (`_io`), with the job ledger that keeps them
across kernel restarts (`_ledger`: SQLite; `_recorder`: its writer thread; `_saved`: results saved as
files as they arrive).

This package knows nothing of how a job is shown: views subscribe to Jobs and Batches from outside
(`rp_notebook.views`, `rp_notebook.widgets`).
"""

from ..client import RunOptions
from ._batch import Batch, BatchInputError
from ._job import Job, JobControl, JobUpdate, watching_new_jobs
from ._manager import JobManager, get_manager

__all__ = [
    "Batch",
    "BatchInputError",
    "Job",
    "JobControl",
    "JobManager",
    "JobUpdate",
    "RunOptions",
    "get_manager",
    "watching_new_jobs",
]
