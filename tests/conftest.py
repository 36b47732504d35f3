"""Shared fixtures: a real local endpoint over real HTTP, and clean settings for every test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

# Subprocesses (kernels, the CLI, worker processes) must find this environment's executables.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
# Never pick up a developer's real key or endpoints while testing.
for _name in (
    "RUNPOD_API_KEY",
    "RUNPOD_ENDPOINT_BASE_URL",
    "RUNPOD_API_BASE_URL",
    "RP_NOTEBOOK_TTS_ENDPOINT",
    "RP_NOTEBOOK_LAYERS_ENDPOINT",
    "RP_NOTEBOOK_MANAGEMENT_API",
):
    os.environ.pop(_name, None)
# Nor a developer's saved endpoints (`%runpod use`): the user config lives in a throwaway folder.
os.environ["RP_NOTEBOOK_CONFIG_DIR"] = tempfile.mkdtemp(prefix="rp-notebook-test-config-")
# Nor write the job ledger and saved results into the developer's data folder.
os.environ["RP_NOTEBOOK_DATA_DIR"] = tempfile.mkdtemp(prefix="rp-notebook-test-data-")

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
        api_key=local_server.api_key,
        endpoint_base_url=local_server.job_api_url,
        api_base_url=local_server.management_url,  # the management API (GraphQL, REST v2) too
        endpoints=LOCAL_ENDPOINTS,
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """A real S3-compatible server (moto) on a free loopback port; yields its endpoint URL."""
    port = free_port()
    server = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(url, timeout=1)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start on port {port}") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
