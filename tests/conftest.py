"""Shared fixtures: a real local endpoint over real HTTP, and clean settings for every test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Subprocesses (kernels, the CLI, worker processes) must find this environment's executables.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
# Never pick up a developer's real key or endpoints while testing.
for _name in (
    "RUNPOD_API_KEY",
    "RUNPOD_ENDPOINT_BASE_URL",
    "RUNPOD_API_BASE_URL",
    "RP_NOTEBOOK_TTS_ENDPOINT",
):
    os.environ.pop(_name, None)

REPO = Path(__file__).resolve().parents[1]
FIXTURE_WORKERS = REPO / "tests" / "fixtures" / "workers"


@pytest.fixture(autouse=True)
def _fresh_settings():
    from rp_notebook.config import reset_configuration

    reset_configuration()
    yield
    reset_configuration()


@pytest.fixture(scope="session")
def local_server():
    """One local endpoint for the session (worker start-up costs ~2 s), stopped at the end."""
    from rp_notebook.local import EndpointConfig, LocalEndpoint

    server = LocalEndpoint(port=0).start()
    # The echo worker does what its input says: sleep, wait for a file, raise, fail, report progress.
    server.add_endpoint(EndpointConfig(id="echo", worker_dir=FIXTURE_WORKERS / "echo", workers_max=1))
    yield server
    server.stop()


@pytest.fixture
def use_local(local_server):
    """Point rp_notebook at the session's local endpoint, as `rp_notebook.start_local()` does."""
    from rp_notebook._api import LOCAL_ENDPOINTS
    from rp_notebook.config import configure

    configure(
        api_key=local_server.api_key, endpoint_base_url=local_server.job_api_url, endpoints=LOCAL_ENDPOINTS
    )
    return local_server


@pytest.fixture
def ip():
    """A real IPython shell with the extension loaded."""
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    shell.extension_manager.load_extension("rp_notebook")
    return shell


@pytest.fixture
def release(tmp_path):
    """A file path a blocking echo job waits for; the test creates it to let the job finish."""
    path = tmp_path / "release"
    yield path
    path.touch()  # never leave the shared worker blocked for the next test
