"""JobRecorder: what the JobManager writes to the job ledger, best effort.

The ledger must never cost a job: a ledger that cannot be opened or written (a read-only disk, a
full one) gives one RuntimeWarning and the jobs go on in memory; a result that cannot be saved is
still returned by `job.result()`, and the ledger records why its copy is missing. At a job's end
the result is saved before the job resolves (the Job calls `ended` first), so a kernel that dies
right after still has it on disk.
"""

from __future__ import annotations

import logging
import sqlite3
import warnings
from typing import TYPE_CHECKING, Any

from ._ledger import Ledger
from ._saved import remove_result, save_result

if TYPE_CHECKING:
    from ._job import Job

__all__ = ["USER_LEDGER", "JobRecorder"]

log = logging.getLogger(__name__)

#: `JobManager(ledger=USER_LEDGER)`: the ledger in the user's data folder, opened on first use.
USER_LEDGER = "user"


class JobRecorder:
    """Records jobs in `ledger`: a Ledger, USER_LEDGER (opened on first use) or None (nothing kept)."""

    def __init__(self, ledger: Ledger | str | None) -> None:
        self._choice = ledger
        self._ledger: Ledger | None = ledger if isinstance(ledger, Ledger) else None
        self._failed = False

    @property
    def ledger(self) -> Ledger | None:
        """The ledger, opened on first use; None when there is none (or it cannot be opened)."""
        if self._ledger is None and self._choice == USER_LEDGER and not self._failed:
            try:
                self._ledger = Ledger()
            except (OSError, sqlite3.Error) as exc:
                self._unavailable(exc)
        return self._ledger

    def submitted(self, job: Job, *, retried: bool = False) -> None:
        """A job Runpod accepted (or one attached, or retried: its old saved result is dropped)."""
        ledger = self.ledger
        if ledger is None:
            return
        if retried:
            remove_result(ledger.result_folder(job.id))
        try:
            ledger.record_submitted(
                job_id=job.id,
                endpoint_id=job.endpoint_id,
                base_url=job.base_url,
                model=job.model,
                status=job.status,
                parameters=job.input,
                submitted_at=job.submitted_at,
            )
        except sqlite3.Error as exc:
            self._unavailable(exc)

    def status(self, job: Job, *, ended: bool = False, error: str | None = None, result: Any = None) -> None:
        """A status change; at the end, `result` (if any) is saved first."""
        ledger = self.ledger
        if ledger is None:
            return
        result_path = None
        try:
            if result is not None:
                result_path = save_result(result, ledger.result_folder(job.id))
        except OSError as exc:
            # The result is still in memory (job.result()); only the copy on disk is missing.
            log.warning("job %s: its result could not be saved to %s: %s", job.id, ledger.results_dir, exc)
            error = f"result not saved: {exc}"
        try:
            ledger.record_status(
                job_id=job.id,
                endpoint_id=job.endpoint_id,
                base_url=job.base_url,
                status=job.status,
                ended=ended,
                error=error,
                result_path=result_path,
            )
        except sqlite3.Error as exc:
            self._unavailable(exc)

    def _unavailable(self, exc: Exception) -> None:
        if not self._failed:
            self._failed = True
            warnings.warn(
                f"the job ledger cannot be written ({exc}); jobs of this session are kept in memory "
                "only and cannot be recovered after a restart",
                RuntimeWarning,
                stacklevel=4,
            )
