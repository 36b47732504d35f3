"""The job and worker state machine of one endpoint. No HTTP here: the routes call these methods.

Everything runs on the server's event loop thread, so there are no locks: a method runs to its end
before another starts, and the waiting methods (`take_jobs`, `stop_signals`, `wait_terminal`) only
await events.

Job lifecycle (Runpod's states)::

    IN_QUEUE --take--> IN_PROGRESS --result--> COMPLETED | FAILED
        |                   |--cancel--> CANCELLED   (+ stop signal to the worker)
        |                   |--execution timeout--> TIMED_OUT (+ stop signal)
        |                   '--worker exits / drops the job--> FAILED
        '--cancel / purge-queue--> CANCELLED
    FAILED | TIMED_OUT --retry--> IN_QUEUE (same id, same input, output cleared)

How long a job is readable (Runpod's rules, runpod-platform.md §1.2-1.3): a terminal job is
forgotten `result_retention_s` after it ended (30 min; `sync_result_retention_s`, 1 min, for
/runsync jobs), and every job, whatever its state, is deleted once its TTL has passed since
submission (`policy.ttl`, else the endpoint's `job_ttl_ms`, 24 h; `/status?ttl=ms` sets a new one
from now). An expired job that was IN_PROGRESS gets a stop signal for its worker; the worker's slot
is freed when its result (then ignored) or its next job-take arrives. Either way the routes answer
404 for the job from then on, as Runpod does. /retry keeps the original TTL: it counts from the
first submission.

A worker that dies while holding a job (crash, OOM kill, SIGKILL) FAILS that job with an error that
names the worker, how it ended and its log; the job is not re-queued on its own. Runpod documents no
automatic re-run: it counts retries only for `/retry`, which the client calls (`Job.retry()`), and a
crash caused by the input itself (out of memory, a segfault in a native library) would only crash
the next worker too and bill twice. The endpoint starts a new worker for the jobs still queued.

Workers (each an unmodified runpod SDK worker, one job at a time) are started on demand: when jobs
wait and fewer than `workers_max` workers are alive, `_scale` asks the launcher for more. Besides,
`workers_min` workers (Runpod's "active workers") are kept alive with no job at all: started with
the endpoint (on its loop) and after `reconfigure`, replaced when one exits (with the same start
backoff; after MAX_START_FAILURES failed starts in a row only jobs start workers again, until one
starts or the endpoint is reconfigured), and never stopped by the idle timeout. A worker
is INITIALIZING until its first job-take, IDLE while it long-polls, RUNNING while it holds a job.
A result that arrives for a job that is no longer IN_PROGRESS on that worker (cancelled, timed out,
already failed) is ignored and counted in `Job.late_results`.

Settings change live (`reconfigure`, from the management API): a lower `workers_max` stops idle
workers at once and running ones when their job ends, never mid-job; a new worker folder or env
retires the current workers the same way, so the next jobs run on the new one. `shutdown` (the
endpoint is deleted) cancels its jobs and stops its workers.

Stop signals (cancel, timeout) wait in `WorkerRecord.stop_requests` until the worker's job-stop
long-poll collects them; they are handed out again every `STOP_REDELIVER_S` while the worker still
holds the job, because the SDK can only stop a job once its asyncio task exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from ._config import EndpointConfig
from ._records import (
    Job,
    JobStatus,
    WorkerRecord,
    WorkerStatus,
    describe_exit,
    log_tail,
    new_job_id,
    new_worker_id,
)

__all__ = ["EndpointState", "StateError", "WorkerLauncher", "WorkerStartError"]

log = logging.getLogger("rp_notebook.local")

STOP_REDELIVER_S = 1.0
_LIVE = (WorkerStatus.INITIALIZING, WorkerStatus.IDLE, WorkerStatus.RUNNING)
MAX_START_FAILURES = 3
_MISSING = object()


async def _set_within(event: asyncio.Event, timeout: float) -> bool:
    """Wait until `event` is set (True) or `timeout` seconds pass (False): every long-poll's wait.

    asyncio.timeout, not wait_for: on Python 3.11 wait_for runs the wait as a task of its own,
    three turns of a busy loop from `set()` to the waiter instead of one. With 500 instant jobs in
    flight that cut the clients' completion latency p50 from 54 to 33 ms (bench/README.md)."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


