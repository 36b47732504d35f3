"""The runpod SDK's own client (`runpod.Endpoint`) works against the local endpoint unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from local_helpers import Api, wait_until

from rp_notebook.local import LocalEndpoint

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def runpod_sdk(server: LocalEndpoint, monkeypatch: pytest.MonkeyPatch) -> Any:
    runpod = pytest.importorskip("runpod")
    monkeypatch.setattr(runpod, "api_key", server.api_key)
    monkeypatch.setattr(runpod, "endpoint_url_base", server.job_api_url)
    return runpod


def test_runpod_sdk_endpoint_run_output_health_and_purge(runpod_sdk: Any, api: Api) -> None:
    endpoint = runpod_sdk.Endpoint("echo")
    job = endpoint.run({"input": {"via": "sdk"}})
    assert job.output(timeout=60)["echo"] == {"via": "sdk"}
    assert job.status() == "COMPLETED"
    assert endpoint.run_sync({"input": {"n": 2}}, timeout=60)["echo"] == {"n": 2}

    health = endpoint.health()
    assert health["workers"]["idle"] + health["workers"]["running"] == 1

    gate = api.gate()
    blocker = endpoint.run({"input": {"wait_for_file": str(gate)}})
    wait_until(lambda: blocker.status() == "IN_PROGRESS")
    queued = endpoint.run({"input": {"never": "runs"}})
    assert endpoint.purge_queue() == {"removed": 1, "status": "completed"}
    assert queued.status() == "CANCELLED"
    api.release(gate)
    assert blocker.output(timeout=60)["echo"] == {"wait_for_file": str(gate)}


def test_runpod_sdk_stream_and_cancel(runpod_sdk: Any, api: Api) -> None:
    assert list(runpod_sdk.Endpoint("stream").run({"input": {"chunks": ["x", "y"]}}).stream()) == ["x", "y"]
    job = runpod_sdk.Endpoint("echo").run({"input": {"wait_for_file": str(api.gate())}})
    wait_until(lambda: job.status() == "IN_PROGRESS")
    assert job.cancel() == {"id": job.job_id, "status": "CANCELLED"}
    assert job.status() == "CANCELLED"


def test_runpod_sdk_reports_a_wrong_key(runpod_sdk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runpod_sdk, "api_key", "wrong")
    with pytest.raises(RuntimeError, match="401"):
        runpod_sdk.Endpoint("echo").run({"input": {}})
