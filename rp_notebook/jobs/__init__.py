"""Job handles and the one background manager that follows them."""

from ._job import Job
from ._manager import JobManager, get_manager

__all__ = ["Job", "JobManager", "get_manager"]
