"""Job: the state of one Runpod job, and a future of its result.

A Job is data plus a future. The job manager (`_manager`) keeps it current from its event loop:
`submitted` when the run is answered, `apply` for each status body, `add_parts` for what `/stream`
hands out, `poll_failed` when a poll did not get through, `finish` at the end. Everything that
shows a job or keeps a record of it watches from outside through `subscribe` (the notebook
display and the streaming player in `rp_notebook.views`, the ledger in `_recorder`, batches in
`_batch`); this module knows none of them.

    job.status                 a JobStatus, every state a member (SUBMITTING before Runpod answers)
    job.result(timeout=None)   block until the end; return the typed result or raise a JobError
    await job                  the same, without blocking the event loop
    job.cancel() / retry()     ask Runpod, through the manager (`JobControl`)
    job.subscribe(fn)          fn(JobUpdate) after every change, on the manager's threads

Subscribers run on the manager's threads: its event loop for every change but the end, and the
ledger's writer for the end (it resolves the job the moment the end is written). They must be
quick and must not block (a view sets widget traits or queues a re-render); calls that wait for
the manager (`cancel`, `retry`, `refresh`) are refused there. An exception in one is logged and
does not stop the others or the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..client import TERMINAL_STATES, JobStatus
from ..costs import JobCost
from ..errors import RetryRefusedError, RunpodError, WaitTimeoutError

__all__ = ["WATCH_NEW_JOBS", "Job", "JobControl", "JobUpdate", "watching_new_jobs"]

log = logging.getLogger(__name__)

#: Jobs created while this is True start out watched (see Job.watch), so that even their first
#: poll is a short one: a panel or a magic sets it around its submit, as watch() after it would
#: come too late (the first long-poll starts as soon as the run is answered).
WATCH_NEW_JOBS: ContextVar[bool] = ContextVar("rp_notebook_watch_new_jobs", default=False)

#: Ends that Runpod's /retry runs again under the same id (it refuses any other).
RETRIED_BY_RUNPOD = (JobStatus.FAILED, JobStatus.TIMED_OUT)
#: Ends whose input `Job.rerun` sends again as a new job.
SENT_AGAIN = (JobStatus.CANCELLED, JobStatus.SUBMIT_FAILED)


@contextmanager
def watching_new_jobs() -> Iterator[None]:
    """Jobs submitted inside this block are followed in short rounds (they will be on screen)."""
    token = WATCH_NEW_JOBS.set(True)
    try:
        yield
    finally:
        WATCH_NEW_JOBS.reset(token)


@dataclass(frozen=True)
class JobUpdate:
    """What changed in one step of a job (a subscriber's argument)."""

    job: Job
    #: The status differs from before this step.
    status_changed: bool = False
    #: Parts that arrived from /stream in this step (TTS: dicts with base64 "audio").
    new_parts: tuple[Any, ...] = ()
    #: The job ended in this step: `result()` answers at once from now on.
    ended: bool = False
    #: Its cost estimate arrived after its end (its endpoint's GPU pools were read late).
    priced_late: bool = False


class JobControl(Protocol):
    """What a Job asks of whoever follows it (the JobManager)."""

    def cancel(self, job: Job) -> JobStatus: ...

    def retry(self, job: Job) -> None: ...

    def resubmit(self, job: Job) -> Job: ...

    def refresh(self, job: Job) -> JobStatus: ...

    def watch(self, job: Job) -> None: ...


Subscriber = Callable[[JobUpdate], None]


class Job:
    """A Runpod job in flight or finished. Made by JobManager.submit / submit_many / attach."""

    def __init__(
        self,
        endpoint_id: str,
        job_id: str = "",
        *,
        model: str | None = None,
        input: dict[str, Any] | None = None,
        status: JobStatus = JobStatus.SUBMITTING,
        base_url: str = "",
        submitted_at: float | None = None,
        streams: bool = False,
        control: JobControl | None = None,
    ) -> None:
        #: Runpod's job id; "" while the run request is in flight (SUBMITTING).
        self.id = job_id
        self.endpoint_id = endpoint_id
        self.model = model
        #: The input as sent (media fields included); what the panels show as "parameters".
        self.input: dict[str, Any] = input or {}
        self.status = status
        #: The job API this job lives on (its ledger key, with the endpoint and job ids).
        self.base_url = base_url
        self.submitted_at = submitted_at or time.time()
        self.ended_at: float | None = None
        #: The last body the server sent (its `output` is dropped once decoded into the result).
        self.body: dict[str, Any] = {}
        #: The last problem talking to the server while polling (the job itself may be fine).
        self.last_poll_error: RunpodError | None = None
        #: The worker streams its result part by part (TTS with `stream`): the manager reads /stream.
        self.streams = streams
        #: Parts received from /stream so far, in order (their audio is dropped at the end, when the
        #: whole result holds it).
        self.parts: list[Any] = []
        #: The folder its result was saved to (set before the job resolves), when it was saved.
        self.saved_to: Path | None = None
        #: What it cost, estimated when it ended (set before it resolves; rp_notebook.costs).
        self.cost: JobCost | None = None
        #: Followed in short polling rounds, so that whatever shows it stays live.
        self.watched = WATCH_NEW_JOBS.get()
        self._control = control
        self._future: Future[Any] = Future()
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._done_callbacks: list[Callable[[Job], None]] = []

    # -- state ------------------------------------------------------------------------------------

    def done(self) -> bool:
        return self._future.done()

    @property
    def ended(self) -> bool:
        """The job is over as far as a view can tell: `done()`, or its status already final.

        The status turns final a moment before the job is done and its done-callbacks run; a view
        that draws the status and decides its buttons with this keeps the two in agreement.
        """
        return self.status in TERMINAL_STATES or self.done()

    @property
    def output(self) -> Any:
        """The raw `output` of the last body: progress while running; the result of an endpoint of
        unknown model once COMPLETED (a typed result keeps its data in `result()` instead)."""
        return self.body.get("output")

    @property
    def progress(self) -> Any:
        return self.output if self.status in (JobStatus.IN_PROGRESS, JobStatus.RUNNING) else None

    @property
    def delay_time(self) -> float | None:
        """Seconds in the queue (incl. cold start), as the server measured it."""
        return seconds_of(self.body, "delayTime")

    @property
    def execution_time(self) -> float | None:
        return seconds_of(self.body, "executionTime")

    @property
    def worker_id(self) -> str | None:
        return worker_of(self.body)

    @property
    def format(self) -> str:
        """The audio format the input asks for (TTS), "wav" by default."""
        return str(self.input.get("format") or "wav")

    def result(self, timeout: float | None = None) -> Any:
        """The typed result (e.g. AudioResult). Raises JobFailedError & co, or WaitTimeoutError."""
        try:
            return self._future.result(timeout=timeout)
        except FutureTimeout:
            raise WaitTimeoutError(
                f"job {self.id or '(being submitted)'} is still {self.status} after waiting {timeout} s; it keeps "
                "running (call .result() again, or .cancel())",
                endpoint_id=self.endpoint_id,
                job_id=self.id or None,
            ) from None

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            return self._future.exception(timeout=timeout)
        except FutureTimeout:
            raise WaitTimeoutError(
                f"job {self.id} is still {self.status}", endpoint_id=self.endpoint_id, job_id=self.id or None
            ) from None

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self._future).__await__()

    def add_done_callback(self, fn: Callable[[Job], None]) -> None:
        """Call `fn(job)` when the job ends (at once, here, if it already has), on one of the manager's
        threads: keep it quick (the module docstring says which)."""
        with self._lock:
            if not self.done():
                self._done_callbacks.append(fn)
                return
        fn(self)

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call `fn(update)` after each change from now on; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._subscribers.remove(fn)

        return unsubscribe

    # -- control (through the manager) -----------------------------------------------------------

    def cancel(self) -> JobStatus:
        """Cancel on the server. Returns the status it answered (CANCELLED, or the end state it had)."""
        return self._controlled().cancel(self)

    def retry(self) -> None:
        """Re-run a FAILED or TIMED_OUT job (same id, same input) and follow it again."""
        self._controlled().retry(self)

    @property
    def can_rerun(self) -> bool:
        """Whether `rerun()` can run this job's input again now."""
        return self.status in (*RETRIED_BY_RUNPOD, *SENT_AGAIN)

    def rerun(self) -> Job:
        """Run this job's input again: a FAILED or TIMED_OUT job through Runpod's retry (the same job,
        returned), a CANCELLED or never-submitted one as a new job (returned; Runpod retries only
        failed and timed-out jobs)."""
        if self.status in RETRIED_BY_RUNPOD:
            self.retry()
            return self
        if self.status in SENT_AGAIN:
            return self._controlled().resubmit(self)
        raise RetryRefusedError(
            f"job {self.id or '(not submitted)'} is {self.status}; only a failed, timed-out, cancelled "
            "or unsent job can run again",
            job_id=self.id,
            status=str(self.status),
            endpoint_id=self.endpoint_id,
        )

    def refresh(self) -> JobStatus:
        """Ask the server for the status now (the manager does this on its own)."""
        return self._controlled().refresh(self)

    def watch(self) -> None:
        """Follow this job in short polling rounds, as whatever shows it live needs."""
        self.watched = True
        if self._control is not None:
            self._control.watch(self)

    def _controlled(self) -> JobControl:
        if self._control is None:
            raise RunpodError(f"job {self.id} is followed by no job manager", job_id=self.id)
        return self._control

    # -- changes (made by the manager, on its event loop) ------------------------------------------

    def submitted(self, job_id: str, body: dict[str, Any]) -> None:
        """Runpod answered the run: the job has its id and its first status."""
        self.id = job_id
        self.apply(body)

    def apply(self, body: dict[str, Any]) -> bool:
        """Take a status body from the server (not an end: `finish` is); True if the status changed."""
        with self._lock:
            if self.done():
                return False
            previous = self.status
            self.body = body
            self.status = _status_of(body, previous)
            self.last_poll_error = None
        changed = self.status != previous
        self._notify(JobUpdate(self, status_changed=changed))
        return changed

    def add_parts(self, parts: list[Any], status: Any) -> None:
        """Parts from a /stream read, and the status it gave (reading consumed them on the server)."""
        with self._lock:
            if self.done():
                return
            previous = self.status
            self.parts.extend(parts)
            if status and status not in TERMINAL_STATES:
                self.status = _status_of({"status": status}, previous)
        self._notify(JobUpdate(self, status_changed=self.status != previous, new_parts=tuple(parts)))

    def poll_failed(self, error: RunpodError) -> None:
        """A poll did not get through (the manager tries again); shown until the next answer."""
        self.last_poll_error = error
        self._notify(JobUpdate(self))

    def finish(
        self,
        body: dict[str, Any] | None = None,
        *,
        result: Any = None,
        error: BaseException | None = None,
        status: JobStatus | None = None,
    ) -> None:
        """The end: the last body (if any), and the result or the error `result()` gives from now on.
        `status` overrides the body's (SUBMIT_FAILED, or UNKNOWN for a job that cannot be followed).

        The raw output is dropped from `body` when `result` is a decoded object built from it, and
        the parts' audio when the whole result holds it: results are not kept twice.
        """
        with self._lock:
            if self.done():
                return
            previous = self.status
            if body is not None:
                self.body = without_decoded_output(body, result)
                self.status = _status_of(body, previous)
            if status is not None:
                self.status = status
            self.parts = [_without_audio(part) for part in self.parts]
            self.ended_at = time.time()
            if error is None:
                self._future.set_result(result)
            else:
                self._future.set_exception(error)
        self._notify(JobUpdate(self, status_changed=self.status != previous, ended=True))

    def restart(self, body: dict[str, Any]) -> None:
        """Runpod accepted a retry: the same job id runs again, with a new future."""
        with self._lock:
            self._future = Future()
            self.ended_at = None
            self.body = {}
            self.parts = []
            previous, self.status = self.status, JobStatus.IN_QUEUE
        self.apply(body)
        if self.status == previous:
            self._notify(JobUpdate(self, status_changed=True))

    def priced(self, cost: JobCost) -> None:
        """Its cost, estimated after its end: set, and told to subscribers (views show it)."""
        self.cost = cost
        self._notify(JobUpdate(self, priced_late=True))

    def _notify(self, update: JobUpdate) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
            done_callbacks: list[Callable[[Job], None]] = []
            if update.ended:  # done-callbacks are one-shot; subscribers stay (a retry runs again)
                done_callbacks, self._done_callbacks = self._done_callbacks, []
        for subscriber in subscribers:
            _safely(subscriber, update)
        for callback in done_callbacks:
            _safely(callback, self)

    # -- text --------------------------------------------------------------------------------------

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

    def __repr__(self) -> str:
        return f"<Job {self.id or '(submitting)'} on {self.endpoint_id}: {self.status}>"


