"""The local endpoint's REST v2 management API, live scaling, and how images become worker folders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from local_helpers import WORKERS, Api, wait_until
from management_helpers import Management, unique

from rp_notebook.local import EndpointConfig, LocalEndpoint, WorkerStatus, find_workers_dir
from rp_notebook.local._management import ManagementError, resolve_image

pytestmark = pytest.mark.timeout(120)

ECHO_IMAGE = f"local:{WORKERS / 'echo'}"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalEndpoint]:
    """Overrides the package's session server: these tests add and delete endpoints."""
    srv = LocalEndpoint(port=0, default_endpoints=False)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def mgmt(server: LocalEndpoint) -> Management:
    return Management(server)


def create_echo_endpoint(mgmt: Management, name: str, **settings: object) -> tuple[dict, dict]:
    template = mgmt.rest("POST", "templates", {"name": name, "image": ECHO_IMAGE, "env": {"FLAVOR": "rest"}})
    assert template.status_code == 201, template.text
    body = {
        "name": name,
        "type": "QUEUE",
        "templateId": template.json()["id"],
        "gpu": {"pools": ["ADA_24", "AMPERE_24"], "excludedTypes": ["NVIDIA L4"], "count": 1},
        "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
        "workers": {"min": 0, "max": 1, "idleTimeout": 30},
        "flashboot": "FLASHBOOT",
        "timeout": 60_000,
        **settings,
    }
    endpoint = mgmt.rest("POST", "serverless", body)
    assert endpoint.status_code == 201, endpoint.text
    return template.json(), endpoint.json()


def test_rest_v2_lifecycle_runs_a_job_and_a_deleted_endpoint_answers_404(
    mgmt: Management, server: LocalEndpoint, api: Api
) -> None:
    name = unique("rest")
    template, endpoint = create_echo_endpoint(mgmt, name)
    assert template == {
        "id": template["id"],
        "name": name,
        "image": ECHO_IMAGE,
        "disk": 10,
        "env": {"FLAVOR": "rest"},
        "args": "",
        "ports": [],
        "readme": "",
        "isServerless": True,
    }
    endpoint_id = endpoint["id"]
    assert endpoint == {
        "id": endpoint_id,
        "name": name,
        "type": "QUEUE",
        "templateId": template["id"],
        "gpu": {
            "pools": ["ADA_24", "AMPERE_24"],
            "excludedTypes": ["NVIDIA L4"],
            "count": 1,
            "allowedCudaVersions": [],
        },
        "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
        "workers": {"min": 0, "max": 1, "idleTimeout": 30},
        "flashboot": "FLASHBOOT",
        "timeout": 60_000,
        "createdAt": endpoint["createdAt"],
    }
    assert mgmt.rest("GET", f"serverless/{endpoint_id}").json() == endpoint
    assert endpoint in mgmt.rest("GET", "serverless").json()["endpoints"]
    assert template in mgmt.rest("GET", "templates").json()["templates"]
    assert mgmt.rest("GET", f"templates/{template['id']}").json() == template
    assert template in server.templates() and endpoint in server.managed_endpoints()
    # One account: GraphQL sees what REST made, in its own shapes.
    seen = mgmt.data(f'{{ endpoint(id: "{endpoint_id}") {{ gpuIds executionTimeoutMs flashBootType }} }}')
    assert seen["endpoint"] == {
        "gpuIds": "ADA_24,AMPERE_24,-NVIDIA L4",
        "executionTimeoutMs": 60_000,
        "flashBootType": "FLASHBOOT",
    }

    patched = mgmt.rest(
        "PATCH", f"serverless/{endpoint_id}", {"workers": {"max": 2}, "timeout": 30_000}
    ).json()
    assert patched["workers"] == {"min": 0, "max": 2, "idleTimeout": 30}  # keys not sent are kept
    assert patched["gpu"]["excludedTypes"] == ["NVIDIA L4"]
    config = server.endpoint_config(endpoint_id)
    assert (config.workers_max, config.idle_timeout_s, config.execution_timeout_ms) == (2, 30, 30_000)
    done = api.post(f"{endpoint_id}/runsync", json={"input": {"env": ["FLAVOR"]}}).json()
    assert done["status"] == "COMPLETED" and done["output"]["env"] == {"FLAVOR": "rest"}

    refused = mgmt.rest("DELETE", f"serverless/{endpoint_id}")
    assert refused.status_code == 409 and "scale it to 0 workers" in refused.json()["detail"]
    assert (
        mgmt.rest("PATCH", f"serverless/{endpoint_id}", {"workers": {"max": 0}}).json()["workers"]["max"] == 0
    )
    assert mgmt.rest("DELETE", f"serverless/{endpoint_id}").status_code == 204
    assert api.post(f"{endpoint_id}/run", json={"input": {}}).status_code == 404
    assert api.get(f"{endpoint_id}/status/{done['id']}").status_code == 404
    assert mgmt.rest("GET", f"serverless/{endpoint_id}").status_code == 404
    assert mgmt.rest("DELETE", f"templates/{template['id']}").status_code == 204
    missing = mgmt.rest("GET", f"templates/{template['id']}")
    assert missing.status_code == 404 and missing.json()["detail"] == f'template "{template["id"]}" not found'


