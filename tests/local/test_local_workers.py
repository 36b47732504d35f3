"""Worker process supervision of the local endpoint: start, crash, idle stop, server stop, config."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import psutil
import pytest
import requests
from local_helpers import WORKERS, Api, wait_until

from rp_notebook.local import (
    LOCAL_TTS_ENDPOINT_ID,
    EndpointConfig,
    LocalEndpoint,
    WorkerStatus,
    default_endpoints,
    find_workers_dir,
)

pytestmark = pytest.mark.timeout(90)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _group_members(pgids: set[int]) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) in pgids and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def test_worker_killed_mid_job_fails_the_job_with_a_clear_error(api: Api, server: LocalEndpoint) -> None:
    job_id = api.run("victim", {"wait_for_file": str(api.gate())})
    running = api.wait_status("victim", job_id, "IN_PROGRESS")
    worker = next(w for w in server.workers("victim") if w.id == running["workerId"])
    assert worker.pid is not None
    group = {worker.pid}
    wait_until(lambda: len(_group_members(group)) >= 2)  # the SDK forks its heartbeat process
    os.kill(worker.pid, signal.SIGKILL)
    body = api.wait_final("victim", job_id)
    assert body["status"] == "FAILED"
    assert worker.id in body["error"]
    assert "killed by SIGKILL" in body["error"]
    assert "while running this job" in body["error"]
    wait_until(lambda: not _group_members(group))  # the heartbeat process went with it
    exited = [w for w in server.workers("victim", include_exited=True) if w.id == worker.id]
    assert exited and exited[0].status is WorkerStatus.EXITED and exited[0].returncode == -signal.SIGKILL
    follow_up = api.wait_final("victim", api.run("victim", {"after": "crash"}))  # the slot was freed
    assert follow_up["status"] == "COMPLETED"
    assert follow_up["workerId"] != worker.id


def test_worker_that_cannot_start_fails_queued_jobs_with_its_log(api: Api) -> None:
    body = api.wait_final("broken", api.run("broken", {"x": 1}))
    assert body["status"] == "FAILED"
    assert "failed to start 3 times" in body["error"]
    assert "fails at import on purpose" in body["error"]  # the tail of the worker log
    health = api.get("broken/health").json()
    assert health["workers"] == {"idle": 0, "running": 0, "initializing": 0, "unhealthy": 1}
    assert "failed to start 3 times" in health["error"]  # until a worker starts again


def test_idle_worker_is_stopped_after_the_idle_timeout(api: Api, server: LocalEndpoint) -> None:
    body = api.wait_final("shortlived", api.run("shortlived", {"ok": 1}))
    assert body["status"] == "COMPLETED"
    wait_until(lambda: not server.workers("shortlived"), timeout=30)
    exited = [w for w in server.workers("shortlived", include_exited=True) if w.id == body["workerId"]]
    assert exited[0].status is WorkerStatus.EXITED
    assert exited[0].pid is not None and _gone(exited[0].pid)


def test_worker_gets_the_runpod_protocol_environment(api: Api, server: LocalEndpoint) -> None:
    names = [
        "RUNPOD_WEBHOOK_GET_JOB",
        "RUNPOD_WEBHOOK_POST_OUTPUT",
        "RUNPOD_WEBHOOK_POST_STREAM",
        "RUNPOD_WEBHOOK_PING",
        "RUNPOD_POD_ID",
        "RUNPOD_AI_API_KEY",
        "RUNPOD_ENDPOINT_ID",
        "RUNPOD_SKIP_GPU_CHECK",
        "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS",
        "RUNPOD_PING_INTERVAL",
        "ECHO_FLAVOR",
    ]
    body = api.wait_final("echo", api.run("echo", {"env": names}))
    env = body["output"]["env"]
    assert env["RUNPOD_WEBHOOK_GET_JOB"].startswith(f"{server.url}/_worker/echo/job-take/$ID?token=")
    done_url = f"{server.url}/_worker/echo/job-done/$RUNPOD_POD_ID/$ID?token="
    assert env["RUNPOD_WEBHOOK_POST_OUTPUT"].startswith(done_url)
    assert "/job-stream/$RUNPOD_POD_ID/$ID?" in env["RUNPOD_WEBHOOK_POST_STREAM"]
    assert "/ping/$RUNPOD_POD_ID?" in env["RUNPOD_WEBHOOK_PING"]
    assert env["RUNPOD_POD_ID"] == body["workerId"]
    assert env["RUNPOD_AI_API_KEY"] and env["RUNPOD_AI_API_KEY"] != server.api_key
    assert env["RUNPOD_ENDPOINT_ID"] == "echo"
    assert env["RUNPOD_SKIP_GPU_CHECK"] == env["RUNPOD_SKIP_AUTO_SYSTEM_CHECKS"] == "true"
    assert int(env["RUNPOD_PING_INTERVAL"]) >= 1000
    assert env["ECHO_FLAVOR"] == "vanilla"
    worker = next(w for w in server.workers("echo") if w.id == body["workerId"])
    wait_until(lambda: server.workers("echo")[0].pings >= 1)  # the SDK heartbeat reaches the ping route
    assert worker.unhealthy is None
    take_url = env["RUNPOD_WEBHOOK_GET_JOB"].replace("$ID", body["workerId"])
    wrong = take_url.split("?token=")[0] + "?token=wrong&job_in_progress=0"
    assert requests.get(wrong, timeout=10).status_code == 401
    assert requests.get(take_url.split("?")[0], timeout=10).status_code == 401


def test_workers_max_2_runs_two_jobs_and_stop_leaves_no_orphan_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An inherited RUNPOD_REALTIME_PORT would turn the SDK worker into an HTTP server that never
    # takes jobs: the server must not pass the user's RUNPOD_* variables on.
    monkeypatch.setenv("RUNPOD_REALTIME_PORT", "1")
    config = EndpointConfig(id="pair", worker_dir=WORKERS / "echo", workers_max=2)
    threads_before = set(threading.enumerate())
    server = LocalEndpoint(default_endpoints=False, endpoints=[config]).start()
    state_dir = server.state_dir
    try:
        api = Api(server, tmp_path)
        gate = api.gate()
        jobs = [api.run("pair", {"wait_for_file": str(gate)}) for _ in range(2)]
        bodies = [api.wait_status("pair", job_id, "IN_PROGRESS") for job_id in jobs]
        assert bodies[0]["workerId"] != bodies[1]["workerId"]
        assert server.health("pair")["workers"]["running"] == 2
        pids = {w.pid for w in server.workers("pair") if w.pid is not None}
        assert len(pids) == 2
        wait_until(lambda: len(_group_members(pids)) >= 4)  # each worker + its heartbeat process
        members = {p.pid for p in _group_members(pids)}
        assert (state_dir / "api_key").stat().st_mode & 0o777 == 0o600
    finally:
        server.stop()  # with both jobs still running
    assert not _group_members(pids)
    assert all(_gone(pid) for pid in members)
    assert not set(threading.enumerate()) - threads_before  # loop thread and process watchers ended
    assert not state_dir.exists()  # a temp state dir is removed
    server.stop()  # idempotent


def test_default_server_has_the_local_tts_endpoint() -> None:
    server = LocalEndpoint()  # not started: nothing runs
    assert LOCAL_TTS_ENDPOINT_ID in server.endpoint_ids
    config = server.endpoint_config(LOCAL_TTS_ENDPOINT_ID)
    assert config.worker_dir.name == "chatterbox_tts"
    assert config.env == {"TTS_ENGINE": "piper"}
    assert config.workers_max == 1
    assert len(server.api_key) >= 24 and server.api_key_generated


def test_workers_dir_env_var_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RP_NOTEBOOK_WORKERS_DIR", str(tmp_path))
    assert find_workers_dir() == tmp_path
    assert default_endpoints()[0].worker_dir == tmp_path / "chatterbox_tts"
    monkeypatch.delenv("RP_NOTEBOOK_WORKERS_DIR")
    found = find_workers_dir()
    assert found is not None and (found / "chatterbox_tts").is_dir()


def test_add_endpoint_validates_its_config(tmp_path: Path) -> None:
    server = LocalEndpoint(default_endpoints=False)
    with pytest.raises(FileNotFoundError, match=r"handler\.py"):
        server.add_endpoint(EndpointConfig(id="empty", worker_dir=tmp_path))
    server.add_endpoint(EndpointConfig(id="echo", worker_dir=WORKERS / "echo"))
    with pytest.raises(ValueError, match="already exists"):
        server.add_endpoint(EndpointConfig(id="echo", worker_dir=WORKERS / "echo"))
    with pytest.raises(ValueError, match="endpoint id"):
        EndpointConfig(id="bad/id", worker_dir=tmp_path)
    with pytest.raises(ValueError, match="workers_max"):
        EndpointConfig(id="negative", worker_dir=tmp_path, workers_max=-1)  # 0 is allowed: jobs wait


def test_add_endpoint_while_running(api: Api, server: LocalEndpoint) -> None:
    if "late-added" not in server.endpoint_ids:
        server.add_endpoint(EndpointConfig(id="late-added", worker_dir=WORKERS / "broken"))
    assert api.get("late-added/health").status_code == 200


_SERVER_SCRIPT = """
import sys, time, requests
from rp_notebook.local import EndpointConfig, LocalEndpoint
server = LocalEndpoint(default_endpoints=False, endpoints=[EndpointConfig(id="echo", worker_dir=sys.argv[1])])
server.start()
requests.post(server.job_api_url + "/echo/runsync", json={"input": {}},
              headers={"Authorization": server.api_key}, timeout=60)
print(server.workers("echo")[0].pid, flush=True)
time.sleep(300)
"""


def test_workers_die_when_the_server_process_is_killed() -> None:
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER_SCRIPT, str(WORKERS / "echo")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        worker_pid = int(proc.stdout.readline())
        wait_until(lambda: len(_group_members({worker_pid})) >= 2)  # worker + heartbeat process
        group = {p.pid for p in _group_members({worker_pid})}
    finally:
        proc.kill()  # SIGKILL: no stop(), no atexit; only PR_SET_PDEATHSIG can end the workers
        proc.wait()
    wait_until(lambda: all(_gone(pid) for pid in group), timeout=30)
    assert not _group_members({worker_pid})
