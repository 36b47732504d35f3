"""The management side of the local endpoint: templates, endpoints and the GPU catalog.

Runpod manages serverless endpoints through two APIs (GraphQL, and its successor REST v2), and both
act on one account: a template made over GraphQL is listed by REST v2 and the other way round. The
local endpoint mirrors that with one `ManagementStore`, which holds the records and enforces
Runpod's rules; `_graphql_api` and `_rest_api` only translate their wire formats to and from it.

Records are API-neutral (`TemplateRecord`, `EndpointRecord`); a refused request raises
`ManagementError` (the HTTP status REST answers with, a message both APIs send unchanged, and the
record field it is about, which REST maps to its own field name).

Creating an endpoint deploys it for real: the store resolves the template's image to a worker folder
(`resolve_image`) and adds a live endpoint with the new id, so `/v2/{id}/run` runs that worker.
Changing an endpoint's workers, idle timeout or execution timeout reconfigures the live endpoint;
deleting it stops its workers and its job routes answer 404.

Endpoints added without the management API (`LocalEndpoint(endpoints=...)`, `add_endpoint`, the
default `local-tts` / `local-layers`) are adopted on sight: each gets a record and a synthetic
template (`local-<id>`, image `local:<worker folder>`), so listings show every endpoint the server
runs and the management API can scale and delete them too. They run on the CPU: `gpuIds` is "".

Everything here runs on the server's event-loop thread (the routes, or `LocalEndpoint._call`), so
there are no locks.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hmac
import secrets
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ..errors import InputError
from ..provisioning._gpus import GPU_POOLS, parse_gpu_ids
from ._config import EndpointConfig, find_workers_dir
from ._http import CONTEXT
from ._state import EndpointState
from ._worker_folder import (
    DEFAULT_ENTRY_POINT,
    WorkerCommand,
    WorkerFolderError,
    WorkerPackages,
    read_worker_folder,
)

__all__ = [
    "BUNDLED_IMAGES",
    "MANAGEMENT",
    "EndpointRecord",
    "ManagementError",
    "ManagementStore",
    "ResolvedWorker",
    "TemplateRecord",
    "authorized",
    "gpu_catalog",
    "resolve_image",
]

USER_ID = "user_local"
_ALPHABET = string.ascii_lowercase + string.digits
_GPU_TYPES = {gpu: (pool.id, memory) for pool in GPU_POOLS.values() for gpu, memory in pool.gpu_types.items()}
# Runpod's display names where stripping "NVIDIA " / "GeForce " / " Generation" is not enough.
_DISPLAY_NAMES = {
    "NVIDIA A100 80GB PCIe": "A100 PCIe",
    "NVIDIA A100-SXM4-80GB": "A100 SXM",
    "NVIDIA H100 80GB HBM3": "H100 SXM",
}

#: Image repository name -> (bundled worker folder, env that selects its CPU engine). The GPU engines
#: (Chatterbox, Qwen-Image-Layered) cannot run here, so the local endpoint runs a bundled image on
#: the CPU engine of the same worker code: same inputs, same output shape, a lighter model.
BUNDLED_IMAGES: dict[str, tuple[str, dict[str, str]]] = {
    "rp-notebook-tts": ("chatterbox_tts", {"TTS_ENGINE": "piper"}),
    "rp-notebook-layers": ("qwen_image_layered", {"LAYERS_ENGINE": "colorsplit"}),
}


def _new_id(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ManagementError(Exception):
    """A refused management request: `status` for REST (400/404/409), `field` a record field name."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


@dataclass
class TemplateRecord:
    id: str
    name: str
    image: str
    disk_gb: int = 10
    volume_gb: int = 0
    volume_mount_path: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    docker_args: str = ""
    ports: list[str] = field(default_factory=list)
    readme: str = ""
    is_serverless: bool = True
    is_public: bool = False
    start_ssh: bool = True
    registry_auth_id: str = ""


@dataclass
class EndpointRecord:
    id: str
    name: str
    template_id: str
    pools: list[str] = field(default_factory=list)
    excluded_types: list[str] = field(default_factory=list)
    gpu_count: int = 1
    workers_min: int = 0
    workers_max: int = 3
    workers_pfb_target: int | None = None  # GraphQL's workersPFBTarget: stored, read back, no effect
    idle_timeout_s: float | None = 5  # a fraction only for endpoints adopted from an EndpointConfig
    scaler_type: str = "QUEUE_DELAY"
    scaler_value: float = 4
    flashboot: str = "OFF"
    execution_timeout_ms: int | None = 600_000
    allowed_cuda_versions: list[str] = field(default_factory=list)
    min_cuda_version: str | None = None
    locations: str = ""
    created_at: str = field(default_factory=_now)


