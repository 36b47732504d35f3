"""JobManager: one per process; submits jobs and follows all of them from a pool of poll threads.

Why threads and not the kernel's asyncio loop: under ipykernel 7 tasks created in a cell can stall
until the next cell runs (shared/docs/jupyter-ecosystem.md §3.2), and threads also work in plain
scripts and the CLI. Blocking `requests` calls release the GIL, so the kernel stays responsive.

How jobs are followed (sized for hundreds in flight):

- A job costs one `run`, then usually one `status-sync`: a server-side long-poll that answers the
  moment the job ends, so its end reaches the notebook at once.
- Each endpoint has its own queue of jobs to poll, oldest first, and its own `max_concurrent_polls`
  slots (Runpod limits per endpoint too). Oldest first is what makes a few slots enough: Runpod's
  queue is FIFO, so every running job is older than every queued one, and with at least as many
  slots as jobs running on the endpoint, every running job is being long-polled while queued ones
  (which cannot end before they run) wait for a slot. Per-endpoint slots mean a backlog of 500 jobs
  on one endpoint never makes another endpoint's job wait for a slot.
- The poll threads take the next job themselves, with no scheduler in between; they are started
  when there is work for them, sleep on a condition when there is none (no polling of our own) and
  end after 30 s without work.
- Long-polls last `long_poll_ms` (60 s): a job that runs for a minute costs a single status-sync.
  Displayed jobs poll in short rounds instead, so their line shows IN_QUEUE -> IN_PROGRESS and
  the worker's progress as they happen.
- Where a server lacks status-sync, plain `status` is polled with a backoff (0.25 s growing to 3 s).
- A job that streams its result (`Job.streams`: TTS with `stream`, submitted alone) reads `/stream`
  every 0.25 s while it runs (backing off to 2 s while it is queued), so its parts reach the player
  as they are made; once the stream says the job ended, one status-sync fetches the whole result.
  Jobs of `submit_many` do not: nobody plays 500 parts lists, and it would cost a request per job
  every quarter second.
- Poll errors (network, 5xx, 429) are kept on the job and shown in its display, and polling goes
  on with a backoff: the result stays on Runpod for 30 minutes after the job ends. A job the
  server no longer knows (404) or a refused key ends the handle with that error.
- Every request goes through the client's RequestBudget (client/_budget.py), so 500 jobs never
  burst past the endpoint's rate or concurrency limits, and a 429 pauses every thread at once.
- Once a second, a small display thread re-renders displayed jobs that are still running.

Nothing paid for is lost (`_ledger.py`): every job is written to the user's job ledger when its
`run` is answered, each status change is recorded, and a result is saved to the results folder
before `job.result()` sees it. After a kernel restart, `recover()` follows the jobs the ledger
still has in flight on this API, and `resume(job_id)` gives one job back: from its saved result
if it ended, else by following it on Runpod. The ledger is best effort: if it cannot be written
(a read-only disk), one warning says so and the jobs go on in memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import itertools
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..client import TERMINAL_STATES, JobsClient, JobStatus, RequestBudget
from ..config import Secret, Settings, current_settings
from ..errors import AuthenticationError, ConfigurationError, InputError, NotFoundError, RunpodError
from ._job import Job
from ._ledger import Ledger, LedgerEntry
from ._recorder import USER_LEDGER, JobRecorder
from ._saved import load_result

__all__ = ["JobManager", "get_manager"]

LONG_POLL_MS = 60_000
#: status-sync answers only at the end; a displayed job polls in shorter rounds so its line shows
#: IN_QUEUE -> IN_PROGRESS and the worker's progress as they happen.
DISPLAYED_LONG_POLL_MS = 2_000
MAX_CONCURRENT_POLLS = 32
STREAM_POLL_S = 0.25
STREAM_QUEUED_MAX_DELAY = 2.0
FALLBACK_FIRST_DELAY = 0.25
FALLBACK_MAX_DELAY = 3.0
ERROR_MAX_DELAY = 10.0
DISPLAY_TICK = 1.0
IDLE_THREAD_EXIT_S = 30.0

_EndpointKey = tuple[str, str]  # (job API base URL, endpoint id)


@dataclass(eq=False)
class _Followed:
    """The manager's bookkeeping for one job it follows."""

    job: Job
    endpoint: _EndpointKey
    queued: bool = False  # waiting in a ready queue or in `_later`
    polling: bool = False
    failures: int = 0
    fallback_delay: float = 0.0
    stream_delay: float = 0.0
    stream_ended: bool = False  # /stream said the job ended: the result comes from status-sync


