"""JobManager: one per process; submits jobs and follows all of them from one daemon thread.

Why a thread and not the kernel's asyncio loop: under ipykernel 7 tasks created in a cell can stall
until the next cell runs (shared/docs/jupyter-ecosystem.md §3.2), and a thread also works in plain
scripts and the CLI. Blocking `requests` calls release the GIL, so the kernel stays responsive.

How jobs are followed:

- The scheduler thread hands due jobs, oldest first, to a small pool of HTTP threads (bounded
  concurrency). Each asks `status-sync`, a server-side long-poll that answers the moment the job
  ends, so completion reaches the notebook at once with one or two requests per job.
- Where a server lacks status-sync, plain `status` is polled with a backoff (0.25 s growing to 3 s).
- Poll errors (network, 5xx, 429) are kept on the job and shown in its display, and polling goes
  on with a backoff: the result stays on Runpod for 30 minutes after the job ends. A job the
  server no longer knows (404) or a refused key ends the handle with that error.
- Once a second, displayed jobs that are still running re-render (elapsed time, progress).
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..client import JobsClient
from ..config import Settings, current_settings
from ..errors import AuthenticationError, NotFoundError, RunpodError
from ._job import Job

__all__ = ["JobManager", "get_manager"]

LONG_POLL_MS = 20_000
#: status-sync answers only at the end; a displayed job polls in shorter rounds so its line shows
#: IN_QUEUE -> IN_PROGRESS and the worker's progress as they happen.
DISPLAYED_LONG_POLL_MS = 2_000
FALLBACK_FIRST_DELAY = 0.25
FALLBACK_MAX_DELAY = 3.0
ERROR_MAX_DELAY = 10.0
DISPLAY_TICK = 1.0


class JobManager:
    """Submits jobs and follows every job of this process until it ends."""

    def __init__(self, *, max_concurrent_polls: int = 16, long_poll_ms: int = LONG_POLL_MS) -> None:
        self.long_poll_ms = long_poll_ms
        self._cond = threading.Condition()
        self._active: list[Job] = []
        self._all: dict[str, Job] = {}
        self._clients: dict[tuple[str, str], JobsClient] = {}
        self._slots = max_concurrent_polls
        self._pool = ThreadPoolExecutor(max_concurrent_polls, thread_name_prefix="rp-notebook-poll")
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- public -----------------------------------------------------------------------------------

    def client(self, settings: Settings | None = None) -> JobsClient:
        """The client for these settings (one per base URL and key, shared by their jobs)."""
        settings = settings or current_settings()
        key = settings.require_key()
        cache_key = (settings.endpoint_base_url, key.reveal())
        with self._cond:
            client = self._clients.get(cache_key)
            if client is None:
                client = self._clients[cache_key] = JobsClient(settings)
            return client

    def submit(
        self,
        endpoint_id: str,
        input: dict[str, Any],
        *,
        model: str | None = None,
        settings: Settings | None = None,
        **run_options: Any,
    ) -> Job:
        """Queue a job (one `run` request, in the calling thread so errors surface here) and follow it."""
        client = self.client(settings)
        submitted_at = time.time()
        body = client.run(endpoint_id, input, **run_options)
        job = Job(
            self,
            client,
            endpoint_id,
            body["id"],
            model=model,
            status=body.get("status", "IN_QUEUE"),
            submitted_at=submitted_at,
        )
        job.body = body
        self.track(job)
        return job

    def submit_many(
        self,
        endpoint_id: str,
        inputs: list[dict[str, Any]],
        *,
        model: str | None = None,
        settings: Settings | None = None,
        max_parallel: int = 8,
        **run_options: Any,
    ) -> list[Job | RunpodError]:
        """Queue many jobs with a few `run` requests in flight at once; returns, in input order, each
        Job or the error that kept it from being queued (a batch is not stopped by one bad request)."""
        client = self.client(settings)

        def one(payload: dict[str, Any]) -> Job | RunpodError:
            try:
                return self.submit(endpoint_id, payload, model=model, settings=client.settings, **run_options)
            except RunpodError as exc:
                return exc

        with ThreadPoolExecutor(
            max(1, min(max_parallel, len(inputs))), thread_name_prefix="rp-notebook-submit"
        ) as pool:
            return list(pool.map(one, inputs))

    def attach(
        self, endpoint_id: str, job_id: str, *, model: str | None = None, settings: Settings | None = None
    ) -> Job:
        """Follow a job submitted elsewhere (another kernel, the CLI, the runpod SDK)."""
        existing = self._all.get(job_id)
        if existing is not None:
            return existing
        job = Job(self, self.client(settings), endpoint_id, job_id, model=model, status="UNKNOWN")
        self.track(job)
        return job

    def jobs(self) -> list[Job]:
        """Every job of this process, oldest first."""
        with self._cond:
            return sorted(self._all.values(), key=lambda j: j.submitted_at)

    def track(self, job: Job) -> None:
        with self._cond:
            self._all[job.id] = job
            if job not in self._active:
                job._next_poll = 0.0
                job._poll_failures = 0
                self._active.append(job)
            self._ensure_thread()
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for client in self._clients.values():
            client.close()

    # -- the thread -------------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="rp-notebook-jobs", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        next_tick = time.monotonic() + DISPLAY_TICK
        while True:
            with self._cond:
                if self._closed:
                    return
                self._active = [j for j in self._active if not j.done()]
                now = time.monotonic()
                due = sorted(
                    (j for j in self._active if not j._polling and j._next_poll <= now),
                    key=lambda j: j.submitted_at,
                )
                for job in due[: self._slots]:
                    job._polling = True
                    self._slots -= 1
                    self._pool.submit(self._poll, job)
                waiting = [j._next_poll for j in self._active if not j._polling]
                wake_at = min([next_tick, *waiting])
                self._cond.wait(timeout=max(0.01, min(DISPLAY_TICK, wake_at - now)))
                running_displayed = [j for j in self._active if j.is_displayed and not j.done()]
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + DISPLAY_TICK
                for job in running_displayed:
                    _quietly(job.refresh_display)

    def _poll(self, job: Job) -> None:
        client = job._client
        delay = 0.0
        try:
            if client.status_sync_supported:
                wait_ms = DISPLAYED_LONG_POLL_MS if job.is_displayed else self.long_poll_ms
                body = client.status_sync(job.endpoint_id, job.id, wait_ms=wait_ms)
            else:
                body = client.status(job.endpoint_id, job.id)
            job._poll_failures = 0
            if not client.status_sync_supported:
                # Polling without long-poll: quick at first (short jobs), then back off.
                job._fallback_delay = min(
                    FALLBACK_MAX_DELAY, job._fallback_delay * 1.5 or FALLBACK_FIRST_DELAY
                )
                delay = job._fallback_delay
            job._apply(body)
        except (NotFoundError, AuthenticationError) as exc:
            job._fail(exc)
        except RunpodError as exc:
            job._poll_failures += 1
            job.last_poll_error = exc
            delay = min(ERROR_MAX_DELAY, 0.5 * 2 ** min(job._poll_failures, 6))
            _quietly(job.refresh_display)
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the poller; the job carries it
            job._fail(RunpodError(f"internal error while following job {job.id}: {exc!r}"))
        finally:
            with self._cond:
                job._next_poll = time.monotonic() + delay
                job._polling = False
                self._slots += 1
                self._cond.notify_all()


def _quietly(fn: Any) -> None:
    # Display refresh is best effort (there may be no kernel, e.g. in a script).
    with contextlib.suppress(Exception):
        fn()


_manager: JobManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> JobManager:
    """The process-wide job manager, created on first use."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = JobManager()
        return _manager
