"""`rp-notebook` from a terminal: the same core as the magics."""

from __future__ import annotations

import subprocess
import sys

import soundfile


def rp_notebook(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rp_notebook.cli", *args], capture_output=True, text=True, timeout=180, cwd=cwd
    )


def test_tts_with_a_local_endpoint_writes_decodable_audio(tmp_path):
    done = rp_notebook(
        "tts", "Hello from the command line.", "-o", "hello.ogg", "--format", "ogg", "--local", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    info = soundfile.info(tmp_path / "hello.ogg")
    assert info.format == "OGG" and info.samplerate == 22050 and info.duration > 1
    assert "completed" in done.stderr and "hello.ogg" in done.stdout


def test_bad_input_exits_2_naming_the_field_before_any_job(tmp_path):
    done = rp_notebook("tts", "Hi", "-o", "x.wav", "--exaggeration", "9", "--local", cwd=tmp_path)
    assert done.returncode == 2
    assert "exaggeration: 9 is out of range; expected a number from 0 to 2" in done.stderr
    assert not (tmp_path / "x.wav").exists()


def test_status_reports_a_key_without_showing_it(tmp_path):
    (tmp_path / ".env").write_text("RUNPOD_API_KEY=fake_DONOTSHOWTHISKEY_0000000000\n")
    done = rp_notebook("status", cwd=tmp_path)
    assert done.returncode == 0
    assert "RUNPOD_API_KEY: set" in done.stdout and "DONOTSHOW" not in done.stdout + done.stderr
