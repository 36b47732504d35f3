"""Helpers for the local endpoint tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from rp_notebook.local import LocalEndpoint

WORKERS = Path(__file__).resolve().parents[1] / "fixtures" / "workers"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll until predicate() is truthy and return its value; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class Api:
    """A tiny client for the job API: plain requests, Bearer auth, no retries."""

    def __init__(self, server: LocalEndpoint, tmp_path: Path) -> None:
        self.server = server
        self.base = server.job_api_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {server.api_key}"
        self.tmp_path = tmp_path
        self.started: list[tuple[str, str]] = []
        self.gates: list[Path] = []

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(f"{self.base}/{path}", timeout=kwargs.pop("timeout", 120), **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(f"{self.base}/{path}", timeout=kwargs.pop("timeout", 120), **kwargs)

    def run(self, endpoint: str, job_input: Any, **extra: Any) -> str:
        response = self.post(f"{endpoint}/run", json={"input": job_input, **extra})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "IN_QUEUE"
        self.started.append((endpoint, body["id"]))
        return body["id"]

    def status(self, endpoint: str, job_id: str) -> dict[str, Any]:
        response = self.get(f"{endpoint}/status/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_final(self, endpoint: str, job_id: str) -> dict[str, Any]:
        for _ in range(5):
            body = self.get(f"{endpoint}/status-sync/{job_id}?wait=60000").json()
            if body["status"] in TERMINAL:
                return body
        raise AssertionError(f"job {job_id} did not finish: {body}")

    def wait_status(self, endpoint: str, job_id: str, status: str) -> dict[str, Any]:
        return wait_until(lambda: (b := self.status(endpoint, job_id))["status"] == status and b)

    def gate(self) -> Path:
        """A file path a worker job waits for (`wait_for_file`); open it with `release`."""
        path = self.tmp_path / f"gate-{uuid.uuid4().hex}"
        self.gates.append(path)
        return path

    @staticmethod
    def release(gate: Path) -> None:
        gate.touch()

    def cleanup(self) -> None:
        for gate in self.gates:
            gate.touch()
        for endpoint, job_id in self.started:
            body = self.get(f"{endpoint}/status/{job_id}")
            if body.status_code == 200 and body.json()["status"] not in TERMINAL:
                self.post(f"{endpoint}/cancel/{job_id}")
