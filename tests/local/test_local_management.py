"""The local endpoint's GraphQL management API: the runpod SDK's own calls, validation, the rules.

One server for the module (real HTTP, real worker processes). Every test names its templates
uniquely, and deletes the endpoints whose workers it started, so the tests stay independent.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from importlib import resources
from typing import Any

import psutil
import pytest
import requests
from graphql import build_schema, parse, validate
from local_helpers import WORKERS, Api, wait_until
from management_helpers import SAVE_ENDPOINT, Management, unique

from rp_notebook.local import EndpointConfig, LocalEndpoint
from rp_notebook.provisioning import GPU_POOLS

pytestmark = pytest.mark.timeout(120)

RTX_4090 = "NVIDIA GeForce RTX 4090"
TTS_IMAGE = "ghcr.io/rp-notebook/rp-notebook-tts:0.1.0"
ECHO_IMAGE = f"local:{WORKERS / 'echo'}"
SCALE = "mutation S($input: EndpointInput!) { saveEndpoint(input: $input) { id workersMin workersMax } }"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalEndpoint]:
    """Overrides the package's session server: these tests add and delete endpoints."""
    endpoints = [EndpointConfig(id="echo", worker_dir=WORKERS / "echo", workers_max=2)]
    srv = LocalEndpoint(port=0, endpoints=endpoints, gpu_prices={RTX_4090: 0.69})
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def mgmt(server: LocalEndpoint) -> Management:
    return Management(server)


