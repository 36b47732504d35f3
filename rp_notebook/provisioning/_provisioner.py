"""`Provisioner`: GPU pools, templates and endpoints from a notebook, over either management API.

    prov = Provisioner()                       # GraphQL unless RP_NOTEBOOK_MANAGEMENT_API=rest
    prov.gpus(model="layers")                  # pools with VRAM, live prices, and whether each fits
    deployment = prov.deploy("tts", workers_max=3, progress=print)
    prov.scale(deployment.endpoint.id, workers_min=0, workers_max=0)
    prov.delete_endpoint(deployment.endpoint.id)

Runpod's rules are checked here, before anything is sent, so the message can say what to do:

- template names are unique per account: `deploy` reuses a template of the same name only when it
  is identical (same image, disk, env), else it refuses and names the clash;
- an endpoint must be scaled to 0/0 before it is deleted: `delete_endpoint` does that first, and
  refuses (unless `force=True`) while jobs are queued or running, which deleting would lose;
- a template is deleted by name and not while an endpoint uses it;
- every GPU pool of an endpoint must fit the model (`_gpus.check_pools_fit`).

Anything the server still refuses arrives as `ProvisioningError` with the server's message.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..client import JobsClient
from ..config import Settings, current_settings
from ..errors import InputError, NotFoundError, RunpodError
from ._backend import ManagementBackend
from ._gpus import GPU_POOLS, GpuPool
from ._presets import DeployPreset, preset_for
from ._types import Endpoint, EndpointHealth, GpuType, Template

__all__ = ["Deployment", "EndpointStatus", "PoolInfo", "Provisioner"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PoolInfo:
    """One GPU pool as `gpus()` shows it: the static table joined with the API's live data."""

    pool: GpuPool
    #: GPU types the API lists for this pool (empty when the API gives no pool mapping).
    gpu_types: tuple[GpuType, ...] = ()
    #: The lowest secure-cloud price per GPU-hour (USD) among the pool's types, when the API gives one.
    price_per_hour: float | None = None
    #: Whether the pool fits the model asked about (None when no model was given).
    fits: bool | None = None


@dataclass(frozen=True)
class EndpointStatus:
    endpoint: Endpoint
    #: The job API's health; None when it could not be read (`health_error` says why).
    health: EndpointHealth | None = None
    health_error: str | None = None


@dataclass(frozen=True)
class Deployment:
    model: str
    preset: DeployPreset
    template: Template
    endpoint: Endpoint
    reused_template: bool = False
    steps: tuple[str, ...] = field(default=(), compare=False)


