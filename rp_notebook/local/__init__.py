"""The local Runpod-compatible endpoint: Runpod's job API on 127.0.0.1, unmodified workers.

`LocalEndpoint` serves the production job API (`/v2/{endpoint_id}/run`, `/runsync`, `/status`,
`/stream`, `/cancel`, `/retry`, `/purge-queue`, `/health`, `/status-sync`) and the worker side of
Runpod's protocol, and starts each endpoint's worker folder (`handler.py` calling
`runpod.serverless.start`) as separate processes under the real runpod SDK. Clients (the runpod
SDK's `runpod.Endpoint`, rp_notebook's client, plain HTTP) only change the base URL.

It also serves the management API at the same address, so provisioning runs here unchanged:
GraphQL at `/graphql` (`saveTemplate`, `saveEndpoint`, `deleteEndpoint`, `deleteTemplate`,
`myself`, `gpuTypes`) and REST v2 (`/v2/serverless`, `/v2/templates`, `/v2/catalog/gpus`). An
endpoint deployed there runs a worker folder named by its template's image (`local:PATH`, or a
preset image mapped to the bundled worker).

Modules: `_config` (EndpointConfig, workers folder), `_records` (job/worker records), `_state`
(the state machine, no HTTP), `_jobs_api` / `_worker_api` (routes), `_workers` (processes),
`_worker_folder` + `_dockerfile` (a folder read as its image: entry point, packages, env),
`_environments` (the workers' own virtual environments, built by pip and cached),
`_limits` (payload and rate limits), `_faults` (injected faults for tests; `_fault_routes` applies
them), `_webhook`, `_management` (templates and endpoints, shared by
`_graphql_api` and `_rest_api`), `_server` (LocalEndpoint, serve), `_process` (a LocalEndpoint in a
process of its own, as `start_local()` runs it), `__main__`
(`python -m rp_notebook.local up`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._config import (
    LOCAL_LAYERS_ENDPOINT_ID,
    LOCAL_TTS_ENDPOINT_ID,
    EndpointConfig,
    default_endpoints,
    find_workers_dir,
)
from ._faults import Faults
from ._process import LocalEndpointProcess
from ._records import JobInfo, JobStatus, WorkerInfo, WorkerStatus

if TYPE_CHECKING:
    from ._server import LocalEndpoint, serve

__all__ = [
    "LOCAL_LAYERS_ENDPOINT_ID",
    "LOCAL_TTS_ENDPOINT_ID",
    "EndpointConfig",
    "Faults",
    "JobInfo",
    "JobStatus",
    "LocalEndpoint",
    "LocalEndpointProcess",
    "WorkerInfo",
    "WorkerStatus",
    "default_endpoints",
    "find_workers_dir",
    "serve",
]


def __getattr__(name: str) -> Any:
    # The server and aiohttp's web stack (~600 modules, ~0.5 s) load on first use: a kernel that
    # only drives the process `start_local()` serves from, or reads EndpointConfig, never needs them.
    if name in ("LocalEndpoint", "serve"):
        from . import _server

        return getattr(_server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
