"""The records the local endpoint keeps: jobs and worker processes, and their public snapshots.

`Job` and `WorkerRecord` are mutable and live on the server's event loop; only `_state.py` changes
them. `JobInfo` and `WorkerInfo` are frozen copies handed to other threads (tests, notebooks).

A job's client-facing body follows Runpod's `/status` shape: `id`, `status`, `delayTime` (ms from
submission to the start on a worker), `executionTime` (ms from start to end), `workerId`, `output`
(also while IN_PROGRESS once the worker sent a `progress_update`) and `error`.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import string
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..client._status import TERMINAL_STATES, JobStatus

__all__ = [
    "TERMINAL_STATES",
    "Job",
    "JobInfo",
    "JobStatus",
    "WorkerInfo",
    "WorkerRecord",
    "WorkerStatus",
    "describe_exit",
    "log_tail",
    "new_job_id",
    "new_worker_id",
]


class WorkerStatus(StrEnum):
    INITIALIZING = "initializing"  # process started, has not asked for a job yet
    IDLE = "idle"  # waiting for a job (long-polling job-take)
    RUNNING = "running"  # holds at least one job
    STOPPING = "stopping"  # told to stop (idle timeout, stopPod, server stop)
    EXITED = "exited"


_WORKER_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_worker_id() -> str:
    """A Runpod-looking worker id: 14 lowercase letters and digits."""
    return "".join(secrets.choice(_WORKER_ID_ALPHABET) for _ in range(14))


def new_job_id(sync: bool = False) -> str:
    """An opaque job id; runsync ids carry Runpod's `sync-` prefix."""
    job_id = str(uuid.uuid4())
    return f"sync-{job_id}" if sync else job_id


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


def log_tail(path: Path | None, lines: int = 15) -> str:
    if path is None:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 4096))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass(eq=False)
class Job:
    """One job of one endpoint. `request` is the validated client body (input, webhook, policy...)."""

    id: str
    endpoint_id: str
    request: dict[str, Any]
    submitted_at: float = field(default_factory=time.monotonic)
    status: JobStatus = JobStatus.IN_QUEUE
    started_at: float | None = None
    finished_at: float | None = None
    worker_id: str | None = None
    has_output: bool = False
    output: Any = None
    error: Any = None
    stream: list[Any] = field(default_factory=list)
    late_results: int = 0  # final results that arrived when the job was no longer IN_PROGRESS
    attempt: int = 0  # bumped by /retry; timers of an older attempt are ignored
    done: asyncio.Event = field(default_factory=asyncio.Event)  # set while the job is terminal
    timeout_handle: asyncio.TimerHandle | None = None
    retention_handle: asyncio.TimerHandle | None = None
    ttl_handle: asyncio.TimerHandle | None = None  # deletes the job when its TTL passes

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATES

    @property
    def is_sync(self) -> bool:
        """Submitted with /runsync (Runpod keeps those results for a shorter time)."""
        return self.id.startswith("sync-")

    @property
    def execution_timeout_ms(self) -> int | None:
        return self._policy_ms("executionTimeout")

    @property
    def ttl_ms(self) -> int | None:
        """`policy.ttl`: the job's total lifetime from submission, when the request set one."""
        return self._policy_ms("ttl")

    def _policy_ms(self, name: str) -> int | None:
        policy = self.request.get("policy") or {}
        value = policy.get(name)
        return int(value) if value is not None else None

    def cancel_timers(self) -> None:
        for name in ("timeout_handle", "retention_handle", "ttl_handle"):
            handle = getattr(self, name)
            if handle is not None:
                handle.cancel()
                setattr(self, name, None)

    def body(self) -> dict[str, Any]:
        """The client-facing body of `/status`, `/runsync` and friends."""
        body: dict[str, Any] = {"id": self.id, "status": self.status.value}
        if self.started_at is not None:
            body["delayTime"] = _ms(self.started_at - self.submitted_at)
            if self.finished_at is not None:
                body["executionTime"] = _ms(self.finished_at - self.started_at)
        if self.worker_id is not None:
            body["workerId"] = self.worker_id
        if self.has_output:
            body["output"] = self.output
        if self.error is not None:
            body["error"] = self.error
        return body

    def worker_payload(self) -> dict[str, Any]:
        """What job-take hands the worker: `{"id", "input"}` plus the optional request fields."""
        payload: dict[str, Any] = {"id": self.id}
        for key in ("input", "webhook", "policy", "s3Config"):
            if key in self.request:
                payload[key] = self.request[key]
        return payload

    def snapshot(self) -> JobInfo:
        return JobInfo(
            id=self.id,
            endpoint_id=self.endpoint_id,
            status=self.status,
            body=self.body(),
            worker_id=self.worker_id,
            attempt=self.attempt,
            late_results=self.late_results,
            pending_stream_chunks=len(self.stream),
            input=self.request.get("input"),
            # Wall-clock time, so another process (a benchmark's client) can compare it with its own.
            finished_at=None
            if self.finished_at is None
            else time.time() - (time.monotonic() - self.finished_at),
        )


@dataclass(frozen=True)
class JobInfo:
    """A copy of a job's state, safe to read from any thread."""

    id: str
    endpoint_id: str
    status: JobStatus
    body: dict[str, Any]
    worker_id: str | None
    attempt: int
    late_results: int
    pending_stream_chunks: int
    finished_at: float | None = None  # time.time() when the job reached its end state
    input: Any = None  # the request's `input`, as received (shared, not copied: do not modify)

    @property
    def late_result_received(self) -> bool:
        """True when a worker sent a final result after the job was already finished
        (e.g. a handler that ignored its cancellation)."""
        return self.late_results > 0


@dataclass(eq=False)
class WorkerRecord:
    """One worker process of one endpoint, as the server sees it."""

    id: str
    endpoint_id: str
    started_at: float = field(default_factory=time.monotonic)
    status: WorkerStatus = WorkerStatus.INITIALIZING
    ready_at: float | None = None  # first job-take request: the end of the cold start
    jobs: set[str] = field(default_factory=set)
    # job id -> when the stop signal was last handed out (None: not yet); cleared on release
    stop_requests: dict[str, float | None] = field(default_factory=dict)
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    pid: int | None = None
    log_path: Path | None = None
    returncode: int | None = None
    last_ping: float | None = None
    pings: int = 0
    unhealthy: str | None = None  # reason from a fitness-check failure ping
    start_error: str | None = None  # why it never started (its environment could not be built)
    jobs_done: int = 0
    idle_timer: asyncio.TimerHandle | None = None

    @property
    def cold_start_s(self) -> float | None:
        return None if self.ready_at is None else self.ready_at - self.started_at

    def snapshot(self) -> WorkerInfo:
        return WorkerInfo(
            id=self.id,
            endpoint_id=self.endpoint_id,
            status=self.status,
            pid=self.pid,
            log_path=self.log_path,
            cold_start_s=self.cold_start_s,
            jobs=tuple(sorted(self.jobs)),
            jobs_done=self.jobs_done,
            returncode=self.returncode,
            unhealthy=self.unhealthy,
            pings=self.pings,
        )


@dataclass(frozen=True)
class WorkerInfo:
    """A copy of a worker's state, safe to read from any thread."""

    id: str
    endpoint_id: str
    status: WorkerStatus
    pid: int | None
    log_path: Path | None
    cold_start_s: float | None  # process start -> first job-take request
    jobs: tuple[str, ...]
    jobs_done: int
    returncode: int | None
    unhealthy: str | None
    pings: int  # heartbeats received (RUNPOD_WEBHOOK_PING)
