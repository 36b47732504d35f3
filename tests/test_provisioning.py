"""Provisioning: the pool table and presets, and the Provisioner over both management APIs against
the real local endpoint (GraphQL and REST v2 over real HTTP; deployed endpoints run real workers)."""

from __future__ import annotations

from pathlib import Path

import graphql
import pytest

from rp_notebook.config import configure, current_settings
from rp_notebook.errors import ConfigurationError, InputError, ProvisioningError
from rp_notebook.local._config import find_workers_dir
from rp_notebook.provisioning import GPU_POOLS, Provisioner, parse_gpu_ids, preset_for
from rp_notebook.provisioning._graphql import DOCUMENTS

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "rp_notebook" / "local" / "runpod_schema.graphql"
ECHO_WORKER = REPO / "tests" / "fixtures" / "workers" / "echo"


# ---------------------------------------------------------------------------- pools and presets
def test_pool_table_has_runpods_pools_and_none_of_the_seed_notes_invented_ones():
    assert {"AMPERE_16", "AMPERE_24", "ADA_24", "AMPERE_80", "ADA_80_PRO", "HOPPER_141"} <= set(GPU_POOLS)
    for invented in ("AMPERE_12", "ADA_16", "AMPERE_A5000"):
        with pytest.raises(InputError, match=f"unknown GPU pool '{invented}'"):
            parse_gpu_ids(invented)
    assert GPU_POOLS["AMPERE_16"].vram_gb == 16  # not a 3060 Ti's 8 GB
    assert "NVIDIA RTX A4000" in GPU_POOLS["AMPERE_16"].gpu_types


def test_gpu_ids_parse_pools_and_exclusions_and_name_the_bad_part():
    assert parse_gpu_ids("ada_24, AMPERE_24,-NVIDIA L4") == (["ADA_24", "AMPERE_24"], ["NVIDIA L4"])
    with pytest.raises(InputError, match="gpu: cannot exclude 'NVIDIA GTX 1080'"):
        parse_gpu_ids("ADA_24,-NVIDIA GTX 1080")
    with pytest.raises(InputError, match="at least one GPU pool"):
        parse_gpu_ids("-NVIDIA L4")


def test_layers_preset_refuses_a_48_gb_pool_and_lists_the_pools_that_fit():
    with pytest.raises(InputError) as caught:
        preset_for("layers").with_overrides(gpu_pools="AMPERE_80,AMPERE_48")
    assert caught.value.field == "gpu"
    message = str(caught.value)
    assert "AMPERE_48" in message and "58 GB" in message and "AMPERE_80" in message.split("fit:")[1]


def test_tts_preset_fits_a_16_gb_pool_and_needs_no_arguments():
    preset = preset_for("tts")
    assert preset.gpu_pools[0] == "AMPERE_16"
    assert preset.template_spec().image and preset.endpoint_spec("tpl").workers_max >= 1


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"workers_max": -1}, "workers_max"),
        ({"workers_min": 3, "workers_max": 1}, "workers_min"),
        ({"idle_timeout_s": 0}, "idle_timeout"),
        ({"idle_timeout_s": "30"}, "idle_timeout"),
        ({"execution_timeout_s": 10**9}, "execution_timeout"),
        ({"flashboot": "ON"}, "flashboot"),
        ({"container_disk_gb": 2}, "container_disk_gb"),
        ({"image": "has space:1"}, "image"),
        ({"env": {"1BAD": "x"}}, "env"),
        ({"gpu_pools": "AMPERE_12"}, "gpu"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_every_bad_deploy_setting_is_refused_naming_its_field(override, field):
    with pytest.raises(InputError) as caught:
        preset_for("tts").with_overrides(**override)
    assert caught.value.field == field


def test_env_overrides_merge_with_the_presets_env():
    preset = preset_for("tts").with_overrides(env={"EXTRA": "1"})
    assert preset.env == {"TTS_ENGINE": "chatterbox", "EXTRA": "1"}


def test_image_can_be_set_from_the_environment(monkeypatch):
    monkeypatch.setenv("RP_NOTEBOOK_TTS_IMAGE", "docker.io/me/my-tts:2")
    assert preset_for("tts").image == "docker.io/me/my-tts:2"


def test_management_api_setting_is_checked(monkeypatch):
    monkeypatch.setenv("RP_NOTEBOOK_MANAGEMENT_API", "soap")
    with pytest.raises(ConfigurationError, match="RP_NOTEBOOK_MANAGEMENT_API must be one of graphql, rest"):
        current_settings()
    monkeypatch.setenv("RP_NOTEBOOK_MANAGEMENT_API", "rest")
    assert current_settings().management_api == "rest"


# ---------------------------------------------------------------------------- GraphQL documents
@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.split("(")[0].split("{")[0].strip())
def test_every_graphql_document_the_client_sends_validates_against_the_schema(document):
    schema = graphql.build_schema(SCHEMA.read_text())
    assert graphql.validate(schema, graphql.parse(document)) == []
    assert '"' not in document, "values travel as variables, never inside the document"


# ---------------------------------------------------------------------------- against the local endpoint
@pytest.fixture(params=["graphql", "rest"])
def provisioner(request, local_server):
    configure(
        api_key=local_server.api_key,
        endpoint_base_url=local_server.job_api_url,
        api_base_url=local_server.url,
    )
    with Provisioner(api=request.param) as prov:
        yield prov