def test_lowering_workers_max_stops_idle_workers_but_lets_running_jobs_finish(
    mgmt: Management, server: LocalEndpoint, api: Api
) -> None:
    name = unique("scale-down")
    _, endpoint = create_echo_endpoint(mgmt, name, workers={"max": 2, "idleTimeout": 60})
    endpoint_id = endpoint["id"]
    gates = [api.gate(), api.gate()]
    jobs = [api.run(endpoint_id, {"wait_for_file": str(gate)}) for gate in gates]
    for job_id in jobs:
        api.wait_status(endpoint_id, job_id, "IN_PROGRESS")

    mgmt.rest("PATCH", f"serverless/{endpoint_id}", {"workers": {"max": 1}})
    assert [w.status for w in server.workers(endpoint_id)] == [WorkerStatus.RUNNING] * 2  # nobody killed
    api.release(gates[0])
    first = api.wait_final(endpoint_id, jobs[0])
    assert first["status"] == "COMPLETED"
    wait_until(
        lambda: [w.id for w in server.workers(endpoint_id)] == [api.status(endpoint_id, jobs[1])["workerId"]]
    )
    api.release(gates[1])
    assert api.wait_final(endpoint_id, jobs[1])["status"] == "COMPLETED"
    assert [w.status for w in server.workers(endpoint_id)] == [WorkerStatus.IDLE]  # within the new max

    mgmt.rest("PATCH", f"serverless/{endpoint_id}", {"workers": {"max": 0}})
    wait_until(lambda: not server.workers(endpoint_id))  # scaled to zero: the idle worker is stopped
    assert mgmt.rest("DELETE", f"serverless/{endpoint_id}").status_code == 204


def test_patch_with_pools_alone_clears_the_excluded_gpu_types(mgmt: Management) -> None:
    _, endpoint = create_echo_endpoint(mgmt, unique("pools"))
    patched = mgmt.rest("PATCH", f"serverless/{endpoint['id']}", {"gpu": {"pools": ["ampere_48"]}}).json()
    assert patched["gpu"] == {
        "pools": ["AMPERE_48"],
        "excludedTypes": [],
        "count": 1,
        "allowedCudaVersions": [],
    }
    bad = mgmt.rest("PATCH", f"serverless/{endpoint['id']}", {"workers": {"min": 2}})
    assert bad.status_code == 400
    assert bad.json()["errors"] == [
        {"field": "workers.min", "message": "workers.min (2) must not exceed workers.max (1)"}
    ]
    unknown = mgmt.rest("PATCH", "serverless/nope", {"workers": {"max": 0}})
    assert unknown.status_code == 404 and unknown.json()["detail"] == 'endpoint "nope" not found'
    mgmt.rest("PATCH", f"serverless/{endpoint['id']}", {"workers": {"max": 0}})
    assert mgmt.rest("DELETE", f"serverless/{endpoint['id']}").status_code == 204


def test_rest_v2_refuses_bad_bodies_naming_the_field(mgmt: Management) -> None:
    cases = [
        ("templates", {"image": "x"}, "name", "name is required"),
        (
            "templates",
            {"name": unique("t"), "image": "x", "env": {"A": 1}},
            "env",
            "env must be an object of string values, got {'A': 1}",
        ),
        ("serverless", {"name": "x", "gpu": {"pools": ["ADA_24"]}}, "templateId", "templateId is required"),
        (
            "serverless",
            {"name": "x", "templateId": "nope", "gpu": {"pools": ["ADA_24"]}, "workers": {"max": -1}},
            "workers.max",
            "workers.max must be at least 0, got -1",
        ),
        (
            "serverless",
            {"name": "x", "templateId": "t", "gpu": {"pools": ["ADA_24"]}, "flashboot": "ON"},
            "flashboot",
            "flashboot must be OFF or FLASHBOOT or PRIORITY_FLASHBOOT, got 'ON'",
        ),
    ]
    for path, body, field, message in cases:
        response = mgmt.rest("POST", path, body)
        assert response.status_code == 400, response.text
        assert response.json()["errors"] == [{"field": field, "message": message}]
    not_json = mgmt.session.post(f"{mgmt.server.url}/v2/serverless", data="{", timeout=10)
    assert not_json.status_code == 400 and not_json.json()["detail"] == "the request body is not valid JSON"


