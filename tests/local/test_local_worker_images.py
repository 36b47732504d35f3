"""Worker folders shaped like Runpod's published example workers run on the local endpoint as their
images would: the Dockerfile's CMD, container paths mapped through COPY/ADD, the template's start
command with flags, and each folder's own `requirements.txt` in an environment built for it.

The fixture workers under tests/fixtures/workers/image_* are ours, written in the shapes of
Runpod's worker-basic (`rp_handler.py` run by an exec-form CMD), mock-worker (`src/` added to `/`,
a shell-form CMD, a mode chosen by `--generator`) and a bare folder run by a start command. They pin
`runpod==1.7.9` while the server runs 1.12.0: the answer says which one ran. The environment is
built once per machine (pip, ~10-20 s) and shared by every server and test run after that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_helpers import WORKERS, Api
from management_helpers import Management, unique

from rp_notebook.config import configure
from rp_notebook.local import LocalEndpoint
from rp_notebook.local._environments import WorkerEnvironments
from rp_notebook.local._worker_folder import read_worker_folder
from rp_notebook.provisioning import Provisioner

pytestmark = pytest.mark.timeout(600)  # the first run on a machine builds runpod 1.7.9's environment

PINNED = "1.7.9"
SERVER_RUNPOD = "1.12.0"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalEndpoint]:
    srv = LocalEndpoint(port=0, default_endpoints=False)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def mgmt(server: LocalEndpoint) -> Management:
    return Management(server)


def deploy(mgmt: Management, folder: Path, start_command: str = "", env: dict[str, str] | None = None) -> str:
    """A template for `local:<folder>` and an endpoint on it, over GraphQL; the endpoint id."""
    template = mgmt.save_template(
        name=unique(folder.name),
        imageName=f"local:{folder}",
        dockerArgs=start_command,
        env=[{"key": k, "value": v} for k, v in (env or {}).items()],
    )
    return mgmt.save_endpoint(name=unique(folder.name), templateId=template["id"], workersMax=1)["id"]


def stream_parts(api: Api, endpoint_id: str, job_id: str) -> list[Any]:
    """Every part `/stream` hands out until the job ends (each read consumes what it returns)."""
    parts: list[Any] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        body = api.get(f"{endpoint_id}/stream/{job_id}").json()
        parts += [chunk["output"] for chunk in body["stream"]]
        if body["status"] == "COMPLETED":
            return parts
        assert body["status"] in ("IN_QUEUE", "IN_PROGRESS"), body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not complete")


def test_a_folder_without_handler_py_runs_its_dockerfiles_exec_cmd_on_its_own_runpod(
    mgmt: Management, api: Api
) -> None:
    endpoint_id = deploy(mgmt, WORKERS / "image_basic")
    body = api.wait_final(endpoint_id, api.run(endpoint_id, {"name": "Ada"}))
    assert body["status"] == "COMPLETED", body
    assert body["output"] == {"greeting": "Hello, Ada!", "runpod": PINNED}


def test_a_start_command_passes_flags_that_turn_a_src_worker_into_a_streaming_one(
    mgmt: Management, api: Api
) -> None:
    folder = WORKERS / "image_src"
    streaming = deploy(mgmt, folder, "python -u /handler.py --generator --return_aggregate_stream")
    job_id = api.run(streaming, {"text": "one two three"})
    words = [{"word": "one"}, {"word": "two"}, {"word": "three"}]
    assert stream_parts(api, streaming, job_id) == words
    assert api.status(streaming, job_id)["output"] == words  # --return_aggregate_stream reached start()

    plain = deploy(mgmt, folder)  # the Dockerfile's shell-form CMD, no flags: the plain handler
    body = api.wait_final(plain, api.run(plain, {"text": "one two"}))
    assert body["output"] == {"words": ["one", "two"], "argv": []}


def test_the_runpod_sdk_deploys_a_folder_that_pins_runpod_1_7_9_with_a_start_command(
    server: LocalEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    runpod = pytest.importorskip("runpod")
    assert runpod.__version__ == SERVER_RUNPOD
    monkeypatch.setenv("RUNPOD_API_BASE_URL", server.management_url)
    monkeypatch.setattr(runpod, "api_key", server.api_key)
    monkeypatch.setattr(runpod, "endpoint_url_base", server.job_api_url)
    template = runpod.create_template(
        name=unique("argv"),
        image_name=f"local:{WORKERS / 'image_argv'}",
        docker_start_cmd="python -u main.py --mode fast --steps 3",
        env={"FROM_TEMPLATE": "yes"},
        is_serverless=True,
    )
    endpoint = runpod.create_endpoint(name=unique("argv"), template_id=template["id"], gpu_ids="AMPERE_16")
    output = runpod.Endpoint(endpoint["id"]).run_sync({"input": {"n": 1}}, timeout=300)
    assert output["runpod"] == PINNED
    assert output["argv"] == ["--mode", "fast", "--steps", "3"]
    assert output["input"] == {"n": 1} and output["from_template"] == "yes"
    packages = read_worker_folder(WORKERS / "image_argv", "python main.py").packages
    assert packages is not None
    assert output["python"] == WorkerEnvironments().ready(packages)  # its own environment's Python


def test_a_built_environment_is_reused_by_another_server_without_a_build(
    mgmt: Management, api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    packages = read_worker_folder(WORKERS / "image_argv", "python main.py").packages
    assert packages is not None
    environments = WorkerEnvironments()
    environments.build(packages)  # built already by the test above, or here when it runs alone
    caplog.set_level(logging.INFO, logger="rp_notebook.local")
    with LocalEndpoint(port=0, default_endpoints=False) as other:
        endpoint_id = deploy(Management(other), WORKERS / "image_argv", "python -u main.py --again")
        other_api = Api(other, api.tmp_path)
        body = other_api.wait_final(endpoint_id, other_api.run(endpoint_id, {}))
    assert body["output"]["argv"] == ["--again"] and body["output"]["runpod"] == PINNED
    assert not [r for r in caplog.records if "building from" in r.getMessage()]


def test_a_failing_requirements_build_fails_the_job_with_pips_error_and_marks_the_endpoint(
    server: LocalEndpoint, mgmt: Management, api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rp_notebook.local")
    endpoint_id = deploy(mgmt, WORKERS / "image_bad_requirements")
    job_id = api.run(endpoint_id, {"never": "runs"})
    # While pip runs, the worker is starting (as a Runpod worker is while its image is pulled).
    building = api.get(f"{endpoint_id}/health").json()
    assert building["workers"]["initializing"] == 1 and building["jobs"]["inQueue"] == 1, building
    body = api.wait_final(endpoint_id, job_id)
    assert body["status"] == "FAILED"
    assert "No matching distribution found for rp-notebook-no-such-package-anywhere" in body["error"]
    assert "requirements.txt" in body["error"]

    health = api.get(f"{endpoint_id}/health").json()
    assert health["workers"]["unhealthy"] == 1 and "No matching distribution" in health["error"]
    # The build's progress is in the server log, line by line, as pip prints it.
    pip_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("worker environment")]
    assert any("building from requirements.txt" in line for line in pip_lines)
    assert any("rp-notebook-no-such-package-anywhere" in line for line in pip_lines)

    configure(api_key=server.api_key, endpoint_base_url=server.job_api_url, api_base_url=server.url)
    with Provisioner() as provisioner:
        listed = {status.endpoint.id: status for status in provisioner.endpoints()}
    listed_health = listed[endpoint_id].health
    assert listed_health is not None and "No matching distribution" in (listed_health.error or "")

    # The next job tries again (a fixed file would build now) and fails the same way: no hang.
    again = api.wait_final(endpoint_id, api.run(endpoint_id, {}))
    assert again["status"] == "FAILED" and "No matching distribution" in again["error"]


@pytest.mark.parametrize("api_kind", ["graphql", "rest"])
def test_a_folder_with_no_entry_point_is_refused_at_save_template_naming_what_was_looked_for(
    mgmt: Management, tmp_path: Path, api_kind: str
) -> None:
    (tmp_path / "README.md").write_text("not a worker\n")
    expected = (
        "looked for the template's start command (none), a Dockerfile (there is none), handler.py (not there)"
    )
    if api_kind == "graphql":
        response = mgmt.graphql(
            "mutation T($input: SaveTemplateInput) { saveTemplate(input: $input) { id } }",
            {
                "input": {
                    "name": unique("empty"),
                    "imageName": f"local:{tmp_path}",
                    "containerDiskInGb": 5,
                    "volumeInGb": 0,
                    "env": [],
                }
            },
        )
        message = response.json()["errors"][0]["message"]
    else:
        response = mgmt.rest("POST", "templates", {"name": unique("empty"), "image": f"local:{tmp_path}"})
        assert response.status_code == 400
        message = response.json()["detail"]
    assert expected in message and str(tmp_path) in message


def test_a_dockerfile_cmd_naming_a_file_the_folder_lacks_is_refused_with_the_cmd(
    mgmt: Management, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(
        'FROM python:3.11-slim\nCOPY . /app\nWORKDIR /app\nCMD ["python", "-u", "serve.py"]\n'
    )
    (tmp_path / "handler.py").write_text("print('not what the image runs')\n")
    response = mgmt.graphql(
        "mutation T($input: SaveTemplateInput) { saveTemplate(input: $input) { id } }",
        {
            "input": {
                "name": unique("cmd"),
                "imageName": f"local:{tmp_path}",
                "containerDiskInGb": 5,
                "volumeInGb": 0,
                "env": [],
            }
        },
    )
    message = response.json()["errors"][0]["message"]
    assert "the Dockerfile's ENTRYPOINT/CMD ['python', '-u', 'serve.py']" in message
    assert "serve.py, which is not a file of the worker folder" in message
