"""`python -m rp_notebook.local up`: prints where it listens, never the key, stops on SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.timeout(60)


def test_local_up_prints_the_url_but_not_the_key_and_stops_on_sigterm(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    with open(tmp_path / "stderr.log", "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rp_notebook.local", "up", "--port", "0", "--state-dir", str(state_dir)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl+C"):
                break
        banner = "".join(lines)
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", banner)
        assert match, banner
        key_file = state_dir / "api_key"
        assert f"read it from {key_file}" in banner
        assert key_file.stat().st_mode & 0o777 == 0o600
        api_key = key_file.read_text().strip()
        assert api_key not in banner
        assert "local-tts" in banner
        url = f"{match.group(1)}/v2/local-tts/health"
        headers = {"Authorization": f"Bearer {api_key}"}
        assert requests.get(url, headers=headers, timeout=10).status_code == 200
        assert requests.get(url, timeout=10).status_code == 401
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert "stopped" in out
        assert api_key not in (tmp_path / "stderr.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_local_without_a_command_prints_usage() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rp_notebook.local"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert "usage" in result.stderr
