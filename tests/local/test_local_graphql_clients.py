"""Real clients' GraphQL documents against the local endpoint's management API.

runpod-flash 1.21's and runpodctl's documents are copied verbatim into tests/fixtures/graphql (with
the variables Flash's own models send); the runpod SDK's `ctl_commands` are called for real. Every
document must validate against the served schema and run over real HTTP, answering what its client
reads back: Flash's fields that Runpod has and the local endpoint cannot honour come back null.

One server for the module (these tests add and delete endpoints); every test names its templates
uniquely and deletes what it made.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from graphql import parse, print_ast, validate
from local_helpers import WORKERS, Api
from management_helpers import Management, unique

from rp_notebook.local import EndpointConfig, LocalEndpoint
from rp_notebook.local._graphql_api import schema

pytestmark = pytest.mark.timeout(120)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "graphql"
ECHO_IMAGE = f"local:{WORKERS / 'echo'}"
RTX_4090 = "NVIDIA GeForce RTX 4090"


def _load(name: str) -> ModuleType:
    """A fixture module by file path (tests/fixtures is no package)."""
    spec = importlib.util.spec_from_file_location(f"graphql_fixture_{name}", FIXTURES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


flash = _load("flash_documents")
runpodctl = _load("runpodctl_documents")


@pytest.fixture(scope="module")
def server() -> Iterator[LocalEndpoint]:
    """Overrides the package's session server: these tests add and delete endpoints."""
    endpoints = [EndpointConfig(id="echo", worker_dir=WORKERS / "echo", workers_max=1)]
    srv = LocalEndpoint(port=0, endpoints=endpoints, gpu_prices={RTX_4090: 0.69})
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def mgmt(server: LocalEndpoint) -> Management:
    return Management(server)


def flash_create_input() -> dict[str, Any]:
    """Flash's saveEndpoint input for a new endpoint, on the echo worker, with unique names."""
    payload = copy.deepcopy(flash.CREATE_ENDPOINT_INPUT)
    payload["name"] = unique("flash-echo")
    payload["template"]["name"] = unique(payload["template"]["name"])
    payload["template"]["imageName"] = ECHO_IMAGE
    return payload


def flash_update_input(saved: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Flash's saveEndpoint input for `update()` of a deployed endpoint."""
    payload = copy.deepcopy(flash.UPDATE_ENDPOINT_INPUT)
    payload.update(id=saved["id"], templateId=saved["templateId"], name=saved["name"], **changes)
    return payload


def remove(mgmt: Management, endpoint_id: str, template_id: str) -> None:
    """Scale to zero (Runpod's rule), delete the endpoint, then its template; whatever is left."""
    if mgmt.data("query E($id: String!) { endpoint(id: $id) { id } }", {"id": endpoint_id})["endpoint"]:
        scale = {"id": endpoint_id, "name": "x", "workersMin": 0, "workersMax": 0}
        mgmt.data(
            "mutation S($input: EndpointInput!) { saveEndpoint(input: $input) { id } }", {"input": scale}
        )
        mgmt.data(flash.DELETE_ENDPOINT, {"id": endpoint_id})
    template = mgmt.data(flash.GET_TEMPLATE, {"id": template_id})["podTemplate"]
    if template:
        mgmt.data("mutation D($n: String!) { deleteTemplate(templateName: $n) }", {"n": template["name"]})


@pytest.fixture
def flash_endpoint(mgmt: Management) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """An endpoint deployed the way Flash 1.21 deploys one: (the input sent, the saveEndpoint answer)."""
    payload = flash_create_input()
    saved = mgmt.data(flash.SAVE_ENDPOINT, {"input": payload})["saveEndpoint"]
    yield payload, saved
    remove(mgmt, saved["id"], saved["templateId"])


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "document",
    [f"flash.{name}" for name in flash.DOCUMENTS] + [f"runpodctl.{name}" for name in runpodctl.DOCUMENTS],
)
def test_each_flash_and_runpodctl_document_validates_against_the_served_schema(document: str) -> None:
    client, name = document.split(".")
    text = (flash if client == "flash" else runpodctl).DOCUMENTS[name]
    assert [error.message for error in validate(schema(), parse(text))] == []


def test_fields_runpod_does_not_have_still_fail_validation_with_400(mgmt: Management) -> None:
    response = mgmt.graphql('{ endpoint(id: "echo") { id workersPFBTarget notAField } }')
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "Cannot query field 'notAField' on type 'Endpoint'."
    response = mgmt.graphql('{ podTemplate(id: "x") { startScript bootScript } }')
    assert response.json()["errors"][0]["message"] == (
        "Cannot query field 'bootScript' on type 'PodTemplate'. Did you mean 'startScript'?"
    )
    unknown_input = {**flash_create_input(), "workersPFBTargets": 1}
    response = mgmt.graphql(flash.SAVE_ENDPOINT, {"input": unknown_input})
    assert response.status_code == 400  # nothing ran
    assert response.json()["errors"][0]["message"].startswith(
        "Variable '$input' has invalid value: Expected value of type 'EndpointInput' not to include "
        "unknown field 'workersPFBTargets'"
    )


