"""%runpod gpus | templates | endpoints | deploy | scale | delete | use in a real IPython shell, against
the real local endpoint (its management API over HTTP; a deployed endpoint runs a real worker)."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

import rp_notebook
from rp_notebook import AudioResult, Job
from rp_notebook.client import JobsClient
from rp_notebook.config import (
    CONFIG_DIR_ENV,
    configure,
    current_settings,
    reset_configuration,
    user_config_file,
)
from rp_notebook.errors import InputError, NotFoundError
from rp_notebook.provisioning import GPU_POOLS, Provisioner

pytestmark = pytest.mark.timeout(300)

KEY = "fake_SECRETSECRETSECRET_0123456789"


def text_of(result) -> str:
    """Everything a magic's return value shows: its text, its HTML and its repr."""
    bundle = result._repr_mimebundle_()
    return "\n".join([bundle["text/plain"], bundle["text/html"], repr(result)])


def row_of(table: str, first_cell: str) -> str:
    return next(line for line in table.splitlines() if line.split(" ", 1)[0] == first_cell)


def server_objects() -> tuple[set[str], set[str]]:
    """(template ids, endpoint ids) the server holds now."""
    with Provisioner() as prov:
        return {t.id for t in prov.templates()}, {e.endpoint.id for e in prov.endpoints(health=False)}


def cleanup(ip, endpoint_id: str, template_name: str) -> None:
    ip.run_line_magic("runpod", f"delete endpoint {endpoint_id} --force")
    ip.run_line_magic("runpod", f"delete template {template_name}")


def test_help_shows_every_provisioning_subcommand_with_its_options(ip):
    doc = ip.find_line_magic("runpod").__doc__
    for usage in (
        "%runpod gpus",
        "%runpod templates",
        "%runpod endpoints",
        "%runpod deploy",
        "%runpod scale",
    ):
        assert f"usage: {usage}" in doc
    for option in (
        "--workers-max N",
        "--no-flashboot",
        "--env KEY=VALUE",
        "--template-name",
        "--session-only",
    ):
        assert option in doc


def test_gpus_lists_every_pool_smallest_first_and_marks_the_ones_too_small_for_layers(ip, use_local):
    table = ip.run_line_magic("runpod", "gpus --model layers")._repr_mimebundle_()["text/plain"]
    rows = table.split("\n\n")[0].splitlines()[2:]  # under the header and its rule
    assert [row.split()[0] for row in rows] == sorted(GPU_POOLS, key=lambda p: (GPU_POOLS[p].vram_gb, p))
    assert "fits layers (needs 58 GB)" in table
    assert row_of(table, "AMPERE_48").endswith("✗") and row_of(table, "AMPERE_80").endswith("✓")
    assert "48 GB" in row_of(table, "AMPERE_48") and "16-20 GB" in row_of(table, "AMPERE_16")
    for row in rows:  # a live price, or a dash where the API gives none; never a made-up number
        price = row.split("GB")[-1].split()[0]
        assert price == "—" or price.startswith("$")


@pytest.mark.parametrize("api", ["graphql", "rest"])
def test_deploy_then_tts_runs_on_the_new_endpoint_then_delete_removes_it(ip, use_local, capsys, api):
    configure(management_api=api)
    deployed = ip.run_line_magic("runpod", "deploy tts --name magic-tts --workers-max 1")
    endpoint_id = deployed.endpoint.id
    printed = capsys.readouterr().out
    assert "creating template" in printed and f"endpoint {endpoint_id} created" in printed
    summary = text_of(deployed)
    assert endpoint_id in summary and f"%runpod use {endpoint_id} as tts" in summary
    assert current_settings().endpoints["tts"] == endpoint_id

    job = ip.run_line_magic("runpod", 'tts "Spoken by a freshly deployed endpoint."')
    assert isinstance(job, Job) and job.endpoint_id == endpoint_id
    audio = job.result(timeout=180)
    assert isinstance(audio, AudioResult) and audio.duration > 0.5

    listed = ip.run_line_magic("runpod", "endpoints")._repr_mimebundle_()["text/plain"]
    row = row_of(listed, endpoint_id)
    assert "magic-tts" in row and "0-1" in row and "1 completed" in row and row.endswith("tts")

    ip.run_line_magic("runpod", f"scale {endpoint_id} --max 0")
    assert f"endpoint {endpoint_id} (magic-tts): workers 0-0" in capsys.readouterr().out

    ip.run_line_magic("runpod", f"delete endpoint {endpoint_id}")
    printed = capsys.readouterr().out
    assert f"endpoint {endpoint_id} deleted" in printed and f"tts no longer uses {endpoint_id}" in printed
    assert endpoint_id not in text_of(ip.run_line_magic("runpod", "endpoints"))
    with JobsClient(current_settings()) as jobs, pytest.raises(NotFoundError):
        jobs.health(endpoint_id)
    assert current_settings().endpoints.get("tts") != endpoint_id
    ip.run_line_magic("runpod", f"delete template {deployed.template.name}")
    assert f"template {deployed.template.name}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "error", "words"),
    [
        ("deploy tts --gpu AMPERE_12", InputError, "gpu: unknown GPU pool 'AMPERE_12'"),
        (
            "deploy layers --gpu AMPERE_48",
            InputError,
            "too small for the layers model, which needs about 58 GB",
        ),
        (
            "deploy tts --workers-min 3 --workers-max 1",
            InputError,
            "workers_min: must not exceed workers_max",
        ),
        ("deploy tts --workers-max x", UsageError, "argument --workers-max: invalid int value: 'x'"),
        ("deploy tts --idle-timeout 1.5", UsageError, "argument --idle-timeout: invalid int value"),
        ("deploy tts --env TOKEN", UsageError, "argument --env: expected KEY=VALUE"),
        ("deploy sdxl", UsageError, "argument model: invalid choice: 'sdxl'"),
        ("scale ep-1 --max lots", UsageError, "argument --max: invalid int value: 'lots'"),
        ("scale ep-1", UsageError, "give --min N, --max N or both"),
        ("delete template my-template --force", UsageError, "--force is for endpoints"),
        ("delete pod p-1", UsageError, "argument kind: invalid choice: 'pod'"),
        ("use ep-1 for tts", UsageError, "argument as: invalid choice: 'for'"),
    ],
)
def test_bad_provisioning_input_is_refused_naming_the_option_before_any_request(ip, line, error, words):
    # Nothing listens on port 9: had a request been sent, this would be a TransportError instead.
    configure(api_key=KEY, api_base_url="http://127.0.0.1:9", endpoint_base_url="http://127.0.0.1:9/v2")
    with pytest.raises(error) as caught:
        ip.run_line_magic("runpod", line)
    assert words in str(caught.value)


