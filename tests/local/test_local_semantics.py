"""Runpod's job lifetime rules on the local endpoint, worker cold starts and crashes, and fault injection.

Everything runs for real: the endpoint over HTTP, unmodified runpod SDK workers (the echo fixture).
Tests that need their own settings (short retention, a gated cold start, faults) use servers of
their own, so the session server of the other local tests never sees them. The TTL tests watch
TTLs under Runpod's 10 s minimum expire, so they run on a server started with `lenient_limits`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from local_helpers import WORKERS, Api, wait_until
from management_helpers import Management, unique

from rp_notebook.local import EndpointConfig, Faults, LocalEndpoint, WorkerStatus

pytestmark = pytest.mark.timeout(120)

ECHO = WORKERS / "echo"


@pytest.fixture(scope="module")
def own() -> Iterator[LocalEndpoint]:
    """A server for this module's endpoints: short retention, a single-worker crash target."""
    endpoints = [
        EndpointConfig(id="kept", worker_dir=ECHO, result_retention_s=None, sync_result_retention_s=0.3),
        EndpointConfig(id="crashy", worker_dir=ECHO, workers_max=1),
    ]
    srv = LocalEndpoint(port=0, default_endpoints=False, endpoints=endpoints, result_retention_s=0.5)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def own_api(own: LocalEndpoint, tmp_path: Path) -> Iterator[Api]:
    client = Api(own, tmp_path)
    yield client
    client.cleanup()


