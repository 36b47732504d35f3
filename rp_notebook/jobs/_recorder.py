"""JobRecorder: the job ledger's writer, on a thread of its own, best effort.

The manager hands it jobs (`submitted`, `ended`) and it follows their status changes itself (a
subscriber of each job). Writes happen on one writer thread, never on the manager's event loop: a
SQLite commit and a result's files take a millisecond or so, which 500 jobs ending together would
otherwise add to every other job's latency. The writer takes everything queued at once and writes
it in one transaction, so a burst costs one commit, not one per record; order is kept (a job's
submission is written before its end). A job's end is resolved by the writer too, right after
its record is committed (`ended`): handing it back to the manager's loop first cost a loop round,
tens of milliseconds while 500 jobs end together.

At a job's end the result is kept before the job resolves (the writer resolves it after the
write), so a kernel that dies right after `job.result()` returned still has it on disk (`_saved`: a JSON output
in the ledger row, media as files).

The ledger must never cost a job: a ledger that cannot be opened or written (a read-only disk, a
full one) gives one RuntimeWarning and the jobs go on in memory; a result that cannot be saved is
still returned by `job.result()`, and the ledger records why its copy is missing.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ..costs import JobCost
from ._io import refuse_waits_in_this_thread
from ._job import Job, JobUpdate, seconds_of, worker_of
from ._ledger import Ledger
from ._saved import inline_output, remove_result, save_result

__all__ = ["NOTEBOOK_ENV", "USER_LEDGER", "JobRecorder", "notebook_name"]

log = logging.getLogger(__name__)

#: `JobManager(ledger=USER_LEDGER)`: the ledger in the user's data folder, opened on first use.
USER_LEDGER = "user"

_Write = Callable[[Ledger], None]
_After = Callable[[], None]  # run on the writer once its write's batch is committed

#: Jupyter Server names a kernel's notebook in this variable (its path, relative to the server's root).
NOTEBOOK_ENV = "JPY_SESSION_NAME"


def notebook_name() -> str | None:
    """The notebook this kernel runs, as Jupyter names it; None outside a notebook."""
    return os.environ.get(NOTEBOOK_ENV) or None


class JobRecorder:
    """Records jobs in `ledger`: a Ledger, USER_LEDGER (opened on first use) or None (nothing kept)."""

    def __init__(self, ledger: Ledger | str | None) -> None:
        self._choice = ledger
        self._ledger: Ledger | None = ledger if isinstance(ledger, Ledger) else None
        self._failed = False
        self._queue: queue.SimpleQueue[tuple[_Write, _After | None]] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def ledger(self) -> Ledger | None:
        """The ledger, opened on first use; None when there is none (or it cannot be opened)."""
        if self._ledger is None and self._choice == USER_LEDGER and not self._failed:
            try:
                self._ledger = Ledger()
            except (OSError, sqlite3.Error) as exc:
                self._unavailable(exc)
        return self._ledger

    @property
    def enabled(self) -> bool:
        return self._choice is not None and not self._failed

    # -- what the manager records -------------------------------------------------------------------

    def submitted(self, job: Job, *, retried: bool = False) -> None:
        """A job Runpod accepted (or one attached, or retried: its old saved result is dropped);
        its status changes are recorded from now on."""
        if not self.enabled:
            return
        snapshot = (
            job.id,
            job.endpoint_id,
            job.base_url,
            job.model,
            str(job.status),
            dict(job.input),
            job.submitted_at,
        )
        notebook = notebook_name()

        def write(ledger: Ledger) -> None:
            job_id, endpoint_id, base_url, model, status, parameters, submitted_at = snapshot
            if retried:
                remove_result(ledger.result_folder(job_id))
            ledger.record_submitted(
                job_id=job_id,
                endpoint_id=endpoint_id,
                base_url=base_url,
                model=model,
                status=status,
                parameters=parameters,
                submitted_at=submitted_at,
                notebook=notebook,
                retried=retried,
            )

        self._put(write)
        if not retried:
            job.subscribe(self._on_update)

    def ended(
        self,
        job: Job,
        *,
        status: str,
        result: Any = None,
        error: str | None = None,
        body: dict[str, Any] | None = None,
        then: Callable[[], None],
    ) -> None:
        """The end of a job (on the manager's loop): its result kept (if any) and its end recorded
        with the final `body`'s times and worker and the job's cost, in one write of the writer;
        then `then()` (the job's resolution), on the writer's thread as soon as that is written,
        or could not be (the job goes on either way), or at once when nothing is recorded. A caller
        that reports the job's final state waits for the job itself; the poll loop does not (a
        wake-up of the loop per job saved).

        One hand-over per job, and none of the loop's time: the writer keeps a JSON output in the
        ledger row and writes a media result's files itself (they are already encoded: a write of
        a few hundred kilobytes at most), in the same batch as the other jobs that ended with it.
        Nothing of the end stays behind once `then()` has run: no Future is kept per job."""
        if not self.enabled:
            then()
            return
        job_id, endpoint_id, base_url = job.id, job.endpoint_id, job.base_url
        final = body if body is not None else job.body
        worker_id = worker_of(final)
        delay_s, execution_s = seconds_of(final, "delayTime"), seconds_of(final, "executionTime")

        def write(ledger: Ledger) -> None:
            result_path = output = None
            why = error
            if result is not None:
                try:
                    output = inline_output(result)
                    if output is None:
                        result_path = save_result(result, ledger.result_folder(job_id))
                        job.saved_to = result_path  # before `then`: the job's views show where
                except (OSError, TypeError, ValueError) as exc:
                    # The result is still in memory (job.result()); only the kept copy is missing.
                    log.warning(
                        "job %s: its result could not be saved to %s: %s", job_id, ledger.results_dir, exc
                    )
                    why = f"result not saved: {exc}"
            ledger.record_status(
                job_id=job_id,
                endpoint_id=endpoint_id,
                base_url=base_url,
                status=status,
                ended=True,
                error=why,
                result_path=result_path,
                output=output,
                worker_id=worker_id,
                delay_s=delay_s,
                execution_s=execution_s,
                cost=job.cost,  # read when written: a cost priced later (cost_known) may be newer
            )

        self._put(write, after=lambda: _run_then(then, job_id))

    def cost_known(self, job: Job, cost: JobCost) -> None:
        """A cost estimated after the job's end was recorded (its endpoint's pools were read late)."""
        if not self.enabled:
            return
        job_id, endpoint_id, base_url = job.id, job.endpoint_id, job.base_url
        self._put(
            lambda ledger: ledger.record_cost(
                job_id=job_id, endpoint_id=endpoint_id, base_url=base_url, cost=cost
            )
        )

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far is written (tests; a clean shutdown)."""
        if not self.enabled:
            return
        if threading.current_thread() is self._writer:
            raise RuntimeError(
                "flush() waits for the ledger's writer and was called on it (from a subscriber)"
            )
        done: Future[None] = Future()
        self._put(lambda ledger: None, after=lambda: done.set_result(None))
        done.result(timeout)

    # -- the writer ---------------------------------------------------------------------------------

    def _on_update(self, update: JobUpdate) -> None:
        job = update.job
        if update.status_changed and not update.ended and job.id:
            job_id, endpoint_id, base_url, status = job.id, job.endpoint_id, job.base_url, str(job.status)
            self._put(
                lambda ledger: ledger.record_status(
                    job_id=job_id, endpoint_id=endpoint_id, base_url=base_url, status=status
                )
            )

    def _put(self, write: _Write, *, after: _After | None = None) -> None:
        """Queue `write`; `after()` runs on the writer once the batch holding it is committed (or
        could not be)."""
        self._queue.put((write, after))
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_forever, name="rp-notebook-ledger", daemon=True
                )
                self._writer.start()

    def _write_forever(self) -> None:
        refuse_waits_in_this_thread()  # jobs end here (`then`): their subscribers must not wait
        while True:
            # No name holds a batch while the next is awaited: its writes hold the jobs' ends.
            self._write_batch(self._next_batch())

    def _next_batch(self) -> list[tuple[_Write, _After | None]]:
        """Everything queued: at least one item (waited for), then all that is already there."""
        batch = [self._queue.get()]
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                return batch

    def _write_batch(self, batch: list[tuple[_Write, _After | None]]) -> None:
        ledger = self.ledger
        try:
            if ledger is not None:
                with ledger.batch():
                    for write, _ in batch:
                        write(ledger)
        except (OSError, sqlite3.Error) as exc:
            self._unavailable(exc)
        except Exception:  # a bug here must not leave the manager waiting for ever
            log.exception("rp_notebook: the job ledger's writer failed")
        finally:
            for _, after in batch:  # ended jobs resolve here (`ended`'s `then`), written or not
                if after is not None:
                    after()

    def _unavailable(self, exc: Exception) -> None:
        if not self._failed:
            self._failed = True
            warnings.warn(
                f"the job ledger cannot be written ({exc}); jobs of this session are kept in memory "
                "only and cannot be recovered after a restart",
                RuntimeWarning,
                stacklevel=2,
            )


def _run_then(then: Callable[[], None], job_id: str) -> None:
    try:
        then()
    except Exception:  # a bug must not stop the writer
        log.exception("job %s: resolving it after its end was recorded failed", job_id)