class StateError(Exception):
    """A request the state machine refuses; `status` is the HTTP status the route answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class WorkerStartError(Exception):
    """The launcher could not start a worker process at all (missing handler, bad interpreter)."""


class WorkerLauncher(Protocol):
    """Starts and stops worker processes; implemented by `_workers.WorkerSupervisor`."""

    def spawn(
        self, config: EndpointConfig, worker: WorkerRecord, on_exit: Callable[[str, int], None]
    ) -> None:
        """Start the process (sets worker.pid and worker.log_path) or raise WorkerStartError.
        `on_exit(worker_id, returncode)` must later be called on the loop thread."""

    def terminate(self, worker: WorkerRecord) -> None:
        """Ask the process group to stop (SIGTERM, then SIGKILL after a grace period)."""


class EndpointState:
    """Jobs, queue and workers of one endpoint."""

    def __init__(
        self,
        config: EndpointConfig,
        launcher: WorkerLauncher,
        on_terminal: Callable[[Job], None] | None = None,
    ) -> None:
        self.config = config
        self.jobs: dict[str, Job] = {}
        self.queue: deque[Job] = deque()
        self.workers: dict[str, WorkerRecord] = {}
        self.exited_workers: deque[WorkerRecord] = deque(maxlen=50)
        self.completed = 0
        self.failed = 0
        self.retried = 0
        self.expired = 0  # jobs deleted by their TTL (not in /health, as on Runpod)
        # Why the last worker could not start (a failed environment build, a missing script), until
        # one starts: /health and the endpoint listings show it, as Runpod marks workers unhealthy.
        self.start_error: str | None = None
        self.closing = False
        self._launcher = launcher
        self._on_terminal = on_terminal
        self._wakeup = asyncio.Event()  # replaced on every notify: a broadcast to take_jobs waiters
        self._start_failures = 0
        self._spawn_not_before = 0.0
        self._stale: set[str] = set()  # workers started with an older worker folder or env
        # True once workers_min workers failed to start MAX_START_FAILURES times in a row: stop
        # restarting a broken worker on our own (a job, a started worker or reconfigure resets it).
        self._min_suspended = False
        with contextlib.suppress(RuntimeError):  # no loop yet: the server starts them (`start`)
            asyncio.get_running_loop().call_soon(self._scale)

    def start(self) -> None:
        """Start the `workers_min` workers; call on the loop thread once the server serves
        (an endpoint created on the running loop does this by itself)."""
        self._scale()

    @property
    def id(self) -> str:
        return self.config.id

    # ------------------------------------------------------------------ client side
    def submit(self, request: dict[str, Any], *, sync: bool = False) -> Job:
        job = Job(id=new_job_id(sync), endpoint_id=self.id, request=request)
        self.jobs[job.id] = job
        self._set_ttl(job, job.ttl_ms or self.config.job_ttl_ms)
        self._enqueue(job)
        return job

    def set_ttl(self, job: Job, ttl_ms: int) -> None:
        """`/status?ttl=ms`: the job is deleted `ttl_ms` from now instead (shorter or longer)."""
        self._set_ttl(job, ttl_ms)

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    async def wait_terminal(self, job: Job, timeout: float) -> None:
        """Return when the job is terminal or `timeout` seconds passed (whichever comes first)."""
        if job.is_terminal or timeout <= 0:
            return
        await _set_within(job.done, timeout)

    def take_stream(self, job: Job) -> list[Any]:
        """The stream chunks not yet read; reading consumes them (Runpod's /stream semantics)."""
        chunks, job.stream = job.stream, []
        return chunks

    def cancel(self, job: Job) -> None:
        if job.status is JobStatus.IN_QUEUE:
            self.queue.remove(job)
            self._finish(job, JobStatus.CANCELLED)
        elif job.status is JobStatus.IN_PROGRESS:
            self._finish(job, JobStatus.CANCELLED)
            self._request_stop(job)

    def retry(self, job: Job) -> None:
        if job.status not in (JobStatus.FAILED, JobStatus.TIMED_OUT):
            raise StateError(
                400, f"job {job.id} is {job.status.value}; only FAILED or TIMED_OUT jobs can be retried"
            )
        for handle in (job.timeout_handle, job.retention_handle):  # not the TTL: it counts from submission
            if handle is not None:
                handle.cancel()
        job.timeout_handle = job.retention_handle = None
        job.attempt += 1
        job.status = JobStatus.IN_QUEUE
        job.submitted_at = time.monotonic()
        job.started_at = job.finished_at = None
        job.worker_id = None
        job.has_output, job.output, job.error = False, None, None
        job.stream = []
        job.done.clear()
        self.retried += 1
        self._enqueue(job)

    def purge_queue(self) -> int:
        removed = list(self.queue)
        self.queue.clear()
        for job in removed:
            self._finish(job, JobStatus.CANCELLED)
        return len(removed)

    def health(self) -> dict[str, Any]:
        in_progress = sum(1 for job in self.jobs.values() if job.status is JobStatus.IN_PROGRESS)
        workers = {"idle": 0, "running": 0, "initializing": 0, "unhealthy": 0}
        for worker in self.workers.values():
            if worker.status.value in workers:
                workers[worker.status.value] += 1
        health: dict[str, Any] = {
            "jobs": {
                "completed": self.completed,
                "failed": self.failed,
                "inProgress": in_progress,
                "inQueue": len(self.queue),
                "retried": self.retried,
            },
            "workers": workers,
        }
        if self.start_error is not None:
            workers["unhealthy"] += 1
            health["error"] = self.start_error  # the local endpoint's own: Runpod shows it in its console
        return health

    # ------------------------------------------------------------------ worker side
    async def take_jobs(
        self, worker_id: str, *, max_jobs: int = 1, job_in_progress: bool | None = None, hold_s: float = 30.0
    ) -> list[Job] | None:
        """A worker's job-take long-poll. None for an unknown worker, [] when nothing came in time."""
        worker = self.workers.get(worker_id)
        if worker is None:
            return None
        loop = asyncio.get_running_loop()
        if job_in_progress is False:
            self._release_all(worker)
        if worker.ready_at is None:
            worker.ready_at = time.monotonic()
            self._start_failures = 0
            self._min_suspended = False
            self.start_error = None
        if worker.status is WorkerStatus.INITIALIZING or (
            worker.status is WorkerStatus.RUNNING and not worker.jobs
        ):
            self._set_idle(worker)
        deadline = loop.time() + hold_s
        while True:
            if self.closing or worker.status not in (WorkerStatus.IDLE, WorkerStatus.RUNNING):
                return []
            if self.queue:
                taken: list[Job] = []
                while self.queue and len(taken) < max_jobs:
                    job = self.queue.popleft()
                    self._assign(job, worker)
                    taken.append(job)
                return taken
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            if not await _set_within(self._wakeup, remaining):
                return []

    async def stop_signals(self, worker_id: str, *, hold_s: float = 30.0) -> list[str] | None:
        """A worker's job-stop long-poll: the ids of jobs it must stop. None for an unknown worker."""
        worker = self.workers.get(worker_id)
        if worker is None:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + hold_s
        while True:
            if self.closing or worker.status in (WorkerStatus.STOPPING, WorkerStatus.EXITED):
                return []
            now = loop.time()
            due = [
                job_id
                for job_id, sent in worker.stop_requests.items()
                if sent is None or now - sent >= STOP_REDELIVER_S
            ]
            if due:
                for job_id in due:
                    worker.stop_requests[job_id] = now
                return due
            wait = deadline - now
            if wait <= 0:
                return []
            for sent in worker.stop_requests.values():
                if sent is not None:
                    wait = min(wait, sent + STOP_REDELIVER_S - now)
            worker.stop_event.clear()
            await _set_within(worker.stop_event, max(wait, 0.01))

    def job_result(self, worker_id: str, job_id: str, payload: dict[str, Any], is_stream: bool) -> bool:
        """A POST to job-done: a progress update (`status: IN_PROGRESS`) or the final result.
        Returns False for an unknown job."""
        job = self.jobs.get(job_id)
        worker = self.workers.get(worker_id)
        if job is None:
            if worker is None or job_id not in worker.jobs:
                return False
            # The job expired (TTL) while this worker ran it: drop the result, free the worker.
            if payload.get("status") != JobStatus.IN_PROGRESS.value:
                self._release(worker, job_id)
            return True
        current = job.status is JobStatus.IN_PROGRESS and job.worker_id == worker_id
        if payload.get("status") == JobStatus.IN_PROGRESS.value:
            if current:
                job.output, job.has_output = payload.get("output"), True
            return True
        if not current:
            job.late_results += 1
            log.info("endpoint %s: ignored a late result for job %s (%s)", self.id, job_id, job.status.value)
        elif "error" in payload:
            job.has_output, job.output = False, None  # the final result replaces any progress value
            output = payload.get("output", _MISSING)
            self._finish(job, JobStatus.FAILED, output=output, error=payload["error"])
        else:
            job.has_output, job.output = False, None
            self._finish(job, JobStatus.COMPLETED, output=payload.get("output", _MISSING))
        if worker is not None:
            if current:
                worker.jobs_done += 1
            self._release(worker, job_id)
            if payload.get("stopPod"):
                self._retire(worker)
        return True

    def job_stream(self, worker_id: str, job_id: str, payload: dict[str, Any]) -> bool:
        """A POST to job-stream: one chunk `{"output": ...}` of a generator handler."""
        job = self.jobs.get(job_id)
        if job is None:
            return False
        if job.status is JobStatus.IN_PROGRESS and job.worker_id == worker_id and "output" in payload:
            job.stream.append(payload["output"])
        return True

    def ping(self, worker_id: str, params: dict[str, str]) -> bool:
        worker = self.workers.get(worker_id)
        if worker is None:
            return False
        worker.last_ping = time.monotonic()
        worker.pings += 1
        if params.get("status") == "unhealthy":
            worker.unhealthy = f"{params.get('check', '?')}: {params.get('reason', '')}"
            log.warning("endpoint %s: worker %s reports unhealthy: %s", self.id, worker_id, worker.unhealthy)
        return True

    def worker_exited(self, worker_id: str, returncode: int) -> None:
        """Called on the loop thread by the launcher once a worker process is gone."""
        worker = self.workers.pop(worker_id, None)
        if worker is None:
            return
        was_ready = worker.ready_at is not None
        was_stopping = worker.status is WorkerStatus.STOPPING
        worker.status = WorkerStatus.EXITED
        worker.returncode = returncode
        self._stale.discard(worker_id)
        if worker.idle_timer is not None:
            worker.idle_timer.cancel()
        worker.exited.set()
        worker.stop_event.set()
        self.exited_workers.append(worker)
        how = describe_exit(returncode)
        for job_id in sorted(worker.jobs):
            job = self.jobs.get(job_id)
            if job is not None and job.status is JobStatus.IN_PROGRESS and job.worker_id == worker_id:
                self._finish(
                    job,
                    JobStatus.FAILED,
                    error=f"worker {worker_id} {how} while running this job (worker log: {worker.log_path})",
                )
        worker.jobs.clear()
        worker.stop_requests.clear()
        if worker.start_error is not None:  # it never ran: its environment could not be built
            if not (was_stopping or self.closing):
                self._start_failed(worker.start_error)
            return
        if not (was_stopping or self.closing):
            log.warning("endpoint %s: worker %s %s (log: %s)", self.id, worker_id, how, worker.log_path)
        if not (was_ready or was_stopping or self.closing):
            self._start_failures += 1
            if self._start_failures >= MAX_START_FAILURES:
                if self.config.workers_min and not self._min_suspended:
                    self._min_suspended = True
                    log.warning(
                        "endpoint %s: not restarting its %d minimum workers after %d failed starts; "
                        "the next job or reconfigure tries again",
                        self.id,
                        self.config.workers_min,
                        self._start_failures,
                    )
                tail = log_tail(worker.log_path)
                self.start_error = (
                    f"the worker of endpoint {self.id} failed to start {self._start_failures} times in a "
                    f"row (last one {how}); last lines of {worker.log_path}:\n{tail}"
                )
                self._fail_queue(self.start_error)
                self._start_failures = 0
            else:
                backoff = 0.5 * 2 ** (self._start_failures - 1)
                loop = asyncio.get_running_loop()
                self._spawn_not_before = loop.time() + backoff
                loop.call_later(backoff, self._scale)
        self._scale()

    def reconfigure(self, config: EndpointConfig) -> None:
        """Apply new settings (same id) to the live endpoint.

        Lowering `workers_max` stops idle and starting workers now and running ones once their job
        ends; raising it starts workers for waiting jobs. A changed worker (folder, env, handler,
        interpreter) retires the current workers the same way. A new idle timeout restarts the idle
        timers; a new execution timeout applies to jobs started from now on. A higher `workers_min`
        starts workers now; a lower one gives the idle workers it kept an idle timer again.
        """
        if config.id != self.id:
            raise ValueError(f"cannot reconfigure endpoint {self.id} with the config of {config.id}")
        old, self.config = self.config, config
        self._min_suspended = False
        worker_of = ("worker_dir", "env", "handler", "command", "packages", "python")
        if any(getattr(old, name) != getattr(config, name) for name in worker_of):
            self._stale.update(self.workers)
        for status in (WorkerStatus.IDLE, WorkerStatus.INITIALIZING):  # idle ones first: they are warm
            for worker in [w for w in self.workers.values() if w.status is status]:
                if worker.id in self._stale or self._surplus() > 0:
                    self._retire(worker)
                elif status is WorkerStatus.IDLE and (
                    old.idle_timeout_s != config.idle_timeout_s or worker.idle_timer is None
                ):
                    self._set_idle(worker)  # (re)start its idle timer: a new timeout, or min lowered
        self._scale()

    def shutdown(self) -> None:
        """The endpoint is deleted: cancel its jobs, wake every long-poll, stop every worker."""
        for job in list(self.jobs.values()):
            if not job.is_terminal:
                if job.status is JobStatus.IN_QUEUE:
                    self.queue.remove(job)
                self._finish(job, JobStatus.CANCELLED)
        self.close()
        for worker in list(self.workers.values()):
            self._retire(worker)

    def close(self) -> None:
        """Server shutdown: wake every long-poll and start nothing new."""
        self.closing = True
        self._notify()
        for worker in self.workers.values():
            worker.stop_event.set()
            if worker.idle_timer is not None:
                worker.idle_timer.cancel()
        for job in self.jobs.values():
            job.cancel_timers()

    # ------------------------------------------------------------------ internals
    def _notify(self) -> None:
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    def _enqueue(self, job: Job) -> None:
        self._min_suspended = False  # as before workers_min: a new job tries a broken worker again
        self.queue.append(job)
        self._notify()
        self._scale()

    def _assign(self, job: Job, worker: WorkerRecord) -> None:
        loop = asyncio.get_running_loop()
        job.status = JobStatus.IN_PROGRESS
        job.started_at = time.monotonic()
        job.worker_id = worker.id
        worker.jobs.add(job.id)
        worker.status = WorkerStatus.RUNNING
        if worker.idle_timer is not None:
            worker.idle_timer.cancel()
            worker.idle_timer = None
        timeout_ms = job.execution_timeout_ms or self.config.execution_timeout_ms
        if timeout_ms:
            job.timeout_handle = loop.call_later(
                timeout_ms / 1000, self._on_timeout, job, job.attempt, timeout_ms
            )

    def _on_timeout(self, job: Job, attempt: int, timeout_ms: int) -> None:
        if job.attempt != attempt or job.status is not JobStatus.IN_PROGRESS:
            return
        self._finish(job, JobStatus.TIMED_OUT, error=f"job exceeded its execution timeout of {timeout_ms} ms")
        self._request_stop(job)

    def _finish(self, job: Job, status: JobStatus, *, output: Any = _MISSING, error: Any = None) -> None:
        loop = asyncio.get_running_loop()
        job.status = status
        job.finished_at = time.monotonic()
        if output is not _MISSING:
            job.output, job.has_output = output, True
        job.error = error
        if job.timeout_handle is not None:
            job.timeout_handle.cancel()
            job.timeout_handle = None
        if status is JobStatus.COMPLETED:
            self.completed += 1
        elif status in (JobStatus.FAILED, JobStatus.TIMED_OUT):
            self.failed += 1
        job.done.set()
        retention = self.config.sync_result_retention_s if job.is_sync else self.config.result_retention_s
        if retention is not None:
            job.retention_handle = loop.call_later(retention, self._forget, job, job.attempt)
        if self._on_terminal is not None:
            try:
                self._on_terminal(job)
            except Exception:  # a webhook problem must never break the state machine
                log.exception("endpoint %s: on_terminal hook failed for job %s", self.id, job.id)

    def _forget(self, job: Job, attempt: int) -> None:
        """The result's retention is over: the job is gone (404)."""
        if job.attempt == attempt and job.is_terminal and self.jobs.get(job.id) is job:
            job.cancel_timers()
            del self.jobs[job.id]

    def _set_ttl(self, job: Job, ttl_ms: int) -> None:
        if job.ttl_handle is not None:
            job.ttl_handle.cancel()
        job.ttl_handle = asyncio.get_running_loop().call_later(ttl_ms / 1000, self._expire, job)

    def _expire(self, job: Job) -> None:
        """The job's TTL passed: delete it whatever its state (Runpod's hard limit)."""
        job.ttl_handle = None
        if self.jobs.get(job.id) is not job:
            return
        if job.status is JobStatus.IN_QUEUE:
            self.queue.remove(job)
        elif job.status is JobStatus.IN_PROGRESS:
            self._request_stop(job)  # the worker keeps the job in `jobs` until it lets go of it
        job.cancel_timers()
        del self.jobs[job.id]
        self.expired += 1
        job.done.set()  # wakes status-sync and runsync waiters; they find the job gone (404)
        log.info("endpoint %s: job %s expired (TTL) while %s", self.id, job.id, job.status.value)

    def _request_stop(self, job: Job) -> None:
        worker = self.workers.get(job.worker_id or "")
        if worker is not None and job.id in worker.jobs:
            worker.stop_requests[job.id] = None
            worker.stop_event.set()

    def _release(self, worker: WorkerRecord, job_id: str) -> None:
        worker.jobs.discard(job_id)
        worker.stop_requests.pop(job_id, None)
        if not worker.jobs and worker.status is WorkerStatus.RUNNING:
            self._set_idle(worker)

    def _release_all(self, worker: WorkerRecord) -> None:
        """The worker says it runs nothing: any job it still holds IN_PROGRESS lost its result."""
        for job_id in sorted(worker.jobs):
            job = self.jobs.get(job_id)
            if job is not None and job.status is JobStatus.IN_PROGRESS and job.worker_id == worker.id:
                self._finish(
                    job,
                    JobStatus.FAILED,
                    error=f"worker {worker.id} went back to waiting for work without reporting a result "
                    f"for this job (worker log: {worker.log_path})",
                )
            self._release(worker, job_id)

    def _set_idle(self, worker: WorkerRecord) -> None:
        if worker.id in self._stale or self._surplus() > 0:
            self._retire(worker)  # scaled down or reconfigured while it was busy: stop it now
            return
        worker.status = WorkerStatus.IDLE
        if worker.idle_timer is not None:
            worker.idle_timer.cancel()
            worker.idle_timer = None
        if self.config.idle_timeout_s is not None and not self.closing:
            worker.idle_timer = asyncio.get_running_loop().call_later(
                self.config.idle_timeout_s, self._idle_expired, worker
            )

    def _idle_expired(self, worker: WorkerRecord) -> None:
        worker.idle_timer = None
        if worker.status is not WorkerStatus.IDLE or worker.jobs:
            return
        # Kept without a timer: it is one of the workers_min; reconfigure re-arms it if min drops.
        if worker.id in self._stale or self._fresh_live() > self.config.workers_min:
            self._retire(worker)

    def _live(self) -> list[WorkerRecord]:
        """Workers alive and not stopping."""
        return [w for w in self.workers.values() if w.status in _LIVE]

    def _fresh_live(self) -> int:
        """Live workers that run the current worker: those that count for `workers_min`."""
        return sum(1 for w in self._live() if w.id not in self._stale)

    def _surplus(self) -> int:
        """How many more workers are live than `workers_max` allows."""
        return len(self._live()) - self.config.workers_max

    def _retire(self, worker: WorkerRecord) -> None:
        """Stop one worker (idle timeout, stopPod, scale-down); its exit frees the slot."""
        if worker.status in (WorkerStatus.STOPPING, WorkerStatus.EXITED):
            return
        if worker.idle_timer is not None:
            worker.idle_timer.cancel()
            worker.idle_timer = None
        self._launcher.terminate(worker)  # SIGTERM first, so the SDK's loops end on the next 204
        worker.status = WorkerStatus.STOPPING
        worker.stop_event.set()
        self._notify()

    def _start_failed(self, reason: str) -> None:
        """A worker cannot start at all (no script, no environment): fail what waits, say why, and
        start no more on our own (workers_min) until a new job or a reconfigure tries again."""
        self._min_suspended = True
        self.start_error = f"could not start a worker for endpoint {self.id}: {reason}"
        log.warning("%s", self.start_error)
        self._fail_queue(self.start_error)

    def _fail_queue(self, message: str) -> None:
        jobs, self.queue = list(self.queue), deque()
        for job in jobs:
            self._finish(job, JobStatus.FAILED, error=message)

    def _scale(self) -> None:
        """Start workers while jobs wait and no worker is free for them, or while fewer than
        `workers_min` are alive; never more than `workers_max` (stopping ones included)."""
        if self.closing:
            return
        alive = [w for w in self.workers.values() if w.status is not WorkerStatus.EXITED]
        free = sum(1 for w in alive if w.status in (WorkerStatus.INITIALIZING, WorkerStatus.IDLE))
        for_min = 0 if self._min_suspended else self.config.workers_min - self._fresh_live()
        wanted = min(max(len(self.queue) - free, for_min), self.config.workers_max - len(alive))
        if wanted <= 0 or asyncio.get_running_loop().time() < self._spawn_not_before:
            return
        for _ in range(wanted):
            worker = WorkerRecord(id=new_worker_id(), endpoint_id=self.id)
            try:
                self._launcher.spawn(self.config, worker, self.worker_exited)
            except WorkerStartError as exc:
                self._start_failed(str(exc))
                return
            self.workers[worker.id] = worker
            log.info("endpoint %s: started worker %s (pid %s)", self.id, worker.id, worker.pid)