@pytest.fixture(scope="module")
def lenient() -> Iterator[LocalEndpoint]:
    """A server that accepts TTLs under Runpod's 10 s minimum, so a TTL can expire within a test."""
    srv = LocalEndpoint(
        port=0,
        default_endpoints=False,
        endpoints=[EndpointConfig(id="echo", worker_dir=ECHO)],
        lenient_limits=True,
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def lenient_api(lenient: LocalEndpoint, tmp_path: Path) -> Iterator[Api]:
    client = Api(lenient, tmp_path)
    yield client
    client.cleanup()


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[LocalEndpoint]:
    """A server whose faults a test may set freely (no workers are needed for most of them)."""
    srv = LocalEndpoint(
        port=0, default_endpoints=False, endpoints=[EndpointConfig(id="echo", worker_dir=ECHO, workers_max=0)]
    )
    srv.start()
    yield srv
    srv.stop()


def _gone(api: Api, endpoint: str, job_id: str) -> bool:
    response = api.get(f"{endpoint}/status/{job_id}")
    return response.status_code == 404 and job_id in response.json()["error"]


# ---------------------------------------------------------------------- policy.ttl


def test_ttl_deletes_a_queued_job_which_then_never_runs(lenient_api: Api) -> None:
    api = lenient_api
    gate = api.gate()
    blocker = api.run("echo", {"wait_for_file": str(gate)})
    api.wait_status("echo", blocker, "IN_PROGRESS")
    marker = api.tmp_path / "never"
    queued = api.run("echo", {"marker": str(marker)}, policy={"ttl": 500})
    assert api.status("echo", queued)["status"] == "IN_QUEUE"
    wait_until(lambda: _gone(api, "echo", queued))
    assert api.get("echo/health").json()["jobs"]["inQueue"] == 0
    api.release(gate)
    assert api.wait_final("echo", blocker)["status"] == "COMPLETED"
    follow_up = api.wait_final("echo", api.run("echo", {"after": "ttl"}))
    assert follow_up["status"] == "COMPLETED"
    assert not marker.exists()  # the expired job was never handed to the worker


def test_ttl_deletes_a_running_job_stops_its_handler_and_frees_the_worker(
    lenient_api: Api, lenient: LocalEndpoint
) -> None:
    api, server = lenient_api, lenient
    marker = api.tmp_path / "marker"
    job_id = api.run("echo", {"marker": str(marker), "wait_for_file": str(api.gate())}, policy={"ttl": 1500})
    wait_until(lambda: marker.exists() and "started" in marker.read_text())
    running = api.status("echo", job_id)
    assert running["status"] == "IN_PROGRESS"
    waiting: dict[str, requests.Response] = {}
    poller = threading.Thread(
        target=lambda: waiting.setdefault("r", api.get(f"echo/status-sync/{job_id}?wait=60000"))
    )
    poller.start()
    wait_until(lambda: _gone(api, "echo", job_id))
    poller.join(30)
    assert waiting["r"].status_code == 404  # the long-poll that waited on it learns it is gone
    wait_until(lambda: "cancelled" in marker.read_text())  # the worker was told to stop the handler
    assert server.job("echo", job_id) is None
    follow_up = api.wait_final("echo", api.run("echo", {"after": "ttl-running"}))
    assert follow_up["status"] == "COMPLETED"
    assert follow_up["workerId"] == running["workerId"]  # the single worker is free again


def test_a_completed_job_is_deleted_when_its_ttl_passes_before_its_retention(lenient_api: Api) -> None:
    api = lenient_api
    job_id = api.run("echo", {"short": "lived"}, policy={"ttl": 4000})
    assert api.wait_final("echo", job_id)["status"] == "COMPLETED"
    wait_until(lambda: _gone(api, "echo", job_id))  # retention is 30 min; the TTL is the hard limit


@pytest.mark.parametrize("ttl", [0, -5, 1.5, "10000", True, 7 * 24 * 3600 * 1000 + 1])
def test_ttl_must_be_an_integer_of_ms_in_runpods_range(api: Api, ttl: object) -> None:
    before = api.get("echo/health").json()["jobs"]
    for op in ("run", "runsync"):
        response = api.post(f"echo/{op}", json={"input": {}, "policy": {"ttl": ttl}})
        assert response.status_code == 400
        message = response.json()["error"]
        assert (
            "'policy.ttl' must be an integer number of ms from 10000 (10 s) to 604800000 (7 days)" in message
        )
    after = api.get("echo/health").json()["jobs"]
    assert after["inQueue"] == before["inQueue"] and after["completed"] == before["completed"]


def test_status_with_ttl_gives_the_job_a_new_lifetime_from_now(api: Api) -> None:
    job_id = api.run("echo", {"ttl": "reset"})
    assert api.wait_final("echo", job_id)["status"] == "COMPLETED"
    bad = api.get(f"echo/status/{job_id}?ttl=soon")
    assert bad.status_code == 400 and "ttl" in bad.json()["error"]
    response = api.get(f"echo/status/{job_id}?ttl=300")
    assert response.status_code == 200 and response.json()["status"] == "COMPLETED"
    wait_until(lambda: _gone(api, "echo", job_id))


# ---------------------------------------------------------------------- result retention


def test_results_are_gone_after_the_servers_retention_on_a_deployed_endpoint(
    own: LocalEndpoint, own_api: Api
) -> None:
    mgmt = Management(own)
    name = unique("retention")
    template = mgmt.rest("POST", "templates", {"name": name, "image": f"local:{ECHO}"})
    assert template.status_code == 201, template.text
    body = {
        "name": name,
        "templateId": template.json()["id"],
        "gpu": {"pools": ["ADA_24"], "count": 1},
        "workers": {"max": 1},
    }
    endpoint = mgmt.rest("POST", "serverless", body)
    assert endpoint.status_code == 201, endpoint.text
    deployed = endpoint.json()["id"]
    assert own.endpoint_config(deployed).result_retention_s == 0.5  # the server's setting
    kept = own_api.run("kept", {"kept": True})  # this endpoint's own config keeps results
    assert own_api.wait_final("kept", kept)["status"] == "COMPLETED"
    job_id = own_api.run(deployed, {"brief": True})
    assert own_api.wait_final(deployed, job_id)["status"] == "COMPLETED"
    wait_until(lambda: _gone(own_api, deployed, job_id))
    assert own_api.status("kept", kept)["status"] == "COMPLETED"  # finished earlier, still there


def test_runsync_results_have_their_own_shorter_retention(own_api: Api) -> None:
    response = own_api.post("kept/runsync", json={"input": {"sync": 1}})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "COMPLETED" and body["id"].startswith("sync-")
    queued = own_api.run("kept", {"async": 1})
    assert own_api.wait_final("kept", queued)["status"] == "COMPLETED"
    wait_until(lambda: _gone(own_api, "kept", body["id"]))
    assert own_api.status("kept", queued)["status"] == "COMPLETED"


def test_local_up_takes_the_result_retention_and_refuses_a_bad_one(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "rp_notebook.local", "up", "--port", "0", "--state-dir", str(tmp_path)]
    bad = subprocess.run(
        [*command, "--result-retention", "0"], capture_output=True, text=True, timeout=60, check=False
    )
    assert bad.returncode == 2 and "--result-retention" in bad.stderr
    proc = subprocess.Popen(
        [*command, "--result-retention", "2.5"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl+C"):
                break
        assert "/run results kept 2.5 s after a job ends" in "".join(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


# ---------------------------------------------------------------------- cold start, scale to zero


def test_cold_start_shows_initializing_counts_in_delay_time_and_scales_to_zero(tmp_path: Path) -> None:
    # The interpreter is a wrapper that holds the worker's boot until the test opens a gate, so the
    # cold start lasts exactly as long as the test wants, on any machine.
    boot_gate = tmp_path / "boot"
    wrapper = tmp_path / "slow-python"
    wrapper.write_text(
        f'#!/bin/sh\nwhile [ ! -e "{boot_gate}" ]; do sleep 0.05; done\nexec "{sys.executable}" "$@"\n'
    )
    wrapper.chmod(0o755)
    config = EndpointConfig(id="cold", worker_dir=ECHO, python=str(wrapper), idle_timeout_s=0.5)
    with LocalEndpoint(port=0, default_endpoints=False, endpoints=[config]) as server:
        api = Api(server, tmp_path)
        idle = api.get("cold/health").json()
        assert idle["workers"] == {
            "idle": 0,
            "running": 0,
            "initializing": 0,
            "unhealthy": 0,
        }  # no job, no worker
        job_id = api.run("cold", {"cold": "start"})
        booting = api.get("cold/health").json()
        assert booting["workers"] == {"idle": 0, "running": 0, "initializing": 1, "unhealthy": 0}
        assert booting["jobs"]["inQueue"] == 1
        assert api.status("cold", job_id)["status"] == "IN_QUEUE"
        boot_gate.touch()
        body = api.wait_final("cold", job_id)
        assert body["status"] == "COMPLETED"
        worker = server.workers("cold")[0]
        assert worker.cold_start_s is not None
        assert body["delayTime"] >= round(worker.cold_start_s * 1000) - 1  # the boot is in the delay
        no_workers = {"idle": 0, "running": 0, "initializing": 0, "unhealthy": 0}
        wait_until(lambda: api.get("cold/health").json()["workers"] == no_workers)  # idle timeout
        wait_until(lambda: not server.workers("cold"))  # and the process is gone, not only stopping
        exited = server.workers("cold", include_exited=True)
        assert [w.status for w in exited] == [WorkerStatus.EXITED]
        again = api.wait_final("cold", api.run("cold", {"warm": "again"}))  # scaled up from zero
        assert again["status"] == "COMPLETED" and again["workerId"] != body["workerId"]


# ---------------------------------------------------------------------- a worker killed mid-job


def test_worker_killed_mid_job_fails_it_and_the_queued_jobs_run_on_a_new_worker(
    own: LocalEndpoint, own_api: Api
) -> None:
    victim = own_api.run("crashy", {"wait_for_file": str(own_api.gate())})
    running = own_api.wait_status("crashy", victim, "IN_PROGRESS")
    queued = [own_api.run("crashy", {"queued": i}) for i in range(2)]
    assert all(own_api.status("crashy", job_id)["status"] == "IN_QUEUE" for job_id in queued)
    worker = next(w for w in own.workers("crashy") if w.id == running["workerId"])
    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    failed = own_api.wait_final("crashy", victim)
    assert failed["status"] == "FAILED"
    assert f"worker {worker.id} was killed by SIGKILL while running this job" in failed["error"]
    assert "worker log" in failed["error"]
    for job_id, i in zip(queued, range(2), strict=True):
        body = own_api.wait_final("crashy", job_id)
        assert body["status"] == "COMPLETED"
        assert body["output"]["echo"] == {"queued": i}
        assert body["workerId"] != worker.id
    health = own_api.get("crashy/health").json()
    assert health["jobs"]["inProgress"] == 0 and health["jobs"]["inQueue"] == 0


# ---------------------------------------------------------------------- fault injection


def _post_run(server: LocalEndpoint, job_input: object) -> requests.Response:
    return requests.post(
        f"{server.job_api_url}/echo/run",
        json={"input": job_input},
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=30,
    )


def test_faults_are_off_until_set_and_refuse_bad_rules(faulty: LocalEndpoint) -> None:
    assert faulty.faults.active is False
    assert _post_run(faulty, {"n": 0}).status_code == 200
    assert faulty.faults.counts == {"run_answers_lost": 0}  # nothing was even looked at
    with pytest.raises(ValueError, match="probability"):
        faulty.faults.set(drop=1.5)
    with pytest.raises(ValueError, match="must not exceed 1"):
        faulty.faults.set(drop=0.6, error_500=0.6)
    with pytest.raises(ValueError, match="no job-API route nope"):
        faulty.faults.set(drop=0.1, routes=["nope"])
    assert faulty.faults.active is False
    faulty.faults.set(drop=0.1, routes=["status"])
    assert faulty.faults.active is True and set(faulty.faults.rules) == {"status"}
    faulty.faults.clear()
    assert faulty.faults.active is False


def test_a_run_dropped_before_creates_no_job_and_one_dropped_after_loses_its_answer(
    faulty: LocalEndpoint,
) -> None:
    faulty.faults.set(drop=1.0, drop_after=0.0, routes=["run"])
    with pytest.raises(requests.ConnectionError):
        _post_run(faulty, {"dropped": "before"})
    assert not [j for j in faulty.jobs("echo") if j.input == {"dropped": "before"}]
    faulty.faults.set(drop=1.0, drop_after=1.0, routes=["run"])
    with pytest.raises(requests.ConnectionError):
        _post_run(faulty, {"dropped": "after"})
    created = [j for j in faulty.jobs("echo") if j.input == {"dropped": "after"}]
    assert len(created) == 1
    assert faulty.faults.lost_run_answers == [created[0].id]
    assert faulty.faults.counts_by_route["run"] == {"requests": 2, "drop_before": 1, "drop_after": 1}
    assert faulty.faults.counts["run_answers_lost"] == 1
    assert faulty.health("echo")["jobs"]["inQueue"] == 1  # the job whose answer was lost is real
    faulty.faults.clear()
    assert _post_run(faulty, {"after": "clear"}).status_code == 200


def test_injected_500_and_429_answer_before_the_route_runs(faulty: LocalEndpoint) -> None:
    faulty.faults.set(error_500=1.0, routes=["run"])
    response = _post_run(faulty, {"fault": 500})
    assert response.status_code == 500 and "injected fault on /run" in response.json()["error"]
    faulty.faults.set(rate_429=1.0, retry_after_s=2, routes=["run"])
    response = _post_run(faulty, {"fault": 429})
    assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    assert not [j for j in faulty.jobs("echo") if isinstance(j.input, dict) and "fault" in j.input]
    stats = faulty.rate_limit_stats("echo")
    assert stats.refused.get("run", 0) == 0  # an injected 429 is not the rate limiter's
    assert faulty.faults.counts_by_route["run"] == {"requests": 2, "error_500": 1, "rate_429": 1}


def test_an_injected_slow_answer_outlasts_a_client_timeout(faulty: LocalEndpoint) -> None:
    faulty.faults.set(slow_s=3.0, routes=["health"])
    url = f"{faulty.job_api_url}/echo/health"
    headers = {"Authorization": f"Bearer {faulty.api_key}"}
    with pytest.raises(requests.ReadTimeout):
        requests.get(url, headers=headers, timeout=(5, 0.5))
    assert faulty.faults.counts_by_route["health"] == {"requests": 1, "slow": 1}
    faulty.faults.clear()
    assert requests.get(url, headers=headers, timeout=30).status_code == 200


def test_faults_repeat_exactly_with_the_same_seed(faulty: LocalEndpoint) -> None:
    url = f"{faulty.job_api_url}/echo/health"
    headers = {"Authorization": f"Bearer {faulty.api_key}"}

    def outcomes() -> list[str]:
        seen = []
        for _ in range(40):
            try:
                seen.append(str(requests.get(url, headers=headers, timeout=30).status_code))
            except requests.ConnectionError:
                seen.append("dropped")
        return seen

    faulty.faults.set(drop=0.2, error_500=0.2, rate_429=0.2, routes=["health"], seed=7)
    first = outcomes()
    faulty.faults.set(drop=0.2, error_500=0.2, rate_429=0.2, routes=["health"], seed=7)
    second = outcomes()
    assert first == second
    assert {"200", "500", "429", "dropped"} <= set(first)
    counts = faulty.faults.counts_by_route["health"]
    assert counts["requests"] == 80
    assert counts["error_500"] == 2 * first.count("500")
    assert counts["rate_429"] == 2 * first.count("429")
    assert counts["drop_before"] + counts["drop_after"] == 2 * first.count("dropped")


def test_faults_can_be_given_at_construction() -> None:
    server = LocalEndpoint(default_endpoints=False, faults=Faults(error_500=1.0, routes=["health"], seed=3))
    assert server.faults.active and set(server.faults.rules) == {"health"}
