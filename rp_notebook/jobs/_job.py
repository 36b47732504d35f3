"""Job: the handle a magic or `submit()` returns at once, while the job runs elsewhere.

A Job is a future with a face. The job manager's thread feeds it status bodies; it keeps the
latest state, resolves a `concurrent.futures.Future` when the job ends, and re-renders every
place it is displayed (`display_id`s) so the notebook output turns from a status line into the
result without the kernel ever blocking.

    job.result(timeout=None)   block until the end; return the typed result or raise JobError
    await job                  the same, without blocking the event loop
    job.cancel()               ask Runpod to cancel; queued jobs never start, running ones are stopped
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .. import display
from ..client import TERMINAL_STATES, JobsClient, JobStatus
from ..errors import JobCancelledError, JobFailedError, JobTimedOutError, RunpodError, WaitTimeoutError
from ..results import decode_output

if TYPE_CHECKING:
    from ._manager import JobManager

__all__ = ["WATCH_NEW_JOBS", "Job", "watching_new_jobs"]

#: Jobs created while this is True start out watched (see Job.watch), so that even their first
#: poll is a short one: a panel or a magic sets it around its submit, as watch() after it would
#: come too late (the first long-poll starts inside submit()).
WATCH_NEW_JOBS: ContextVar[bool] = ContextVar("rp_notebook_watch_new_jobs", default=False)


@contextmanager
def watching_new_jobs() -> Iterator[None]:
    """Jobs submitted inside this block are followed in short rounds (they will be on screen)."""
    token = WATCH_NEW_JOBS.set(True)
    try:
        yield
    finally:
        WATCH_NEW_JOBS.reset(token)


class Job:
    """A Runpod job in flight or finished. Created by JobManager.submit / attach."""

    def __init__(
        self,
        manager: JobManager,
        client: JobsClient | None,
        endpoint_id: str,
        job_id: str,
        *,
        model: str | None = None,
        status: str = JobStatus.IN_QUEUE,
        submitted_at: float | None = None,
        input: dict[str, Any] | None = None,
        streams: bool = False,
    ) -> None:
        self.id = job_id
        self.endpoint_id = endpoint_id
        self.model = model
        self.status: str = status
        self.submitted_at = submitted_at or time.time()
        self.ended_at: float | None = None
        #: The last body the server sent for this job.
        self.body: dict[str, Any] = {}
        #: The last problem talking to the server while polling (the job itself may be fine).
        self.last_poll_error: RunpodError | None = None
        #: The worker streams its result part by part (TTS with `stream`): the manager reads /stream.
        self.streams = streams
        #: Parts received from /stream so far, in order (for TTS: dicts with base64 "audio").
        self.parts: list[Any] = []
        #: The input as sent (media fields included); what the panels show as "parameters".
        self.input: dict[str, Any] = input or {}
        self._player: Any = None
        self._manager = manager
        self._client = client
        #: The job API this job lives on (its ledger key, with the endpoint and job ids).
        self.base_url = client.http.base_url if client is not None else ""
        self._future: Future[Any] = Future()
        self._lock = threading.Lock()
        self._display_ids: list[str] = []
        self._callbacks: list[Callable[[Job], None]] = []
        self._watched = WATCH_NEW_JOBS.get()

    # -- state ------------------------------------------------------------------------------------

    def done(self) -> bool:
        return self._future.done()

    @property
    def output(self) -> Any:
        """The raw `output` of the last body: the result when COMPLETED, progress while running."""
        return self.body.get("output")

    @property
    def progress(self) -> Any:
        return self.output if self.status in (JobStatus.IN_PROGRESS, JobStatus.RUNNING) else None

    @property
    def delay_time(self) -> float | None:
        """Seconds in the queue (incl. cold start), as the server measured it."""
        ms = self.body.get("delayTime")
        return ms / 1000 if isinstance(ms, int | float) else None

    @property
    def execution_time(self) -> float | None:
        ms = self.body.get("executionTime")
        return ms / 1000 if isinstance(ms, int | float) else None

    @property
    def worker_id(self) -> str | None:
        return self.body.get("workerId")

    def result(self, timeout: float | None = None) -> Any:
        """The typed result (e.g. AudioResult). Raises JobFailedError & co, or WaitTimeoutError."""
        try:
            return self._future.result(timeout=timeout)
        except FutureTimeout:
            raise WaitTimeoutError(
                f"job {self.id} is still {self.status} after waiting {timeout} s; it keeps running "
                "(call .result() again, or .cancel())"
            ) from None

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            return self._future.exception(timeout=timeout)
        except FutureTimeout:
            raise WaitTimeoutError(f"job {self.id} is still {self.status}") from None

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self._future).__await__()

    def add_done_callback(self, fn: Callable[[Job], None]) -> None:
        """Call `fn(job)` when the job ends (at once if it already has), from the poller thread."""
        with self._lock:
            if not self.done():
                self._callbacks.append(fn)
                return
        fn(self)

    # -- control ----------------------------------------------------------------------------------

    def cancel(self) -> str:
        """Cancel on the server. Returns the status it answered (CANCELLED, or the end state it had)."""
        if self.done():
            return self.status
        body = self._connected().cancel(self.endpoint_id, self.id)
        self._apply({**self.body, **body})
        self._manager.wake()
        return self.status

    def retry(self) -> None:
        """Re-run a FAILED or TIMED_OUT job (same id, same input) and follow it again."""
        if self.status not in (JobStatus.FAILED, JobStatus.TIMED_OUT):
            raise RunpodError(f"job {self.id} is {self.status}; only FAILED or TIMED_OUT jobs can be retried")
        body = self._connected().retry(self.endpoint_id, self.id)
        with self._lock:
            self._future = Future()
            self.ended_at = None
            self.body = {}
        self.status = str(body.get("status", JobStatus.IN_QUEUE))
        self._manager.recorder.submitted(self, retried=True)
        self._apply(body)
        self._manager.track(self)

    def refresh(self) -> str:
        """Ask the server for the status now (the poller does this on its own)."""
        self._apply(self._connected().status(self.endpoint_id, self.id))
        return self.status

    def _connected(self) -> JobsClient:
        if self._client is None:
            raise RunpodError(
                f"job {self.id} was loaded from the job ledger without an API key; set the key to reach Runpod"
            )
        return self._client

    # -- fed by the manager -----------------------------------------------------------------------

    def _apply(self, body: dict[str, Any]) -> None:
        """Take a status body from the server; resolve the future on an end state."""
        with self._lock:
            if self.done():
                return
            self.body = body
            previous, self.status = self.status, str(body.get("status", self.status))
            self.last_poll_error = None
            ended = self.status in TERMINAL_STATES
        if ended:
            # Decoding may download result files: done outside the lock, so displays stay live.
            result, error = self._outcome(body)
            # Saved before anyone can see it: a kernel that dies now still has the result on disk.
            self._manager.recorder.status(
                self, ended=True, error=None if error is None else str(error), result=result
            )
            self._resolve(result, error)
        else:
            if self.status != previous:
                self._manager.recorder.status(self)
            self.refresh_display()

    def _apply_stream(self, body: dict[str, Any]) -> None:
        """Take a /stream answer: new parts (reading consumed them on the server) and the status."""
        new = [item.get("output") for item in body.get("stream") or [] if isinstance(item, dict)]
        parts = [part for part in new if isinstance(part, dict) and not part.get("final")]
        with self._lock:
            if self.done():
                return
            self.parts.extend(parts)
            status = body.get("status")
            if status and status not in TERMINAL_STATES:
                self.status = str(status)
        if self._player is not None:
            for part in parts:
                if isinstance(part.get("audio"), str):
                    self._player.add_part(base64.b64decode(part["audio"]), int(part.get("chunks") or 0))
        self.refresh_display()

    def _outcome(self, body: dict[str, Any]) -> tuple[Any, RunpodError | None]:
        status = str(body.get("status"))
        if status == JobStatus.COMPLETED:
            try:
                return decode_output(self.model, body.get("output"), self.id), None
            except RunpodError as exc:
                return None, exc
        if status == JobStatus.FAILED:
            return None, JobFailedError(self.id, body.get("error"))
        if status == JobStatus.CANCELLED:
            return None, JobCancelledError(f"job {self.id} was cancelled", job_id=self.id, status=status)
        return None, JobTimedOutError(
            f"job {self.id} timed out on the endpoint after {self.execution_time or 0:.0f} s of execution "
            "(raise the endpoint's or the request's executionTimeout)",
            job_id=self.id,
            status=status,
        )

    def _resolve(self, result: Any, error: RunpodError | None) -> None:
        with self._lock:
            if self.done():
                return
            self.ended_at = time.time()
            if error is None:
                self._future.set_result(result)
            else:
                self._future.set_exception(error)
            callbacks, self._callbacks = self._callbacks, []
        self.refresh_display()
        for fn in callbacks:
            fn(self)

    def _fail(self, error: RunpodError) -> None:
        """The job cannot be followed any more (it expired, or the key was refused)."""
        self._manager.recorder.status(self, ended=True, error=str(error))
        self._resolve(None, error)

    # -- display ----------------------------------------------------------------------------------

    def timing_summary(self) -> str:
        if self.done():
            parts = []
            if self.delay_time is not None:
                parts.append(f"queued {self.delay_time:.1f} s")
            if self.execution_time is not None:
                parts.append(f"ran {self.execution_time:.1f} s")
            return ", ".join(parts)
        return f"{time.time() - self.submitted_at:.0f} s"

    def progress_summary(self) -> str:
        # A worker's progress_update, or for a streaming job the last part it sent.
        progress = self.progress if self.progress is not None or not self.parts else self.parts[-1]
        if isinstance(progress, dict) and {"chunk", "chunks"} <= progress.keys():
            return f"part {progress['chunk']} of {progress['chunks']}"
        if isinstance(progress, dict) and {"step", "steps"} <= progress.keys():
            return f"step {progress['step']} of {progress['steps']}"
        if self.last_poll_error is not None and not self.done():
            return f"retrying: {self.last_poll_error}"
        return ""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return display.job_bundle(self)

    @property
    def player(self) -> Any:
        """The live player of a streaming TTS job (created when the job is first displayed)."""
        return self._player

    def _ipython_display_(self) -> None:
        # Displayed with an id so the poller thread can replace it in place as the job moves on.
        from IPython.display import display as ipy_display

        if self.streams and self._player is None and not self.done():
            from ..widgets._stream_player import StreamingAudioPlayer

            self._player = StreamingAudioPlayer(mime=display.AUDIO_MIME.get(self._format(), "audio/wav"))

        handle = ipy_display(display.job_bundle(self), raw=True, display_id=True)
        if handle is not None:
            self._display_ids.append(handle.display_id)
            self._manager.wake()

    def refresh_display(self) -> None:
        if self._player is not None:
            self._player.status = display.job_bundle(self)["text/plain"].splitlines()[0]
            if not self.done():
                return  # the player shows status and parts itself; re-rendering would flicker
            result = self._future.result() if self._future.exception() is None else None
            if result is not None and not self._player.done:
                self._player.whole = result.data
                self._player.done = True
        if not self._display_ids:
            return
        from IPython.display import update_display

        bundle = display.job_bundle(self)
        for display_id in self._display_ids:
            update_display(bundle, raw=True, display_id=display_id)

    def watch(self) -> None:
        """Follow this job in short polling rounds, as a displayed one is: a panel shows its live state."""
        self._watched = True
        self._manager.wake()

    def _format(self) -> str:
        return str(self.input.get("format") or "wav")

    @property
    def is_displayed(self) -> bool:
        # The manager polls displayed (or watched) jobs in short rounds so status and progress stay live.
        return bool(self._display_ids) or self._watched

    def __repr__(self) -> str:
        return f"<Job {self.id} on {self.endpoint_id}: {self.status}>"
