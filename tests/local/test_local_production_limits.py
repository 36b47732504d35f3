"""The local endpoint refuses what production refuses: policy timings under Runpod's minimums (400),
a queue past Runpod's cap (429), and `GET /requests` beyond its rate limit (429); `/requests` itself
is served. A server started with `lenient_limits` accepts the policies and the queue, on request only.

Real servers over real HTTP. Endpoints with `workers_max=0` keep their jobs queued without any worker
process, so most of these tests start none. Numbers and their sources: `rp_notebook/local/_jobs_api.py`
and `RUNPOD_RATE_LIMITS` in `rp_notebook/client/_budget.py`.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from local_helpers import WORKERS, Api, wait_until

from rp_notebook.client import RUNPOD_RATE_LIMITS, RateLimit
from rp_notebook.local import EndpointConfig, LocalEndpoint
from rp_notebook.local.__main__ import build_up_parser
from rp_notebook.local._jobs_api import queue_cap

pytestmark = pytest.mark.timeout(120)

ECHO = WORKERS / "echo"
SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
EXECUTION_TIMEOUT_RANGE = "from 5000 (5 s) to 604800000 (7 days)"
TTL_RANGE = "from 10000 (10 s) to 604800000 (7 days)"


def _queued_only(endpoint_id: str) -> EndpointConfig:
    """An endpoint that never starts a worker: every job it accepts stays IN_QUEUE."""
    return EndpointConfig(id=endpoint_id, worker_dir=ECHO, workers_max=0)


@pytest.fixture(scope="module")
def strict() -> Iterator[LocalEndpoint]:
    """A server with the defaults (no lenient_limits): production's validation."""
    endpoints = [
        _queued_only("idle"),
        _queued_only("full"),
        _queued_only("polled"),
        EndpointConfig(id="one", worker_dir=ECHO, workers_max=1),
        EndpointConfig(id="listed", worker_dir=ECHO, workers_max=1),
    ]
    with LocalEndpoint(port=0, default_endpoints=False, endpoints=endpoints) as srv:
        yield srv


@pytest.fixture(scope="module")
def lenient() -> Iterator[LocalEndpoint]:
    endpoints = [_queued_only("idle"), _queued_only("full")]
    with LocalEndpoint(port=0, default_endpoints=False, endpoints=endpoints, lenient_limits=True) as srv:
        yield srv


@pytest.fixture
def strict_api(strict: LocalEndpoint, tmp_path: Path) -> Iterator[Api]:
    client = Api(strict, tmp_path)
    yield client
    client.cleanup()


def _session(server: LocalEndpoint) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {server.api_key}"
    return session


def _submit(session: requests.Session, server: LocalEndpoint, endpoint_id: str, body: dict[str, Any]) -> Any:
    return session.post(f"{server.job_api_url}/{endpoint_id}/run", json=body, timeout=30)


# ---------------------------------------------------------------------- policy minimums


@pytest.mark.parametrize(
    ("policy", "field", "allowed"),
    [
        ({"executionTimeout": 1000}, "policy.executionTimeout", EXECUTION_TIMEOUT_RANGE),  # the field finding
        ({"executionTimeout": 4999}, "policy.executionTimeout", EXECUTION_TIMEOUT_RANGE),
        ({"executionTimeout": SEVEN_DAYS_MS + 1}, "policy.executionTimeout", EXECUTION_TIMEOUT_RANGE),
        ({"ttl": 2000}, "policy.ttl", TTL_RANGE),  # the field finding
        ({"ttl": 9999}, "policy.ttl", TTL_RANGE),
    ],
)
def test_a_policy_outside_runpods_range_is_400_naming_the_field_and_the_range(
    strict: LocalEndpoint, policy: dict[str, int], field: str, allowed: str
) -> None:
    http = _session(strict)
    before = len(strict.jobs("idle"))
    for op in ("run", "runsync"):
        response = http.post(
            f"{strict.job_api_url}/idle/{op}?wait=1000", json={"input": {}, "policy": policy}, timeout=30
        )
        assert response.status_code == 400, response.text
        message = response.json()["error"]
        assert f"'{field}' must be an integer number of ms {allowed}" in message
        assert message.endswith(f"got {next(iter(policy.values()))}")  # and says what it got
    assert len(strict.jobs("idle")) == before  # no job was created


def test_a_policy_at_runpods_minimums_is_accepted_and_kept(strict: LocalEndpoint) -> None:
    policy = {"executionTimeout": 5000, "ttl": 10_000}
    response = _submit(_session(strict), strict, "idle", {"input": {"at": "minimum"}, "policy": policy})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "IN_QUEUE"
    job = strict.job("idle", response.json()["id"])
    assert job is not None and job.input == {"at": "minimum"}


def test_a_policy_at_runpods_maximums_is_accepted(strict: LocalEndpoint) -> None:
    policy = {"executionTimeout": SEVEN_DAYS_MS, "ttl": SEVEN_DAYS_MS}
    response = _submit(_session(strict), strict, "idle", {"input": {"at": "maximum"}, "policy": policy})
    assert response.status_code == 200, response.text


