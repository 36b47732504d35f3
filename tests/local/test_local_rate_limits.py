"""The local endpoint enforces Runpod's per-endpoint, per-operation limits over HTTP: 429 with
Retry-After and a JSON error, counted per endpoint and operation. Tiny limits with long windows, so
nothing depends on timing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from local_helpers import WORKERS, wait_until

from rp_notebook.client import RUNPOD_RATE_LIMITS, RateLimit
from rp_notebook.local import EndpointConfig, LocalEndpoint

LIMITS = RUNPOD_RATE_LIMITS.with_limits(
    health=RateLimit(3, per_s=60),
    status=RateLimit(2, per_s=60),
    run=RateLimit(1, per_s=60),
    runsync=RateLimit(1000, per_s=60, concurrent=1),
)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalEndpoint]:
    endpoints = [
        EndpointConfig(id=name, worker_dir=WORKERS / "echo") for name in ("alpha", "beta", "gamma", "held")
    ]
    with LocalEndpoint(port=0, default_endpoints=False, endpoints=endpoints, rate_limits=LIMITS) as srv:
        yield srv


@pytest.fixture
def http(server: LocalEndpoint) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {server.api_key}"
    return session


def test_over_the_limit_the_api_answers_429_with_retry_after_and_a_json_error(server, http):
    url = f"{server.job_api_url}/alpha/health"
    assert [http.get(url).status_code for _ in range(3)] == [200, 200, 200]
    refused = http.get(url)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60  # whole seconds, until the window has room
    assert "allows 3 requests per 60 s" in refused.json()["error"]
    stats = server.rate_limit_stats("alpha")
    assert stats.accepted == {"health": 3} and stats.refused == {"health": 1}


def test_counts_are_readable_by_another_process_through_a_local_only_route(server, http):
    info = json.loads((server.state_dir / "server.json").read_text())
    url = info["rate_limit_stats_url"].format(endpoint_id="alpha")
    assert "/_local/" in url and "/v2/" not in url  # not a Runpod route, and says so
    assert requests.get(url, timeout=30).status_code == 401  # the API key is needed, as for the job API
    counts = http.get(url).json()
    assert counts["accepted"]["health"] == 3 and counts["refused"]["health"] == 1
    assert counts["total_refused"] == 1
    assert http.get(url).json() == counts  # reading the counts is not counted itself


def test_limits_are_per_endpoint_and_per_operation_group(server, http):
    base = server.job_api_url
    # /status and /stream are one group on Runpod: two requests of either fill it (unknown jobs: 404s
    # still count, the limit is checked before the job is looked up).
    assert http.get(f"{base}/beta/status/nope").status_code == 404
    assert http.get(f"{base}/beta/stream/nope").status_code == 404
    assert http.get(f"{base}/beta/status-sync/nope").status_code == 429
    assert http.get(f"{base}/beta/health").status_code == 200  # another group
    assert http.get(f"{base}/gamma/status/nope").status_code == 404  # another endpoint
    stats = server.rate_limit_stats("beta")
    assert stats.accepted == {"status": 1, "stream": 1, "health": 1}
    assert stats.refused == {"status-sync": 1}
    assert server.rate_limit_stats("gamma").total_refused == 0


def test_a_request_over_the_concurrency_limit_is_refused_while_another_is_in_flight(
    server, http, tmp_path: Path
):
    gate = tmp_path / "gate"
    url = f"{server.job_api_url}/held/runsync"
    first: dict[str, requests.Response] = {}
    holder = threading.Thread(
        target=lambda: first.setdefault("r", http.post(url, json={"input": {"wait_for_file": str(gate)}}))
    )
    holder.start()
    try:
        wait_until(lambda: server.rate_limit_stats("held").accepted.get("runsync") == 1)
        second = http.post(url, json={"input": {}})
        assert second.status_code == 429 and second.headers["Retry-After"] == "1"
        assert "1 at once" in second.json()["error"]
    finally:
        gate.touch()
        holder.join(60)
    assert first["r"].json()["status"] == "COMPLETED"
    stats = server.rate_limit_stats("held")
    assert stats.refused == {"runsync": 1} and stats.peak_in_flight["runsync"] == 1


def test_worker_routes_are_neither_limited_nor_counted(server, http):
    # One /run per minute is allowed, yet the worker's many job-take, job-done and ping requests
    # all go through: the job completes.
    job_id = http.post(f"{server.job_api_url}/gamma/run", json={"input": {"n": 1}}).json()["id"]
    assert http.post(f"{server.job_api_url}/gamma/run", json={"input": {}}).status_code == 429
    wait_until(lambda: (info := server.job("gamma", job_id)) and info.status == "COMPLETED", timeout=60)
    stats = server.rate_limit_stats("gamma")
    assert set(stats.accepted) | set(stats.refused) <= {"run", "status"}


def test_without_limits_nothing_is_refused_and_everything_is_counted(http):
    with LocalEndpoint(port=0, default_endpoints=False, rate_limits=None) as bare:
        bare.add_endpoint(EndpointConfig(id="free", worker_dir=WORKERS / "echo"))
        http.headers["Authorization"] = f"Bearer {bare.api_key}"
        codes = {http.post(f"{bare.job_api_url}/free/purge-queue").status_code for _ in range(5)}
        assert codes == {200}  # Runpod allows 2 per 10 s
        stats = bare.rate_limit_stats("free")
        assert stats.accepted == {"purge-queue": 5} and stats.total_refused == 0
