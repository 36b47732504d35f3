"""Batch: many jobs of one model, submitted together and followed as one; a list of its Jobs.

    batch = rp_notebook.tts_many(["First.", "Second.", "Third."], exaggeration=0.7)
    batch                      # one progress bar for all of them; the kernel stays free
    batch[0], len(batch)       # its Jobs, in input order, from the start (SUBMITTING until sent)
    batch.results()            # in input order; None where an input failed
    batch.failures             # [(index, error)], for the inputs that failed
    await batch                # the same results, without blocking the event loop
    batch.cancel()             # cancel what is still queued, running, or not yet sent

Design:

- Every input is validated before anything is sent (`rp_notebook._api.submit_many`); all the bad
  ones are reported together, each with its index (`BatchInputError`), and nothing is sent.
- The manager returns the jobs at once and sends the runs from its event loop. An input whose
  `run` request fails is not fatal: its job ends SUBMIT_FAILED, a failure of the batch at that
  index like a job that ends FAILED, and the others go on.
- The batch hears each job's end (a subscriber) and calls its own subscribers: the notebook's
  progress bar is one of them (`rp_notebook.views`), from outside; this module draws nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, overload

from ..client import JobStatus
from ..errors import InputError, RunpodError, WaitTimeoutError
from ._job import Job

if TYPE_CHECKING:
    from ._manager import JobManager

__all__ = ["Batch", "BatchInputError"]

log = logging.getLogger(__name__)


class BatchInputError(InputError):
    """Some inputs of a batch are invalid; nothing was submitted. `errors` is [(index, InputError)]."""

    def __init__(self, errors: Sequence[tuple[int, InputError]], total: int) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"  input {index}: {error}" for index, error in self.errors)
        noun = "input is" if len(self.errors) == 1 else "inputs are"
        super().__init__(
            "inputs", f"{len(self.errors)} of {total} {noun} invalid; nothing was submitted:\n{lines}"
        )


class Batch(Sequence[Job]):
    """The Jobs of a list of inputs, in input order; see the module docstring."""

    def __init__(
        self, model: str | None, endpoint_id: str, jobs: Sequence[Job], *, manager: JobManager | None = None
    ) -> None:
        self.model = model
        self.endpoint_id = endpoint_id
        self._jobs = list(jobs)
        self._manager = manager
        self._lock = threading.Lock()
        self._finished: Future[None] = Future()
        self._ended = 0
        self._subscribers: list[Callable[[Batch], None]] = []
        for job in self._jobs:
            job.add_done_callback(self._on_job_done)
        if not self._jobs:
            self._finished.set_result(None)

    # -- the list it stands for -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._jobs)

    @overload
    def __getitem__(self, index: int) -> Job: ...

    @overload
    def __getitem__(self, index: slice) -> list[Job]: ...

    def __getitem__(self, index: int | slice) -> Job | list[Job]:
        return self._jobs[index]

    @property
    def jobs(self) -> list[Job]:
        """Its Jobs, in input order (a copy)."""
        return list(self._jobs)

    # -- state ------------------------------------------------------------------------------------

    def done(self) -> bool:
        """Whether every job has ended (or was never queued)."""
        return self._finished.done()

    def counts(self) -> dict[str, int]:
        """{"total", "done" (completed), "failed" (failed, cancelled, timed out, not queued), "running"}."""
        completed = failed = 0
        for job in self._jobs:
            if job.done():
                if job.exception(timeout=0) is None:
                    completed += 1
                else:
                    failed += 1
        total = len(self._jobs)
        return {"total": total, "done": completed, "failed": failed, "running": total - completed - failed}

    @property
    def failures(self) -> list[tuple[int, BaseException]]:
        """(index, error) for every input that failed so far: not queued, or ended without a result."""
        found: list[tuple[int, BaseException]] = []
        for index, job in enumerate(self._jobs):
            error = job.exception(timeout=0) if job.done() else None
            if error is not None:
                found.append((index, error))
        return found

    def results(self, timeout: float | None = None) -> list[Any]:
        """Wait for every job; the results in input order, None where an input failed (see `failures`)."""
        try:
            self._finished.result(timeout=timeout)
        except FutureTimeout:
            counts = self.counts()
            raise WaitTimeoutError(
                f"{counts['running']} of {counts['total']} jobs are still running after waiting {timeout} s; "
                "they keep running (call .results() again, or .cancel())",
                endpoint_id=self.endpoint_id,
            ) from None
        return [None if job.exception(timeout=0) is not None else job.result(timeout=0) for job in self._jobs]

    def __await__(self) -> Generator[Any, None, list[Any]]:
        return self._results_async().__await__()

    async def _results_async(self) -> list[Any]:
        await asyncio.wrap_future(self._finished)
        return self.results(timeout=0)

    def subscribe(self, fn: Callable[[Batch], None]) -> None:
        """Call `fn(batch)` after each of its jobs ends (on the manager's threads; keep it quick)."""
        with self._lock:
            self._subscribers.append(fn)

    # -- control ----------------------------------------------------------------------------------

    def cancel(self) -> int:
        """Cancel every job still queued, running or not yet sent; returns how many ended CANCELLED.

        Every cancel is attempted (all at once, from the manager's loop); if some of the requests
        fail, the first error is raised after.
        """
        pending = [job for job in self._jobs if not job.done()]
        if not pending:
            return 0
        if self._manager is not None:
            answers = self._manager.cancel_many(pending)
        else:
            answers = [_cancel_one(job) for job in pending]
        errors = [answer for answer in answers if isinstance(answer, RunpodError)]
        if errors:
            raise errors[0]
        return sum(job.status == JobStatus.CANCELLED for job in pending)

    # -- progress ---------------------------------------------------------------------------------

    def _on_job_done(self, _job: Job) -> None:
        with self._lock:
            self._ended += 1
            finished = self._ended == len(self._jobs)
            subscribers = list(self._subscribers)
        for fn in subscribers:
            try:
                fn(self)
            except Exception:
                # Logged, not raised: a display problem must not stop the batch from finishing.
                log.warning("rp_notebook: a subscriber of a batch failed", exc_info=True)
        if finished and not self._finished.done():
            self._finished.set_result(None)

    def summary(self, counts: dict[str, int] | None = None) -> str:
        """ "3 of 5 done, 1 failed, 1 running": the words a progress display shows."""
        counts = counts or self.counts()
        text = f"{counts['done']} of {counts['total']} done"
        if counts["failed"]:
            text += f", {counts['failed']} failed"
        if counts["running"]:
            text += f", {counts['running']} running"
        return text

    def __repr__(self) -> str:
        return f"<Batch of {len(self._jobs)} {self.model or 'jobs'} on {self.endpoint_id}: {self.summary()}>"


def _cancel_one(job: Job) -> JobStatus | RunpodError:
    try:
        return job.cancel()
    except RunpodError as exc:
        return exc
