"""The job core under load, against the real local endpoint: jobs noticed as they end whatever
their order, batches that behave like the lists they stand for and cancel cleanly mid-submission,
a Job whose every state is a JobStatus member, and ends resolved by the ledger's writer."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import itertools
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import eventually

import rp_notebook.client._http
from rp_notebook.client import JobStatus
from rp_notebook.config import configure
from rp_notebook.errors import JobCancelledError
from rp_notebook.jobs import Batch, Job, JobManager
from rp_notebook.jobs._ledger import Ledger
from rp_notebook.local import EndpointConfig, LocalEndpoint

FIXTURE_WORKERS = Path(__file__).resolve().parent / "fixtures" / "workers"

pytestmark = pytest.mark.timeout(300)

N_REVERSE = 120


@pytest.fixture(scope="module")
def server() -> Iterator[LocalEndpoint]:
    endpoints = [
        EndpointConfig(id="concurrent", worker_dir=FIXTURE_WORKERS / "concurrent"),
        EndpointConfig(id="gated", worker_dir=FIXTURE_WORKERS / "echo", workers_max=1),
    ]
    with LocalEndpoint(port=0, default_endpoints=False, endpoints=endpoints) as srv:
        yield srv


@pytest.fixture
def manager(server: LocalEndpoint) -> Iterator[JobManager]:
    configure(api_key=server.api_key, endpoint_base_url=server.job_api_url)
    manager = JobManager(ledger=None)
    yield manager
    manager.close()


def test_jobs_running_together_are_noticed_in_the_order_they_end_not_the_order_they_were_sent(
    server: LocalEndpoint, manager: JobManager
) -> None:
    inputs = [{"i": i, "n": N_REVERSE, "step_ms": 40} for i in range(N_REVERSE)]
    jobs = manager.submit_many("concurrent", inputs)
    batch = Batch(None, "concurrent", jobs, manager=manager)
    assert [r["i"] for r in batch.results(timeout=240)] == list(range(N_REVERSE))
    # The worker ends them last-submitted first. A client that long-polls only its oldest jobs sees
    # them in submission order instead: each young job waits for an old one's poll to come back.
    by_server = sorted(jobs, key=lambda job: server.job("concurrent", job.id).finished_at)
    by_client = sorted(jobs, key=lambda job: job.ended_at)
    assert by_server[0] is jobs[-1]  # the worker did end them in reverse
    same_order = sum(by_client.index(a) < by_client.index(b) for a, b in itertools.pairwise(by_server))
    assert same_order >= 0.9 * (N_REVERSE - 1)
    asked = server.rate_limit_stats("concurrent").accepted
    assert asked.get("run") == N_REVERSE and asked.get("status-sync") == N_REVERSE  # 2 requests a job


def test_a_batch_is_its_jobs_in_input_order_from_the_moment_it_is_made(manager: JobManager) -> None:
    inputs = [{"i": i, "n": 3, "step_ms": 1} for i in range(3)]
    jobs = manager.submit_many("concurrent", inputs)
    batch = Batch(None, "concurrent", jobs, manager=manager)
    assert len(batch) == 3 and list(batch) == jobs and batch[1] is jobs[1] and batch[-1] is jobs[2]
    assert batch[0:2] == jobs[0:2]
    assert all(isinstance(job, Job) for job in batch)
    assert [job.result(timeout=60) for job in batch] == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_cancelling_a_batch_while_its_runs_are_still_going_out_leaves_nothing_queued_or_running(
    server: LocalEndpoint, manager: JobManager, tmp_path
) -> None:
    gate = tmp_path / "gate"  # the one worker holds the first job until the test ends
    jobs = manager.submit_many("gated", [{"wait_for_file": str(gate)} for _ in range(300)], max_parallel=4)
    batch = Batch(None, "gated", jobs, manager=manager)
    assert any(job.status is JobStatus.SUBMITTING for job in batch)  # cancelled mid-submission
    cancelled = batch.cancel()
    try:
        eventually(batch.done, timeout=120)
        assert cancelled == sum(job.status is JobStatus.CANCELLED for job in batch) == 300
        for job in batch:
            with pytest.raises(JobCancelledError):
                job.result(timeout=0)
        # The runs not yet sent were never sent; every queued one was cancelled on the server.
        sent = [job for job in batch if job.id]
        assert len(sent) < 300
        health = manager.client().health("gated")
        assert health["jobs"]["inQueue"] == 0 and health["jobs"]["inProgress"] == 0
        assert {server.job("gated", job.id).status.value for job in sent} == {"CANCELLED"}
    finally:
        gate.touch()


def test_every_state_of_a_job_is_a_job_status(manager: JobManager) -> None:
    job = manager.submit("concurrent", {"i": 0, "n": 1, "step_ms": 1})
    seen: list[object] = []
    job.subscribe(lambda update: seen.append(update.job.status))
    job.result(timeout=60)
    assert isinstance(job.status, JobStatus) and job.status is JobStatus.COMPLETED
    assert all(isinstance(status, JobStatus) for status in seen)
    assert {JobStatus.SUBMITTING, JobStatus.SUBMIT_FAILED, JobStatus.UNKNOWN} <= set(JobStatus)


def test_a_job_ends_on_the_ledgers_writer_and_a_callback_there_that_would_wait_is_refused(
    server: LocalEndpoint, tmp_path: Path
) -> None:
    configure(api_key=server.api_key, endpoint_base_url=server.job_api_url)
    ledger = Ledger(tmp_path)
    manager = JobManager(ledger=ledger)
    try:
        running = manager.submit("concurrent", {"i": 0, "n": 1, "step_ms": 60_000})
        ending = manager.submit("concurrent", {"i": 0, "n": 1, "step_ms": 1_000})
        seen: list[tuple[str, BaseException | None]] = []

        def on_done(job: Job) -> None:
            try:
                running.cancel()  # waits for the manager, which may be waiting for this thread
            except RuntimeError as exc:
                seen.append((threading.current_thread().name, exc))
            else:
                seen.append((threading.current_thread().name, None))

        ending.add_done_callback(on_done)
        assert ending.result(timeout=60) == {"i": 0}
        assert ledger.find(ending.id)[0].ended  # resolved once its end was written
        eventually(lambda: seen)
        (thread, error), *_ = seen
        assert thread == "rp-notebook-ledger"
        assert error is not None and "called on it" in str(error)
        assert running.cancel() == JobStatus.CANCELLED  # from here the manager still answers
        manager.costs.wait_prepared(10)  # its late pricing is written too, before the ledger closes
        manager.recorder.flush(10)
    finally:
        manager.close()
        ledger.close()


def test_a_refresh_that_sees_a_job_end_while_its_end_is_being_kept_waits_for_it_and_keeps_it_once(
    server: LocalEndpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(api_key=server.api_key, endpoint_base_url=server.job_api_url)
    ledger = Ledger(tmp_path)
    ends_kept: list[str] = []
    keeping, go_on = threading.Event(), threading.Event()
    record_status = ledger.record_status

    def held_record_status(**fields: object) -> None:
        if fields.get("ended"):
            ends_kept.append(str(fields["job_id"]))
            keeping.set()
            assert go_on.wait(30)
        record_status(**fields)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger, "record_status", held_record_status)
    manager = JobManager(ledger=ledger)
    try:
        job = manager.submit("concurrent", {"i": 0, "n": 1, "step_ms": 0})
        assert keeping.wait(30)  # its poll loop saw the end; the writer is keeping it
        statuses_before = server.rate_limit_stats("concurrent").accepted.get("status", 0)
        refreshed: list[JobStatus] = []
        refresher = threading.Thread(target=lambda: refreshed.append(manager.refresh(job)))
        refresher.start()
        eventually(lambda: server.rate_limit_stats("concurrent").accepted.get("status", 0) > statuses_before)
        refresher.join(0.5)
        assert refresher.is_alive()  # it waits for the end being kept, rather than keeping its own
        go_on.set()
        refresher.join(30)
        assert refreshed == [JobStatus.COMPLETED] and job.result(timeout=10) == {"i": 0}
        manager.costs.wait_prepared(10)  # its late pricing is written too, before the ledger closes
        manager.recorder.flush(10)
        assert ends_kept == [job.id]
        assert ledger.find(job.id)[0].ended
    finally:
        go_on.set()
        manager.close()
        ledger.close()


def test_a_finished_job_leaves_no_future_or_event_of_its_end_behind_in_the_manager(
    server: LocalEndpoint, tmp_path: Path
) -> None:
    """What the manager keeps for every job of a session is a few fields: the Future and Event that
    carried a job's send and end are let go once they have done so (the Job's own Future stays)."""
    configure(api_key=server.api_key, endpoint_base_url=server.job_api_url)
    ledger = Ledger(tmp_path)
    manager = JobManager(ledger=ledger)

    def futures() -> int:  # the local server is asyncio: these are the client's
        gc.collect()
        return sum(isinstance(o, concurrent.futures.Future) for o in gc.get_objects())

    try:
        manager.submit("gated", {"audio_kb": 1}, model="tts").result(timeout=60)  # imports, session
        manager.recorder.flush(10)
        before = futures()
        jobs = manager.submit_many("gated", [{"audio_kb": 1}] * 20, model="tts")
        assert all(job.exception(timeout=60) is None for job in jobs)
        manager.recorder.flush(10)
        # At most each job's own (for result()); the batch's Futures are let go too.
        assert futures() - before <= len(jobs), (before, futures())
        kept = [value for followed in manager._followed.values() for value in vars(followed).values()]
        assert not [
            v for v in kept if isinstance(v, (asyncio.Event, concurrent.futures.Future, asyncio.Task))
        ]
    finally:
        manager.close()
        ledger.close()


def test_a_finished_jobs_raw_output_is_let_go_once_decoded_so_its_result_is_held_once(
    server: LocalEndpoint, tmp_path: Path
) -> None:
    configure(api_key=server.api_key, endpoint_base_url=server.job_api_url)
    ledger = Ledger(tmp_path)
    manager = JobManager(ledger=ledger)
    try:
        manager.submit("gated", {"audio_kb": 1}, model="tts").result(timeout=60)  # imports, session
        tracemalloc.start(8)  # deep enough to tell the client's answers from the local server's
        try:
            jobs = [manager.submit("gated", {"audio_kb": 512}, model="tts") for _ in range(4)]
            results = [job.result(timeout=60) for job in jobs]
            manager.recorder.flush(10)  # every end written: nothing of it is still on its way
            gc.collect()
            read_by_client = tracemalloc.Filter(True, rp_notebook.client._http.__file__, all_frames=True)
            answers = tracemalloc.take_snapshot().filter_traces([read_by_client])
            still_held = sum(stat.size for stat in answers.statistics("filename"))
        finally:
            tracemalloc.stop()
        base64_received = sum(len(result.data) for result in results) * 4 // 3
        # The status answers' JSON (the base64 audio) is what the decoded results were built from;
        # held beside them, every audio result would cost its size twice and a third more.
        assert still_held < 0.05 * base64_received, (still_held, base64_received)
        assert all(job.output is None for job in jobs)
    finally:
        manager.close()
        ledger.close()