def test_a_taken_template_name_with_another_image_is_refused_and_nothing_is_created(ip, use_local):
    first = ip.run_line_magic("runpod", "deploy tts --name taken-a --workers-max 0")
    before = server_objects()
    with pytest.raises(InputError, match=r"already exists .* with different settings") as caught:
        ip.run_line_magic(
            "runpod",
            f"deploy tts --name taken-b --template-name {first.template.name} --image docker.io/me/other:1",
        )
    assert caught.value.field == "template_name"
    assert server_objects() == before
    cleanup(ip, first.endpoint.id, first.template.name)


def test_deleting_an_endpoint_with_jobs_in_flight_is_refused_until_forced(ip, use_local, capsys):
    deployed = ip.run_line_magic("runpod", "deploy tts --name busy --workers-max 0")
    with JobsClient(current_settings()) as jobs:
        jobs.run(deployed.endpoint.id, {"text": "Never runs: the endpoint has no workers."})
    with pytest.raises(InputError, match=r"0 job\(s\) running and 1 queued; deleting it loses them"):
        ip.run_line_magic("runpod", f"delete endpoint {deployed.endpoint.id}")
    assert deployed.endpoint.id in server_objects()[1]
    ip.run_line_magic("runpod", f"delete endpoint {deployed.endpoint.id} --force")
    assert deployed.endpoint.id not in server_objects()[1]
    ip.run_line_magic("runpod", f"delete template {deployed.template.name}")


def test_use_saves_the_endpoint_in_the_user_config_file_that_a_fresh_read_finds(
    ip, capsys, monkeypatch, tmp_path
):
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path))
    ip.run_line_magic("runpod", "use ep-saved as tts")
    path = user_config_file()
    assert str(path) in capsys.readouterr().out and "ep-saved" in path.read_text()
    reset_configuration()  # as a new session would start
    settings = current_settings()
    assert (
        settings.endpoints["tts"] == "ep-saved"
        and settings.sources["RP_NOTEBOOK_TTS_ENDPOINT"] == "user config"
    )

    ip.run_line_magic("runpod", "use ep-now as layers --session-only")
    assert current_settings().endpoints["layers"] == "ep-now" and "ep-now" not in path.read_text()

    ip.run_line_magic("runpod", "use none as tts")
    reset_configuration()
    assert "tts" not in current_settings().endpoints and "ep-saved" not in path.read_text()


def test_deleting_the_saved_endpoint_also_forgets_it_in_the_user_config(
    ip, use_local, capsys, monkeypatch, tmp_path
):
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path))
    deployed = ip.run_line_magic("runpod", "deploy tts --name saved-tts --workers-max 0 --persist")
    assert deployed.endpoint.id in user_config_file().read_text()
    cleanup(ip, deployed.endpoint.id, deployed.template.name)
    assert deployed.endpoint.id not in user_config_file().read_text()
    assert current_settings().endpoints.get("tts") is None


def test_neither_the_api_key_nor_env_values_appear_in_any_output(ip, use_local, capsys):
    secret_env = "hf_VALUE_NEVER_SHOWN_42"
    deployed = ip.run_line_magic(
        "runpod", f"deploy tts --name keyless --workers-max 0 --env HF_TOKEN={secret_env}"
    )
    shown = [text_of(deployed)]
    for line in ("gpus --model tts", "templates", "endpoints"):
        shown.append(text_of(ip.run_line_magic("runpod", line)))
    templates = shown[2]
    assert "HF_TOKEN" in row_of(templates, deployed.template.id)
    ip.run_line_magic("runpod", f"use {deployed.endpoint.id} as tts --session-only")
    ip.run_line_magic("runpod", f"scale {deployed.endpoint.id} --min 0 --max 2")
    cleanup(ip, deployed.endpoint.id, deployed.template.name)
    captured = capsys.readouterr()
    everything = "\n".join([*shown, captured.out, captured.err])
    assert deployed.endpoint.id in everything  # the outputs were really collected
    assert use_local.api_key not in everything and secret_env not in everything


def test_after_deleting_a_deployed_endpoint_a_local_session_falls_back_to_the_local_tts(ip, capsys):
    local = rp_notebook.start_local()
    try:
        deployed = ip.run_line_magic("runpod", "deploy tts --name brief-tts --workers-max 0")
        assert current_settings().endpoints["tts"] == deployed.endpoint.id
        ip.run_line_magic("runpod", f"delete endpoint {deployed.endpoint.id}")
        assert f"tts no longer uses {deployed.endpoint.id}; it uses local-tts" in capsys.readouterr().out
        assert current_settings().endpoints["tts"] == "local-tts" and local.running
        ip.run_line_magic("runpod", f"delete template {deployed.template.name}")
    finally:
        rp_notebook.stop_local()