@dataclass(eq=False)
class _EndpointQueue:
    """Jobs of one endpoint that are due for a poll (a heap, oldest first) and its polls in flight."""

    ready: list[tuple[float, int, _Followed]] = field(default_factory=list)
    polling: int = 0


class JobManager:
    """Submits jobs and follows every job of this process until it ends.

    max_concurrent_polls: long-polls in flight per endpoint (see the module docstring for why this
    is enough). long_poll_ms: how long one status-sync may wait (1,000-90,000).
    budget: the clients' RequestBudget; None shares the process-wide one (Runpod's limits).
    ledger: where jobs and results are recorded: the user's ledger (default), another `Ledger`,
    or None to keep nothing on disk.
    """

    def __init__(
        self,
        *,
        max_concurrent_polls: int = MAX_CONCURRENT_POLLS,
        long_poll_ms: int = LONG_POLL_MS,
        budget: RequestBudget | None = None,
        ledger: Ledger | str | None = USER_LEDGER,
    ) -> None:
        if max_concurrent_polls < 1:
            raise ValueError("max_concurrent_polls must be >= 1")
        self.max_concurrent_polls = max_concurrent_polls
        self.long_poll_ms = long_poll_ms
        self._budget = budget
        #: Writes every job and result to the ledger (the Jobs call it on each change).
        self.recorder = JobRecorder(ledger)
        self._cond = threading.Condition()
        self._all: dict[str, Job] = {}
        self._clients: dict[tuple[str, Secret], JobsClient] = {}
        self._followed: dict[Job, _Followed] = {}
        self._queues: dict[_EndpointKey, _EndpointQueue] = {}
        self._later: list[tuple[float, int, _Followed]] = []  # (due time, seq, job): backoffs
        self._seq = itertools.count()  # heap tie-breaker: entries never compare _Followed
        self._threads = 0
        self._ticker: threading.Thread | None = None
        self._closed = False
        self._closed_event = threading.Event()  # the display thread sleeps on this, not on _cond

    # -- public -----------------------------------------------------------------------------------

    def client(self, settings: Settings | None = None) -> JobsClient:
        """The client for these settings (one per base URL and key, shared by their jobs)."""
        settings = settings or current_settings()
        # Keyed by the Secret (hashed by value), so the raw key is not kept around as a dict key.
        cache_key = (settings.endpoint_base_url, settings.require_key())
        with self._cond:
            client = self._clients.get(cache_key)
            if client is None:
                # Connections for several endpoints' poll threads plus submit threads, kept open.
                client = self._clients[cache_key] = JobsClient(
                    settings, budget=self._budget, max_connections=4 * self.max_concurrent_polls + 32
                )
            return client

    def submit(
        self,
        endpoint_id: str,
        input: dict[str, Any],
        *,
        model: str | None = None,
        settings: Settings | None = None,
        follow_stream: bool = True,
        **run_options: Any,
    ) -> Job:
        """Queue a job (one `run` request, in the calling thread so errors surface here) and follow it.

        follow_stream: read the parts of a streaming job (input `stream: true`) as they come."""
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
            input=input,
            streams=follow_stream and bool(input.get("stream")),
        )
        job.body = body
        self.recorder.submitted(job)
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
        Job or the error that kept it from being queued (a batch is not stopped by one bad request).

        The runs go through the endpoint's request budget, so a large batch is spread out to stay
        under the endpoint's `/run` rate limit instead of being refused."""
        client = self.client(settings)

        def one(payload: dict[str, Any]) -> Job | RunpodError:
            try:
                return self.submit(
                    endpoint_id,
                    payload,
                    model=model,
                    settings=client.settings,
                    follow_stream=False,
                    **run_options,
                )
            except RunpodError as exc:
                return exc

        with ThreadPoolExecutor(
            max(1, min(max_parallel, len(inputs))), thread_name_prefix="rp-notebook-submit"
        ) as pool:
            return list(pool.map(one, inputs))

    def submit_many_in_background(
        self,
        endpoint_id: str,
        inputs: list[dict[str, Any]],
        **options: Any,
    ) -> Future[list[Job | RunpodError]]:
        """`submit_many` without blocking the caller: returns at once a Future of the same list.

        For notebooks: a cell that queues 500 jobs returns immediately and the kernel stays free
        while the runs are sent; `future.result()` (or `await asyncio.wrap_future(future)`) gives
        the jobs. Takes the same options as `submit_many`."""
        future: Future[list[Job | RunpodError]] = Future()
        settings = options.pop("settings", None) or current_settings()  # read now, in the caller's context

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(self.submit_many(endpoint_id, inputs, settings=settings, **options))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                future.set_exception(exc)

        threading.Thread(target=run, name="rp-notebook-submit-many", daemon=True).start()
        return future

    def attach(
        self,
        endpoint_id: str,
        job_id: str,
        *,
        model: str | None = None,
        settings: Settings | None = None,
        submitted_at: float | None = None,
        input: dict[str, Any] | None = None,
    ) -> Job:
        """Follow a job submitted elsewhere (another kernel, the CLI, the runpod SDK)."""
        existing = self._all.get(job_id)
        if existing is not None:
            return existing
        job = Job(
            self,
            self.client(settings),
            endpoint_id,
            job_id,
            model=model,
            status="UNKNOWN",
            submitted_at=submitted_at,
            input=input,
        )
        self.recorder.submitted(job)
        self.track(job)
        return job

    # -- the ledger: recovery after a restart ------------------------------------------------------

    @property
    def ledger(self) -> Ledger | None:
        """The job ledger, opened on first use; None when there is none (or it cannot be opened)."""
        return self.recorder.ledger

    def recover(self, settings: Settings | None = None) -> list[Job]:
        """Follow again every job the ledger has in flight on this API (after a kernel restart).

        Jobs recorded against another base URL (another API, an old local endpoint) are left in
        the ledger untouched. A job Runpod no longer knows (its TTL passed, or its result was
        kept 30 minutes and dropped) ends with NotFoundError, and the ledger records that."""
        ledger = self.ledger
        if ledger is None:
            return []
        settings = settings or current_settings()
        base_url = self.client(settings).http.base_url
        return [
            self._from_entry(entry, settings)
            for entry in ledger.in_flight()
            if entry.base_url == base_url or entry.job_id in self._all
        ]

    def earlier_in_flight(self) -> list[LedgerEntry]:
        """Ledger entries with no recorded end that this process does not hold: jobs of earlier
        sessions (or other kernels) that nobody may be following."""
        ledger = self.ledger
        if ledger is None:
            return []
        with self._cond:
            known = set(self._all)
        return [entry for entry in ledger.in_flight() if entry.job_id not in known]

    def resume(self, job_id: str, settings: Settings | None = None) -> Job:
        """One job of this or an earlier session: from its saved result if it ended, else followed again."""
        existing = self._all.get(job_id)
        if existing is not None:
            return existing
        entries = self.ledger.find(job_id) if self.ledger is not None else []
        if not entries:
            raise InputError(
                "job_id",
                f"job {job_id} is not in the job ledger; to follow a job submitted elsewhere, give its "
                "endpoint: %runpod attach JOB_ID --endpoint ENDPOINT_ID",
            )
        return self._from_entry(entries[0], settings or current_settings())

    def _from_entry(self, entry: LedgerEntry, settings: Settings) -> Job:
        existing = self._all.get(entry.job_id)
        if existing is not None:
            return existing
        on_its_api = dataclasses.replace(settings, endpoint_base_url=entry.base_url)
        if not entry.ended:
            return self.attach(
                entry.endpoint_id,
                entry.job_id,
                model=entry.model,
                settings=on_its_api,
                submitted_at=entry.submitted_at,
                input=dict(entry.parameters),
            )
        try:
            client: JobsClient | None = self.client(on_its_api)
        except ConfigurationError:
            client = None  # no key: a saved result still shows; cancel and retry say why they cannot
        job = Job(
            self,
            client,
            entry.endpoint_id,
            entry.job_id,
            model=entry.model,
            status=entry.status,
            submitted_at=entry.submitted_at,
            input=dict(entry.parameters),
        )
        job.base_url = entry.base_url
        if entry.result_path:
            try:
                job._resolve(load_result(entry.result_path), None)
            except (OSError, ValueError, KeyError) as exc:
                job._resolve(None, RunpodError(f"job {entry.job_id}: its saved result cannot be read: {exc}"))
        else:
            job._resolve(None, RunpodError(f"job {entry.job_id} ended {entry.status}: {entry.error or ''}"))
        job.ended_at = entry.ended_at
        with self._cond:
            self._all[job.id] = job
        return job

    def jobs(self) -> list[Job]:
        """Every job of this process, oldest first."""
        with self._cond:
            return sorted(self._all.values(), key=lambda j: j.submitted_at)

    def track(self, job: Job) -> None:
        """Follow a job until it ends (again, after a retry)."""
        with self._cond:
            self._all[job.id] = job
            followed = self._followed.get(job)
            if followed is None:
                endpoint = (job.base_url, job.endpoint_id)
                followed = self._followed[job] = _Followed(job, endpoint)
            followed.failures = 0
            followed.fallback_delay = followed.stream_delay = 0.0
            followed.stream_ended = False
            # A job being polled right now is put back by its poll thread when the poll returns.
            if not followed.polling and not followed.queued:
                self._make_ready(followed)
            self._ensure_ticker()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._closed_event.set()
        for client in self._clients.values():
            client.close()

    # -- scheduling (all under self._cond) --------------------------------------------------------

    def _make_ready(self, followed: _Followed) -> None:
        queue = self._queues.get(followed.endpoint)
        if queue is None:
            queue = self._queues[followed.endpoint] = _EndpointQueue()
        heapq.heappush(queue.ready, (followed.job.submitted_at, next(self._seq), followed))
        followed.queued = True
        self._start_threads_for_work()
        self._cond.notify()

    def _start_threads_for_work(self) -> None:
        """Start poll threads until there is one for every poll that could run now."""
        busy = sum(queue.polling for queue in self._queues.values())
        takeable = sum(
            min(len(queue.ready), self.max_concurrent_polls - queue.polling)
            for queue in self._queues.values()
        )
        while self._threads < busy + takeable and not self._closed:
            self._threads += 1
            threading.Thread(target=self._poll_loop, name="rp-notebook-poll", daemon=True).start()

    def _take(self) -> _Followed | None:
        """The oldest due job of an endpoint with a free slot, marked as polling; None if none."""
        now = time.monotonic()
        while self._later and self._later[0][0] <= now:
            _, _, followed = heapq.heappop(self._later)
            followed.queued = False
            if followed.job.done():
                self._followed.pop(followed.job, None)
            else:
                self._make_ready(followed)
        best: _EndpointQueue | None = None
        for queue in self._queues.values():
            while queue.ready and queue.ready[0][2].job.done():  # cancelled, or ended elsewhere
                _, _, followed = heapq.heappop(queue.ready)
                followed.queued = False
                self._followed.pop(followed.job, None)
            if not queue.ready or queue.polling >= self.max_concurrent_polls:
                continue
            if best is None or queue.ready[0] < best.ready[0]:
                best = queue
        if best is None:
            return None
        _, _, followed = heapq.heappop(best.ready)
        followed.queued = False
        followed.polling = True
        best.polling += 1
        return followed

    def _next_due_in(self) -> float | None:
        if not self._later:
            return None
        return max(0.001, self._later[0][0] - time.monotonic())

    def _poll_done(self, followed: _Followed, delay: float) -> None:
        """A poll returned: free its slot, and queue the job again unless it has ended."""
        with self._cond:
            followed.polling = False
            self._queues[followed.endpoint].polling -= 1
            if followed.job.done():
                self._followed.pop(followed.job, None)
            elif delay <= 0:
                self._make_ready(followed)
            else:
                heapq.heappush(self._later, (time.monotonic() + delay, next(self._seq), followed))
                followed.queued = True
            self._cond.notify()  # a slot of this endpoint is free

    # -- the threads ------------------------------------------------------------------------------

    def _poll_loop(self) -> None:
        while True:
            with self._cond:
                followed = None
                while followed is None:
                    if self._closed:
                        self._threads -= 1
                        return
                    followed = self._take()
                    if followed is None:
                        due_in = self._next_due_in()
                        woken = self._cond.wait(IDLE_THREAD_EXIT_S if due_in is None else due_in)
                        if not woken and due_in is None:  # idle a while: end (restarted for new work)
                            self._threads -= 1
                            return
            self._poll(followed)

    def _poll(self, followed: _Followed) -> None:
        job = followed.job
        delay = 0.0
        try:
            if job.streams and not followed.stream_ended:
                delay = self._read_stream(followed)
            else:
                delay = self._read_status(followed)
            followed.failures = 0
        except (NotFoundError, AuthenticationError) as exc:
            job._fail(exc)
        except RunpodError as exc:
            followed.failures += 1
            job.last_poll_error = exc
            delay = min(ERROR_MAX_DELAY, 0.5 * 2 ** min(followed.failures, 6))
            _quietly(job.refresh_display)
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the poller; the job carries it
            job._fail(RunpodError(f"internal error while following job {job.id}: {exc!r}"))
        finally:
            self._poll_done(followed, delay)

    def _read_status(self, followed: _Followed) -> float:
        """One status-sync long-poll (or plain status); returns the delay before the next poll."""
        job = followed.job
        client = job._connected()
        delay = 0.0
        if client.status_sync_supported:
            wait_ms = DISPLAYED_LONG_POLL_MS if job.is_displayed else self.long_poll_ms
            body = client.status_sync(job.endpoint_id, job.id, wait_ms=wait_ms)
        else:
            body = client.status(job.endpoint_id, job.id)
        if not client.status_sync_supported:
            # Polling without long-poll: quick at first (short jobs), then back off.
            followed.fallback_delay = min(
                FALLBACK_MAX_DELAY, followed.fallback_delay * 1.5 or FALLBACK_FIRST_DELAY
            )
            delay = followed.fallback_delay
        job._apply(body)
        return delay

    def _read_stream(self, followed: _Followed) -> float:
        """One /stream read: new parts to the job; returns the delay before the next read."""
        job = followed.job
        body = job._connected().stream(job.endpoint_id, job.id)
        job._apply_stream(body)
        status = body.get("status")
        if status in TERMINAL_STATES:
            followed.stream_ended = True  # every part has been read; status-sync answers at once
            return 0.0
        if status == JobStatus.IN_QUEUE:
            followed.stream_delay = min(STREAM_QUEUED_MAX_DELAY, followed.stream_delay * 1.5 or STREAM_POLL_S)
            return followed.stream_delay
        followed.stream_delay = 0.0
        return STREAM_POLL_S

    def _ensure_ticker(self) -> None:
        if self._ticker is None and not self._closed:
            self._ticker = threading.Thread(target=self._tick_loop, name="rp-notebook-display", daemon=True)
            self._ticker.start()

    def _tick_loop(self) -> None:
        """Re-render running displayed jobs once a second (elapsed time); ends when nothing is followed."""
        while True:
            # Not a wait on _cond: a notify meant for a poll thread must never be spent here.
            self._closed_event.wait(DISPLAY_TICK)
            with self._cond:
                if self._closed or not self._followed:
                    self._ticker = None
                    return
                displayed = [job for job in self._followed if job.is_displayed and not job.done()]
            for job in displayed:
                _quietly(job.refresh_display)


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