def test_rest_v2_gpu_catalog_names_each_gpu_types_pool(mgmt: Management) -> None:
    gpus = {gpu["id"]: gpu for gpu in mgmt.rest("GET", "catalog/gpus").json()["gpus"]}
    assert gpus["NVIDIA GeForce RTX 4090"] == {
        "id": "NVIDIA GeForce RTX 4090",
        "displayName": "RTX 4090",
        "manufacturer": "Nvidia",
        "memoryInGb": 24,
        "pool": "ADA_24",
        "securePrice": None,
        "communityPrice": None,
    }
    assert gpus["NVIDIA H100 NVL"]["memoryInGb"] == 94 and gpus["NVIDIA L4"]["pool"] == "AMPERE_24"


def test_endpoint_config_reserves_the_management_paths_and_allows_zero_workers() -> None:
    for reserved in ("serverless", "templates", "catalog"):
        with pytest.raises(ValueError, match="reserved"):
            EndpointConfig(id=reserved, worker_dir=WORKERS / "echo")
    assert EndpointConfig(id="none", worker_dir=WORKERS / "echo", workers_max=0).workers_max == 0
    with pytest.raises(ValueError, match="workers_max must be an int >= 0"):
        EndpointConfig(id="neg", worker_dir=WORKERS / "echo", workers_max=-1)


def test_images_resolve_to_bundled_workers_on_their_cpu_engines_or_to_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workers_dir = find_workers_dir()
    assert workers_dir is not None
    tts = resolve_image("ghcr.io/rp-notebook/rp-notebook-tts:0.1.0", {"TTS_ENGINE": "chatterbox", "X": "1"})
    assert (tts.worker_dir, tts.env, tts.bundled) == (
        workers_dir / "chatterbox_tts",
        {"TTS_ENGINE": "piper", "X": "1"},
        "rp-notebook-tts",
    )
    layers = resolve_image("registry.example.com:5000/team/rp-notebook-layers@sha256:abc", {})
    assert layers.worker_dir == workers_dir / "qwen_image_layered" and layers.env == {
        "LAYERS_ENGINE": "colorsplit"
    }
    for folder_name in ("chatterbox_tts", "chatterbox-tts:latest", "qwen-image-layered"):
        assert resolve_image(folder_name, {}, cwd=tmp_path).bundled is not None

    own = tmp_path / "my_worker"
    own.mkdir()
    (own / "handler.py").write_text("")
    monkeypatch.setenv("HOME", str(tmp_path))
    for image in (f"local:{own}", str(own), "~/my_worker", "local:~/my_worker"):
        resolved = resolve_image(image, {"TTS_ENGINE": "mine"})
        assert (resolved.worker_dir.resolve(), resolved.env, resolved.bundled) == (
            own.resolve(),
            {"TTS_ENGINE": "mine"},
            None,
        )
    assert resolve_image("my_worker", {}, cwd=tmp_path).worker_dir == own  # relative to the server's cwd

    with pytest.raises(ManagementError, match=r"local:/nowhere\": /nowhere is not a folder"):
        resolve_image("local:/nowhere", {})
    with pytest.raises(ManagementError, match="names no worker folder on the local endpoint"):
        resolve_image("runpod/worker-comfyui:5.0.0", {}, cwd=tmp_path)


def test_endpoints_added_and_removed_in_python_come_and_go_in_the_listing(
    mgmt: Management, server: LocalEndpoint, api: Api
) -> None:
    server.add_endpoint(EndpointConfig(id="python-added", worker_dir=WORKERS / "echo", idle_timeout_s=0.5))
    listed = {e["id"]: e for e in mgmt.rest("GET", "serverless").json()["endpoints"]}
    assert listed["python-added"]["templateId"] == "local-python-added"
    assert listed["python-added"]["workers"] == {"min": 0, "max": 1, "idleTimeout": 1}
    job_id = api.run("python-added", {"wait_for_file": str(api.gate())})
    server.remove_endpoint("python-added")  # no scale-to-zero rule in Python: its queued job is cancelled
    assert api.get(f"python-added/status/{job_id}").status_code == 404
    assert all(e["id"] != "python-added" for e in server.managed_endpoints())
    assert mgmt.rest("DELETE", "templates/local-python-added").status_code == 204  # no longer in use