def test_gpus_list_every_pool_with_live_types_and_mark_what_fits(provisioner):
    rows = provisioner.gpus(model="layers")
    assert [row.pool.id for row in rows] == sorted(GPU_POOLS, key=lambda p: (GPU_POOLS[p].vram_gb, p))
    by_id = {row.pool.id: row for row in rows}
    assert by_id["AMPERE_48"].fits is False and by_id["AMPERE_80"].fits is True
    assert {gpu.id for gpu in by_id["AMPERE_24"].gpu_types} == set(GPU_POOLS["AMPERE_24"].gpu_types)


def test_deploy_runs_a_job_then_scale_and_delete_remove_the_endpoint(provisioner, request):
    name = f"tts-{request.node.callspec.id}"
    steps: list[str] = []
    deployment = provisioner.deploy("tts", name=name, workers_max=1, progress=steps.append)
    endpoint = deployment.endpoint
    assert steps[0].startswith("creating template") and endpoint.id in steps[-1]
    assert endpoint.gpu_pools == ["AMPERE_16", "AMPERE_24", "ADA_24"] and endpoint.workers_max == 1
    assert deployment.template.image == preset_for("tts").image

    from rp_notebook.client import JobsClient

    with JobsClient(provisioner.settings) as jobs:
        done = jobs.runsync(endpoint.id, {"text": "Deployed from a notebook."}, wait_ms=60_000)
    assert done["status"] == "COMPLETED", done

    listed = {status.endpoint.id: status for status in provisioner.endpoints()}
    assert listed[endpoint.id].health is not None and listed[endpoint.id].health.jobs_completed >= 1

    again = provisioner.deploy("tts", name=f"{name}-2", template_name=deployment.template.name, workers_max=1)
    assert again.reused_template and again.template.id == deployment.template.id

    scaled = provisioner.scale(endpoint.id, workers_max=2)
    assert (scaled.workers_min, scaled.workers_max) == (0, 2)
    with pytest.raises(InputError, match="is used by endpoint"):
        provisioner.delete_template(deployment.template.name)

    for dep in (deployment, again):
        provisioner.delete_endpoint(dep.endpoint.id)
    assert endpoint.id not in {s.endpoint.id for s in provisioner.endpoints(health=False)}
    assert provisioner.delete_template(deployment.template.name).id == deployment.template.id


def test_a_taken_template_name_with_other_settings_is_refused_before_anything_is_created(
    provisioner, request
):
    name = f"taken-{request.node.callspec.id}"
    first = provisioner.deploy("tts", name=name, workers_max=0)
    before = (len(provisioner.templates()), len(provisioner.endpoints(health=False)))
    with pytest.raises(InputError, match=r"already exists .* different settings") as caught:
        provisioner.deploy(
            "tts", name=f"{name}-b", template_name=first.template.name, image="docker.io/me/other:1"
        )
    assert caught.value.field == "template_name"
    assert (len(provisioner.templates()), len(provisioner.endpoints(health=False))) == before
    provisioner.delete_endpoint(first.endpoint.id)
    provisioner.delete_template(first.template.name)


def test_deleting_an_endpoint_with_jobs_in_flight_is_refused_unless_forced(provisioner, request):
    deployment = provisioner.deploy("tts", name=f"busy-{request.node.callspec.id}", workers_max=0)
    from rp_notebook.client import JobsClient

    with JobsClient(provisioner.settings) as jobs:
        jobs.run(deployment.endpoint.id, {"text": "Never runs: no workers."})
    with pytest.raises(InputError, match="0 job\\(s\\) running and 1 queued"):
        provisioner.delete_endpoint(deployment.endpoint.id)
    provisioner.delete_endpoint(deployment.endpoint.id, force=True)
    provisioner.delete_template(deployment.template.name)


def test_the_servers_refusal_reaches_the_user_unchanged(provisioner, request):
    """Sent straight to the backend (no Provisioner rules), deleting a scaled-up endpoint is the
    server's call: its message arrives as ProvisioningError."""
    deployment = provisioner.deploy("tts", name=f"raw-{request.node.callspec.id}", workers_max=1)
    with pytest.raises(ProvisioningError, match="0") as caught:
        provisioner._backend.delete_endpoint(deployment.endpoint.id)
    assert f"delete endpoint {deployment.endpoint.id}:" in str(caught.value)
    provisioner.delete_endpoint(deployment.endpoint.id)
    provisioner.delete_template(deployment.template.name)


def test_a_worker_folder_of_your_own_deploys_on_the_local_endpoint(provisioner, request):
    echo = ECHO_WORKER
    deployment = provisioner.deploy(
        "tts", name=f"own-{request.node.callspec.id}", image=f"local:{echo}", workers_max=1, env={"ECHO": "1"}
    )
    from rp_notebook.client import JobsClient

    with JobsClient(provisioner.settings) as jobs:
        done = jobs.runsync(deployment.endpoint.id, {"env": ["ECHO", "TTS_ENGINE"]}, wait_ms=60_000)
    assert done["status"] == "COMPLETED", done
    # A folder of your own runs with the template's env as given (no CPU-engine substitution).
    assert done["output"]["env"] == {"ECHO": "1", "TTS_ENGINE": "chatterbox"}
    provisioner.delete_endpoint(deployment.endpoint.id)
    provisioner.delete_template(deployment.template.name)
    assert find_workers_dir() is not None
