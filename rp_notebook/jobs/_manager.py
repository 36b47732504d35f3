"""JobManager: one per process; submits jobs and follows every one of them from one event loop.

All the job API traffic of a process goes through the manager's `IOLoop` (`_io`): one background
thread, one asyncio loop, one aiohttp session per (API, key) with kept-alive connections
(`client.AsyncJobsClient`). Why that design, measured: `_io`'s docstring and bench/README.md.

How a job is followed (sized for thousands in flight):

- A job costs one `run`, then usually one `status-sync`: a server-side long-poll that answers the
  moment the job ends, so its end reaches the notebook at once. Each job is one small task on the
  loop that long-polls until its end; there is no scheduler in between.
- Per endpoint, at most `max_concurrent_polls` long-polls are in flight (default 300, under
  Runpod's 400 concurrent status requests per endpoint, with room for everything else); the rest
  wait for a slot in submission order. A job that is running holds its slot until it ends, so even
  200 jobs on a worker that runs them all at once are each noticed the moment they end.
- Long-polls last `long_poll_ms` (60 s): a job that runs for a minute costs one status-sync.
  Watched jobs (on screen: a magic's output, a panel) poll in short rounds instead, so their line
  shows IN_QUEUE -> IN_PROGRESS and the worker's progress as they happen.
- Where a server lacks status-sync, plain `status` is polled with a backoff (0.25 s growing to 3 s).
- A job that streams its result (TTS with `stream`, submitted alone) reads `/stream` every 0.25 s
  while it runs (backing off to 2 s while queued), so its parts reach the player as they are made;
  once the stream says the job ended, one status-sync fetches the whole result.
- Poll errors (network, 5xx, 429) are kept on the job and shown, and polling goes on with a
  backoff: the result stays on Runpod for 30 minutes after the job ends. A job the server no longer
  knows (404) or a refused key ends the job with a JobLostError.
- Every request goes through the request budget (client/_budget.py), so thousands of jobs never
  burst past the endpoint's rate or concurrency limits, and a 429 pauses every caller at once.
- `submit_many` returns its jobs at once, SUBMITTING, and sends the runs from the loop,
  `SUBMIT_PARALLEL` in flight at a time: a notebook cell that queues 500 jobs returns immediately.

Nothing paid for is lost (`_ledger`, `_recorder`): every job is written to the user's job ledger
when its `run` is answered, each status change is recorded, and a result is kept (a JSON output in
the ledger row, media in the results folder: `_saved`) before `job.result()` sees it. After a
kernel restart, `recover()` follows the jobs the ledger still has in flight on this API, and
`resume(job_id)` gives one job back: from its saved result if it ended, else by following it on
Runpod.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Unpack

from ..client import TERMINAL_STATES, AsyncJobsClient, JobsClient, JobStatus, RequestBudget, RunOptions
from ..config import Secret, Settings, current_settings
from ..costs import CostEstimator, JobCost, endpoint_rates_lookup
from ..errors import (
    AuthenticationError,
    InputError,
    NotFoundError,
    RetryRefusedError,
    RunpodError,
)
from ..results import decode_output
from ._io import IOLoop
from ._job import Job, seconds_of, without_decoded_output, worker_of
from ._ledger import Ledger, LedgerEntry
from ._outcomes import (
    end_error,
    ended_job,
    lost_error,
    not_sent_error,
    submitted_or_error,
    without_subject,
)
from ._recorder import USER_LEDGER, JobRecorder

log = logging.getLogger(__name__)

__all__ = ["JobManager", "get_manager"]

LONG_POLL_MS = 60_000
#: status-sync answers only at the end; a watched job polls in shorter rounds so its line shows
#: IN_QUEUE -> IN_PROGRESS and the worker's progress as they happen.
WATCHED_LONG_POLL_MS = 2_000
MAX_CONCURRENT_POLLS = 300
#: Runs in flight at once while a batch is submitted (Runpod allows 200 per endpoint). 64 rather
#: than 32: 500 instant jobs end 10-15 % sooner on localhost (bench/README.md), and at a real
#: round trip of 100 ms a batch reaches the queue twice as fast.
SUBMIT_PARALLEL = 64
STREAM_POLL_S = 0.25
STREAM_QUEUED_MAX_DELAY = 2.0
FALLBACK_FIRST_DELAY = 0.25
FALLBACK_MAX_DELAY = 3.0
ERROR_MAX_DELAY = 10.0

_ClientKey = tuple[str, Secret]  # (job API base URL, key)
#: Models whose results may be URLs the decoder downloads (layers through S3), so decoded in a thread.
_DECODES_WITH_DOWNLOADS = frozenset({"layers"})


@dataclass(eq=False)
class _Followed:
    """What the manager keeps about a job besides the Job itself."""

    settings: Settings  # the API and key it was submitted with
    task: asyncio.Task[None] | None = None  # its poll loop, on the event loop
    #: Only while its run request is on its way (on the loop): a cancel then waits for the answer.
    sending: asyncio.Event | None = None
    #: Its end was handed to the ledger's writer (which resolves the job): from then on the job
    #: is neither followed nor ended again, whichever of poll, refresh or cancel saw it first.
    #: A flag, not a Future: this is kept for every job of the session.
    ended: bool = False


class JobManager:
    """Submits jobs and follows every job of this process until it ends (see the module docstring).

    max_concurrent_polls: long-polls in flight per endpoint. long_poll_ms: how long one status-sync
    may wait (1,000-90,000). budget: the request budget; None shares the process-wide one
    (Runpod's limits). ledger: where jobs and results are recorded: the user's ledger (default),
    another `Ledger`, or None to keep nothing on disk.
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
        #: Writes every job and result to the ledger, on its own thread.
        self.recorder = JobRecorder(ledger)
        #: Prices jobs as they end (rp_notebook.costs); endpoints' pools are read in the background.
        self.costs = CostEstimator()
        self._io = IOLoop()
        self._lock = threading.Lock()
        self._all: dict[str, Job] = {}  # by job id (jobs still SUBMITTING are in _submitting)
        self._submitting: set[Job] = set()
        self._followed: dict[Job, _Followed] = {}
        self._clients: dict[_ClientKey, JobsClient] = {}
        self._aclients: dict[_ClientKey, AsyncJobsClient] = {}  # used on the loop only
        self._slots: dict[tuple[str, str], asyncio.Semaphore] = {}  # on the loop only
        self._closed = False

    # -- clients ----------------------------------------------------------------------------------

    def client(self, settings: Settings | None = None) -> JobsClient:
        """A blocking client for these settings (one per base URL and key), for code outside the loop."""
        settings = settings or current_settings()
        key = (settings.endpoint_base_url, settings.require_key())
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = JobsClient(settings, budget=self._budget)
            return client

    def _aclient(self, settings: Settings) -> AsyncJobsClient:
        """The loop's client for these settings (created on the loop: its session belongs to it)."""
        key = (settings.endpoint_base_url, settings.require_key())
        client = self._aclients.get(key)
        if client is None:
            client = self._aclients[key] = AsyncJobsClient(settings, budget=self._budget)
        return client

    # -- submit -----------------------------------------------------------------------------------

    def submit(
        self,
        endpoint_id: str,
        input: dict[str, Any],
        *,
        model: str | None = None,
        settings: Settings | None = None,
        follow_stream: bool = True,
        **options: Unpack[RunOptions],
    ) -> Job:
        """Queue a job and follow it; waits for the run's answer, so its errors are raised here.

        follow_stream: read the parts of a streaming job (input `stream: true`) as they come."""
        settings = settings or current_settings()
        settings.require_key()  # a missing key is this caller's error, not the loop's
        job = self._new_job(
            endpoint_id, input, model, settings, streams=follow_stream and bool(input.get("stream"))
        )
        self._io.run_and_wait(self._submit(job, settings, options, raise_errors=True), "submit()")
        return job

    def submit_many(
        self,
        endpoint_id: str,
        inputs: Sequence[dict[str, Any]],
        *,
        model: str | None = None,
        settings: Settings | None = None,
        max_parallel: int | None = None,
        **options: Unpack[RunOptions],
    ) -> list[Job]:
        """One job per input, returned at once (SUBMITTING) in input order; the runs go out from the
        loop, `max_parallel` at a time (default SUBMIT_PARALLEL), through the endpoint's request budget.

        A run that fails does not stop the others: its job ends SUBMIT_FAILED with the error (a
        RunAnswerLostError says a job may have been queued anyway)."""
        settings = settings or current_settings()
        settings.require_key()
        jobs = [self._new_job(endpoint_id, payload, model, settings, streams=False) for payload in inputs]
        parallel = SUBMIT_PARALLEL if max_parallel is None else max(1, max_parallel)
        self._io.run(self._submit_all(jobs, settings, options, parallel))
        return jobs

    def submit_many_in_background(
        self, endpoint_id: str, inputs: Sequence[dict[str, Any]], **options: Any
    ) -> Future[list[Job | RunpodError]]:
        """`submit_many`, and a Future of each job or the error that kept it from being queued, done
        once every run is answered (what scripts that need the job ids wait for)."""
        jobs = self.submit_many(endpoint_id, inputs, **options)
        future: Future[list[Job | RunpodError]] = Future()
        remaining = [len(jobs)]
        lock = threading.Lock()

        def answered(_: Any = None) -> None:
            with lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                future.set_result([submitted_or_error(job) for job in jobs])

        if not jobs:
            future.set_result([])
        for job in jobs:
            self._when_answered(job, answered)
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
        with self._lock:
            existing = self._all.get(job_id)
        if existing is not None:
            return existing
        settings = settings or current_settings()
        job = Job(
            endpoint_id,
            job_id,
            model=model,
            input=input,
            status=JobStatus.UNKNOWN,
            base_url=settings.endpoint_base_url.rstrip("/"),
            submitted_at=submitted_at,
            control=self,
        )
        self._followed[job] = _Followed(settings)
        self._remember(job)
        self.recorder.submitted(job)
        self._io.call_soon(self._start_following, job)
        return job

    # -- JobControl: what a Job asks of its manager -------------------------------------------------

    def cancel(self, job: Job) -> JobStatus:
        if job.done():
            return job.status
        answer = self.cancel_many([job])[0]
        if isinstance(answer, RunpodError):
            raise answer
        return answer

    def retry(self, job: Job) -> None:
        if job.status not in (JobStatus.FAILED, JobStatus.TIMED_OUT):
            raise RetryRefusedError(
                f"job {job.id} is {job.status}; only FAILED or TIMED_OUT jobs can be retried",
                job_id=job.id,
                status=str(job.status),
                endpoint_id=job.endpoint_id,
            )
        self._io.run_and_wait(self._retry(job), "retry()")

    def resubmit(self, job: Job) -> Job:
        """The same input sent again as a new job, to the same endpoint and API."""
        return self.submit(
            job.endpoint_id,
            job.input,
            model=job.model,
            settings=self._settings_of(job),
            follow_stream=job.streams,
        )

    def cancel_many(self, jobs: Sequence[Job]) -> list[JobStatus | RunpodError]:
        """Cancel several jobs at once (from the loop, through the endpoint's /cancel budget); per job,
        the status it ended with or the error of its cancel request. Jobs not yet sent are never sent."""
        return self._io.run_and_wait(self._cancel_many(list(jobs)), "cancel_many()")

    def refresh(self, job: Job) -> JobStatus:
        self._io.run_and_wait(self._refresh(job), "refresh()")
        return job.status

    def watch(self, job: Job) -> None:
        """Poll a job that just became watched in short rounds now: its long-poll is cut short."""
        self._io.call_soon(self._restart_following, job)

    # -- the ledger: recovery after a restart ------------------------------------------------------

    @property
    def ledger(self) -> Ledger | None:
        """The job ledger, opened on first use; None when there is none (or it cannot be opened)."""
        return self.recorder.ledger

    def recover(self, settings: Settings | None = None) -> list[Job]:
        """Follow again every job the ledger has in flight on this API (after a kernel restart).

        Jobs recorded against another base URL (another API, an old local endpoint) are left in
        the ledger untouched. A job Runpod no longer knows (its TTL passed, or its result was
        kept 30 minutes and dropped) ends with JobLostError, and the ledger records that."""
        ledger = self.ledger
        if ledger is None:
            return []
        settings = settings or current_settings()
        base_url = settings.endpoint_base_url.rstrip("/")
        with self._lock:
            known = set(self._all)
        return [
            self._from_entry(entry, settings)
            for entry in ledger.in_flight()
            if entry.base_url == base_url or entry.job_id in known
        ]

    def earlier_in_flight(self) -> list[LedgerEntry]:
        """Ledger entries with no recorded end that this process does not hold: jobs of earlier
        sessions (or other kernels) that nobody may be following."""
        ledger = self.ledger
        if ledger is None:
            return []
        with self._lock:
            known = set(self._all)
        return [entry for entry in ledger.in_flight() if entry.job_id not in known]

    def resume(self, job_id: str, settings: Settings | None = None) -> Job:
        """One job of this or an earlier session: from its saved result if it ended, else followed again."""
        with self._lock:
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
        with self._lock:
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
        job = ended_job(entry, control=self)
        self._followed[job] = _Followed(on_its_api)
        self._remember(job)
        return job

    def jobs(self) -> list[Job]:
        """Every job of this process, oldest first."""
        with self._lock:
            jobs = [*self._all.values(), *self._submitting]
        return sorted(jobs, key=lambda j: j.submitted_at)

    def close(self) -> None:
        """Stop following (jobs keep running on Runpod) and close the connections."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._io.run(self._aclose()).result(10)
        self._io.stop()
        self.costs.close()
        for client in self._clients.values():
            client.close()

    # -- on the loop ----------------------------------------------------------------------------------

    def _new_job(
        self, endpoint_id: str, input: dict[str, Any], model: str | None, settings: Settings, *, streams: bool
    ) -> Job:
        job = Job(
            endpoint_id,
            model=model,
            input=input,
            base_url=settings.endpoint_base_url.rstrip("/"),
            streams=streams,
            control=self,
        )
        self._followed[job] = _Followed(settings)
        with self._lock:
            self._submitting.add(job)
        return job

    async def _submit_all(
        self, jobs: list[Job], settings: Settings, options: RunOptions, max_parallel: int
    ) -> None:
        # `max_parallel` senders take the jobs in order from one iterator, rather than a task per job
        # waiting on a semaphore: a batch of 500 would start 500 tasks in one turn of the loop, a
        # burst that holds the interpreter while the user's next cell waits.
        pending = iter(jobs)

        async def sender() -> None:
            for job in pending:
                await self._submit(job, settings, options, raise_errors=False)

        await asyncio.gather(*(sender() for _ in range(min(max_parallel, len(jobs)))))

    async def _submit(self, job: Job, settings: Settings, options: RunOptions, *, raise_errors: bool) -> None:
        followed = self._followed[job]
        if job.done():  # cancelled before this run went out: nothing is sent
            return
        client = self._aclient(settings)
        sending = followed.sending = asyncio.Event()
        try:
            body = await client.run(job.endpoint_id, job.input, **options)
        except Exception as exc:  # noqa: BLE001 - a bug must not leave the job SUBMITTING for ever
            self._forget_submitting(job)
            error = exc if isinstance(exc, RunpodError) else lost_error(job, f"its run failed: {exc!r}", exc)
            job.finish(error=error, status=JobStatus.SUBMIT_FAILED)
            if raise_errors:
                raise error from None
            return
        finally:
            followed.sending = None  # answered (the job has its id) or failed (the job is done)
            sending.set()
        self._remember(job, str(body["id"]))
        job.submitted(str(body["id"]), body)
        self.recorder.submitted(job)
        self.costs.prepare(job.base_url, job.endpoint_id, endpoint_rates_lookup(settings))
        self._start_following(job)

    def _start_following(self, job: Job) -> None:
        followed = self._followed.get(job)
        if followed is None or job.done() or followed.ended or self._closed:
            return
        if followed.task is None or followed.task.done():
            followed.task = asyncio.get_running_loop().create_task(self._follow(job, followed))

    def _restart_following(self, job: Job) -> None:
        followed = self._followed.get(job)
        if followed is not None and followed.task is not None and not job.streams:
            followed.task.cancel()  # a long-poll is safe to drop: asking again changes nothing
            followed.task = None
        self._start_following(job)

    async def _follow(self, job: Job, followed: _Followed) -> None:
        """Poll one job until it ends (the loop of the module docstring)."""
        client = self._aclient(followed.settings)
        slots = self._slots_of(client.http.base_url, job.endpoint_id)
        failures = 0
        fallback_delay = stream_delay = 0.0
        stream_ended = False
        try:
            while not job.done():
                delay = 0.0
                try:
                    async with slots:
                        if job.streams and not stream_ended:
                            body = await client.stream(job.endpoint_id, job.id)
                            status = body.get("status")
                            job.add_parts(_new_parts(body), status)
                            if status in TERMINAL_STATES:
                                stream_ended = True  # every part is read; status-sync answers at once
                            elif status == JobStatus.IN_QUEUE:
                                stream_delay = min(
                                    STREAM_QUEUED_MAX_DELAY, stream_delay * 1.5 or STREAM_POLL_S
                                )
                                delay = stream_delay
                            else:
                                delay = STREAM_POLL_S
                        else:
                            wait_ms = WATCHED_LONG_POLL_MS if job.watched else self.long_poll_ms
                            body = await client.status_sync(job.endpoint_id, job.id, wait_ms=wait_ms)
                            if body.get("status") in TERMINAL_STATES:
                                await self._end(job, body, wait=False)
                                return
                            job.apply(body)
                            if not client.status_sync_supported:  # plain polling: back off
                                fallback_delay = min(
                                    FALLBACK_MAX_DELAY, fallback_delay * 1.5 or FALLBACK_FIRST_DELAY
                                )
                                delay = fallback_delay
                    failures = 0
                except (NotFoundError, AuthenticationError) as exc:
                    self._give_up(job, f"can no longer be followed: {without_subject(exc, job)}", exc)
                    return
                except RunpodError as exc:
                    failures += 1
                    job.poll_failed(exc)
                    delay = min(ERROR_MAX_DELAY, 0.5 * 2 ** min(failures, 6))
                if delay:
                    await asyncio.sleep(delay)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug must not leave the job hanging: it ends, carrying it
            self._give_up(job, f"internal error while following it: {exc!r}", exc)
        finally:
            if followed.task is asyncio.current_task():
                followed.task = None

    def _give_up(self, job: Job, why: str, cause: BaseException) -> None:
        """The job cannot be followed any more (Runpod forgot it, the key was refused, a bug)."""
        followed = self._followed[job]
        if job.done() or followed.ended:
            return
        error = lost_error(job, why, cause)
        followed.ended = True
        self.recorder.ended(
            job,
            status=JobStatus.UNKNOWN,
            error=str(error),
            then=lambda: job.finish(error=error, status=JobStatus.UNKNOWN),
        )

    async def _end(self, job: Job, body: dict[str, Any], *, wait: bool = True) -> None:
        """A final body: decode it (in a thread: it may download files), save it, then resolve.

        wait: return once the job is resolved, as refresh and cancel do (they report its final
        status); the poll loop does not wait, which spares the loop a wake-up per job."""
        status = str(body.get("status"))
        result: Any = None
        error: RunpodError | None = None
        if status == JobStatus.COMPLETED:
            try:
                if job.model in _DECODES_WITH_DOWNLOADS:  # may fetch result files: not on the loop
                    result = await asyncio.to_thread(decode_output, job.model, body.get("output"), job.id)
                else:  # a base64 decode at most: quicker here than a thread's hand-over
                    result = decode_output(job.model, body.get("output"), job.id)
            except RunpodError as exc:
                error = exc
        else:
            error = end_error(job, body)
        # Let the raw output go now, not once the writer has kept the end: under load the ends
        # queue there, and 5,000 base64 answers beside their results doubled the memory.
        body = without_decoded_output(body, result)
        followed = self._followed[job]
        if job.done():
            return
        if not followed.ended:  # the first end seen is the one kept

            def resolve() -> None:
                job.finish(body, result=result, error=error)

            # Priced and kept before anyone can see it: a kernel that dies now has both. The writer
            # resolves the job the moment its end is written, not a round of this loop later
            # (under load a round is tens of milliseconds).
            job.cost = self._price(job, body)
            followed.ended = True
            self.recorder.ended(
                job,
                status=status,
                result=result,
                error=None if error is None else str(error),
                body=body,
                then=resolve,
            )
        if wait:  # until the writer has resolved it, whoever handed its end over
            with contextlib.suppress(Exception):  # its error is the caller's to read, not ours
                await job

    def _price(self, job: Job, body: dict[str, Any]) -> JobCost | None:
        """The job's cost estimate; None (and a log line) if pricing fails: a cost never costs a job.
        Never waits: a job that ends while its endpoint's pools are read is priced again after."""

        def priced_later(cost: JobCost) -> None:  # on the costs thread
            job.priced(cost)
            self.recorder.cost_known(job, cost)

        try:
            return self.costs.job_ended(
                base_url=job.base_url,
                endpoint_id=job.endpoint_id,
                worker_id=worker_of(body),
                delay_s=seconds_of(body, "delayTime") or 0.0,
                execution_s=seconds_of(body, "executionTime") or 0.0,
                on_priced=priced_later,
            )
        except Exception:  # an estimate: the job's result matters more
            log.exception("job %s: its cost could not be estimated", job.id)
            return None

    async def _cancel(self, job: Job) -> None:
        body = await self._aclient(self._settings_of(job)).cancel(job.endpoint_id, job.id)
        merged = {**job.body, **body}
        if merged.get("status") in TERMINAL_STATES:
            followed = self._followed.get(job)
            if followed is not None and followed.task is not None:
                followed.task.cancel()  # its long-poll would only tell us what we know now
            await self._end(job, merged)
        else:
            job.apply(merged)

    async def _cancel_many(self, jobs: list[Job]) -> list[JobStatus | RunpodError]:
        async def one(job: Job) -> JobStatus | RunpodError:
            followed = self._followed[job]
            if not job.done() and not job.id:
                if followed.sending is None:  # its run has not gone out: it never will
                    self._forget_submitting(job)
                    job.finish(error=not_sent_error(job), status=JobStatus.CANCELLED)
                    return job.status
                await followed.sending.wait()  # on its way: cancel it once Runpod names it
            if not job.done() and job.id:
                try:
                    await self._cancel(job)
                except RunpodError as exc:
                    return exc
            return job.status

        return list(await asyncio.gather(*(one(job) for job in jobs)))

    async def _retry(self, job: Job) -> None:
        body = await self._aclient(self._settings_of(job)).retry(job.endpoint_id, job.id)
        job.restart(body)
        self._followed[job].ended = False  # a new run: its end is a new one to keep
        self.recorder.submitted(job, retried=True)
        self._start_following(job)

    async def _refresh(self, job: Job) -> None:
        body = await self._aclient(self._settings_of(job)).status(job.endpoint_id, job.id)
        if body.get("status") in TERMINAL_STATES:
            await self._end(job, body)
        else:
            job.apply(body)

    async def _aclose(self) -> None:
        for followed in list(self._followed.values()):
            if followed.task is not None:
                followed.task.cancel()
        for client in self._aclients.values():
            await client.aclose()

    def _slots_of(self, base_url: str, endpoint_id: str) -> asyncio.Semaphore:
        key = (base_url, endpoint_id)
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = asyncio.Semaphore(self.max_concurrent_polls)
        return slots

    # -- bookkeeping --------------------------------------------------------------------------------

    def _remember(self, job: Job, job_id: str | None = None) -> None:
        with self._lock:
            self._submitting.discard(job)
            self._all[job_id or job.id] = job

    def _forget_submitting(self, job: Job) -> None:
        with self._lock:
            self._submitting.discard(job)

    def _when_answered(self, job: Job, fn: Any) -> None:
        """Call fn() once the job's run is answered (it has an id) or failed."""

        def on_update(update: Any) -> None:
            if job.id or update.ended:
                unsubscribe()
                fn()

        unsubscribe = job.subscribe(on_update)
        if job.id or job.done():
            unsubscribe()
            fn()

    def _settings_of(self, job: Job) -> Settings:
        followed = self._followed.get(job)
        if followed is not None:
            return followed.settings
        return dataclasses.replace(current_settings(), endpoint_base_url=job.base_url)


def _new_parts(body: dict[str, Any]) -> list[Any]:
    """The parts of a /stream answer, without the worker's final whole result (it comes with the end)."""
    new = [item.get("output") for item in body.get("stream") or [] if isinstance(item, dict)]
    return [part for part in new if isinstance(part, dict) and not part.get("final")]


_manager: JobManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> JobManager:
    """The process-wide job manager, created on first use (and closed when the process exits)."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = JobManager()
            atexit.register(_manager.close)
        return _manager
