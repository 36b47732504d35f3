"""Endpoint configuration and where the bundled workers live.

An endpoint of the local server is a worker folder (a `handler.py` that calls
`runpod.serverless.start`, exactly as it runs in a Runpod image) plus the settings Runpod keeps per
endpoint: the worker env, `workers_min` / `workers_max`, the execution timeout, an idle timeout, how long results
stay readable and how long a job may live at all (its TTL). Nothing here imports aiohttp or the
runpod SDK.

The bundled workers are found in this order:

1. the `RP_NOTEBOOK_WORKERS_DIR` environment variable;
2. `rp_notebook/_workers` inside the installed package (the wheel force-includes `workers/` there);
3. the repository's `workers/` folder next to the `rp_notebook` package (an editable install).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ._worker_folder import WorkerCommand, WorkerPackages

__all__ = [
    "LOCAL_LAYERS_ENDPOINT_ID",
    "LOCAL_TTS_ENDPOINT_ID",
    "MAX_JOB_TTL_MS",
    "RUN_RESULT_RETENTION_S",
    "EndpointConfig",
    "default_endpoints",
    "find_workers_dir",
]

LOCAL_TTS_ENDPOINT_ID = "local-tts"
LOCAL_LAYERS_ENDPOINT_ID = "local-layers"
WORKERS_DIR_ENV = "RP_NOTEBOOK_WORKERS_DIR"

#: Runpod's documented defaults (shared/docs/runpod-platform.md §1.2-1.3).
RUN_RESULT_RETENTION_S = 1800.0  # /run results: 30 min after the job ended
SYNC_RESULT_RETENTION_S = 60.0  # /runsync results: 1 min
DEFAULT_JOB_TTL_MS = 24 * 3600 * 1000  # policy.ttl: 24 h from submission
MAX_JOB_TTL_MS = 7 * 24 * 3600 * 1000  # policy.ttl may be at most 7 days

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# The management API (REST v2) lives under the same /v2/ prefix as the job API: an endpoint with
# one of these ids would be shadowed by /v2/serverless, /v2/templates or /v2/catalog/gpus.
RESERVED_ENDPOINT_IDS = frozenset({"serverless", "templates", "catalog"})
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class EndpointConfig:
    """One endpoint of the local server, i.e. one worker folder and its scaling settings.

    id: the endpoint id used in URLs (`/v2/{id}/run`); letters, digits, `-` and `_`.
    worker_dir: the folder holding the worker; it is the worker's working directory.
    env: extra environment for the worker processes (added after the `RUNPOD_*` protocol vars,
        so an endpoint may override e.g. `RUNPOD_LOG_LEVEL`).
    workers_max: how many worker processes (and therefore jobs) may run at once; 0 keeps jobs
        IN_QUEUE until the endpoint is scaled up (as on Runpod).
    workers_min: how many workers are kept running even with no job (Runpod's "active workers",
        billed while idle there): started with the endpoint, replaced when one exits, never
        stopped by the idle timeout. At most `workers_max`; 0 (the default) scales to zero.
    handler: the script started as `python -u <handler>` inside `worker_dir`, unless `command` is set.
    command: the process a worker starts as (script or module, flags, working directory), read
        from the folder as its image would start it (`_worker_folder.read_worker_folder`); None
        runs `handler` in `worker_dir`.
    packages: what the worker's image installs; its workers run in an environment built from it
        (`_environments`). None runs them on `python`.
    python: the interpreter for the workers when `packages` is None; the server's own
        `sys.executable` when None.
    execution_timeout_ms: a running job is TIMED_OUT after this long unless its request sets
        `policy.executionTimeout`; None means no limit. Runpod's default is 600 s.
    idle_timeout_s: an idle worker is stopped after this many seconds; None keeps workers warm
        until the server stops.
    result_retention_s: a finished `/run` job is forgotten (404) this long after it ended; None
        keeps every job until the server stops. Runpod keeps `/run` results 30 min.
    sync_result_retention_s: the same for `/runsync` jobs (ids `sync-...`); Runpod keeps them 1 min.
    job_ttl_ms: a job's total lifetime from submission, queue time included, unless its request
        sets `policy.ttl`; once it passes the job is deleted whatever its state (a running job's
        worker is told to stop) and `/status` answers 404. Runpod's default is 24 h.
    """

    id: str
    worker_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    workers_max: int = 1
    workers_min: int = 0
    handler: str = "handler.py"
    command: WorkerCommand | None = None
    packages: WorkerPackages | None = None
    python: str | None = None
    execution_timeout_ms: int | None = 600_000
    idle_timeout_s: float | None = None
    result_retention_s: float | None = RUN_RESULT_RETENTION_S
    sync_result_retention_s: float | None = SYNC_RESULT_RETENTION_S
    job_ttl_ms: int = DEFAULT_JOB_TTL_MS

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID_RE.match(self.id):
            raise ValueError(f"endpoint id {self.id!r} is invalid: use 1-64 letters, digits, '-' or '_'")
        if self.id.lower() in RESERVED_ENDPOINT_IDS:
            raise ValueError(
                f"endpoint id {self.id!r} is reserved: /v2/{self.id} is the management API's "
                f"(reserved ids: {', '.join(sorted(RESERVED_ENDPOINT_IDS))})"
            )
        object.__setattr__(self, "worker_dir", Path(self.worker_dir).expanduser())
        env = dict(self.env)
        for key, value in env.items():
            if not isinstance(key, str) or not _ENV_NAME_RE.match(key):
                raise ValueError(f"endpoint {self.id}: env name {key!r} is not a valid variable name")
            if not isinstance(value, str):
                raise ValueError(
                    f"endpoint {self.id}: env {key} must be a string, got {type(value).__name__}"
                )
        object.__setattr__(self, "env", env)
        if (
            not isinstance(self.workers_max, int)
            or isinstance(self.workers_max, bool)
            or self.workers_max < 0
        ):
            raise ValueError(f"endpoint {self.id}: workers_max must be an int >= 0, got {self.workers_max!r}")
        if (
            not isinstance(self.workers_min, int)
            or isinstance(self.workers_min, bool)
            or not 0 <= self.workers_min <= self.workers_max
        ):
            raise ValueError(
                f"endpoint {self.id}: workers_min must be an int in 0..workers_max ({self.workers_max}), "
                f"got {self.workers_min!r}"
            )
        if self.execution_timeout_ms is not None and self.execution_timeout_ms <= 0:
            raise ValueError(f"endpoint {self.id}: execution_timeout_ms must be > 0 or None")
        if self.idle_timeout_s is not None and self.idle_timeout_s <= 0:
            raise ValueError(f"endpoint {self.id}: idle_timeout_s must be > 0 or None")
        for name in ("result_retention_s", "sync_result_retention_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"endpoint {self.id}: {name} must be > 0 or None")
        ttl = self.job_ttl_ms
        if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 < ttl <= MAX_JOB_TTL_MS:
            raise ValueError(f"endpoint {self.id}: job_ttl_ms must be an int in 1..{MAX_JOB_TTL_MS} (7 days)")
        if Path(self.handler).name != self.handler:
            raise ValueError(f"endpoint {self.id}: handler must be a file name inside worker_dir")

    @property
    def handler_path(self) -> Path:
        """The script the workers run (the module's folder for `python -m`)."""
        if self.command is not None:
            return self.command.script or self.command.cwd
        return self.worker_dir / self.handler

    def argv(self, python: str) -> list[str]:
        """The worker process's command line with `python` as the interpreter."""
        if self.command is not None:
            return self.command.argv(python)
        return [python, "-u", self.handler]

    @property
    def cwd(self) -> Path:
        return self.command.cwd if self.command is not None else self.worker_dir

    @property
    def interpreter(self) -> str:
        return self.python or sys.executable

    def check(self) -> None:
        """Raise FileNotFoundError when the worker folder or its handler script is missing."""
        if not self.worker_dir.is_dir():
            raise FileNotFoundError(f"endpoint {self.id}: worker folder {self.worker_dir} does not exist")
        if self.command is not None and self.command.module is not None:
            if not self.command.cwd.is_dir():
                raise FileNotFoundError(f"endpoint {self.id}: {self.command.cwd} does not exist")
        elif not self.handler_path.is_file():
            raise FileNotFoundError(f"endpoint {self.id}: {self.handler_path} does not exist")


def find_workers_dir() -> Path | None:
    """The folder that holds the bundled worker folders, or None when there is none."""
    from_env = os.environ.get(WORKERS_DIR_ENV)
    if from_env:
        return Path(from_env).expanduser()
    package_dir = Path(__file__).resolve().parent.parent  # .../rp_notebook
    for candidate in (package_dir / "_workers", package_dir.parent / "workers"):
        if candidate.is_dir():
            return candidate
    return None


def default_endpoints(workers_dir: Path | None = None) -> list[EndpointConfig]:
    """The endpoints a server has at start, each a bundled worker on its CPU engine.

    `local-tts`: workers/chatterbox_tts with the piper voice; `local-layers`:
    workers/qwen_image_layered with the colorsplit demo engine (not the model).

    Returns an empty list when no workers folder can be found.
    """
    workers_dir = workers_dir or find_workers_dir()
    if workers_dir is None:
        return []
    return [
        EndpointConfig(
            id=LOCAL_TTS_ENDPOINT_ID,
            worker_dir=workers_dir / "chatterbox_tts",
            env={"TTS_ENGINE": "piper"},
            workers_max=1,
        ),
        EndpointConfig(
            id=LOCAL_LAYERS_ENDPOINT_ID,
            worker_dir=workers_dir / "qwen_image_layered",
            env={"LAYERS_ENGINE": "colorsplit"},
            workers_max=1,
        ),
    ]
