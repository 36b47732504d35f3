"""The runpod SDK's own client, pointed at `rp-notebook local up`, gets speech from local-tts."""

from __future__ import annotations

import base64
import io
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
import soundfile

KEY = "local-test-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def local_up(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rp_notebook.cli",
            "local",
            "up",
            "--port",
            str(port),
            "--api-key",
            KEY,
            "--state-dir",
            str(tmp_path / "state"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/v2"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stdout.read()
        try:
            if requests.get(f"{base}/local-tts/health", headers={"Authorization": KEY}, timeout=1).ok:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "local endpoint did not start"
        time.sleep(0.1)
    yield base
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=30)[0]
    assert KEY not in output


@pytest.mark.timeout(180)
def test_runpod_sdk_endpoint_run_output_health_and_purge_on_local_tts(local_up, monkeypatch):
    import runpod

    monkeypatch.setattr(runpod, "api_key", KEY)
    monkeypatch.setattr(runpod, "endpoint_url_base", local_up)
    endpoint = runpod.Endpoint("local-tts")
    parts = endpoint.run({"text": "The runpod SDK can talk to this endpoint.", "format": "flac"}).output(
        timeout=120
    )
    output = parts[-1]  # a streaming worker: the aggregate lists the parts, the whole file last
    assert output["final"] is True
    audio, rate = soundfile.read(io.BytesIO(base64.b64decode(output["audio"])))
    assert rate == output["sample_rate"] == 22050
    assert len(audio) / rate == pytest.approx(output["duration"], abs=0.05) and output["duration"] > 1
    health = endpoint.health()
    assert health["jobs"]["completed"] >= 1 and "workers" in health
    assert endpoint.purge_queue() == {"removed": 0, "status": "completed"}