@pytest.fixture
def runpod_sdk(server: LocalEndpoint, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The runpod SDK's management functions pointed at the local server, as in production."""
    runpod = pytest.importorskip("runpod")
    monkeypatch.setenv("RUNPOD_API_BASE_URL", server.management_url)
    monkeypatch.setattr(runpod, "api_key", server.api_key)
    return runpod


def delete_endpoint(mgmt: Management, endpoint_id: str, name: str, template_id: str) -> None:
    """Runpod's way: scale to zero, then delete."""
    scale = {"id": endpoint_id, "name": name, "gpuIds": "ADA_24", "workersMin": 0, "workersMax": 0}
    scale["templateId"] = template_id
    mgmt.data(SCALE, {"input": scale})
    assert mgmt.data(f'mutation {{ deleteEndpoint(id: "{endpoint_id}") }}') == {"deleteEndpoint": None}


def test_runpod_sdk_deploys_a_bundled_image_that_runs_a_real_tts_job(
    runpod_sdk: Any, server: LocalEndpoint, mgmt: Management, api: Api
) -> None:
    name = unique("sdk-tts")
    template = runpod_sdk.create_template(
        name, image_name=TTS_IMAGE, is_serverless=True, env={"TTS_ENGINE": "chatterbox", "GREETING": "hi"}
    )
    assert template["name"] == name and template["imageName"] == TTS_IMAGE and template["isServerless"]
    assert {"key": "GREETING", "value": "hi"} in template["env"]
    endpoint = runpod_sdk.create_endpoint(name, template["id"], gpu_ids="AMPERE_16", workers_max=1)
    assert len(endpoint["id"]) == 14 and endpoint["id"].isalnum() and endpoint["id"].islower()
    assert (endpoint["gpuIds"], endpoint["workersMax"], endpoint["idleTimeout"]) == ("AMPERE_16", 1, 5)

    listed = {e["id"]: e for e in runpod_sdk.get_endpoints()}
    assert listed[endpoint["id"]]["templateId"] == template["id"]
    assert listed["local-tts"]["gpuIds"] == ""  # the default endpoints are listed too
    gpus = runpod_sdk.get_gpus()
    assert {g["id"] for g in gpus} == {gpu for pool in GPU_POOLS.values() for gpu in pool.gpu_types}
    rtx = runpod_sdk.get_gpu(RTX_4090)
    assert (rtx["displayName"], rtx["memoryInGb"], rtx["manufacturer"]) == ("RTX 4090", 24, "Nvidia")
    assert rtx["securePrice"] == 0.69 and rtx["lowestPrice"]["uninterruptablePrice"] == 0.69
    assert runpod_sdk.get_gpu("NVIDIA A40")["securePrice"] is None  # no invented prices

    # The bundled image runs its worker folder on the CPU engine; the template's other env stays.
    config = server.endpoint_config(endpoint["id"])
    assert config.worker_dir.name == "chatterbox_tts"
    assert config.env == {"TTS_ENGINE": "piper", "GREETING": "hi"}
    job = api.post(f"{endpoint['id']}/runsync?wait=90000", json={"input": {"text": "Hello there."}})
    body = job.json()
    assert body["status"] == "COMPLETED", body
    whole = body["output"][-1]  # a streaming worker: the aggregate ends with the whole file
    assert whole["final"] is True and whole["duration"] > 0.3
    assert len(base64.b64decode(whole["audio"])) > 1000

    pids = [w.pid for w in server.workers(endpoint["id"])]
    delete_endpoint(mgmt, endpoint["id"], name, template["id"])
    assert api.post(f"{endpoint['id']}/run", json={"input": {}}).status_code == 404
    assert endpoint["id"] not in server.endpoint_ids
    wait_until(lambda: all(not psutil.pid_exists(pid) for pid in pids))  # its worker was stopped
    assert mgmt.data(f'mutation {{ deleteTemplate(templateName: "{name}") }}') == {"deleteTemplate": None}


def test_the_runpod_sdk_documents_validate_against_the_served_schema() -> None:
    from runpod.api.mutations import endpoints, templates
    from runpod.api.queries import endpoints as endpoint_queries
    from runpod.api.queries import gpus, user

    schema = build_schema(resources.files("rp_notebook.local").joinpath("runpod_schema.graphql").read_text())
    documents = [
        templates.generate_pod_template(
            "n", "img", env={"A": "b"}, is_serverless=True, volume_mount_path="/v"
        ),
        endpoints.generate_endpoint_mutation("n", "t", flashboot=True, allowed_cuda_versions="12.4,12.5"),
        endpoints.update_endpoint_template_mutation("e", "t"),
        endpoint_queries.QUERY_ENDPOINT,
        gpus.QUERY_GPU_TYPES,
        gpus.generate_gpu_query(RTX_4090, 2),
        user.QUERY_USER,
    ]
    for document in documents:
        assert validate(schema, parse(document)) == [], document


def test_unknown_fields_and_wrong_argument_types_fail_graphql_validation_with_400(mgmt: Management) -> None:
    response = mgmt.graphql("query { myself { id secretField } }")
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["message"] == "Cannot query field 'secretField' on type 'User'."
    assert error["locations"] == [{"line": 1, "column": 21}]

    response = mgmt.graphql(
        'mutation { saveEndpoint(input: {name: "x", gpuIds: "ADA_24", workersMax: "3"}) { id } }'
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == 'Int cannot represent non-integer value: "3"'

    response = mgmt.graphql(
        SAVE_ENDPOINT, {"input": {"name": "x", "gpuIds": "ADA_24", "workersMax": "three"}}
    )
    assert response.status_code == 400  # variables that do not coerce: nothing ran
    assert "workersMax" in response.json()["errors"][0]["message"]
    assert mgmt.graphql("query { myself { id }").status_code == 400  # a syntax error
    no_query = mgmt.session.post(f"{mgmt.server.url}/graphql", json={"variables": {}}, timeout=10)
    assert no_query.status_code == 400 and "query" in no_query.json()["errors"][0]["message"]


def test_template_names_are_unique_across_graphql_and_rest(mgmt: Management) -> None:
    name = unique("dup")
    first = mgmt.save_template(name=name, imageName=ECHO_IMAGE)
    message = mgmt.error(
        f'mutation {{ saveTemplate(input: {{name: "{name}", imageName: "x", containerDiskInGb: 5, '
        "volumeInGb: 0, env: []}) { id } }"
    )
    assert message == f'Template name "{name}" is already taken.'
    response = mgmt.rest("POST", "templates", {"name": name, "image": "other"})
    assert response.status_code == 409
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["detail"] == message and problem["status"] == 409 and problem["title"] == "Conflict"
    assert problem["errors"] == [{"field": "name", "message": message}]
    # saveTemplate with an id updates, and may keep its own name.
    updated = mgmt.save_template(id=first["id"], name=name, imageName=f"{ECHO_IMAGE}/")
    assert updated == {"id": first["id"], "name": name, "imageName": f"{ECHO_IMAGE}/"}
    assert mgmt.rest("DELETE", f"templates/{first['id']}").status_code == 204


def test_templates_in_use_and_endpoints_with_workers_cannot_be_deleted(mgmt: Management) -> None:
    name = unique("in-use")
    template = mgmt.save_template(name=name, imageName=ECHO_IMAGE)
    endpoint = mgmt.save_endpoint(name=name, templateId=template["id"], workersMin=0, workersMax=2)

    message = mgmt.error(f'mutation {{ deleteTemplate(templateName: "{name}") }}')
    assert message == (
        f'template "{name}" is in use by endpoint(s) {endpoint["id"]} ("{name}"); delete them or point them '
        "at another template first"
    )
    assert mgmt.rest("DELETE", f"templates/{template['id']}").status_code == 409
    message = mgmt.error(f'mutation {{ deleteEndpoint(id: "{endpoint["id"]}") }}')
    assert message == (
        f'endpoint "{endpoint["id"]}" has workersMin 0 and workersMax 2; scale it to 0 workers '
        "(workersMin 0, workersMax 0) before deleting it"
    )
    assert mgmt.rest("DELETE", f"serverless/{endpoint['id']}").json()["detail"] == message

    delete_endpoint(mgmt, endpoint["id"], name, template["id"])
    assert mgmt.data(f'mutation {{ deleteTemplate(templateName: "{name}") }}') == {"deleteTemplate": None}
    assert (
        mgmt.error(f'mutation {{ deleteTemplate(templateName: "{name}") }}') == f'template "{name}" not found'
    )
    assert mgmt.error('mutation { deleteEndpoint(id: "nope") }') == 'endpoint "nope" not found'
    assert mgmt.data('{ endpoint(id: "nope") { id } podTemplate(id: "nope") { id } }') == {
        "endpoint": None,
        "podTemplate": None,
    }


def test_endpoint_input_is_checked_against_pools_templates_and_images(mgmt: Management) -> None:
    template = mgmt.save_template(name=unique("checks"), imageName=ECHO_IMAGE)
    bad_pool = mgmt.error(
        SAVE_ENDPOINT, {"input": {"name": "x", "templateId": template["id"], "gpuIds": "AMPERE_12"}}
    )
    assert bad_pool.startswith("gpuIds: unknown GPU pool 'AMPERE_12'; pools: AMPERE_16, AMPERE_24,")
    bad_type = mgmt.error(
        SAVE_ENDPOINT, {"input": {"name": "x", "templateId": template["id"], "gpuIds": "ADA_24,-RTX 9"}}
    )
    assert bad_type == "gpuIds: cannot exclude 'RTX 9': not a GPU type of any serverless pool"
    no_template = mgmt.error(
        SAVE_ENDPOINT, {"input": {"name": "x", "templateId": "nope", "gpuIds": "ADA_24"}}
    )
    assert no_template == 'template "nope" not found (create it first)'
    both = {"name": "x", "templateId": template["id"], "gpuIds": "ADA_24"}
    both["template"] = {
        "name": unique("inline"),
        "imageName": ECHO_IMAGE,
        "containerDiskInGb": 5,
        "volumeInGb": 0,
        "env": [],
    }
    assert mgmt.error(SAVE_ENDPOINT, {"input": both}) == "give either templateId or template, not both"
    too_many = {
        "name": "x",
        "templateId": template["id"],
        "gpuIds": "ADA_24",
        "workersMin": 2,
        "workersMax": 1,
    }
    assert mgmt.error(SAVE_ENDPOINT, {"input": too_many}) == "workersMin (2) must not exceed workersMax (1)"

    nowhere = mgmt.save_template(name=unique("nowhere"), imageName="docker.io/someone/sdxl-worker:1.0")
    message = mgmt.error(
        SAVE_ENDPOINT, {"input": {"name": "x", "templateId": nowhere["id"], "gpuIds": "ADA_24"}}
    )
    assert message == (
        'image "docker.io/someone/sdxl-worker:1.0" names no worker folder on the local endpoint; use an image '
        "of a bundled worker (rp-notebook-tts, rp-notebook-layers) or a folder path (local:/path/to/worker)"
    )
    body = {"name": "x", "templateId": template["id"], "gpu": {"pools": ["ADA_24", "AMPERE_12"]}}
    problem = mgmt.rest("POST", "serverless", body).json()
    assert problem["status"] == 400 and problem["errors"][0]["field"] == "gpu.pools"
    assert "unknown GPU pool 'AMPERE_12'" in problem["detail"]
    problem = mgmt.rest(
        "POST", "serverless", {"name": "x", "templateId": template["id"], "gpu": {"pools": "ADA_24"}}
    )
    assert problem.json()["errors"] == [
        {"field": "gpu.pools", "message": "gpu.pools must be a list of strings, got 'ADA_24'"}
    ]
    assert all(e["templateId"] != template["id"] for e in mgmt.rest("GET", "serverless").json()["endpoints"])


def test_a_missing_or_wrong_key_is_401_on_both_apis(
    server: LocalEndpoint, mgmt: Management, runpod_sdk: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{server.management_url}/graphql"
    query = {"query": "{ myself { id } }"}
    assert requests.post(url, json=query, timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer wrong"}
    assert requests.post(url, json=query, headers=wrong, timeout=10).status_code == 401
    assert requests.post(f"{url}?api_key=wrong", json=query, timeout=10).status_code == 401
    by_query = requests.post(url, params={"api_key": server.api_key}, json=query, timeout=10)
    assert by_query.json() == {"data": {"myself": {"id": "user_local"}}}
    for path in ("serverless", "templates", "catalog/gpus"):
        response = requests.get(f"{server.management_url}/v2/{path}", headers=wrong, timeout=10)
        assert response.status_code == 401 and response.json()["status"] == 401
    monkeypatch.setattr(runpod_sdk, "api_key", "wrong")
    with pytest.raises(runpod_sdk.error.AuthenticationError):
        runpod_sdk.get_endpoints()


def test_endpoints_added_in_python_are_listed_with_a_synthetic_template(mgmt: Management) -> None:
    data = mgmt.data(
        "{ myself { endpoints { id name gpuIds workersMax template { id name imageName env { key value } } } } }"
    )
    listed = {e["id"]: e for e in data["myself"]["endpoints"]}
    assert listed["echo"] == {
        "id": "echo",
        "name": "echo",
        "gpuIds": "",
        "workersMax": 2,
        "template": {"id": "local-echo", "name": "echo", "imageName": ECHO_IMAGE, "env": []},
    }
    tts = listed["local-tts"]["template"]
    assert tts["imageName"].startswith("local:") and tts["env"] == [{"key": "TTS_ENGINE", "value": "piper"}]
    rest = {e["id"]: e for e in mgmt.rest("GET", "serverless").json()["endpoints"]}
    assert rest["echo"]["gpu"]["pools"] == [] and rest["echo"]["workers"]["max"] == 2


def test_an_endpoint_with_no_workers_keeps_jobs_in_queue_until_scaled_up(
    mgmt: Management, server: LocalEndpoint, api: Api
) -> None:
    name = unique("zero")
    template = mgmt.save_template(name=name, imageName=ECHO_IMAGE)
    endpoint = mgmt.save_endpoint(name=name, templateId=template["id"], workersMax=0)
    job_id = api.run(endpoint["id"], {"n": 1})
    held = api.post(f"{endpoint['id']}/runsync?wait=1000", json={"input": {"n": 2}}).json()
    assert held["status"] == "IN_QUEUE"  # waited a second: nothing ran
    assert api.status(endpoint["id"], job_id)["status"] == "IN_QUEUE"
    assert server.workers(endpoint["id"]) == []

    scaled = mgmt.data(
        SCALE, {"input": {"id": endpoint["id"], "name": name, "gpuIds": "ADA_24", "workersMax": 1}}
    )
    assert (
        scaled["saveEndpoint"]["workersMax"] == 1 and server.endpoint_config(endpoint["id"]).workers_max == 1
    )
    assert api.wait_final(endpoint["id"], job_id)["output"]["echo"] == {"n": 1}
    assert api.wait_final(endpoint["id"], held["id"])["status"] == "COMPLETED"
    delete_endpoint(mgmt, endpoint["id"], name, template["id"])


def test_runpod_sdk_update_endpoint_template_runs_the_next_job_on_the_new_template(
    runpod_sdk: Any, mgmt: Management, server: LocalEndpoint, api: Api
) -> None:
    name = unique("switch")
    first = runpod_sdk.create_template(name, image_name=ECHO_IMAGE, is_serverless=True, env={"FLAVOR": "a"})
    second = runpod_sdk.create_template(
        f"{name}-b", image_name=ECHO_IMAGE, is_serverless=True, env={"FLAVOR": "b"}
    )
    endpoint = runpod_sdk.create_endpoint(name, first["id"], gpu_ids="ADA_24", workers_max=1, idle_timeout=60)
    before = api.wait_final(endpoint["id"], api.run(endpoint["id"], {"env": ["FLAVOR"]}))
    assert before["output"]["env"] == {"FLAVOR": "a"}

    assert runpod_sdk.update_endpoint_template(endpoint["id"], second["id"]) == {
        "id": endpoint["id"],
        "templateId": second["id"],
    }
    after = api.wait_final(endpoint["id"], api.run(endpoint["id"], {"env": ["FLAVOR"]}))
    assert after["output"]["env"] == {"FLAVOR": "b"}
    assert after["workerId"] != before["workerId"]  # the idle worker of the old template was stopped
    delete_endpoint(mgmt, endpoint["id"], name, second["id"])
    for template_name in (name, f"{name}-b"):
        mgmt.data(f'mutation {{ deleteTemplate(templateName: "{template_name}") }}')


def test_save_endpoint_with_an_inline_template_creates_both_or_neither(mgmt: Management) -> None:
    name = unique("inline")
    inline = {"name": name, "imageName": ECHO_IMAGE, "containerDiskInGb": 5, "volumeInGb": 0, "env": []}
    refused = {"name": name, "template": inline, "gpuIds": "AMPERE_12"}
    assert mgmt.error(SAVE_ENDPOINT, {"input": refused}).startswith("gpuIds: unknown GPU pool 'AMPERE_12'")
    templates = mgmt.data("{ myself { podTemplates { name } } }")["myself"]["podTemplates"]
    assert {"name": name} not in templates  # no template left behind

    created = mgmt.save_endpoint(name=name, template=inline, workersMax=0)
    template = mgmt.data(f'{{ endpoint(id: "{created["id"]}") {{ template {{ id name imageName }} }} }}')
    assert template["endpoint"]["template"] == {
        "id": created["templateId"],
        "name": name,
        "imageName": ECHO_IMAGE,
    }
    assert mgmt.data(f'mutation {{ deleteEndpoint(id: "{created["id"]}") }}') == {"deleteEndpoint": None}
    assert mgmt.data(f'mutation {{ deleteTemplate(templateName: "{name}") }}') == {"deleteTemplate": None}
