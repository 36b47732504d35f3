"""Worker process supervision: start unmodified runpod SDK workers and make sure they all die.

Each worker runs as `[python, "-u", handler.py]` with the worker folder as its working directory
and the environment a Runpod worker sees (`RUNPOD_WEBHOOK_GET_JOB`, `..._POST_OUTPUT`,
`..._POST_STREAM`, `..._PING`, `RUNPOD_POD_ID`, `RUNPOD_AI_API_KEY`, ...), with URLs that point
at this server's `/_worker/` routes. Those routes authenticate with a per-server token in the query
string: the SDK sends `RUNPOD_AI_API_KEY` as a bare Authorization header, but replaces it with the
user's real key from ~/.runpod/config.toml when that file exists, so the header cannot be trusted
(and is never logged). Inherited `RUNPOD_*` variables are dropped so a user's shell cannot switch a
worker into another mode (e.g. `RUNPOD_REALTIME_PORT`); the endpoint's own env is added last.

No orphans, ever. The SDK worker retries fast when the server is gone and forks a heartbeat
process, so:

* every worker gets its own process group (`start_new_session=True`), and every signal goes to
  the whole group;
* on Linux the child sets `PR_SET_PDEATHSIG = SIGTERM` before exec. The signal fires when the
  *thread* that forked it dies, so `spawn` must be called on the server's event-loop thread, which
  lives exactly as long as the server;
* a watcher thread per worker blocks in `waitid(WNOWAIT)` (no polling, no CPU), then SIGKILLs what
  is left of the group (the heartbeat process) before reaping the leader, so the group id cannot
  have been reused;
* `stop_all` sends SIGTERM to every group, waits a grace period, then SIGKILL.

Worker stdout/stderr go to `<logs_dir>/<endpoint>/<worker_id>.log`.

A worker whose image installs packages (`EndpointConfig.packages`) runs on its own environment's
Python (`_environments`). When that environment is not built yet, `spawn` returns at once with the
worker INITIALIZING and no process (as a Runpod worker is while its image is pulled); the build
runs in a thread and the process starts when it is done. A failed build ends the worker before it
started: `worker.start_error` holds pip's error and `on_exit` is called with `BUILD_FAILED`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime as _dt
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..worker_runtime import LOCAL_ENDPOINT_ENV
from ._config import EndpointConfig
from ._environments import EnvironmentBuildError, WorkerEnvironments
from ._records import WorkerRecord
from ._state import WorkerStartError

__all__ = ["BUILD_FAILED", "WorkerSupervisor"]

#: The exit code `on_exit` gets for a worker whose environment could not be built (no process ran).
BUILD_FAILED = -1000

log = logging.getLogger("rp_notebook.local")

_LINUX = sys.platform.startswith("linux")
_PR_SET_PDEATHSIG = 1
_SIGTERM = int(signal.SIGTERM)

if _LINUX:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
    _prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    _prctl.restype = ctypes.c_int


def _make_preexec(parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:  # runs in the child between fork and exec: keep it tiny
        _prctl(_PR_SET_PDEATHSIG, _SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass(eq=False)
class _Proc:
    popen: subprocess.Popen[bytes]
    watcher: threading.Thread | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)


class WorkerSupervisor:
    """Starts, watches and stops the worker processes of one server (all its endpoints)."""

    def __init__(
        self,
        *,
        base_url: str,
        worker_token: str,
        logs_dir: Path,
        ping_interval_ms: int = 10_000,
        term_grace_s: float = 2.0,
        environments: WorkerEnvironments | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.logs_dir = logs_dir
        self.ping_interval_ms = ping_interval_ms
        self.term_grace_s = term_grace_s
        self.environments = environments or WorkerEnvironments()
        self._token = worker_token
        self._procs: dict[str, _Proc] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}  # workers waiting for their environment

    # ------------------------------------------------------------------ environment
    def worker_env(self, config: EndpointConfig, worker_id: str) -> dict[str, str]:
        """The environment of one worker process of `config`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
        base = f"{self.base_url}/_worker/{config.id}"
        query = f"?token={self._token}"
        env.update(
            {
                # The SDK replaces "$ID" with RUNPOD_POD_ID here and appends "&job_in_progress=0|1";
                # it derives the job-stop URL by replacing "/job-take/" with "/job-stop/".
                "RUNPOD_WEBHOOK_GET_JOB": f"{base}/job-take/$ID{query}",
                # "$RUNPOD_POD_ID" -> worker id at import, "$ID" -> job id per call, then "&isStream=..."
                "RUNPOD_WEBHOOK_POST_OUTPUT": f"{base}/job-done/$RUNPOD_POD_ID/$ID{query}",
                "RUNPOD_WEBHOOK_POST_STREAM": f"{base}/job-stream/$RUNPOD_POD_ID/$ID{query}",
                "RUNPOD_WEBHOOK_PING": f"{base}/ping/$RUNPOD_POD_ID{query}",
                "RUNPOD_POD_ID": worker_id,
                "RUNPOD_POD_HOSTNAME": f"{worker_id}-local",
                "RUNPOD_AI_API_KEY": self._token,
                "RUNPOD_ENDPOINT_ID": config.id,
                "RUNPOD_PING_INTERVAL": str(self.ping_interval_ms),
                "RUNPOD_SKIP_GPU_CHECK": "true",
                "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
                "RUNPOD_LOG_LEVEL": "INFO",  # DEBUG (the SDK default) logs every poll URL and output
                "PYTHONUNBUFFERED": "1",
                # RUNPOD_ENDPOINT_ID alone would say "on Runpod", where a GPU worker refuses the CPU.
                LOCAL_ENDPOINT_ENV: "1",
            }
        )
        env.update(config.env)
        return env

    # ------------------------------------------------------------------ start / watch
    def spawn(
        self, config: EndpointConfig, worker: WorkerRecord, on_exit: Callable[[str, int], None]
    ) -> None:
        """Start one worker process. Call on the event-loop thread (see PR_SET_PDEATHSIG above)."""
        try:
            config.check()
        except FileNotFoundError as exc:
            raise WorkerStartError(str(exc)) from exc
        python = config.interpreter
        if config.packages is not None:
            ready = self.environments.ready(config.packages)
            if ready is None:
                task = asyncio.ensure_future(self._spawn_when_built(config, worker, on_exit))
                self._pending[worker.id] = task
                return
            python = ready
        self._start_process(config, worker, python, on_exit)

    async def _spawn_when_built(
        self, config: EndpointConfig, worker: WorkerRecord, on_exit: Callable[[str, int], None]
    ) -> None:
        assert config.packages is not None
        log.info(
            "endpoint %s: worker %s waits for its environment (%s)",
            config.id,
            worker.id,
            config.packages.origin,
        )
        try:
            python = await self.environments.ensure(config.packages)
        except asyncio.CancelledError:
            self._pending.pop(worker.id, None)
            on_exit(worker.id, -signal.SIGTERM)  # stopped before it started
            raise
        except (EnvironmentBuildError, OSError) as exc:
            self._pending.pop(worker.id, None)
            worker.start_error = str(exc)
            on_exit(worker.id, BUILD_FAILED)
            return
        self._pending.pop(worker.id, None)
        try:
            self._start_process(config, worker, python, on_exit)
        except WorkerStartError as exc:
            worker.start_error = str(exc)
            on_exit(worker.id, BUILD_FAILED)

    def _start_process(
        self, config: EndpointConfig, worker: WorkerRecord, python: str, on_exit: Callable[[str, int], None]
    ) -> None:
        loop = asyncio.get_running_loop()
        log_dir = self.logs_dir / config.id
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        log_path = log_dir / f"{worker.id}.log"
        stamp = _dt.datetime.now().isoformat(timespec="seconds")
        try:
            with open(log_path, "ab") as log_file:
                log_file.write(f"# rp_notebook local worker {worker.id} of {config.id}, {stamp}\n".encode())
                log_file.flush()
                popen = subprocess.Popen(
                    config.argv(python),
                    cwd=config.cwd,
                    env=self.worker_env(config, worker.id),
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_make_preexec(os.getpid()) if _LINUX else None,
                    close_fds=True,
                )
        except OSError as exc:
            raise WorkerStartError(f"could not run {' '.join(config.argv(python))}: {exc}") from exc
        worker.pid = popen.pid
        worker.log_path = log_path
        proc = _Proc(popen)
        self._procs[worker.id] = proc
        proc.watcher = threading.Thread(
            target=self._watch,
            args=(proc, worker.id, on_exit, loop),
            name=f"rp-local-watch-{worker.id}",
            daemon=True,
        )
        proc.watcher.start()

    def _watch(
        self,
        proc: _Proc,
        worker_id: str,
        on_exit: Callable[[str, int], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        pid = proc.popen.pid
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
        _killpg(pid, signal.SIGKILL)  # whatever is left of its group, e.g. the SDK's heartbeat process
        returncode = proc.popen.wait()
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(self._exited, proc, worker_id, returncode, on_exit)

    def _exited(
        self, proc: _Proc, worker_id: str, returncode: int, on_exit: Callable[[str, int], None]
    ) -> None:
        if self._procs.get(worker_id) is proc:
            del self._procs[worker_id]
        proc.exited.set()
        on_exit(worker_id, returncode)

    # ------------------------------------------------------------------ stop
    def terminate(self, worker: WorkerRecord) -> None:
        """SIGTERM the worker's group now, SIGKILL it if it is still there after the grace period."""
        pending = self._pending.get(worker.id)
        if pending is not None:  # still waiting for its environment: it just never starts
            pending.cancel()
            return
        proc = self._procs.get(worker.id)
        if proc is None:
            return
        _killpg(proc.popen.pid, signal.SIGTERM)
        asyncio.get_running_loop().call_later(self.term_grace_s, self._kill_if_alive, worker.id, proc)

    def _kill_if_alive(self, worker_id: str, proc: _Proc) -> None:
        if self._procs.get(worker_id) is proc and not proc.exited.is_set():
            _killpg(proc.popen.pid, signal.SIGKILL)

    def signal_all(self, sig: int) -> None:
        for proc in list(self._procs.values()):
            _killpg(proc.popen.pid, sig)

    async def stop_all(self) -> None:
        """Stop every worker: SIGTERM all groups, wait the grace period, SIGKILL the rest."""
        for pending in list(self._pending.values()):
            pending.cancel()
        self.environments.stop_builds()
        procs = list(self._procs.values())
        for proc in procs:
            _killpg(proc.popen.pid, signal.SIGTERM)
        await self._wait_exited(procs, self.term_grace_s)
        for proc in procs:
            if not proc.exited.is_set():
                _killpg(proc.popen.pid, signal.SIGKILL)
        await self._wait_exited(procs, 5.0)
        for proc in procs:
            if proc.watcher is not None:
                await asyncio.to_thread(proc.watcher.join, 5.0)

    @staticmethod
    async def _wait_exited(procs: list[_Proc], timeout: float) -> None:
        pending = [asyncio.ensure_future(p.exited.wait()) for p in procs if not p.exited.is_set()]
        if not pending:
            return
        _, still = await asyncio.wait(pending, timeout=timeout)
        for task in still:
            task.cancel()

    def kill_all_now(self) -> None:
        """Last resort from any thread (e.g. the event loop died): SIGKILL every group and reap."""
        self.environments.stop_builds()
        for proc in list(self._procs.values()):
            _killpg(proc.popen.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=5)
