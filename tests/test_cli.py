"""`rp-notebook` from a terminal: the same core as the magics, against the real local endpoint.

Most runs go through the installed entry point (`.venv/bin/rp-notebook`) in a subprocess, as a user
would type them: either with --local (a local endpoint started for that run) or with the environment
pointing at the session's local endpoint, so that several runs share one server (deploy, then
endpoints, then scale, then delete). A few call `rp_notebook.cli.main([...])` in this process.
"""

from __future__ import annotations

import functools
import http.server
import importlib.metadata
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import soundfile
from PIL import Image

from rp_notebook.cli import main
from rp_notebook.client import JobsClient
from rp_notebook.config import CONFIG_DIR_ENV, current_settings
from rp_notebook.jobs._ledger import data_dir
from rp_notebook.provisioning import GPU_POOLS, Provisioner

pytestmark = pytest.mark.timeout(300)

EXECUTABLE = Path(sys.executable).with_name("rp-notebook")


def rp_notebook(*args: str, cwd, env=None, timeout=180, **options) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXECUTABLE), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        **options,
    )


def on_server(server) -> dict[str, str]:
    """The environment of a run that talks to `server` (the session's local endpoint)."""
    return {
        **os.environ,
        "RUNPOD_API_KEY": server.api_key,
        "RUNPOD_ENDPOINT_BASE_URL": server.job_api_url,
        "RUNPOD_API_BASE_URL": server.management_url,
    }


def one_error_line(done: subprocess.CompletedProcess[str], *, alone: bool = True) -> str:
    """The run's error: one `error: ...` line, its last (never a traceback). `alone`: and nothing else
    on stderr (a run that started a job or a local endpoint said so first)."""
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr and lines, done.stderr
    assert lines[-1].startswith("error: "), done.stderr
    assert [line for line in lines if line.startswith("error")] == lines[-1:], done.stderr
    assert not alone or len(lines) == 1, done.stderr
    return lines[-1]


def row_of(table: str, first_cell: str) -> str:
    return next(line for line in table.splitlines() if line.split(" ", 1)[0] == first_cell)


def picture(path: Path) -> Path:
    image = Image.new("RGB", (64, 48), (200, 30, 30))
    image.paste((20, 200, 40), (10, 10, 40, 30))
    image.save(path)
    return path


# -- the model commands ---------------------------------------------------------------------------------