# ---------------------------------------------------------------------- runpod-flash 1.21
def test_flash_save_endpoint_deploys_its_inline_template_and_answers_every_field_it_selects(
    mgmt: Management, server: LocalEndpoint, api: Api, flash_endpoint: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    payload, saved = flash_endpoint
    assert len(saved["id"]) == 14 and saved["templateId"]
    assert saved == {
        "id": saved["id"],
        "name": payload["name"],
        "templateId": saved["templateId"],
        # What Flash sent comes back, so its drift check sees no change ...
        "gpuIds": "ADA_24",
        "gpuCount": 1,
        "idleTimeout": 60,
        "locations": "",
        "scalerType": "QUEUE_DELAY",
        "scalerValue": 4,
        "type": "QB",
        "workersMax": 1,
        "workersMin": 0,
        "workersPFBTarget": 0,
        "allowedCudaVersions": "",
        "minCudaVersion": "12.8",
        "executionTimeoutMs": 0,
        "flashBootType": "FLASHBOOT",
        "userId": "user_local",
        # ... and what only Runpod's platform knows is null, never made up.
        "aiKey": None,
        "version": None,
        "workersStandby": None,
        "networkVolumeId": None,
        "networkVolumeIds": [],
        "flashEnvironmentId": None,
        "instanceIds": None,
        "activeBuildid": None,
        "idePodId": None,
    }
    config = server.endpoint_config(saved["id"])
    assert config.execution_timeout_ms is None  # Flash's 0: no execution timeout
    assert (config.workers_max, config.idle_timeout_s) == (1, 60)
    job = api.wait_final(saved["id"], api.run(saved["id"], {"env": ["GREETING", "RUNPOD_API_KEY"]}))
    assert job["output"]["env"] == {"GREETING": "hi", "RUNPOD_API_KEY": flash.FLASH_KEY}  # the inline env


def test_flash_reads_the_deployed_endpoint_and_its_template_back(
    mgmt: Management, flash_endpoint: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    payload, saved = flash_endpoint
    assert mgmt.data(flash.ENDPOINT_EXISTS, {"id": saved["id"]}) == {
        "myself": {"endpoint": {"id": saved["id"]}}
    }
    assert mgmt.data(flash.ENDPOINT_EXISTS, {"id": "nope"}) == {"myself": {"endpoint": None}}

    # The listing answers Flash's own selection the same way saveEndpoint did.
    selection = parse(flash.SAVE_ENDPOINT).definitions[0].selection_set.selections[0].selection_set
    listed = mgmt.data(f"{{ myself {{ endpoints {print_ast(selection)} }} }}")["myself"]["endpoints"]
    assert [e for e in listed if e["id"] == saved["id"]] == [saved]

    template = mgmt.data(flash.GET_TEMPLATE, {"id": saved["templateId"]})["podTemplate"]
    assert template == {
        "id": saved["templateId"],
        "containerDiskInGb": 64,
        "dockerArgs": "",
        "env": payload["template"]["env"],
        "imageName": ECHO_IMAGE,
        "name": payload["template"]["name"],
        "readme": "",
    }
    extra = mgmt.data(
        "query T($id: String!) { podTemplate(id: $id) { advancedStart startScript config isServerless } }",
        {"id": saved["templateId"]},
    )["podTemplate"]
    assert extra == {"advancedStart": None, "startScript": None, "config": None, "isServerless": True}


def test_flash_update_rescales_the_endpoint_and_its_new_template_env_reaches_the_next_worker(
    mgmt: Management, server: LocalEndpoint, api: Api, flash_endpoint: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _, saved = flash_endpoint
    before = api.wait_final(saved["id"], api.run(saved["id"], {"env": ["GREETING"]}))
    assert before["output"]["env"] == {"GREETING": "hi"}

    updated = mgmt.data(flash.SAVE_ENDPOINT, {"input": flash_update_input(saved)})["saveEndpoint"]
    assert updated == {**saved, "workersMax": 2}
    assert server.endpoint_config(saved["id"]).workers_max == 2

    template_input = copy.deepcopy(flash.UPDATE_TEMPLATE_INPUT)
    template_input.update(id=saved["templateId"], imageName=ECHO_IMAGE, name=unique("flash-template"))
    template = mgmt.data(flash.SAVE_TEMPLATE, {"input": template_input})["saveTemplate"]
    assert template["id"] == saved["templateId"] and template["env"] == template_input["env"]
    after = api.wait_final(saved["id"], api.run(saved["id"], {"env": ["GREETING"]}))
    assert after["output"]["env"] == {"GREETING": "hello"}


def test_flash_delete_is_refused_until_the_endpoint_is_scaled_to_zero(
    mgmt: Management, api: Api, flash_endpoint: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _, saved = flash_endpoint
    message = mgmt.error(flash.DELETE_ENDPOINT, {"id": saved["id"]})
    assert message.startswith(f'endpoint "{saved["id"]}" has workersMin 0 and workersMax 1; scale it to 0')

    mgmt.data(flash.SAVE_ENDPOINT, {"input": flash_update_input(saved, workersMax=0)})
    assert mgmt.data(flash.DELETE_ENDPOINT, {"id": saved["id"]}) == {"deleteEndpoint": None}
    assert mgmt.data(flash.ENDPOINT_EXISTS, {"id": saved["id"]}) == {"myself": {"endpoint": None}}
    assert api.post(f"{saved['id']}/run", json={"input": {}}).status_code == 404


def test_flash_cpu_endpoint_is_refused_naming_its_instance_ids_and_leaves_no_template(
    mgmt: Management,
) -> None:
    payload = copy.deepcopy(flash.CREATE_CPU_ENDPOINT_INPUT)
    payload["name"] = unique("flash-cpu")
    payload["template"].update(imageName=ECHO_IMAGE, name=unique("flash-cpu-template"))
    message = mgmt.error(flash.SAVE_ENDPOINT, {"input": payload})
    assert message == (
        "CPU endpoints (instanceIds cpu3g-2-8) are not supported by the local endpoint; give gpuIds "
        "instead (its workers run on this machine's CPU either way)"
    )
    names = {t["name"] for t in mgmt.data("{ myself { podTemplates { name } } }")["myself"]["podTemplates"]}
    assert payload["template"]["name"] not in names

    no_gpus = {k: v for k, v in flash_create_input().items() if k != "gpuIds"}
    assert mgmt.error(flash.SAVE_ENDPOINT, {"input": no_gpus}) == "gpuIds is required to create an endpoint"
    volumes = {**flash_create_input(), "networkVolumeIds": [{"networkVolumeId": "vol-1"}]}
    assert mgmt.error(flash.SAVE_ENDPOINT, {"input": volumes}) == (
        'network volume "vol-1" not found (the local endpoint has none)'
    )


def test_flash_gpu_stock_status_query_answers_null_stock_for_a_known_gpu(mgmt: Management) -> None:
    data = mgmt.data(flash.GPU_STOCK_STATUS, flash.GPU_STOCK_STATUS_VARIABLES)
    assert data == {"gpuTypes": [{"lowestPrice": {"stockStatus": None}}]}  # one GPU; stock unknown here
    unknown = copy.deepcopy(flash.GPU_STOCK_STATUS_VARIABLES)
    unknown["gpuTypesInput"]["ids"] = ["NVIDIA B300"]
    assert mgmt.data(flash.GPU_STOCK_STATUS, unknown) == {"gpuTypes": []}


# ---------------------------------------------------------------------- runpodctl
def test_runpodctl_inline_template_create_and_nullable_update_endpoint_template_run(
    mgmt: Management, server: LocalEndpoint
) -> None:
    name = unique("ctl")
    # CreateEndpointGQL's input (EndpointCreateGQLInput, hubReleaseId left out): the template inline,
    # without volumeInGb.
    template = {
        "name": f"{name}__template",
        "imageName": ECHO_IMAGE,
        "containerDiskInGb": 10,
        "dockerArgs": "",
    }
    created_input = {"name": name, "template": {**template, "env": []}, "gpuIds": "AMPERE_16"}
    created_input.update(gpuCount=1, workersMin=0, workersMax=0)
    created = mgmt.data(runpodctl.CREATE_ENDPOINT, {"input": created_input})["saveEndpoint"]
    assert (created["computeType"], created["modelReferences"], created["instanceIds"]) == ("GPU", None, None)
    assert created["networkVolumeIds"] == [] and created["workersMax"] == 0

    # The older CreateTemplate, with runpodctl's CreateTemplateInput.
    other = mgmt.data(
        runpodctl.LEGACY_SAVE_TEMPLATE,
        {
            "input": {
                "name": f"{name}-b",
                "imageName": ECHO_IMAGE,
                "dockerArgs": "",
                "containerDiskInGb": 10,
                "volumeInGb": 0,
                "volumeMountPath": "/workspace",
                "ports": "8000/http",
                "env": [{"key": "FLAVOR", "value": "b"}],
                "isServerless": True,
                "startSsh": True,
                "isPublic": False,
                "readme": "",
            }
        },
    )["saveTemplate"]
    assert (other["advancedStart"], other["startJupyter"], other["startScript"]) == (None, None, None)
    assert (other["ports"], other["volumeMountPath"], other["startSsh"]) == ("8000/http", "/workspace", True)

    switch = {"endpointId": created["id"], "templateId": other["id"]}
    assert mgmt.data(runpodctl.UPDATE_ENDPOINT_TEMPLATE, {"input": switch}) == {
        "updateEndpointTemplate": {"id": created["id"], "templateId": other["id"]}
    }
    assert server.endpoint_config(created["id"]).env["FLAVOR"] == "b"
    assert mgmt.error(runpodctl.UPDATE_ENDPOINT_TEMPLATE, {"input": None}) == (
        "updateEndpointTemplate needs an input"
    )
    remove(mgmt, created["id"], other["id"])
    remove(mgmt, created["id"], created["templateId"])


# ---------------------------------------------------------------------- runpod SDK ctl_commands
def test_runpod_sdk_ctl_commands_for_templates_endpoints_gpus_and_the_user_validate_and_run(
    server: LocalEndpoint, mgmt: Management, monkeypatch: pytest.MonkeyPatch
) -> None:
    runpod = pytest.importorskip("runpod")
    from runpod.api import ctl_commands

    monkeypatch.setenv("RUNPOD_API_BASE_URL", server.management_url)
    monkeypatch.setattr(runpod, "api_key", server.api_key)
    sent: list[str] = []
    real_query = ctl_commands.run_graphql_query

    def recording(query: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(query)
        return real_query(query, *args, **kwargs)

    monkeypatch.setattr(ctl_commands, "run_graphql_query", recording)

    name = unique("sdk")
    template = runpod.create_template(
        name,
        ECHO_IMAGE,
        ports="8000/http, 22/tcp",
        volume_mount_path="/workspace",
        env={"FLAVOR": "a"},
        is_serverless=True,
    )
    assert (template["dockerArgs"], template["ports"]) == ("", "8000/http,22/tcp")  # the SDK strips spaces
    assert (template["volumeInGb"], template["volumeMountPath"], template["isServerless"]) == (
        0,
        "/workspace",
        True,
    )
    endpoint = runpod.create_endpoint(
        name,
        template["id"],
        gpu_ids="AMPERE_24,-NVIDIA L4",
        locations="US",
        idle_timeout=30,
        workers_max=0,
        flashboot=True,
        allowed_cuda_versions="12.4,12.5",
        gpu_count=2,
    )
    assert {
        k: endpoint[k] for k in ("gpuIds", "locations", "flashBootType", "allowedCudaVersions", "gpuCount")
    } == {
        "gpuIds": "AMPERE_24,-NVIDIA L4",
        "locations": "US",
        "flashBootType": "FLASHBOOT",
        "allowedCudaVersions": "12.4,12.5",
        "gpuCount": 2,
    }
    assert endpoint["networkVolumeId"] is None  # the SDK sends "" for none

    listed = next(e for e in runpod.get_endpoints() if e["id"] == endpoint["id"])
    assert listed["env"] == [{"key": "FLAVOR", "value": "a"}] and listed["type"] == "QB"
    assert (listed["aiKey"], listed["version"], listed["workersStandby"], listed["networkVolume"]) == (
        None,
        None,
        None,
        None,
    )
    assert any(g["id"] == RTX_4090 for g in runpod.get_gpus())
    gpu = runpod.get_gpu(RTX_4090, 2)
    assert gpu["lowestPrice"] == {"minimumBidPrice": None, "uninterruptablePrice": pytest.approx(1.38)}
    assert (gpu["maxGpuCount"], gpu["cudaCores"], gpu["oneMonthPrice"]) == (None, None, None)

    second = runpod.create_template(f"{name}-b", ECHO_IMAGE, is_serverless=True, env={"FLAVOR": "b"})
    switched = runpod.update_endpoint_template(endpoint["id"], second["id"])
    assert switched == {"id": endpoint["id"], "templateId": second["id"]}
    assert runpod.get_user() == {"id": "user_local", "pubKey": None, "networkVolumes": []}

    assert len(sent) == 8  # every call above went through GraphQL once
    for query in sent:
        assert validate(schema(), parse(query)) == [], query
    remove(mgmt, endpoint["id"], second["id"])
    remove(mgmt, endpoint["id"], template["id"])
