"""Worker environments: one virtual environment per package set, built once and reused.

A worker folder whose image installs packages (`WorkerPackages`: its Dockerfile's `pip install`
commands, or its `requirements.txt`) runs in a virtual environment built from exactly those, not
on the server's own packages: a worker that pins `runpod==1.7.9` runs on 1.7.9, and one that
forgot a dependency fails here as it would in its image.

The tool is venv + pip. uv builds environments several times faster, but it reads its own
configuration, not pip's, and a worker environment must reach exactly the package sources this
machine's pip is configured with (index mirrors, `find-links` folders of local wheels, constraint
files, certificates); pip honours them with no translation. The cost is paid once per package set:
measured on a 2-core machine, `runpod==1.7.9` (about 100 packages) builds in about 20 s with pip's
download cache warm, and a cached environment is found in well under a millisecond.

Environments live in the user cache folder (`$RP_NOTEBOOK_CACHE_DIR`, else platformdirs'
`user_cache_dir("rp_notebook")`), under `worker-envs/<key>/`, where the key hashes the Python
version, this builder's version, the install commands and the content of every requirement and
constraint file they read. So a changed requirements.txt builds a new environment, and every
server and session on the machine shares the ones already built. `<key>.log` keeps the last
build's pip output. An environment counts as built only once its `rp_notebook_env.json` is written,
last: a build that was interrupted is started again from scratch. Builds of one key are serialised
across processes by a file lock and within a process by one shared task.

The server's pip runs the installs into the new environment (`pip --python ENV`), so an
environment holds no copy of pip; where the server has no pip, the environment gets its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
import venv
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ._worker_folder import WorkerPackages

__all__ = ["EnvironmentBuildError", "WorkerEnvironments", "environments_dir"]

log = logging.getLogger("rp_notebook.local")

CACHE_DIR_ENV = "RP_NOTEBOOK_CACHE_DIR"
BUILDER_VERSION = "1"  # bump when a change here makes old environments wrong
_MARKER = "rp_notebook_env.json"
_ERROR_LINES = 25


class EnvironmentBuildError(Exception):
    """pip could not build a worker environment; the message carries pip's own error."""


def environments_dir() -> Path:
    """Where worker environments are cached."""
    root = os.environ.get(CACHE_DIR_ENV)
    if not root:
        from platformdirs import user_cache_dir

        root = user_cache_dir("rp_notebook", appauthor=False)
    return Path(root).expanduser() / "worker-envs"


def _python_bin(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


class WorkerEnvironments:
    """Finds or builds the environment of a `WorkerPackages`.

    `ready` answers at once from the cache; `ensure` builds in a worker thread (never on the
    event loop), one build per key at a time. `on_line` sees every line pip prints (progress).
    """

    def __init__(
        self, root: Path | None = None, *, on_line: Callable[[str, str], None] | None = None
    ) -> None:
        self.root = root or environments_dir()
        self._on_line = on_line or (lambda key, line: log.info("worker environment %s: %s", key, line))
        self._building: dict[str, asyncio.Future[str]] = {}
        self._pips: set[subprocess.Popen[str]] = set()  # pip processes running now (any thread)

    def stop_builds(self) -> None:
        """Kill the pip processes of builds in progress (server shutdown); those builds fail."""
        for process in list(self._pips):
            with contextlib.suppress(OSError):
                process.kill()

    def key(self, packages: WorkerPackages) -> str:
        digest = hashlib.sha256()
        interpreter = f"{platform.python_implementation()}-{sys.version_info[0]}.{sys.version_info[1]}"
        digest.update(f"{BUILDER_VERSION}\0{interpreter}\0{platform.machine()}\0".encode())
        digest.update(packages.fingerprint().encode())
        return digest.hexdigest()[:16]

    def ready(self, packages: WorkerPackages) -> str | None:
        """The environment's Python when it is built, else None."""
        env_dir = self.root / self.key(packages)
        return str(_python_bin(env_dir)) if (env_dir / _MARKER).is_file() else None

    async def ensure(self, packages: WorkerPackages) -> str:
        """The environment's Python, building it first if needed. Raises EnvironmentBuildError."""
        key = self.key(packages)
        building = self._building.get(key)
        if building is None:
            building = asyncio.ensure_future(asyncio.to_thread(self.build, packages))
            self._building[key] = building
            building.add_done_callback(lambda _: self._building.pop(key, None))
        return await asyncio.shield(building)

    def build(self, packages: WorkerPackages) -> str:
        """Build (or find) the environment; blocking. Raises EnvironmentBuildError."""
        key = self.key(packages)
        env_dir = self.root / key
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another server may be building the same one
            if (env_dir / _MARKER).is_file():
                return str(_python_bin(env_dir))
            shutil.rmtree(env_dir, ignore_errors=True)  # what an interrupted build left
            started = time.monotonic()
            self._on_line(key, f"building from {packages.origin} in {env_dir}")
            try:
                self._create(env_dir, packages, key)
            except BaseException:
                shutil.rmtree(env_dir, ignore_errors=True)
                raise
            seconds = round(time.monotonic() - started, 1)
            marker = {
                "key": key,
                "origin": packages.origin,
                "installs": [list(args) for args in packages.installs],
                "python": sys.version.split()[0],
                "build_seconds": seconds,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            (env_dir / _MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
            self._on_line(key, f"built in {seconds} s")
        return str(_python_bin(env_dir))

    def _create(self, env_dir: Path, packages: WorkerPackages, key: str) -> None:
        own_pip = importlib.util.find_spec("pip") is None
        venv.EnvBuilder(with_pip=own_pip, symlinks=os.name != "nt").create(env_dir)
        python = str(_python_bin(env_dir))
        pip = [python, "-m", "pip"] if own_pip else [sys.executable, "-m", "pip", "--python", python]
        with open(self.root / f"{key}.log", "w", encoding="utf-8") as build_log:
            for args in packages.installs:
                self._pip_install(pip, args, key, build_log, packages.origin)

    def _pip_install(
        self, pip: list[str], args: tuple[str, ...], key: str, build_log: TextIO, origin: str
    ) -> None:
        command = [
            *pip,
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
            *args,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONPATH", None)  # the server's own paths must not leak into the new environment
        lines: list[str] = []
        with subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
        ) as process:
            assert process.stdout is not None
            self._pips.add(process)
            try:
                for raw in process.stdout:
                    line = raw.rstrip()
                    print(line, file=build_log, flush=True)
                    lines.append(line)
                    self._on_line(key, line)
                code = process.wait()
            finally:
                self._pips.discard(process)
        if code != 0:
            errors = [line for line in lines if line.startswith("ERROR")] or lines[-_ERROR_LINES:]
            raise EnvironmentBuildError(
                f"pip could not build the worker environment from {origin} "
                f"(pip install {' '.join(args)} exited with {code}):\n" + "\n".join(errors[-_ERROR_LINES:])
            )