def test_status_ttl_under_the_policy_minimum_is_accepted_as_in_runpods_own_example(
    strict: LocalEndpoint,
) -> None:
    http = _session(strict)
    job_id = _submit(http, strict, "idle", {"input": {"ttl": "via status"}}).json()["id"]
    response = http.get(f"{strict.job_api_url}/idle/status/{job_id}?ttl=6000", timeout=30)
    assert response.status_code == 200, response.text
    refused = http.get(f"{strict.job_api_url}/idle/status/{job_id}?ttl={SEVEN_DAYS_MS + 1}", timeout=30)
    assert refused.status_code == 400
    assert "from 1 to 604800000 (7 days)" in refused.json()["error"]


# ---------------------------------------------------------------------- queue cap


def test_queue_cap_is_max_of_50_and_500_per_max_worker() -> None:
    assert [queue_cap(n) for n in (0, 1, 3)] == [50, 500, 1500]


def test_a_job_past_the_queue_cap_is_429_naming_the_cap_and_the_endpoint_keeps_serving(
    strict: LocalEndpoint,
) -> None:
    http = _session(strict)
    base = f"{strict.job_api_url}/full"
    accepted = [_submit(http, strict, "full", {"input": {"n": n}}) for n in range(50)]
    assert [r.status_code for r in accepted] == [200] * 50
    try:
        for op in ("run", "runsync"):
            refused = http.post(f"{base}/{op}", json={"input": {"n": 50}}, timeout=30)
            assert refused.status_code == 429, refused.text
            message = refused.json()["error"]
            assert "50 jobs in queue" in message
            assert "max(50, workersMax x 500) = 50 jobs (workersMax 0)" in message
        assert len(strict.jobs("full")) == 50  # the refused ones were never created
        # Everything else is still answered: status, health, the listing, cancel.
        first = accepted[0].json()["id"]
        assert http.get(f"{base}/status/{first}", timeout=30).json()["status"] == "IN_QUEUE"
        assert http.get(f"{base}/health", timeout=30).json()["jobs"]["inQueue"] == 50
        assert http.get(f"{base}/requests", timeout=30).status_code == 200
        assert http.post(f"{base}/cancel/{first}", timeout=30).json()["status"] == "CANCELLED"
        assert _submit(http, strict, "full", {"input": {"room": "again"}}).status_code == 200  # 49 + 1
        assert _submit(http, strict, "full", {"input": {"n": 51}}).status_code == 429
    finally:
        assert http.post(f"{base}/purge-queue", timeout=30).json()["removed"] == 50


def test_the_queue_cap_grows_with_workers_max_and_also_refuses_a_retry(
    strict: LocalEndpoint, strict_api: Api
) -> None:
    failed = strict_api.run("one", {"raise": "to be retried"})
    assert strict_api.wait_final("one", failed)["status"] == "FAILED"
    gate = strict_api.gate()
    holder = strict_api.run("one", {"wait_for_file": str(gate)})
    strict_api.wait_status("one", holder, "IN_PROGRESS")  # its single worker is busy: the rest queue
    http = _session(strict)
    base = f"{strict.job_api_url}/one"
    try:
        answers = [_submit(http, strict, "one", {"input": {"n": n}}).status_code for n in range(500)]
        assert answers == [200] * 500  # well past 50: workersMax 1 allows 500
        refused = _submit(http, strict, "one", {"input": {"n": 500}})
        assert refused.status_code == 429
        assert "= 500 jobs (workersMax 1)" in refused.json()["error"]
        retried = http.post(f"{base}/retry/{failed}", timeout=30)
        assert retried.status_code == 429  # a retry would put the job back into the full queue
        assert strict_api.status("one", failed)["status"] == "FAILED"
        assert http.post(f"{base}/purge-queue", timeout=30).json()["removed"] == 500
        assert http.post(f"{base}/retry/{failed}", timeout=30).json()["status"] == "IN_QUEUE"
    finally:
        strict_api.release(gate)


# ---------------------------------------------------------------------- GET /requests


def test_requests_lists_the_endpoints_jobs_oldest_first_without_their_output(
    strict: LocalEndpoint, strict_api: Api
) -> None:
    http = _session(strict)
    done = http.post(f"{strict.job_api_url}/listed/runsync", json={"input": {"big": "x" * 1000}}, timeout=60)
    assert done.json()["status"] == "COMPLETED"
    gate = strict_api.gate()
    running = strict_api.run("listed", {"wait_for_file": str(gate)})
    strict_api.wait_status("listed", running, "IN_PROGRESS")
    queued = strict_api.run("listed", {"waits": "for the worker"})
    strict_api.run("idle", {"other": "endpoint"})

    response = http.get(f"{strict.job_api_url}/listed/requests", timeout=30)

    assert response.status_code == 200
    listed = response.json()["requests"]
    assert [(r["id"], r["status"]) for r in listed] == [
        (done.json()["id"], "COMPLETED"),
        (running, "IN_PROGRESS"),
        (queued, "IN_QUEUE"),
    ]
    finished, in_progress, in_queue = listed
    assert set(finished) == {"id", "status", "delayTime", "executionTime", "workerId"}  # no output
    assert set(in_progress) == {"id", "status", "delayTime", "workerId"}
    assert set(in_queue) == {"id", "status"}
    strict_api.release(gate)


