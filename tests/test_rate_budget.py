"""The client's request budget against a local endpoint with tiny limits: it keeps under them on its
own, and a 429's Retry-After pauses every thread of that endpoint and operation group.

Measured by the server's counts (requests let through and refused) and by every job completing;
never by how long anything took."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from rp_notebook.client import RUNPOD_RATE_LIMITS, JobsClient, RateLimit, RequestBudget
from rp_notebook.config import configure
from rp_notebook.errors import RateLimitedError
from rp_notebook.jobs import JobManager
from rp_notebook.local import EndpointConfig, LocalEndpoint

ECHO_WORKER = Path(__file__).resolve().parent / "fixtures" / "workers" / "echo"

SERVER_LIMITS = RUNPOD_RATE_LIMITS.with_limits(
    # 2.5 s, not a whole number: Retry-After is whole seconds rounded up, so a client that obeys it
    # resumes after every request of the burst has left the window.
    run=RateLimit(2, per_s=2.5),
    health=RateLimit(10, per_s=1),
    status=RateLimit(1000, per_s=10, concurrent=3),
)
#: A client budget that lets every `run` through at once: only the server's 429s hold it back.
NO_RUN_LIMIT = RequestBudget(RUNPOD_RATE_LIMITS.with_limits(run=RateLimit(100_000, per_s=1)))


@pytest.fixture(scope="module")
def server() -> Iterator[LocalEndpoint]:
    endpoints = [EndpointConfig(id=name, worker_dir=ECHO_WORKER) for name in ("a", "b", "c")]
    with LocalEndpoint(
        port=0, default_endpoints=False, endpoints=endpoints, rate_limits=SERVER_LIMITS
    ) as srv:
        yield srv


def wait_until(predicate: Callable[[], Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)


@pytest.fixture
def settings(server):
    return configure(api_key=server.api_key, endpoint_base_url=server.job_api_url)


def test_a_429_pauses_the_whole_endpoint_so_another_client_waits_instead_of_being_refused(server, settings):
    budget = RequestBudget(NO_RUN_LIMIT.limits)
    first, second = JobsClient(settings, budget=budget), JobsClient(settings, budget=budget)
    first.run("a", {"n": 1})
    first.run("a", {"n": 2})  # the server's window for /run is full now
    refused_then_queued = threading.Thread(target=lambda: first.run("a", {"n": 3}))
    refused_then_queued.start()
    key = (settings.endpoint_base_url, "a", "run")
    wait_until(lambda: key in budget.stats() and budget.stats()[key].refusals == 1)
    # The server refused the third run and said when to come back; a different client object that
    # shares the budget now waits for that moment too, instead of being refused on its own.
    second.run("a", {"n": 4})
    refused_then_queued.join(30)
    stats = server.rate_limit_stats("a")
    assert stats.refused == {"run": 1}
    assert stats.accepted["run"] == 4
    assert budget.stats()[key].waited >= 1


def test_jobs_submitted_past_the_servers_limit_all_complete_after_obeying_retry_after(server, settings):
    manager = JobManager(budget=RequestBudget(NO_RUN_LIMIT.limits))
    try:
        # Two runs in flight, two allowed per window: after each pause both get in, so no run is
        # refused more often than the retry policy allows.
        jobs = manager.submit_many("b", [{"i": i} for i in range(8)], settings=settings, max_parallel=2)
        assert all(not isinstance(job, Exception) for job in jobs)  # every 429 was waited out
        assert [job.result(timeout=60)["echo"]["i"] for job in jobs] == list(range(8))
    finally:
        manager.close()
    stats = server.rate_limit_stats("b")
    assert stats.accepted["run"] == 8
    # Each refusal paused both threads: at most one refusal per thread and window, never a storm.
    assert 1 <= stats.refused["run"] <= 2 * 4


def test_the_budget_keeps_a_burst_under_a_tight_limit_with_zero_refusals(server, settings):
    # The server's own table at half its numbers (5 of 10 per second): with a window this short, when
    # a request reaches the server after its slot was taken (thread scheduling on a busy machine) is
    # a visible part of the window. Runpod's windows are 10 s; there the default 90 % is plenty.
    budget = RequestBudget(SERVER_LIMITS, safety=0.5)
    client = JobsClient(settings, budget=budget)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: client.health("c"), range(18)))
    assert len(answers) == 18
    stats = server.rate_limit_stats("c")
    assert stats.accepted == {"health": 18} and stats.total_refused == 0
    assert budget.stats()[(settings.endpoint_base_url, "c", "health")].waited > 0  # it did hold some back


def test_long_polls_stay_within_the_concurrency_limit(release):
    limits = RUNPOD_RATE_LIMITS.with_limits(status=RateLimit(1000, per_s=10, concurrent=3))
    budget = RequestBudget(limits, safety=1.0)  # 3 in flight, exactly what the server allows
    manager = JobManager(budget=budget, max_concurrent_polls=8, long_poll_ms=5_000)
    with LocalEndpoint(port=0, default_endpoints=False, rate_limits=limits) as server:
        server.add_endpoint(EndpointConfig(id="e", worker_dir=ECHO_WORKER))
        settings = configure(api_key=server.api_key, endpoint_base_url=server.job_api_url)
        try:
            jobs = [manager.submit("e", {"wait_for_file": str(release)}, settings=settings) for _ in range(4)]
            # Four jobs to follow, eight poll threads allowed, but only three long-polls in flight.
            wait_until(lambda: server.rate_limit_stats("e").peak_in_flight.get("status") == 3)
            release.touch()
            assert all(job.result(timeout=60)["echo"]["wait_for_file"] for job in jobs)
        finally:
            manager.close()
        stats = server.rate_limit_stats("e")
    assert stats.total_refused == 0 and stats.peak_in_flight["status"] == 3


def test_a_pause_longer_than_the_retry_policy_allows_fails_at_once_without_sending(server, settings):
    budget = RequestBudget()
    client = JobsClient(settings, budget=budget)
    budget.pause(settings.endpoint_base_url, "c", "status", 3600)
    before = server.rate_limit_stats("c").accepted.get("status", 0)
    with pytest.raises(RateLimitedError, match="paused") as caught:
        client.status("c", "some-job")
    assert caught.value.retry_after > 3000
    assert server.rate_limit_stats("c").accepted.get("status", 0) == before


def test_a_batch_keeps_exactly_max_parallel_runs_in_flight_until_all_have_gone_out():
    # Each request spends 100 ms at the server before its answer: five senders overlap there.
    with LocalEndpoint(port=0, default_endpoints=False, network_delay_ms=200) as server:
        server.add_endpoint(EndpointConfig(id="p", worker_dir=ECHO_WORKER))
        settings = configure(api_key=server.api_key, endpoint_base_url=server.job_api_url)
        manager = JobManager()
        try:
            jobs = manager.submit_many("p", [{"i": i} for i in range(20)], settings=settings, max_parallel=5)
            assert [job.result(timeout=60)["echo"]["i"] for job in jobs] == list(range(20))
        finally:
            manager.close()
        stats = server.rate_limit_stats("p")
    assert stats.accepted["run"] == 20 and stats.peak_in_flight["run"] == 5
