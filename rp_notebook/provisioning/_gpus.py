"""Runpod's serverless GPU pools: which GPUs each holds and how much memory a worker is sure to get.

An endpoint names pools (`gpuIds: "ADA_24,AMPERE_24"`), not GPU types; Runpod places each worker on
any GPU of the listed pools, so a model fits a pool only if it fits the pool's *smallest* card.
The table follows Runpod's own Flash SDK (`POOLS_TO_TYPES`) and the docs' GPU-pools page
(shared/docs/runpod-platform.md §3). The pool table in the project's original design notes
(`AMPERE_12`, `ADA_16`, `AMPERE_A5000`, a 3060 Ti in AMPERE_16) is wrong: none of those pools exist.

Live data is shown where the API has it (`Provisioner.gpus()`): REST v2's `/v2/catalog/gpus` names
each GPU type's pool, GraphQL's `gpuTypes` gives memory and prices per GPU type (not per pool: its
ids are GPU types). The memory check uses this table, so it works before any request.

Stdlib only: the local endpoint serves its GPU catalog from this table too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import InputError

__all__ = ["GPU_POOLS", "GpuPool", "check_pools_fit", "parse_gpu_ids", "pools_fitting"]


@dataclass(frozen=True)
class GpuPool:
    """One serverless pool: its id, the GPU type ids in it (GraphQL/REST ids) and their memory."""

    id: str
    gpu_types: Mapping[str, int]  # GPU type id -> memory in GB
    label: str

    @property
    def vram_gb(self) -> int:
        """The memory every worker in this pool is sure to get: the smallest card's."""
        return min(self.gpu_types.values())

    @property
    def max_vram_gb(self) -> int:
        return max(self.gpu_types.values())

    def describe(self) -> str:
        memory = (
            f"{self.vram_gb} GB"
            if self.vram_gb == self.max_vram_gb
            else f"{self.vram_gb}-{self.max_vram_gb} GB"
        )
        return f"{self.id} ({self.label}, {memory})"


GPU_POOLS: dict[str, GpuPool] = {
    pool.id: pool
    for pool in (
        GpuPool(
            "AMPERE_16",
            {
                "NVIDIA RTX A4000": 16,
                "NVIDIA RTX A4500": 20,
                "NVIDIA RTX 4000 Ada Generation": 20,
                "NVIDIA RTX 2000 Ada Generation": 16,
            },
            "RTX A4000 / A4500 / RTX 4000 Ada / RTX 2000 Ada",
        ),
        GpuPool(
            "AMPERE_24",
            {"NVIDIA RTX A5000": 24, "NVIDIA L4": 24, "NVIDIA GeForce RTX 3090": 24},
            "RTX A5000 / L4 / RTX 3090",
        ),
        GpuPool("ADA_24", {"NVIDIA GeForce RTX 4090": 24}, "RTX 4090"),
        GpuPool("ADA_32_PRO", {"NVIDIA GeForce RTX 5090": 32}, "RTX 5090"),
        GpuPool("AMPERE_48", {"NVIDIA A40": 48, "NVIDIA RTX A6000": 48}, "A40 / RTX A6000"),
        GpuPool(
            "ADA_48_PRO",
            {"NVIDIA RTX 6000 Ada Generation": 48, "NVIDIA L40": 48, "NVIDIA L40S": 48},
            "RTX 6000 Ada / L40 / L40S",
        ),
        GpuPool(
            "AMPERE_80", {"NVIDIA A100 80GB PCIe": 80, "NVIDIA A100-SXM4-80GB": 80}, "A100 80GB PCIe / SXM"
        ),
        GpuPool(
            "ADA_80_PRO",
            {"NVIDIA H100 80GB HBM3": 80, "NVIDIA H100 PCIe": 80, "NVIDIA H100 NVL": 94},
            "H100 SXM / PCIe / NVL",
        ),
        GpuPool("HOPPER_141", {"NVIDIA H200": 141}, "H200"),
        GpuPool(
            "BLACKWELL_96",
            {
                "NVIDIA RTX PRO 6000 Blackwell Server Edition": 96,
                "NVIDIA RTX PRO 6000 Blackwell Workstation Edition": 96,
                "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition": 96,
            },
            "RTX PRO 6000 Blackwell",
        ),
        GpuPool("BLACKWELL_180", {"NVIDIA B200": 180}, "B200"),
    )
}


def parse_gpu_ids(gpu_ids: str | Iterable[str], *, field: str = "gpu") -> tuple[list[str], list[str]]:
    """`"ADA_24,AMPERE_24,-NVIDIA L4"` -> (pool ids, excluded GPU type ids), each checked.

    Raises InputError naming `field` for an unknown pool or GPU type, or when no pool is left.
    """
    items = gpu_ids.split(",") if isinstance(gpu_ids, str) else list(gpu_ids)
    pools: list[str] = []
    excluded: list[str] = []
    known_types = {gpu for pool in GPU_POOLS.values() for gpu in pool.gpu_types}
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        if item.startswith("-"):
            gpu_type = item[1:].strip()
            if gpu_type not in known_types:
                raise InputError(field, f"cannot exclude {gpu_type!r}: not a GPU type of any serverless pool")
            excluded.append(gpu_type)
            continue
        pool_id = item.upper()
        if pool_id not in GPU_POOLS:
            raise InputError(
                field, f"unknown GPU pool {item!r}; pools: {', '.join(GPU_POOLS)} (see %runpod gpus)"
            )
        if pool_id not in pools:
            pools.append(pool_id)
    if not pools:
        raise InputError(field, f"name at least one GPU pool: {', '.join(GPU_POOLS)}")
    return pools, excluded


def _smallest_card(pool: GpuPool, excluded: Iterable[str]) -> int | None:
    memory = [gb for gpu, gb in pool.gpu_types.items() if gpu not in set(excluded)]
    return min(memory) if memory else None


def check_pools_fit(
    pools: Iterable[str], need_gb: float, *, excluded: Iterable[str] = (), what: str, field: str = "gpu"
) -> None:
    """Refuse any pool whose smallest (not excluded) card has less memory than `need_gb`.

    Every listed pool must fit: Runpod may place a worker on any of them, and a worker that runs
    out of memory fails every job while still costing money.
    """
    excluded = list(excluded)
    for pool_id in pools:
        pool = GPU_POOLS[pool_id]
        smallest = _smallest_card(pool, excluded)
        if smallest is None:
            raise InputError(field, f"every GPU of {pool_id} is excluded")
        if smallest < need_gb:
            fitting = ", ".join(p.id for p in pools_fitting(need_gb)) or "none"
            raise InputError(
                field,
                f"{pool.describe()} is too small for {what}, which needs about {need_gb:g} GB of GPU "
                f"memory; pools that fit: {fitting}",
            )


def pools_fitting(need_gb: float) -> list[GpuPool]:
    """Every pool whose smallest card has at least `need_gb`, smallest first."""
    return sorted((p for p in GPU_POOLS.values() if p.vram_gb >= need_gb), key=lambda p: p.vram_gb)