def test_tts_with_a_local_endpoint_writes_decodable_audio(tmp_path):
    done = rp_notebook(
        "tts", "Hello from the command line.", "-o", "hello.ogg", "--format", "ogg", "--local", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    info = soundfile.info(tmp_path / "hello.ogg")
    assert info.format == "OGG" and info.samplerate == 22050 and info.duration > 1
    assert "completed" in done.stderr and "hello.ogg" in done.stdout


def test_layers_with_a_local_endpoint_writes_the_layers_and_their_composite_into_a_new_folder(tmp_path):
    picture(tmp_path / "photo.png")
    done = rp_notebook("layers", "photo.png", "-o", "out/layers", "--layers", "3", "--local", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "out" / "layers"
    names = ["layer_01.png", "layer_02.png", "layer_03.png", "composite.png"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)
    assert done.stdout.split() == [f"out/layers/{name}" for name in names]  # what it wrote, one a line
    sizes = set()
    for name in names:
        with Image.open(folder / name) as image:
            assert image.mode == "RGBA"
            sizes.add(image.size)
    assert len(sizes) == 1 and "3 layers" in done.stderr


def test_layers_takes_an_image_url_which_the_worker_downloads(tmp_path, use_local):
    picture(tmp_path / "photo.png")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/photo.png"
        assert main(["layers", url, "-o", str(tmp_path / "from-url"), "--layers", "2"]) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(p.name for p in (tmp_path / "from-url").iterdir()) == [
        "composite.png",
        "layer_01.png",
        "layer_02.png",
    ]


def test_bad_input_exits_2_naming_the_field_before_any_job(tmp_path):
    done = rp_notebook("tts", "Hi", "-o", "x.wav", "--exaggeration", "9", "--local", cwd=tmp_path)
    assert done.returncode == 2
    assert "exaggeration: 9 is out of range; expected a number from 0 to 2" in one_error_line(done)
    assert not (tmp_path / "x.wav").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["speak"], "invalid choice: 'speak'"),
        (["tts", "Hi"], "the following arguments are required: -o/--output"),
        (["tts", "Hi", "-o", "x.wav", "--timeout", "0"], "argument --timeout: must be more than 0"),
        (["tts", "Hi", "-o", "x.wav", "--endpoint", "a/b"], "'a/b' is not an endpoint id"),
        (["layers", "-o", "out"], "image: is required"),
        (["layers", "no-such.png", "-o", "out"], "image: no such file: no-such.png"),
        (["tts", "Hi", "-o", "x" * 300 + ".wav"], "File name too long"),
        (["layers", "photo.png", "-o", "setup.cfg/out"], "setup.cfg is a file, not a folder"),
        (["deploy", "tts", "--workers-max", "x"], "argument --workers-max: invalid int value: 'x'"),
        (["deploy", "tts", "--env", "TOKEN"], "argument --env: expected KEY=VALUE"),
        (["deploy", "tts", "--persist", "--local"], "--persist with --local would save an endpoint"),
        (["scale", "ep-1"], "give --min N, --max N or both"),
        (["delete", "template", "t", "--force", "--yes"], "--force is for endpoints"),
        (["delete", "pod", "p-1"], "argument kind: invalid choice: 'pod'"),
        (["use", "ep-1", "for", "tts"], "argument as: invalid choice: 'for'"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2_before_anything_is_sent(tmp_path, args, words, capsys):
    # Nothing listens on port 9: had a request been sent, this would be a connection error, status 1.
    env = {
        **os.environ,
        "RUNPOD_API_KEY": "fake_key_0123456789",
        "RUNPOD_ENDPOINT_BASE_URL": "http://127.0.0.1:9/v2",
        "RUNPOD_API_BASE_URL": "http://127.0.0.1:9",
        "RP_NOTEBOOK_TTS_ENDPOINT": "ep-tts",
        "RP_NOTEBOOK_LAYERS_ENDPOINT": "ep-layers",
    }
    (tmp_path / "setup.cfg").write_text("a file")
    done = rp_notebook(*args, cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    assert words in one_error_line(done)
    assert done.stdout == ""


def test_no_api_key_says_to_add_local_not_the_python_call(tmp_path):
    for args in (["tts", "Hi", "-o", "x.wav"], ["tts", "Hi", "-o", "x.wav", "--endpoint", "abc"], ["gpus"]):
        done = rp_notebook(*args, cwd=tmp_path)
        assert done.returncode == 2
        line = one_error_line(done)
        assert "add --local to run on the local endpoint" in line and "start_local" not in line


def test_an_output_folder_that_does_not_exist_is_refused_before_the_job(tmp_path):
    done = rp_notebook("tts", "Hi", "-o", "missing/x.wav", "--local", cwd=tmp_path)
    assert done.returncode == 2
    assert "-o missing/x.wav: there is no folder missing" in done.stderr and "queued" not in done.stderr
    (tmp_path / "taken").write_text("a file, not a folder")
    done = rp_notebook("layers", "photo.png", "-o", "taken", "--local", cwd=tmp_path)
    assert done.returncode == 2 and "-o taken: it is a file, not a folder" in done.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_an_output_that_cannot_be_written_after_the_job_says_where_the_result_was_saved(tmp_path):
    # /dev/full accepts the open and refuses every write (ENOSPC): the failure comes after the job.
    done = rp_notebook("tts", "Saved all the same.", "-o", "/dev/full", "--local", cwd=tmp_path)
    assert done.returncode == 1 and "completed" in done.stderr
    line = one_error_line(done, alone=False)
    match = re.fullmatch(
        r"error: could not write /dev/full: No space left on device; the result was saved at (\S+)", line
    )
    assert match, line
    saved = Path(match.group(1))
    assert saved.is_relative_to(data_dir() / "results") and soundfile.info(saved).duration > 0.5


def test_a_layers_folder_that_becomes_a_file_while_the_job_runs_leaves_the_result_saved(
    tmp_path, use_local, monkeypatch, capsys
):
    import rp_notebook._api

    picture(tmp_path / "photo.png")
    parent = tmp_path / "gone"
    parent.mkdir()
    submit = rp_notebook._api.submit

    def submit_then_replace_the_folder(*args, **kwargs):
        job = submit(*args, **kwargs)
        parent.rmdir()
        parent.write_text("a file now")
        return job

    monkeypatch.setattr(rp_notebook._api, "submit", submit_then_replace_the_folder)
    output = parent / "layers"
    assert main(["layers", str(tmp_path / "photo.png"), "-o", str(output), "--layers", "2"]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    match = re.fullmatch(rf"error: could not write {output}: .*; the result was saved at (\S+)", line)
    assert match, line
    saved = Path(match.group(1))
    assert saved.parent == data_dir() / "results"
    assert sorted(p.name for p in saved.glob("layer_*.png")) == ["layer_01.png", "layer_02.png"]


def test_a_request_that_fails_exits_1_with_one_line(tmp_path):
    done = rp_notebook("tts", "Hi", "-o", "x.wav", "--endpoint", "no-such-endpoint", "--local", cwd=tmp_path)
    assert done.returncode == 1
    assert "no-such-endpoint: not found (404)" in one_error_line(done, alone=False)


# -- version, status, local up --------------------------------------------------------------------------


def test_version_prints_the_installed_version(tmp_path, capsys):
    expected = f"rp-notebook {importlib.metadata.version('rp_notebook')}"
    done = rp_notebook("--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == expected
    assert main(["--version"]) == 0 and capsys.readouterr().out.strip() == expected


def test_status_reports_a_key_without_showing_it(tmp_path):
    (tmp_path / ".env").write_text("RUNPOD_API_KEY=fake_DONOTSHOWTHISKEY_0000000000\n")
    done = rp_notebook("status", cwd=tmp_path)
    assert done.returncode == 0
    assert "RUNPOD_API_KEY: set" in done.stdout and "DONOTSHOW" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("port", "words"),
    [
        ("99999", "99999 is not a TCP port: expected 1 to 65535, or 0 for any free port"),
        ("65536", "65536 is not a TCP port"),
        ("-1", "-1 is not a TCP port"),
        ("8000.5", "expected a port number (a whole number), got '8000.5'"),
        ("x", "expected a port number (a whole number), got 'x'"),
    ],
)
def test_local_up_refuses_a_port_that_is_not_one(tmp_path, port, words):
    done = rp_notebook("local", "up", f"--port={port}", cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    line = one_error_line(done)
    assert line.startswith("error: rp-notebook local up: argument --port:") and words in line


# -- provisioning -----------------------------------------------------------------------------------------


def test_provisioning_commands_with_local_run_on_a_local_endpoint_of_their_own(tmp_path):
    done = rp_notebook("endpoints", "--local", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "local-tts" in row_of(done.stdout, "local-tts") and "local-layers" in done.stdout
    done = rp_notebook("gpus", "--model", "layers", "--local", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = done.stdout.split("\n\n")[0].splitlines()[2:]  # under the header and its rule
    assert [row.split()[0] for row in rows] == sorted(GPU_POOLS, key=lambda p: (GPU_POOLS[p].vram_gb, p))
    assert "fits layers (needs 58 GB)" in done.stdout
    assert row_of(done.stdout, "AMPERE_48").endswith("✗") and row_of(done.stdout, "AMPERE_80").endswith("✓")


def test_deploy_endpoints_interrupt_cancel_scale_and_delete_from_the_terminal(tmp_path, use_local):
    env = on_server(use_local)
    done = rp_notebook("deploy", "tts", "--name", "cli-tts", "--workers-max", "0", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    endpoint_id = re.search(r"endpoint (\S+) created", done.stdout).group(1)
    template = re.search(r"^template\s+(\S+) \(", done.stdout, re.M).group(1)
    assert f"`rp-notebook use {endpoint_id} as tts` makes later runs use it" in done.stdout
    assert "%runpod" not in done.stdout

    done = rp_notebook("endpoints", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "cli-tts" in row_of(done.stdout, endpoint_id) and " 0-0 " in row_of(done.stdout, endpoint_id)

    # No worker will take the job: it waits in the queue until Ctrl+C. Started with SIGINT's default
    # action, as in a terminal: a child inherits an ignored SIGINT (some library may leave the test
    # process ignoring it), and Python then never raises KeyboardInterrupt at all.
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])",
            str(EXECUTABLE),
            "tts",
            "Never spoken.",
            "-o",
            "x.wav",
            "--endpoint",
            endpoint_id,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        queued = process.stderr.readline()
        job_id = re.fullmatch(rf"job (\S+) queued on {endpoint_id}\n", queued).group(1)
        process.send_signal(signal.SIGINT)
        try:
            _out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            pytest.fail(f"no exit 60 s after SIGINT (this test process ignores SIGINT: {ignored})")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130 and "Traceback" not in err
    assert (
        f"error: interrupted: job {job_id} keeps running on endpoint {endpoint_id}" in err
        and f"to cancel it: rp-notebook cancel {job_id}" in err
    )
    with JobsClient(current_settings()) as jobs:
        assert jobs.status(endpoint_id, job_id)["status"] == "IN_QUEUE"  # it kept running
        done = rp_notebook("cancel", job_id, cwd=tmp_path, env=env)  # found in the job ledger
        assert done.returncode == 0 and done.stdout.strip() == f"job {job_id} cancelled", done.stderr
        assert jobs.status(endpoint_id, job_id)["status"] == "CANCELLED"

    done = rp_notebook("scale", endpoint_id, "--min", "0", "--max", "2", cwd=tmp_path, env=env)
    assert done.returncode == 0 and f"endpoint {endpoint_id} (cli-tts): workers 0-2" in done.stdout

    done = rp_notebook("delete", endpoint_id, cwd=tmp_path, env=env)  # no terminal to ask on
    assert done.returncode == 2 and f"add --yes to delete endpoint {endpoint_id}" in one_error_line(done)
    done = rp_notebook("delete", endpoint_id, "--yes", cwd=tmp_path, env=env)
    assert done.returncode == 0 and f"endpoint {endpoint_id} deleted" in done.stdout, done.stderr
    done = rp_notebook("delete", "template", template, "--yes", cwd=tmp_path, env=env)
    assert done.returncode == 0 and f"template {template}" in done.stdout, done.stderr
    done = rp_notebook("endpoints", cwd=tmp_path, env=env)
    assert endpoint_id not in done.stdout


def answer_prompt(args: list[str], answer: str, *, cwd, env) -> subprocess.CompletedProcess[str]:
    """Run with a terminal as stdin (as a person would), typing `answer` at the prompt."""
    controller, terminal = os.openpty()
    try:
        os.write(controller, answer.encode() + b"\n")
        return rp_notebook(*args, cwd=cwd, env=env, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)


def test_delete_asks_on_a_terminal_and_deletes_only_on_yes(tmp_path, use_local):
    env = on_server(use_local)
    done = rp_notebook("deploy", "tts", "--name", "ask-me", "--workers-max", "0", cwd=tmp_path, env=env)
    endpoint_id = re.search(r"endpoint (\S+) created", done.stdout).group(1)
    template = re.search(r"^template\s+(\S+) \(", done.stdout, re.M).group(1)

    done = answer_prompt(["delete", "endpoint", endpoint_id], "n", cwd=tmp_path, env=env)
    assert f"Delete endpoint {endpoint_id} (ask-me, workers 0-0)? [y/N]" in done.stdout
    assert done.returncode == 1 and "not deleted" in done.stdout
    with Provisioner() as prov:
        assert prov.endpoint(endpoint_id).name == "ask-me"  # still there
    done = answer_prompt(["delete", endpoint_id], "y", cwd=tmp_path, env=env)
    assert done.returncode == 0 and f"endpoint {endpoint_id} deleted" in done.stdout, done.stderr
    done = rp_notebook("delete", "endpoint", endpoint_id, "--yes", cwd=tmp_path, env=env)
    assert done.returncode == 2 and f"no endpoint {endpoint_id!r}" in one_error_line(done)
    assert rp_notebook("delete", "template", template, "--yes", cwd=tmp_path, env=env).returncode == 0


def test_use_saves_the_endpoint_that_later_runs_use(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "config"))
    assert main(["use", "ep-saved", "as", "tts"]) == 0
    assert "tts now uses endpoint ep-saved; saved in" in capsys.readouterr().out
    done = rp_notebook("status", cwd=tmp_path, env={**os.environ, CONFIG_DIR_ENV: str(tmp_path / "config")})
    assert "tts endpoint: ep-saved" in done.stdout
    assert main(["use", "none", "as", "tts"]) == 0
    done = rp_notebook("status", cwd=tmp_path, env={**os.environ, CONFIG_DIR_ENV: str(tmp_path / "config")})
    assert "tts endpoint" not in done.stdout
