"""`workers_min` on the local endpoint: Runpod's "active workers", kept running with no job at all.

Everything runs for real: the endpoint over HTTP, unmodified runpod SDK workers (the echo fixture),
the management APIs over HTTP. No test sleeps a fixed time or asserts one: "the idle timeout has
passed" is observed on a `clock` endpoint with the same idle timeout, whose worker becomes idle
after the worker under test did and must be retired (its process gone) before the test looks again.
All endpoints live on one module server and are added after it started, so they are created on its
event loop, which is where an endpoint starts its minimum workers by itself.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import eventually
from local_helpers import WORKERS, Api
from management_helpers import Management, unique

from rp_notebook.local import EndpointConfig, LocalEndpoint, WorkerStatus
from rp_notebook.local._state import MAX_START_FAILURES

pytestmark = pytest.mark.timeout(120)

ECHO = WORKERS / "echo"
IDLE_S = 0.5
NO_WORKERS = {"idle": 0, "running": 0, "initializing": 0, "unhealthy": 0}


@pytest.fixture(scope="module")
def server() -> Iterator[LocalEndpoint]:
    srv = LocalEndpoint(port=0, default_endpoints=False)
    srv.start()
    srv.add_endpoint(EndpointConfig(id="clock", worker_dir=ECHO, idle_timeout_s=IDLE_S))
    yield srv
    srv.stop()


@pytest.fixture
def api(server: LocalEndpoint, tmp_path: Path) -> Iterator[Api]:
    client = Api(server, tmp_path)
    yield client
    client.cleanup()


def _add(server: LocalEndpoint, **settings: object) -> str:
    endpoint_id = unique("min").replace("-", "_")
    server.add_endpoint(EndpointConfig(id=endpoint_id, worker_dir=ECHO, **settings))  # type: ignore[arg-type]
    return endpoint_id


def _alive(server: LocalEndpoint, endpoint_id: str) -> list[str]:
    return [w.id for w in server.workers(endpoint_id)]


def _exited(server: LocalEndpoint, endpoint_id: str) -> list[str]:
    return [w.id for w in server.workers(endpoint_id, include_exited=True) if w.status is WorkerStatus.EXITED]


def _idle_worker(server: LocalEndpoint, api: Api, endpoint_id: str) -> str:
    """Wait until the endpoint has exactly one worker, idle, and return its id."""
    eventually(lambda: api.get(f"{endpoint_id}/health").json()["workers"] == {**NO_WORKERS, "idle": 1})
    (worker_id,) = _alive(server, endpoint_id)
    return worker_id


def _let_an_idle_timeout_pass(server: LocalEndpoint, api: Api) -> None:
    """Return once a worker that became idle now has been retired by the IDLE_S idle timeout."""
    assert api.wait_final("clock", api.run("clock", {"tick": True}))["status"] == "COMPLETED"
    eventually(lambda: not _alive(server, "clock"))


def test_workers_min_must_be_between_zero_and_workers_max() -> None:
    for bad in (-1, 3, True, 1.0):
        with pytest.raises(ValueError, match=r"workers_min must be an int in 0\.\.workers_max \(2\)"):
            EndpointConfig(id="bad", worker_dir=ECHO, workers_max=2, workers_min=bad)  # type: ignore[arg-type]
    assert EndpointConfig(id="ok", worker_dir=ECHO, workers_max=2, workers_min=2).workers_min == 2
    assert EndpointConfig(id="ok", worker_dir=ECHO).workers_min == 0  # scale to zero by default


def test_a_min_worker_starts_with_no_job_outlives_the_idle_timeout_and_runs_jobs_warm(
    server: LocalEndpoint, api: Api
) -> None:
    endpoint_id = _add(server, workers_min=1, idle_timeout_s=IDLE_S)
    worker_id = _idle_worker(server, api, endpoint_id)
    assert api.get(f"{endpoint_id}/health").json()["jobs"]["inQueue"] == 0  # no job asked for it
    _let_an_idle_timeout_pass(server, api)
    assert _alive(server, endpoint_id) == [worker_id]  # not retired, not replaced
    assert _exited(server, endpoint_id) == []
    body = api.wait_final(endpoint_id, api.run(endpoint_id, {"warm": True}))
    assert body["status"] == "COMPLETED" and body["workerId"] == worker_id
    assert [w.id for w in server.workers(endpoint_id, include_exited=True)] == [worker_id]  # no cold start


def test_workers_above_the_min_stop_after_the_idle_timeout_down_to_the_min(
    server: LocalEndpoint, api: Api
) -> None:
    endpoint_id = _add(server, workers_min=1, workers_max=2, idle_timeout_s=IDLE_S)
    first = _idle_worker(server, api, endpoint_id)
    held = api.run(endpoint_id, {"wait_for_file": str(gate := api.gate())})
    assert api.wait_status(endpoint_id, held, "IN_PROGRESS")["workerId"] == first
    extra = api.wait_final(endpoint_id, api.run(endpoint_id, {"needs": "a second worker"}))
    assert extra["status"] == "COMPLETED" and extra["workerId"] != first
    api.release(gate)
    assert api.wait_final(endpoint_id, held)["status"] == "COMPLETED"
    eventually(lambda: len(_exited(server, endpoint_id)) == 1)  # one of the two went at its idle timeout
    (kept,) = _alive(server, endpoint_id)
    _let_an_idle_timeout_pass(server, api)  # the kept one's own timer has fired by now too
    assert _alive(server, endpoint_id) == [kept]
    assert api.get(f"{endpoint_id}/health").json()["workers"] == {**NO_WORKERS, "idle": 1}


def test_a_killed_min_worker_is_replaced(server: LocalEndpoint, api: Api) -> None:
    endpoint_id = _add(server, workers_min=1, idle_timeout_s=IDLE_S)
    worker_id = _idle_worker(server, api, endpoint_id)
    (worker,) = server.workers(endpoint_id)
    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    eventually(lambda: _exited(server, endpoint_id) == [worker_id])
    replacement = _idle_worker(server, api, endpoint_id)
    assert replacement != worker_id
    assert api.get(f"{endpoint_id}/health").json()["jobs"]["failed"] == 0  # it held no job


def test_a_min_worker_that_cannot_start_is_tried_max_start_failures_times_then_left_alone(
    server: LocalEndpoint, api: Api
) -> None:
    endpoint_id = unique("min_broken").replace("-", "_")
    server.add_endpoint(EndpointConfig(id=endpoint_id, worker_dir=WORKERS / "broken", workers_min=1))
    eventually(lambda: len(_exited(server, endpoint_id)) == MAX_START_FAILURES)
    # A further start would happen in the same loop step that recorded the last exit: none did.
    assert _alive(server, endpoint_id) == []
    _let_an_idle_timeout_pass(server, api)
    assert _alive(server, endpoint_id) == [] and len(_exited(server, endpoint_id)) == MAX_START_FAILURES


def test_workers_min_from_the_management_api_keeps_a_worker_until_lowered_to_zero(
    server: LocalEndpoint, api: Api
) -> None:
    mgmt = Management(server)
    name = unique("active")
    template = mgmt.save_template(name=name, imageName=f"local:{ECHO}")
    created = mgmt.save_endpoint(
        name=name, templateId=template["id"], workersMin=1, workersMax=1, idleTimeout=1
    )
    endpoint_id = created["id"]
    assert created["workersMin"] == 1
    assert server.endpoint_config(endpoint_id).workers_min == 1  # GraphQL's workersMin reaches the worker
    worker_id = _idle_worker(server, api, endpoint_id)
    lowered = mgmt.rest("PATCH", f"serverless/{endpoint_id}", {"workers": {"min": 0}})  # REST v2 too
    assert lowered.status_code == 200, lowered.text
    assert server.endpoint_config(endpoint_id).workers_min == 0
    eventually(lambda: api.get(f"{endpoint_id}/health").json()["workers"] == NO_WORKERS)  # scaled to zero
    eventually(lambda: _exited(server, endpoint_id) == [worker_id])
    assert mgmt.rest("PATCH", f"serverless/{endpoint_id}", {"workers": {"max": 0}}).status_code == 200
    assert mgmt.rest("DELETE", f"serverless/{endpoint_id}").status_code == 204


def test_endpoints_given_before_the_server_starts_get_their_min_workers_when_it_does(tmp_path: Path) -> None:
    config = EndpointConfig(id="warm", worker_dir=ECHO, workers_min=1)
    srv = LocalEndpoint(port=0, default_endpoints=False, endpoints=[config])
    srv.start()
    try:
        client = Api(srv, tmp_path)
        eventually(lambda: client.get("warm/health").json()["workers"] == {**NO_WORKERS, "idle": 1})
        client.cleanup()
    finally:
        srv.stop()