def seconds_of(body: dict[str, Any], key: str) -> float | None:
    """A status body's `delayTime` or `executionTime` (milliseconds) in seconds."""
    ms = body.get(key)
    return ms / 1000 if isinstance(ms, int | float) and not isinstance(ms, bool) else None


def worker_of(body: dict[str, Any]) -> str | None:
    worker = body.get("workerId")
    return worker if isinstance(worker, str) and worker else None


def without_decoded_output(body: dict[str, Any], result: Any) -> dict[str, Any]:
    """`body` less its raw `output` when `result` is an object decoded from it (base64 audio, say):
    the result replaces it, so the two are not kept side by side."""
    if result is None or result is body.get("output"):
        return body
    return {k: v for k, v in body.items() if k != "output"}


def _status_of(body: dict[str, Any], default: JobStatus) -> JobStatus:
    try:
        return JobStatus(str(body.get("status")))
    except ValueError:  # a state Runpod may add later: keep the last known one rather than guess
        return default


def _safely(fn: Callable[[Any], object], argument: Any) -> None:
    try:
        fn(argument)
    except Exception:
        # A view's problem must never stop the job, the ledger or the other views.
        log.warning("rp_notebook: a subscriber of a job failed (%r)", fn, exc_info=True)


def _without_audio(part: Any) -> Any:
    return {k: v for k, v in part.items() if k != "audio"} if isinstance(part, dict) else part