#: Record fields a request may set, with the checks every API shares (type checks are the APIs').
_RANGES: dict[str, tuple[int, int | None]] = {
    "gpu_count": (1, 8),
    "workers_min": (0, None),
    "workers_max": (0, None),
    "idle_timeout_s": (1, 3600),
    "execution_timeout_ms": (1, None),
    "disk_gb": (0, None),
    "volume_gb": (0, None),
}


@dataclass(frozen=True)
class ResolvedWorker:
    """What a template's image runs on this machine: a worker folder, read as its image would start.

    `command` and `packages` are None for a bundled worker on its CPU engine, which runs handler.py on
    the server's own Python (its CPU requirements are the server's `local` extra): no environment to
    build, so the quickstart stays as fast as ever.
    """

    worker_dir: Path
    env: dict[str, str]  # the image's ENV, then the template's env over it
    bundled: str | None = None  # the bundled image name that matched, None for a folder path
    command: WorkerCommand | None = None  # None: handler.py in worker_dir
    packages: WorkerPackages | None = None  # None: the server's own Python


def _image_name(image: str) -> str:
    """`ghcr.io/org/rp-notebook-tts:0.1.0` -> `rp-notebook-tts` (no registry, path, tag or digest)."""
    name = image.strip().split("@", 1)[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[0].lower()


def _image_folder(image: str, cwd: Path | None) -> Path | None:
    """The folder an image names: `local:<path>` (existing or not), or the path of a folder."""
    path = image[len("local:") :] if image.startswith("local:") else image
    if not path.strip():
        return None
    folder = Path(path).expanduser()
    if not folder.is_absolute():
        folder = (cwd or Path.cwd()) / folder
    return folder if image.startswith("local:") or folder.is_dir() else None


def _bundled_cpu_engine(folder: Path, env: Mapping[str, str], workers_dir: Path | None) -> bool:
    """Whether `folder` is a bundled worker and `env` selects its CPU engine (the fast path)."""
    root = workers_dir or find_workers_dir()
    if root is None:
        return False
    for folder_name, engine_env in BUNDLED_IMAGES.values():
        if (root / folder_name).resolve() == folder.resolve():
            return all(env.get(name) == value for name, value in engine_env.items())
    return False


def _read_folder(image: str, folder: Path, env: Mapping[str, str], start_command: str) -> ResolvedWorker:
    if not folder.is_dir():
        raise ManagementError(400, f'image "{image}": {folder} is not a folder', "image")
    try:
        read = read_worker_folder(folder, start_command)
    except WorkerFolderError as exc:
        raise ManagementError(400, f'image "{image}": {exc}', "image") from None
    # handler.py on the folder's own terms is what an EndpointConfig runs by default.
    command = None if read.command.origin == DEFAULT_ENTRY_POINT else read.command
    return ResolvedWorker(read.folder, {**read.env, **env}, None, command, read.packages)


def resolve_image(
    image: str,
    env: Mapping[str, str],
    start_command: str = "",
    *,
    workers_dir: Path | None = None,
    cwd: Path | None = None,
) -> ResolvedWorker:
    """The worker folder a template's image runs as on the local endpoint.

    1. `local:<path>`, or the path of a folder (absolute, `~`, or relative to `cwd`): that folder,
       read as its image would start (`_worker_folder`: the start command, the Dockerfile, its
       packages), with the template's env over the image's. A bundled worker's folder with an env
       that selects its CPU engine runs as the bundled image does (below).
    2. Otherwise the image's repository name (`ghcr.io/rp-notebook/rp-notebook-tts:0.1.0` ->
       `rp-notebook-tts`) or a bundled folder name (`chatterbox_tts`, `chatterbox-tts`) names a
       bundled worker, run on its CPU engine: the template's env plus the engine override,
       handler.py on the server's Python.
    3. Anything else is refused, with the two ways that work.
    """
    folder = _image_folder(image, cwd)
    if folder is not None:
        if _bundled_cpu_engine(folder, env, workers_dir):
            return ResolvedWorker(folder.resolve(), dict(env))
        return _read_folder(image, folder, env, start_command)
    name = _image_name(image).replace("_", "-")
    for bundled, (folder_name, engine_env) in BUNDLED_IMAGES.items():
        if name in (bundled, folder_name.replace("_", "-")):
            root = workers_dir or find_workers_dir()
            if root is None:
                raise ManagementError(
                    400,
                    f'image "{image}" is the bundled worker {folder_name}, but no bundled workers folder '
                    "was found (set RP_NOTEBOOK_WORKERS_DIR)",
                    "image",
                )
            return ResolvedWorker(root / folder_name, {**env, **engine_env}, bundled)
    raise ManagementError(
        400,
        f'image "{image}" names no worker folder on the local endpoint; use an image of a bundled worker '
        f"({', '.join(BUNDLED_IMAGES)}) or a folder path (local:/path/to/worker)",
        "image",
    )


def gpu_catalog(prices: Mapping[str, float]) -> list[dict[str, Any]]:
    """One entry per GPU type of the serverless pools (REST v2's catalog shape, plus manufacturer).

    Prices are null unless the server was given them: the local endpoint does not invent prices.
    """
    catalog = []
    for gpu_id, (pool, memory) in _GPU_TYPES.items():
        display = _DISPLAY_NAMES.get(gpu_id) or (
            gpu_id.removeprefix("NVIDIA ").removeprefix("GeForce ").removesuffix(" Generation")
        )
        catalog.append(
            {
                "id": gpu_id,
                "displayName": display,
                "manufacturer": "Nvidia",
                "memoryInGb": memory,
                "pool": pool,
                "securePrice": prices.get(gpu_id),
                "communityPrice": None,
            }
        )
    return catalog


def check_gpus(
    pools: Iterable[str], excluded: Iterable[str], *, field_name: str
) -> tuple[list[str], list[str]]:
    """Pools and excluded GPU types checked against the pool table (pool ids upper-cased)."""
    items = [*pools, *(f"-{gpu}" for gpu in excluded)]
    try:
        return parse_gpu_ids(items, field=field_name)
    except InputError as exc:
        message = str(exc).removesuffix(" (see %runpod gpus)")
        raise ManagementError(400, message, "excluded_types" if "exclude" in message else "pools") from None


def check_ranges(values: Mapping[str, Any], names: Mapping[str, str]) -> None:
    """The numeric limits of `_RANGES`; `names` maps a record field to the API's name for it."""
    for key, (low, high) in _RANGES.items():
        value = values.get(key)
        if value is None:
            continue
        if value < low or (high is not None and value > high):
            limit = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ManagementError(400, f"{names.get(key, key)} must be {limit}, got {value}", key)


class ManagementStore:
    """Templates and endpoints of the local account, and the live endpoints they deploy."""

    def __init__(
        self,
        live: dict[str, EndpointState],
        make_state: Callable[[EndpointConfig], EndpointState],
        *,
        gpu_prices: Mapping[str, float] | None = None,
    ) -> None:
        self._live = live  # the server's endpoints (ServerContext.endpoints): what /v2/{id}/ serves
        self._make_state = make_state
        self.gpu_prices = dict(gpu_prices or {})
        self._templates: dict[str, TemplateRecord] = {}
        self._endpoints: dict[str, EndpointRecord] = {}

    # ------------------------------------------------------------------ templates
    def templates(self) -> list[TemplateRecord]:
        self._adopt_live()
        return list(self._templates.values())

    def template(self, template_id: str) -> TemplateRecord:
        self._adopt_live()
        try:
            return self._templates[template_id]
        except KeyError:
            raise ManagementError(404, f'template "{template_id}" not found', "template_id") from None

    def template_named(self, name: str) -> TemplateRecord:
        self._adopt_live()
        for template in self._templates.values():
            if template.name == name:
                return template
        raise ManagementError(404, f'template "{name}" not found', "name")

    def create_template(self, values: Mapping[str, Any], names: Mapping[str, str]) -> TemplateRecord:
        self._adopt_live()
        self._check_template(values, names, template_id=None)
        template = TemplateRecord(id=self._unused_id(10, self._templates), **values)
        self._templates[template.id] = template
        return template

    def update_template(
        self, template_id: str, changes: Mapping[str, Any], names: Mapping[str, str]
    ) -> TemplateRecord:
        """Change a template; the endpoints that use it run the new image/env from their next worker."""
        template = self.template(template_id)
        self._check_template(changes, names, template_id=template_id)
        updated = dataclasses.replace(template, **changes)
        users = self.endpoints_using(template_id)
        configs = {e.id: self._live_config(e, updated) for e in users}  # all resolve, or nothing changes
        self._templates[template_id] = updated
        for endpoint_id, config in configs.items():
            self._live[endpoint_id].reconfigure(config)
        return updated

    def delete_template(self, template_id: str) -> None:
        template = self.template(template_id)
        users = self.endpoints_using(template_id)
        if users:
            names = ", ".join(f'{e.id} ("{e.name}")' for e in users)
            raise ManagementError(
                409,
                f'template "{template.name}" is in use by endpoint(s) {names}; delete them or point them '
                "at another template first",
                "template_id",
            )
        del self._templates[template_id]

    def endpoints_using(self, template_id: str) -> list[EndpointRecord]:
        return [e for e in self._endpoints.values() if e.template_id == template_id]

    def _check_template(
        self, values: Mapping[str, Any], names: Mapping[str, str], *, template_id: str | None
    ) -> None:
        check_ranges(values, names)
        name = values.get("name")
        if name is not None:
            if not name.strip():
                raise ManagementError(400, "a template name must not be empty", "name")
            if any(t.name == name and t.id != template_id for t in self._templates.values()):
                raise ManagementError(409, f'Template name "{name}" is already taken.', "name")
        if values.get("image") is not None and not values["image"].strip():
            raise ManagementError(400, "a template image must not be empty", "image")
        if "image" in values or "docker_args" in values or "env" in values:
            current = self._templates.get(template_id or "")
            image = values.get("image", current.image if current else "")
            if _image_folder(image, None) is not None:  # a folder must have an entry point now
                env = values.get("env", current.env if current else {})
                start_command = values.get("docker_args", current.docker_args if current else "")
                resolve_image(image, env or {}, start_command or "")

    # ------------------------------------------------------------------ endpoints
    def endpoints(self) -> list[EndpointRecord]:
        self._adopt_live()
        return list(self._endpoints.values())

    def endpoint(self, endpoint_id: str) -> EndpointRecord:
        self._adopt_live()
        try:
            return self._endpoints[endpoint_id]
        except KeyError:
            raise ManagementError(404, f'endpoint "{endpoint_id}" not found', "id") from None

    def create_endpoint(self, values: Mapping[str, Any], names: Mapping[str, str]) -> EndpointRecord:
        """Create an endpoint and deploy it: its workersMin workers start now, the others on demand.

        `values` holds record fields (at least name and template_id); `names` maps record fields to
        the API's own names for the error messages.
        """
        self._adopt_live()
        check_ranges(values, names)
        endpoint_id = self._unused_id(14, self._endpoints)
        record = EndpointRecord(id=endpoint_id, **values)
        self._check_endpoint(record, names)
        config = self._live_config(record, self.template(record.template_id))
        self._endpoints[endpoint_id] = record
        self._live[endpoint_id] = self._make_state(config)
        return record

    def update_endpoint(
        self, endpoint_id: str, changes: Mapping[str, Any], names: Mapping[str, str]
    ) -> EndpointRecord:
        """Change an endpoint's settings; its live workers follow (see EndpointState.reconfigure)."""
        record = self.endpoint(endpoint_id)
        # Only what changes is checked: clients resend what they read (e.g. gpuIds "" of a CPU endpoint).
        changes = {k: v for k, v in changes.items() if getattr(record, k) != v}
        check_ranges(changes, names)
        updated = dataclasses.replace(record, **changes)
        self._check_endpoint(updated, names, changes=changes)
        config = self._live_config(updated, self.template(updated.template_id))
        self._endpoints[endpoint_id] = updated
        self._live[endpoint_id].reconfigure(config)
        return updated

    def delete_endpoint(self, endpoint_id: str) -> None:
        record = self.endpoint(endpoint_id)
        if record.workers_min != 0 or record.workers_max != 0:
            raise ManagementError(
                409,
                f'endpoint "{endpoint_id}" has workersMin {record.workers_min} and workersMax '
                f"{record.workers_max}; scale it to 0 workers (workersMin 0, workersMax 0) before "
                "deleting it",
                "workers_max",
            )
        del self._endpoints[endpoint_id]
        state = self._live.pop(endpoint_id, None)
        if state is not None:
            state.shutdown()

    def _check_endpoint(
        self, record: EndpointRecord, names: Mapping[str, str], changes: Mapping[str, Any] | None = None
    ) -> None:
        def changed(key: str) -> bool:
            return changes is None or key in changes

        if changed("name") and not record.name.strip():
            raise ManagementError(400, f"{names.get('name', 'name')} must not be empty", "name")
        if changed("template_id") and record.template_id not in self._templates:
            raise ManagementError(
                400, f'template "{record.template_id}" not found (create it first)', "template_id"
            )
        if changed("pools") or changed("excluded_types"):
            record.pools, record.excluded_types = check_gpus(
                record.pools, record.excluded_types, field_name=names.get("pools", "pools")
            )
        if record.workers_min > record.workers_max:
            raise ManagementError(
                400,
                f"{names.get('workers_min', 'workers_min')} ({record.workers_min}) must not exceed "
                f"{names.get('workers_max', 'workers_max')} ({record.workers_max})",
                "workers_min",
            )
        if changed("scaler_type") and record.scaler_type not in ("QUEUE_DELAY", "REQUEST_COUNT"):
            raise ManagementError(
                400,
                f"{names.get('scaler_type', 'scaler_type')} must be QUEUE_DELAY or REQUEST_COUNT, "
                f'got "{record.scaler_type}"',
                "scaler_type",
            )
        if changed("scaler_value") and record.scaler_value <= 0:
            raise ManagementError(
                400, f"{names.get('scaler_value', 'scaler_value')} must be > 0", "scaler_value"
            )

    def _live_config(self, record: EndpointRecord, template: TemplateRecord) -> EndpointConfig:
        """The live endpoint's config: the template's worker, the record's scaling settings."""
        worker = resolve_image(template.image, template.env, template.docker_args)
        current = self._live.get(record.id)
        base = current.config if current is not None else EndpointConfig(id=record.id, worker_dir=Path())
        same_folder = current is not None and base.worker_dir.resolve() == worker.worker_dir.resolve()
        try:
            return dataclasses.replace(
                base,
                worker_dir=base.worker_dir if same_folder else worker.worker_dir,
                env=worker.env,
                command=worker.command,
                packages=worker.packages,
                workers_max=record.workers_max,
                workers_min=record.workers_min,
                idle_timeout_s=record.idle_timeout_s,
                execution_timeout_ms=record.execution_timeout_ms,
            )
        except ValueError as exc:  # e.g. an env name a process cannot have
            raise ManagementError(400, f'template "{template.name}": {exc}', "env") from None

    # ------------------------------------------------------------------ adoption
    def _adopt_live(self) -> None:
        """Give every endpoint added without this API a record and a synthetic template; forget
        records whose live endpoint is gone."""
        for endpoint_id, state in self._live.items():
            if endpoint_id not in self._endpoints:
                self._adopt(state.config)
        for endpoint_id in [e for e in self._endpoints if e not in self._live]:
            del self._endpoints[endpoint_id]

    def _adopt(self, config: EndpointConfig) -> None:
        template_id = f"local-{config.id}"
        if template_id not in self._templates:
            taken = {t.name for t in self._templates.values()}
            name = config.id
            while name in taken:
                name += "-local"
            self._templates[template_id] = TemplateRecord(
                id=template_id, name=name, image=f"local:{config.worker_dir.absolute()}", env=dict(config.env)
            )
        self._endpoints[config.id] = EndpointRecord(
            id=config.id,
            name=config.id,
            template_id=template_id,
            workers_min=config.workers_min,
            workers_max=config.workers_max,
            idle_timeout_s=config.idle_timeout_s,
            execution_timeout_ms=config.execution_timeout_ms,
        )

    def _unused_id(self, length: int, taken: Mapping[str, Any]) -> str:
        while True:
            new = _new_id(length)
            if new not in taken and new not in self._live:
                return new


#: Where the routes find the store (set by LocalEndpoint on its app).
MANAGEMENT = web.AppKey("rp_local_management", ManagementStore)


def authorized(request: web.Request, *, allow_query_key: bool = False) -> bool:
    """The management APIs' auth: `Authorization: Bearer <key>` (or the bare key, as the job API
    takes it), or `?api_key=<key>` where Runpod's GraphQL docs use it. Compared in constant time."""
    header = request.headers.get("Authorization", "").strip()
    if header[:7].lower() == "bearer ":
        header = header[7:].strip()
    given = header or (request.query.get("api_key", "") if allow_query_key else "")
    expected = request.app[CONTEXT].api_key
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())
