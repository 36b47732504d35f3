"""rp_notebook's client and job manager against a local endpoint that drops, fails and refuses requests.

Faults are injected by the real local endpoint (`LocalEndpoint.faults`, seeded) over real HTTP, and
the jobs run on unmodified runpod SDK workers (the echo fixture). What must hold under faults:

- idempotent calls (status, status-sync, stream, cancel, health) are retried until they get through;
- a `run` that may have reached the server is never re-sent, and ends in an error that says a job
  may have been queued and billed, and where to find it;
- across 200 jobs with faults on every route and a worker killed mid-job: every job ends COMPLETED
  or with an error that names what happened, no input is queued twice, and every job the server
  created is one the client knows or one whose lost run answer the client reported.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import eventually

from rp_notebook.client import JobsClient, RequestBudget, RetryPolicy
from rp_notebook.config import Settings, configure
from rp_notebook.errors import JobFailedError, RateLimitedError, RunAnswerLostError, RunpodError, ServerError
from rp_notebook.jobs import Job, JobManager
from rp_notebook.local import EndpointConfig, LocalEndpoint

ECHO = Path(__file__).resolve().parent / "fixtures" / "workers" / "echo"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}
ALL_ROUTES_BUT_RUN = ["status", "status-sync", "stream", "cancel", "health"]

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalEndpoint]:
    endpoints = [
        EndpointConfig(id="echo", worker_dir=ECHO, workers_max=1),
        # The runpod SDK worker takes at most about one job a second (it sleeps 1 s after each
        # take), so 200 jobs need a few workers to end within half a minute.
        EndpointConfig(id="storm", worker_dir=ECHO, workers_max=8),
    ]
    srv = LocalEndpoint(port=0, default_endpoints=False, endpoints=endpoints)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def settings(server: LocalEndpoint) -> Iterator[Settings]:
    server.faults.clear()
    server.faults.reset_counts()
    yield configure(api_key=server.api_key, endpoint_base_url=server.job_api_url)
    server.faults.clear()


@pytest.fixture
def client(settings: Settings) -> Iterator[JobsClient]:
    # A budget of its own: a 429 here must not pause another test's requests. More attempts and a
    # short backoff: these tests are about what is retried, not how long the client waits.
    retry = RetryPolicy(attempts=10, backoff=0.05)
    with JobsClient(settings, budget=RequestBudget(), retry=retry) as jobs:
        yield jobs


def _created(server: LocalEndpoint, endpoint: str, job_input: dict) -> list[str]:
    return [job.id for job in server.jobs(endpoint) if job.input == job_input]


def _wait_final(client: JobsClient, endpoint: str, job_id: str) -> dict:
    for _ in range(10):
        body = client.status_sync(endpoint, job_id, wait_ms=30_000)
        if body["status"] in TERMINAL:
            return body
    raise AssertionError(f"job {job_id} did not end: {body}")


def test_idempotent_calls_are_retried_through_drops_500s_and_429s(
    server: LocalEndpoint, client: JobsClient
) -> None:
    job_id = client.run("echo", {"idempotent": True})["id"]
    assert _wait_final(client, "echo", job_id)["status"] == "COMPLETED"
    server.faults.set(drop=0.2, error_500=0.15, rate_429=0.05, routes=ALL_ROUTES_BUT_RUN, seed=11)
    for _ in range(10):
        assert client.status("echo", job_id)["status"] == "COMPLETED"
        assert client.status_sync("echo", job_id, wait_ms=1000)["status"] == "COMPLETED"
        assert client.stream("echo", job_id)["status"] == "COMPLETED"
        assert client.cancel("echo", job_id) == {"id": job_id, "status": "COMPLETED"}
        assert {"jobs", "workers"} <= client.health("echo").keys()
    injected, retries = server.faults.counts, client.http.retry_counts()
    # Each injected fault cost exactly one retry, and none was given up on.
    assert retries["no_answer"] == injected["drop_before"] + injected.get("drop_after", 0) > 0
    assert retries["server_error"] == injected["error_500"] > 0
    assert retries["rate_limited"] == injected["rate_429"] > 0


def test_a_lost_run_answer_is_not_resent_and_says_a_job_may_be_queued_and_billed(
    server: LocalEndpoint, client: JobsClient
) -> None:
    server.faults.set(drop=1.0, drop_after=1.0, routes=["run"])
    job_input = {"lost": uuid.uuid4().hex}
    sent = client.http.requests_sent
    with pytest.raises(RunAnswerLostError) as caught:
        client.run("echo", job_input)
    assert client.http.requests_sent == sent + 1  # not re-sent
    message = str(caught.value)
    for phrase in (
        "POST",
        "got no answer",
        "A job may have been queued, and it is billed if it runs",
        "It was not sent again",
        "no idempotency key",
        "no API lists an endpoint's jobs",
        "Runpod console",
        f"GET {server.job_api_url}/echo/health",
    ):
        assert phrase in message
    assert server.api_key not in message
    assert caught.value.maybe_delivered and caught.value.endpoint_id == "echo"
    created = _created(server, "echo", job_input)
    assert len(created) == 1 and server.faults.lost_run_answers == created
    server.faults.clear()
    assert _wait_final(client, "echo", created[0])["status"] == "COMPLETED"  # it was real, and ran


def test_a_run_dropped_before_the_server_acted_ends_in_the_same_error_and_queues_nothing(
    server: LocalEndpoint, client: JobsClient
) -> None:
    server.faults.set(drop=1.0, drop_after=0.0, routes=["run"])
    job_input = {"dropped": uuid.uuid4().hex}
    with pytest.raises(RunAnswerLostError, match="A job may have been queued"):
        client.run("echo", job_input)  # the client cannot tell the two drops apart: hence "may"
    assert _created(server, "echo", job_input) == []
    assert server.faults.counts["drop_before"] == 1 and server.faults.lost_run_answers == []


def test_a_500_answer_to_run_is_not_resent_and_says_a_job_may_be_queued(
    server: LocalEndpoint, client: JobsClient
) -> None:
    server.faults.set(error_500=1.0, routes=["run"])
    sent = client.http.requests_sent
    with pytest.raises(ServerError) as caught:
        client.run("echo", {"refused": True})
    assert client.http.requests_sent == sent + 1
    assert caught.value.status_code == 500
    assert "server error (500)" in str(caught.value)
    assert "A job may have been queued" in str(caught.value)


def test_a_429_answer_to_run_is_retried_and_queues_each_job_once(
    server: LocalEndpoint, client: JobsClient
) -> None:
    server.faults.set(rate_429=0.5, routes=["run"], seed=1)
    inputs = [{"limited": i, "key": uuid.uuid4().hex} for i in range(3)]
    ids = [client.run("echo", job_input)["id"] for job_input in inputs]
    refused = server.faults.counts["rate_429"]
    assert refused >= 1 and client.http.retry_counts()["rate_limited"] == refused
    for job_input, job_id in zip(inputs, ids, strict=True):
        assert _created(server, "echo", job_input) == [job_id]
    server.faults.clear()
    for job_id in ids:
        assert _wait_final(client, "echo", job_id)["status"] == "COMPLETED"


def _describe(error: BaseException) -> str:
    """What a submit error says happened, as the test counts it; fails on an unclear error."""
    text = str(error)
    if isinstance(error, RunAnswerLostError):
        assert "got no answer" in text and "A job may have been queued" in text, text
        return "run answer lost"
    if isinstance(error, ServerError):
        assert "server error (500)" in text and "A job may have been queued" in text, text
        return "run refused with 500"
    if isinstance(error, RateLimitedError):
        assert "429" in text, text
        return "run rate limited"
    raise AssertionError(f"an unclear error: {type(error).__name__}: {text}")


@pytest.mark.timeout(240)
def test_200_jobs_under_faults_end_completed_or_with_a_clear_error_none_duplicated_none_lost(
    server: LocalEndpoint, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    manager = JobManager(budget=RequestBudget())
    gate = tmp_path / "never-opened"  # the victim job waits on it until its worker is killed
    try:
        # The victim's run goes out before the faults, so it surely exists and runs on a worker.
        victim_input = {"i": -1, "wait_for_file": str(gate)}
        victim = manager.submit("storm", victim_input, settings=settings)
        eventually(lambda: (info := server.job("storm", victim.id)) and info.status == "IN_PROGRESS")
        server.faults.set(drop=0.05, error_500=0.05, rate_429=0.02, slow=0.1, slow_s=0.05, seed=2024)
        # /run's own rule loses more answers after the job exists, so that kind surely happens
        # (about 16 of 199; at 5% x 50% a run of the suite could see none).
        server.faults.set(
            routes=["run"], drop=0.1, drop_after=0.8, error_500=0.05, rate_429=0.02, slow=0.1, slow_s=0.05
        )
        inputs = [{"i": i, "text": f"job number {i}"} for i in range(199)]
        future = manager.submit_many_in_background("storm", inputs, settings=settings, max_parallel=8)
        eventually(lambda: len(server.jobs("storm")) >= 60)  # mid-storm
        victim_info = server.job("storm", victim.id)
        assert victim_info is not None and victim_info.status == "IN_PROGRESS"
        killed = next(w for w in server.workers("storm") if w.id == victim_info.worker_id)
        assert killed.pid is not None
        os.kill(killed.pid, signal.SIGKILL)
        submitted = future.result(timeout=180)

        outcomes: Counter[str] = Counter()
        known: dict[str, dict] = {victim.id: victim_input}
        lost_answer_errors = 0
        for job_input, item in [(victim_input, victim), *zip(inputs, submitted, strict=True)]:
            if isinstance(item, Job):
                known[item.id] = job_input
                error = item.exception(timeout=120)
                if error is None:
                    assert item.result()["echo"] == job_input  # its own output, not another job's
                    outcomes["completed"] += 1
                else:
                    assert isinstance(error, JobFailedError), f"{type(error).__name__}: {error}"
                    assert item is victim, f"job {job_input} failed: {error}"
                    assert f"worker {killed.id} was killed by SIGKILL while running this job" in str(error)
                    outcomes["failed: worker killed mid-job"] += 1
            else:
                assert isinstance(item, RunpodError)
                kind = _describe(item)
                outcomes[kind] += 1
                lost_answer_errors += kind == "run answer lost"

        # Jobs whose run answer was lost run too; wait for them, so the server's view is final.
        eventually(lambda: all(job.status in TERMINAL for job in server.jobs("storm")))
        server.faults.clear()
        created = server.jobs("storm")
        per_input = Counter(json.dumps(job.input, sort_keys=True) for job in created)
        assert max(per_input.values()) == 1, "an input was queued twice"
        created_ids = {job.id for job in created}
        assert set(known) <= created_ids
        lost = server.faults.lost_run_answers
        assert created_ids - set(known) == set(lost), (
            "a job exists that the client neither knows nor reported"
        )
        assert len(lost) <= lost_answer_errors
        for job in created:
            if job.id in lost:
                assert job.status == "COMPLETED" and job.body["output"]["echo"] == job.input

        assert sum(outcomes.values()) == 200
        assert outcomes["failed: worker killed mid-job"] == 1
        injected = server.faults.counts
        assert injected["drop_before"] and injected["drop_after"] and injected["error_500"]
        assert injected["rate_429"] and lost  # every kind of fault really happened
        retries = manager.client(settings).http.retry_counts()
        with capsys.disabled():
            print(
                f"\n200 jobs under faults, {time.monotonic() - started:.1f} s:"
                f"\n  outcomes: {dict(sorted(outcomes.items()))}"
                f"\n  server: {len(created)} jobs created, run answers lost {len(lost)} "
                f"(client reported {lost_answer_errors} lost-answer errors)"
                f"\n  client retries: {retries}"
                f"\n  injected: {dict(sorted(injected.items()))}"
                f"\n  injected per route: {server.faults.counts_by_route}"
            )
    finally:
        server.faults.clear()
        gate.touch()
        manager.close()