def test_requests_is_limited_to_10_per_10_s_as_runpod_documents(strict: LocalEndpoint) -> None:
    assert RUNPOD_RATE_LIMITS.limit_of(RUNPOD_RATE_LIMITS.group_of("requests") or "") == RateLimit(
        10, per_s=10, concurrent=2
    )
    http = _session(strict)
    url = f"{strict.job_api_url}/polled/requests"
    assert [http.get(url, timeout=30).status_code for _ in range(10)] == [200] * 10
    refused = http.get(url, timeout=30)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 10
    assert "/requests allows 10 requests per 10 s and 2 at once per endpoint" in refused.json()["error"]
    stats = strict.rate_limit_stats("polled")
    assert stats.accepted["requests"] == 10 and stats.refused == {"requests": 1}
    assert http.get(f"{strict.job_api_url}/idle/requests", timeout=30).status_code == 200  # per endpoint


def test_a_third_concurrent_requests_call_is_429() -> None:
    # Every request is held 2 s on its way in (the simulated network delay), after the limiter let it
    # through, so two of them are in flight together while the third one arrives.
    with LocalEndpoint(
        port=0, default_endpoints=False, endpoints=[_queued_only("held")], network_delay_ms=4000
    ) as server:
        url = f"{server.job_api_url}/held/requests"
        answers: list[int] = []

        def list_requests() -> None:
            answers.append(_session(server).get(url, timeout=60).status_code)

        threads = [threading.Thread(target=list_requests) for _ in range(2)]
        for thread in threads:
            thread.start()
        wait_until(lambda: server.rate_limit_stats("held").accepted.get("requests") == 2)
        third = _session(server).get(url, timeout=60)
        for thread in threads:
            thread.join(60)
        assert answers == [200, 200]
        assert third.status_code == 429
        assert third.headers["Retry-After"] == "1"
        assert "2 at once" in third.json()["error"]


# ---------------------------------------------------------------------- lenient_limits


def test_a_lenient_server_accepts_what_a_strict_one_refuses(
    strict: LocalEndpoint, lenient: LocalEndpoint
) -> None:
    short = {"input": {"short": True}, "policy": {"executionTimeout": 1000, "ttl": 2000}}
    assert _submit(_session(strict), strict, "idle", short).status_code == 400
    assert _submit(_session(lenient), lenient, "idle", short).status_code == 200

    http = _session(lenient)
    answers = [_submit(http, lenient, "full", {"input": {"n": n}}).status_code for n in range(70)]
    assert answers == [200] * 70  # the field finding: 70 queued on workersMax=0, no 429
    assert lenient.health("full")["jobs"]["inQueue"] == 70
    http.post(f"{lenient.job_api_url}/full/purge-queue", timeout=30)


@pytest.mark.parametrize("policy", [{"ttl": 0}, {"executionTimeout": -1}, {"ttl": SEVEN_DAYS_MS + 1}])
def test_a_lenient_server_still_refuses_non_positive_and_over_7_day_policies(
    lenient: LocalEndpoint, policy: dict[str, int]
) -> None:
    response = _submit(_session(lenient), lenient, "idle", {"input": {}, "policy": policy})
    assert response.status_code == 400
    assert "from 1 to 604800000 (7 days)" in response.json()["error"]


def test_strict_is_the_default_of_the_server_and_of_local_up() -> None:
    assert LocalEndpoint(port=0, default_endpoints=False).lenient_limits is False
    assert build_up_parser().parse_args([]).lenient is False
    assert build_up_parser().parse_args(["--lenient"]).lenient is True


def test_local_up_lenient_starts_a_lenient_server_and_says_so(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rp_notebook.local",
            "up",
            "--port",
            "0",
            "--state-dir",
            str(tmp_path),
            "--lenient",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = []
        for line in proc.stdout:
            banner.append(line)
            if line.startswith("Press Ctrl+C"):
                break
        assert any("--lenient: accepting policies under Runpod's minimums" in line for line in banner), banner
        url = next(line.split("listening on ")[1].strip() for line in banner if "listening on" in line)
        headers = {"Authorization": f"Bearer {(tmp_path / 'api_key').read_text().strip()}"}
        # The policy is checked before s3Config, so a strict server would name policy.ttl here; this
        # one passes the short TTL and stops at the malformed s3Config: no job, no worker started.
        body = {"input": {"text": "x"}, "policy": {"ttl": 2000}, "s3Config": "not an object"}
        answer = requests.post(f"{url}/v2/local-tts/run", json=body, headers=headers, timeout=30)
        assert answer.status_code == 400
        assert "s3Config" in answer.json()["error"]
    finally:
        proc.terminate()
        proc.wait(30)
