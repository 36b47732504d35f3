"""Batch: many jobs of one model, submitted together and followed as one.

    batch = rp_notebook.tts_many(["First.", "Second.", "Third."], exaggeration=0.7)
    batch                      # one progress bar for all of them; the kernel stays free
    batch.results()            # in input order; None where an input failed
    batch.failures             # [(index, error)], for the inputs that failed
    await batch                # the same results, without blocking the event loop
    batch.cancel()             # cancel what is still queued or running

Design:

- Every input is validated before the first request (`rp_notebook._api.submit_many`); all the bad
  ones are reported together, each with its index (`BatchInputError`), and nothing is sent.
- Requests go out through `JobManager.submit_many` (a few in flight at once). An input whose `run`
  request fails is not fatal: it is a failure of the batch at that index, like a job that ends
  FAILED, and the others go on.
- Progress comes from each job's done-callback (on the manager's poller thread), which sets the
  IntProgress and the counts: traits only, safe from any thread. Without a kernel (a script, a
  terminal) the batch shows as one line of text instead.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from ..client import JobStatus
from ..errors import InputError, RunpodError, WaitTimeoutError
from ._job import Job

if TYPE_CHECKING:
    import ipywidgets

__all__ = ["Batch", "BatchInputError"]

log = logging.getLogger(__name__)

#: How many cancel requests are in flight at once.
CANCEL_PARALLEL = 8


class BatchInputError(InputError):
    """Some inputs of a batch are invalid; nothing was submitted. `errors` is [(index, InputError)]."""

    def __init__(self, errors: Sequence[tuple[int, InputError]], total: int) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"  input {index}: {error}" for index, error in self.errors)
        noun = "input is" if len(self.errors) == 1 else "inputs are"
        super().__init__(
            "inputs", f"{len(self.errors)} of {total} {noun} invalid; nothing was submitted:\n{lines}"
        )


class Batch:
    """Jobs for a list of inputs, in input order; see the module docstring."""

    def __init__(self, model: str | None, endpoint_id: str, submitted: Sequence[Job | RunpodError]) -> None:
        self.model = model
        self.endpoint_id = endpoint_id
        #: Per input: its Job, or None where the `run` request itself failed (see `failures`).
        self.jobs: list[Job | None] = [item if isinstance(item, Job) else None for item in submitted]
        self._submit_errors = {i: item for i, item in enumerate(submitted) if not isinstance(item, Job)}
        self._lock = threading.Lock()
        self._finished: Future[None] = Future()
        self._progress: ipywidgets.IntProgress | None = None
        self._counts: ipywidgets.HTML | None = None
        self._widget: ipywidgets.VBox | None = None
        self._check_finished()
        for job in self.jobs:
            if job is not None:
                job.add_done_callback(self._on_job_done)

    # -- state ------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.jobs)

    def done(self) -> bool:
        """Whether every job has ended (or was never queued)."""
        return self._finished.done()

    def counts(self) -> dict[str, int]:
        """{"total", "done" (completed), "failed" (failed, cancelled, timed out, not queued), "running"}."""
        completed = failed = 0
        for index, job in enumerate(self.jobs):
            if job is None:
                failed += index in self._submit_errors
            elif job.done():
                if job.exception(timeout=0) is None:
                    completed += 1
                else:
                    failed += 1
        total = len(self.jobs)
        return {"total": total, "done": completed, "failed": failed, "running": total - completed - failed}

    @property
    def failures(self) -> list[tuple[int, BaseException]]:
        """(index, error) for every input that failed so far: not queued, or ended without a result."""
        found: list[tuple[int, BaseException]] = []
        for index, job in enumerate(self.jobs):
            if job is None:
                found.append((index, self._submit_errors[index]))
            elif job.done():
                error = job.exception(timeout=0)
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
                "they keep running (call .results() again, or .cancel())"
            ) from None
        out: list[Any] = []
        for job in self.jobs:
            if job is None or job.exception(timeout=0) is not None:
                out.append(None)
            else:
                out.append(job.result(timeout=0))
        return out

    def __await__(self) -> Generator[Any, None, list[Any]]:
        return self._results_async().__await__()

    async def _results_async(self) -> list[Any]:
        await asyncio.wrap_future(self._finished)
        return self.results(timeout=0)

    # -- control ----------------------------------------------------------------------------------------

    def cancel(self) -> int:
        """Cancel every job still queued or running; returns how many ended CANCELLED.

        Every cancel is attempted; if some of the requests fail, the first error is raised after.
        """
        pending = [job for job in self.jobs if job is not None and not job.done()]
        if not pending:
            return 0

        def one(job: Job) -> str | RunpodError:
            try:
                return job.cancel()
            except RunpodError as exc:
                return exc

        with ThreadPoolExecutor(
            min(CANCEL_PARALLEL, len(pending)), thread_name_prefix="rp-notebook-cancel"
        ) as pool:
            answers = list(pool.map(one, pending))
        errors = [answer for answer in answers if isinstance(answer, RunpodError)]
        if errors:
            raise errors[0]
        return sum(answer == JobStatus.CANCELLED for answer in answers)

    # -- progress ---------------------------------------------------------------------------------------

    def _on_job_done(self, _job: Job) -> None:
        # On a poller thread: set traits and resolve the batch's future; never raise (later
        # callbacks of the job would be skipped).
        try:
            self._update_widget()
        except Exception:
            # Logged, not raised: a display problem must not stop the batch from finishing.
            log.warning("rp_notebook: could not update the batch's progress", exc_info=True)
        self._check_finished()

    def _check_finished(self) -> None:
        if all(job is None or job.done() for job in self.jobs):
            with self._lock:
                if not self._finished.done():
                    self._finished.set_result(None)

    @property
    def widget(self) -> ipywidgets.VBox:
        """The progress display: an IntProgress over every input and the done/failed counts."""
        with self._lock:
            if self._widget is None:
                import ipywidgets

                self._progress = ipywidgets.IntProgress(
                    min=0, max=max(1, len(self.jobs)), description=self.model or self.endpoint_id
                )
                self._counts = ipywidgets.HTML()
                self._progress.add_class("rp-batch-progress")
                self._counts.add_class("rp-batch-counts")
                self._widget = ipywidgets.VBox([ipywidgets.HBox([self._progress, self._counts])])
                self._widget.add_class("rp-batch")
        self._update_widget()
        return self._widget

    def _update_widget(self) -> None:
        if self._progress is None or self._counts is None:
            return
        counts = self.counts()
        self._progress.value = counts["done"] + counts["failed"]
        self._progress.bar_style = (
            "danger" if counts["failed"] else "success" if counts["running"] == 0 else "info"
        )
        self._counts.value = self._summary(counts)

    def _summary(self, counts: dict[str, int] | None = None) -> str:
        counts = counts or self.counts()
        text = f"{counts['done']} of {counts['total']} done"
        if counts["failed"]:
            text += f", {counts['failed']} failed"
        if counts["running"]:
            text += f", {counts['running']} running"
        return text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        if not _in_kernel():
            return {"text/plain": repr(self)}
        return {**self.widget._repr_mimebundle_(), "text/plain": repr(self)}

    def __repr__(self) -> str:
        return f"<Batch of {len(self.jobs)} {self.model or 'jobs'} on {self.endpoint_id}: {self._summary()}>"


def _in_kernel() -> bool:
    """Whether a Jupyter kernel (which can show widgets) runs this code, not a script or terminal."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
