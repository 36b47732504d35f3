"""What provisioning sends and gets back, independent of the API (GraphQL or REST v2) that carries it.

Requests are `TemplateSpec` and `EndpointSpec` (typed, validated on construction, in our own units:
seconds, GB); answers are `Template`, `Endpoint` and `GpuType`. Each backend translates to and
from its wire format (`_graphql.py`, `_rest.py`), so nothing above the backends knows which API
is in use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InputError

__all__ = ["Endpoint", "EndpointHealth", "EndpointSpec", "GpuType", "Template", "TemplateSpec"]

FlashBoot = Literal["OFF", "FLASHBOOT", "PRIORITY_FLASHBOOT"]


def _check_int(field_name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(field_name, f"must be a whole number from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise InputError(field_name, f"must be from {low} to {high}, got {value}")


@dataclass(frozen=True)
class TemplateSpec:
    """A serverless template to create: the image and how its container starts."""

    name: str
    image: str
    container_disk_gb: int = 20
    env: Mapping[str, str] = field(default_factory=dict)
    docker_args: str = ""
    readme: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InputError("template_name", "must be a non-empty string")
        if not isinstance(self.image, str) or not self.image.strip() or any(c.isspace() for c in self.image):
            raise InputError(
                "image", f"must be an image reference like registry/name:tag, got {self.image!r}"
            )
        _check_int("container_disk_gb", self.container_disk_gb, 5, 1000)
        env = dict(self.env)
        for key, value in env.items():
            if not isinstance(key, str) or not key.replace("_", "a").isalnum() or key[0].isdigit():
                raise InputError("env", f"{key!r} is not a valid environment variable name")
            if not isinstance(value, str):
                raise InputError("env", f"{key} must be a string, got {type(value).__name__}")
        object.__setattr__(self, "env", env)


@dataclass(frozen=True)
class EndpointSpec:
    """A serverless endpoint to create (or, with `id`, to update) on a template."""

    name: str
    template_id: str
    gpu_pools: tuple[str, ...]
    excluded_gpu_types: tuple[str, ...] = ()
    gpu_count: int = 1
    workers_min: int = 0
    workers_max: int = 1
    idle_timeout_s: int = 5
    flashboot: FlashBoot = "OFF"
    execution_timeout_s: int = 600
    #: e.g. ("13.0",); empty allows any CUDA version the image works with.
    allowed_cuda_versions: tuple[str, ...] = ()
    scaler_type: Literal["QUEUE_DELAY", "REQUEST_COUNT"] = "QUEUE_DELAY"
    scaler_value: int = 4
    id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InputError("name", "must be a non-empty string")
        if not self.gpu_pools:
            raise InputError("gpu", "name at least one GPU pool")
        _check_int("gpu_count", self.gpu_count, 1, 8)
        _check_int("workers_min", self.workers_min, 0, 100)
        _check_int("workers_max", self.workers_max, 0, 100)
        if self.workers_min > self.workers_max:
            raise InputError(
                "workers_min", f"must not exceed workers_max ({self.workers_min} > {self.workers_max})"
            )
        # REST v2's documented range for idleTimeout; GraphQL takes the same seconds.
        _check_int("idle_timeout", self.idle_timeout_s, 1, 3600)
        _check_int("execution_timeout", self.execution_timeout_s, 5, 7 * 24 * 3600)
        _check_int("scaler_value", self.scaler_value, 1, 1000)
        if self.flashboot not in ("OFF", "FLASHBOOT", "PRIORITY_FLASHBOOT"):
            raise InputError(
                "flashboot", f"must be OFF, FLASHBOOT or PRIORITY_FLASHBOOT, got {self.flashboot!r}"
            )
        if self.scaler_type not in ("QUEUE_DELAY", "REQUEST_COUNT"):
            raise InputError("scaler_type", f"must be QUEUE_DELAY or REQUEST_COUNT, got {self.scaler_type!r}")

    @property
    def gpu_ids(self) -> str:
        """GraphQL's `gpuIds`: pools, then GPU types to avoid, e.g. `"ADA_24,AMPERE_24,-NVIDIA L4"`."""
        return ",".join([*self.gpu_pools, *(f"-{gpu}" for gpu in self.excluded_gpu_types)])


@dataclass(frozen=True)
class Template:
    id: str
    name: str
    image: str
    container_disk_gb: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    is_serverless: bool = True


@dataclass(frozen=True)
class Endpoint:
    id: str
    name: str
    template_id: str | None
    gpu_ids: str  # as GraphQL spells it; REST v2's pools and exclusions are joined the same way
    workers_min: int
    workers_max: int
    idle_timeout_s: int | None = None
    flashboot: str | None = None
    execution_timeout_s: float | None = None
    gpu_count: int | None = None

    @property
    def gpu_pools(self) -> list[str]:
        return [item for item in self.gpu_ids.split(",") if item and not item.startswith("-")]


@dataclass(frozen=True)
class GpuType:
    """A GPU type as the API lists it. Prices are per GPU-hour in USD, None where the API gives none."""

    id: str
    display_name: str
    memory_gb: int | None
    pool: str | None = None
    secure_price: float | None = None
    community_price: float | None = None


@dataclass(frozen=True)
class EndpointHealth:
    """The job API's `/health` for one endpoint."""

    workers_idle: int = 0
    workers_running: int = 0
    jobs_in_queue: int = 0
    jobs_in_progress: int = 0
    jobs_completed: int = 0
    jobs_failed: int = 0
    workers_initializing: int = 0
    workers_unhealthy: int = 0
    #: Why workers cannot start (the local endpoint says so; Runpod shows it in its console).
    error: str | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> EndpointHealth:
        workers = body.get("workers") or {}
        jobs = body.get("jobs") or {}
        error = body.get("error")
        return cls(
            workers_idle=int(workers.get("idle", 0)),
            workers_running=int(workers.get("running", 0)),
            workers_initializing=int(workers.get("initializing", 0)),
            workers_unhealthy=int(workers.get("unhealthy", 0)),
            error=error if isinstance(error, str) else None,
            jobs_in_queue=int(jobs.get("inQueue", 0)),
            jobs_in_progress=int(jobs.get("inProgress", 0)),
            jobs_completed=int(jobs.get("completed", 0)),
            jobs_failed=int(jobs.get("failed", 0)),
        )
