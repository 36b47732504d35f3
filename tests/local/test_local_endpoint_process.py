"""`start_local()` serves the local endpoint from a process of its own (`local._process`).

What must hold: the server runs outside the calling process and its session (a kernel's cells never
share an interpreter or a CPU share with it), jobs go through it as before, the handle's calls reach
the server and bring its errors back as they are, the key is on neither the process's command line
nor its environment, the process does not outlive the one that started it, killed or not, and what
the server logs (a worker that exited) reaches the starting process's loggers, as it did when the
server ran there: in a kernel, the notebook.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import rp_notebook
from rp_notebook import _api
from rp_notebook.local import EndpointConfig, WorkerStatus
from rp_notebook.local._process import LocalEndpointProcess, _OutputRelay

pytestmark = pytest.mark.timeout(180)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "workers"


@pytest.fixture
def local():
    server = rp_notebook.start_local()
    try:
        yield server
    finally:
        rp_notebook.stop_local()


def test_the_server_runs_in_a_process_and_session_of_its_own_and_jobs_go_through_it(local):
    assert local.pid is not None and local.pid != os.getpid()
    assert os.getsid(local.pid) != os.getsid(0)
    assert "rp-local-endpoint" not in {thread.name for thread in threading.enumerate()}
    assert _api.local_endpoint() is local

    job = rp_notebook.get_manager().submit("local-tts", {"text": "Hello from its own process."})
    parts = job.result(timeout=120)  # the raw output: the worker's streamed parts

    assert job.status == "COMPLETED" and parts[0]["format"] == "wav" and parts[0]["duration"] > 0.5
    assert local.job("local-tts", job.id).status.value == "COMPLETED"  # the server's own record


def test_the_handles_calls_reach_the_server_and_bring_its_errors_back_as_they_are(local):
    local.add_endpoint(EndpointConfig(id="echo-here", worker_dir=FIXTURES / "echo", workers_max=1))
    assert "echo-here" in local.endpoint_ids

    job = rp_notebook.get_manager().submit("echo-here", {"n": 3})
    assert job.result(timeout=120)["echo"] == {"n": 3}
    assert [worker.status for worker in local.workers("echo-here")] == [WorkerStatus.IDLE]
    assert local.health("echo-here")["jobs"]["completed"] == 1

    with pytest.raises(ValueError, match="already exists"):
        local.add_endpoint(EndpointConfig(id="echo-here", worker_dir=FIXTURES / "echo"))
    local.remove_endpoint("echo-here")
    with pytest.raises(KeyError, match="no endpoint 'echo-here'"):
        local.remove_endpoint("echo-here")
    assert "echo-here" not in local.endpoint_ids and local.running


def test_the_key_is_on_neither_the_processs_command_line_nor_its_environment(local):
    with open(f"/proc/{local.pid}/cmdline", "rb") as fh:
        command_line = fh.read()
    with open(f"/proc/{local.pid}/environ", "rb") as fh:
        environment = fh.read()
    key = local.api_key.encode()
    assert len(key) > 16 and key not in command_line and key not in environment


def test_stopped_it_ends_with_its_workers_and_its_calls_say_so(local):
    pid = local.pid
    rp_notebook.get_manager().submit("local-tts", {"text": "One."}).result(timeout=120)
    workers = [worker.pid for worker in local.workers("local-tts") if worker.pid]
    assert workers

    rp_notebook.stop_local()

    assert not local.running and not _alive(pid) and not any(_alive(worker) for worker in workers)
    with pytest.raises(RuntimeError, match="not running"):
        local.workers("local-tts")


@pytest.mark.parametrize("how", ["exits", "is killed"])
def test_it_does_not_outlive_the_process_that_started_it(how, tmp_path):
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        import rp_notebook
        server = rp_notebook.start_local()
        print(server.pid, flush=True)
        sys.stdin.readline()
        if {how == "is killed"!r}:
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    starter = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "RP_NOTEBOOK_DATA_DIR": str(tmp_path)},
    )
    assert starter.stdout is not None and starter.stdin is not None
    pid = int(starter.stdout.readline())
    assert _alive(pid)

    starter.stdin.write("\n")
    starter.stdin.flush()
    starter.wait(60)

    deadline = time.monotonic() + 60
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)


def test_a_port_in_use_is_refused_as_the_servers_own_oserror_and_leaves_no_process(local):
    second = LocalEndpointProcess(local.port)

    with pytest.raises(OSError) as refused:
        second.start()

    assert refused.value.errno == errno.EADDRINUSE
    assert not second.running and local.running


def test_what_the_server_logs_reaches_this_processs_loggers(local, caplog):
    caplog.set_level(logging.WARNING, logger="rp_notebook.local")
    local.add_endpoint(EndpointConfig(id="broken-here", worker_dir=FIXTURES / "broken", workers_max=1))

    job = rp_notebook.get_manager().submit("broken-here", {"x": 1})

    assert "failed to start 3 times" in str(job.exception(timeout=120))
    deadline = time.monotonic() + 30
    while not _records(caplog, "endpoint broken-here: worker") and time.monotonic() < deadline:
        time.sleep(0.05)
    exits = _records(caplog, "endpoint broken-here: worker")
    assert exits and all(record.levelno == logging.WARNING for record in exits)
    assert "(log: " in exits[0].getMessage()  # where the worker's own traceback is
    assert all(local.api_key not in record.getMessage() for record in caplog.records)


def test_a_childs_records_are_logged_here_whole_and_its_other_output_goes_to_stderr(caplog, capsys):
    caplog.set_level(logging.INFO, logger="rp_notebook.local")
    script = f"""
import logging, sys
from rp_notebook.local._process import _log_to_parent
_log_to_parent({logging.INFO})
logging.getLogger("rp_notebook.local").info("two lines,\\nand é")
logging.getLogger("rp_notebook.local").debug("below the level asked for")
print("not a record", file=sys.stderr, flush=True)
raise SystemExit("the last words")
"""
    child = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    assert child.stderr is not None
    relay = _OutputRelay(child.stderr)

    child.wait(60)
    relay.join(timeout=30)

    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "rp_notebook.local"]
    assert logged == [(logging.INFO, "two lines,\nand é")]
    assert capsys.readouterr().err == "not a record\nthe last words\n"
    assert relay.last_line() == "the last words"


def test_a_child_that_dies_before_it_is_ready_is_reported_with_its_last_words(tmp_path, monkeypatch):
    not_python = tmp_path / "python"
    not_python.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named aiohttp' >&2\nexit 1\n")
    not_python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(not_python))

    with pytest.raises(
        RuntimeError, match="ended before it was ready: ModuleNotFoundError: No module named aiohttp"
    ):
        LocalEndpointProcess().start()


def _records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "rp_notebook.local" and text in r.getMessage()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (ended, not yet reaped by its parent) counts as ended
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