class Provisioner:
    """Provisioning over the management API named by `api` (default: the `management_api` setting)."""

    def __init__(self, settings: Settings | None = None, *, api: str | None = None) -> None:
        self.settings = settings or current_settings()
        self.api = api or self.settings.management_api
        self._backend = _make_backend(self.settings, self.api)
        self._jobs: JobsClient | None = None

    def close(self) -> None:
        self._backend.close()
        if self._jobs is not None:
            self._jobs.close()

    def __enter__(self) -> Provisioner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Provisioner(api={self.api!r}, base_url={self.settings.api_base_url!r})"

    # ------------------------------------------------------------------ reading
    def gpus(self, *, model: str | None = None) -> list[PoolInfo]:
        """Every serverless pool, smallest first, with live GPU types and prices where the API has them."""
        need = preset_for(model).min_vram_gb if model else None
        live = self._backend.gpu_types()
        by_pool: dict[str, list[GpuType]] = {}
        for gpu in live:
            pool_id = gpu.pool or _pool_of_type(gpu.id)
            if pool_id:
                by_pool.setdefault(pool_id, []).append(gpu)
        rows = []
        for pool in sorted(GPU_POOLS.values(), key=lambda p: (p.vram_gb, p.id)):
            types = tuple(by_pool.get(pool.id, ()))
            prices = [g.secure_price for g in types if g.secure_price]
            rows.append(
                PoolInfo(
                    pool=pool,
                    gpu_types=types,
                    price_per_hour=min(prices) if prices else None,
                    fits=None if need is None else pool.vram_gb >= need,
                )
            )
        return rows

    def templates(self) -> list[Template]:
        return self._backend.templates()

    def endpoints(self, *, health: bool = True) -> list[EndpointStatus]:
        """Every endpoint of the account, with the job API's health (workers, queue) read in parallel."""
        endpoints = self._backend.endpoints()
        if not health or not endpoints:
            return [EndpointStatus(endpoint) for endpoint in endpoints]
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(endpoints))) as pool:
            return list(pool.map(self.status, endpoints))

    def endpoint(self, endpoint_id: str) -> Endpoint:
        for endpoint in self._backend.endpoints():
            if endpoint.id == endpoint_id:
                return endpoint
        raise InputError("endpoint", f"no endpoint {endpoint_id!r} in this account (see %runpod endpoints)")

    def status(self, endpoint: Endpoint) -> EndpointStatus:
        try:
            return EndpointStatus(endpoint, health=self.health(endpoint.id))
        except RunpodError as exc:
            return EndpointStatus(endpoint, health_error=str(exc))

    def health(self, endpoint_id: str) -> EndpointHealth:
        """The job API's view of the endpoint: workers idle/running, jobs queued/running/done."""
        if self._jobs is None:
            self._jobs = JobsClient(self.settings)
        return EndpointHealth.from_json(self._jobs.health(endpoint_id))

    # ------------------------------------------------------------------ changing
    def deploy(self, model: str, *, progress: Progress | None = None, **overrides: Any) -> Deployment:
        """Create (or reuse) the model's template and create an endpoint on it.

        `overrides` change any preset field (`DeployPreset`): image, gpu_pools ("ADA_24,AMPERE_24"),
        workers_min, workers_max, idle_timeout_s, flashboot, execution_timeout_s, env (merged), name,
        template_name, container_disk_gb, min_vram_gb. Every value is checked before any request.
        """
        preset = preset_for(model).with_overrides(**overrides)
        steps: list[str] = []

        def step(message: str) -> None:
            steps.append(message)
            if progress is not None:
                progress(message)

        template_spec = preset.template_spec()
        existing = {t.name: t for t in self._backend.templates()}
        reused = False
        same_name = existing.get(template_spec.name)
        if same_name is not None:
            if not _same_template(
                same_name, template_spec.image, template_spec.container_disk_gb, template_spec.env
            ):
                raise InputError(
                    "template_name",
                    f"a template named {template_spec.name!r} already exists ({same_name.id}, image "
                    f"{same_name.image}) with different settings; template names are unique per account: "
                    "pass another template_name, or delete that template first",
                )
            template, reused = same_name, True
            step(f"reusing template {template.name} ({template.id})")
        else:
            step(f"creating template {template_spec.name} from {template_spec.image}")
            template = self._backend.create_template(template_spec)
            step(f"template {template.id} created")
        step(f"creating endpoint {preset.name} on {', '.join(preset.gpu_pools)}")
        endpoint = self._backend.create_endpoint(preset.endpoint_spec(template.id))
        step(f"endpoint {endpoint.id} created (workers {endpoint.workers_min}-{endpoint.workers_max})")
        return Deployment(model, preset, template, endpoint, reused_template=reused, steps=tuple(steps))

    def scale(
        self, endpoint_id: str, *, workers_min: int | None = None, workers_max: int | None = None
    ) -> Endpoint:
        """Set the endpoint's worker counts; an omitted count keeps its value (min is lowered to fit max)."""
        endpoint = self.endpoint(endpoint_id)
        new_max = endpoint.workers_max if workers_max is None else workers_max
        new_min = endpoint.workers_min if workers_min is None else workers_min
        if workers_min is None:
            new_min = min(new_min, new_max)
        for name, value in (("workers_min", new_min), ("workers_max", new_max)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
                raise InputError(name, f"must be a whole number from 0 to 100, got {value!r}")
        if new_min > new_max:
            raise InputError("workers_min", f"must not exceed workers_max ({new_min} > {new_max})")
        return self._backend.scale_endpoint(endpoint, workers_min=new_min, workers_max=new_max)

    def delete_endpoint(
        self, endpoint_id: str, *, force: bool = False, progress: Progress | None = None
    ) -> Endpoint:
        """Scale to 0/0 (Runpod refuses to delete an endpoint with workers), then delete; returns the
        endpoint as it was.

        Refuses while jobs are queued or running, since deleting loses them; `force=True` deletes anyway.
        """
        endpoint = self.endpoint(endpoint_id)
        if not force:
            try:
                health = self.health(endpoint_id)
            except NotFoundError:
                health = None
            if health is not None and (health.jobs_in_queue or health.jobs_in_progress):
                raise InputError(
                    "endpoint",
                    f"endpoint {endpoint_id} has {health.jobs_in_progress} job(s) running and "
                    f"{health.jobs_in_queue} queued; deleting it loses them. Wait for them, cancel them, "
                    "or delete with force=True (--force)",
                )
        if endpoint.workers_min or endpoint.workers_max:
            if progress:
                progress(f"scaling {endpoint_id} to 0 workers (Runpod deletes only endpoints with none)")
            self._backend.scale_endpoint(endpoint, workers_min=0, workers_max=0)
        if progress:
            progress(f"deleting endpoint {endpoint_id}")
        self._backend.delete_endpoint(endpoint_id)
        return endpoint

    def delete_template(self, name_or_id: str) -> Template:
        """Delete a template by name (or id), refusing while an endpoint uses it. Returns what was deleted."""
        templates = self._backend.templates()
        matches = [t for t in templates if t.name == name_or_id] or [
            t for t in templates if t.id == name_or_id
        ]
        if not matches:
            raise InputError("template", f"no template named {name_or_id!r} (see %runpod templates)")
        template = matches[0]
        users = [e for e in self._backend.endpoints() if e.template_id == template.id]
        if users:
            names = ", ".join(f"{e.name} ({e.id})" for e in users)
            raise InputError(
                "template",
                f"template {template.name!r} is used by endpoint(s) {names}; delete those first "
                "(Runpod also keeps a template in use for up to 2 minutes after its last endpoint goes)",
            )
        self._backend.delete_template(template)
        return template


def _make_backend(settings: Settings, api: str) -> ManagementBackend:
    if api == "graphql":
        from ._graphql import GraphQLBackend

        return GraphQLBackend(settings)
    if api == "rest":
        from ._rest import RestBackend

        return RestBackend(settings)
    raise InputError("api", f"must be 'graphql' or 'rest', got {api!r}")


def _pool_of_type(gpu_type_id: str) -> str | None:
    """GraphQL lists GPU types without their pool; the static table maps them."""
    for pool in GPU_POOLS.values():
        if gpu_type_id in pool.gpu_types:
            return pool.id
    return None


def _same_template(template: Template, image: str, disk: int, env: Mapping[str, str]) -> bool:
    return (
        template.image == image
        and (template.container_disk_gb is None or template.container_disk_gb == disk)
        and dict(template.env) == dict(env)
    )
