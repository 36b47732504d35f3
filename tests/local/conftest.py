"""Fixtures for the local endpoint tests: one server for the whole session, real worker processes.

Starting an SDK worker costs ~1.5-2 s (the runpod import), so endpoints are shared and tests leave
their single worker free again (every job a test starts is released or cancelled in teardown).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from local_helpers import WORKERS, Api

from rp_notebook.local import EndpointConfig, LocalEndpoint


@pytest.fixture(scope="session")
def server() -> Iterator[LocalEndpoint]:
    endpoints = [
        EndpointConfig(id="echo", worker_dir=WORKERS / "echo", env={"ECHO_FLAVOR": "vanilla"}),
        EndpointConfig(id="stream", worker_dir=WORKERS / "stream"),
        EndpointConfig(id="victim", worker_dir=WORKERS / "echo"),
        EndpointConfig(id="broken", worker_dir=WORKERS / "broken"),
        EndpointConfig(id="shortlived", worker_dir=WORKERS / "echo", idle_timeout_s=0.5),
    ]
    srv = LocalEndpoint(port=0, default_endpoints=False, endpoints=endpoints)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def api(server: LocalEndpoint, tmp_path: Path) -> Iterator[Api]:
    client = Api(server, tmp_path)
    yield client
    client.cleanup()
