"""Deployment presets: everything `%runpod deploy tts` needs, so it needs no other argument.

A preset is a template (image, disk, env) plus an endpoint (pools, workers, idle timeout,
FlashBoot, execution timeout) plus what the model needs from a GPU. `preset.with_overrides(...)`
changes any field and re-checks the whole, so a bad override fails here, before any request.

The images are the workers' Dockerfiles built and pushed (`workers/*/README.md`); set
RP_NOTEBOOK_TTS_IMAGE / RP_NOTEBOOK_LAYERS_IMAGE (or pass `image=`) to deploy your own build.
On the local endpoint these image names run the bundled worker folders on their CPU engines.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .. import __version__
from ..errors import InputError
from ..worker_runtime import ALLOWED_CUDA_ENV
from ._gpus import check_pools_fit, parse_gpu_ids
from ._types import EndpointSpec, FlashBoot, TemplateSpec

__all__ = ["PRESETS", "DeployPreset", "preset_for"]


@dataclass(frozen=True)
class DeployPreset:
    model: str
    #: Shown in listings and used as the template name (template names are unique per account).
    name: str
    image: str
    container_disk_gb: int
    env: Mapping[str, str]
    gpu_pools: tuple[str, ...]
    #: GPU memory the model needs; every pool listed must fit it (see _gpus.check_pools_fit).
    min_vram_gb: float
    workers_min: int = 0
    workers_max: int = 1
    idle_timeout_s: int = 30
    flashboot: FlashBoot = "FLASHBOOT"
    execution_timeout_s: int = 600
    allowed_cuda_versions: tuple[str, ...] = ()
    excluded_gpu_types: tuple[str, ...] = ()
    gpu_count: int = 1
    template_name: str = ""
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        pools, excluded = parse_gpu_ids([*self.gpu_pools, *(f"-{g}" for g in self.excluded_gpu_types)])
        object.__setattr__(self, "gpu_pools", tuple(pools))
        object.__setattr__(self, "excluded_gpu_types", tuple(excluded))
        if not self.template_name:
            object.__setattr__(self, "template_name", f"{self.name}-{__version__}")
        if (
            isinstance(self.min_vram_gb, bool)
            or not isinstance(self.min_vram_gb, int | float)
            or self.min_vram_gb < 0
        ):
            raise InputError("min_vram_gb", f"must be a number of GB >= 0, got {self.min_vram_gb!r}")
        check_pools_fit(
            self.gpu_pools, self.min_vram_gb, excluded=self.excluded_gpu_types, what=f"the {self.model} model"
        )
        # Building both specs checks every remaining field with the same rules the API calls use.
        self.template_spec()
        self.endpoint_spec(template_id="-")

    def with_overrides(self, **overrides: Any) -> DeployPreset:
        """A copy with some fields changed (None values are ignored), checked again as a whole."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise InputError(unknown[0], f"is not a deploy setting; settings: {', '.join(sorted(names))}")
        changes = {k: v for k, v in overrides.items() if v is not None}
        if "gpu_pools" in changes and isinstance(changes["gpu_pools"], str):
            pools, excluded = parse_gpu_ids(changes["gpu_pools"])
            changes["gpu_pools"] = tuple(pools)
            changes.setdefault("excluded_gpu_types", tuple(excluded))
        if "name" in changes and "template_name" not in changes:
            changes["template_name"] = ""  # follow the new name
        if "env" in changes:
            changes["env"] = {**self.env, **changes["env"]}
        return replace(self, **changes)

    def template_spec(self) -> TemplateSpec:
        env = dict(self.env)
        if self.allowed_cuda_versions:  # a worker cannot see its endpoint's settings; it names them
            env.setdefault(ALLOWED_CUDA_ENV, ",".join(self.allowed_cuda_versions))
        return TemplateSpec(
            name=self.template_name, image=self.image, container_disk_gb=self.container_disk_gb, env=env
        )

    def endpoint_spec(self, template_id: str) -> EndpointSpec:
        return EndpointSpec(
            name=self.name,
            template_id=template_id,
            gpu_pools=self.gpu_pools,
            excluded_gpu_types=self.excluded_gpu_types,
            gpu_count=self.gpu_count,
            workers_min=self.workers_min,
            workers_max=self.workers_max,
            idle_timeout_s=self.idle_timeout_s,
            flashboot=self.flashboot,
            execution_timeout_s=self.execution_timeout_s,
            allowed_cuda_versions=self.allowed_cuda_versions,
        )


def _image(model: str, default: str) -> str:
    return os.environ.get(f"RP_NOTEBOOK_{model.upper()}_IMAGE") or default


def _presets() -> dict[str, DeployPreset]:
    return {
        "tts": DeployPreset(
            model="tts",
            name="rp-notebook-tts",
            image=_image("tts", f"ghcr.io/rp-notebook/rp-notebook-tts:{__version__}"),
            # The weights (~3-4 GB) are baked into the image; the disk holds the image's layers too.
            container_disk_gb=20,
            env={"TTS_ENGINE": "chatterbox"},
            # Chatterbox uses ~3.6 GB; any 16-24 GB pool fits, cheapest first. Not the Blackwell pools:
            # torch 2.6.0 has no build for their sm_100/sm_120.
            gpu_pools=("AMPERE_16", "AMPERE_24", "ADA_24"),
            min_vram_gb=8,
            workers_max=2,
            idle_timeout_s=30,
            execution_timeout_s=600,
            # The image's torch 2.6.0 is PyPI's CUDA 12.4 build: hosts whose driver runs CUDA 12.4+.
            allowed_cuda_versions=("12.4", "12.5", "12.6", "12.7", "12.8", "12.9", "13.0"),
            notes=("Chatterbox TTS; any 16 GB GPU is enough.",),
        ),
        "layers": DeployPreset(
            model="layers",
            name="rp-notebook-layers",
            image=_image("layers", f"ghcr.io/rp-notebook/rp-notebook-layers:{__version__}"),
            # The ~58 GB of weights come from Runpod's cached models or a network volume, not the disk.
            container_disk_gb=30,
            env={"LAYERS_ENGINE": "qwen"},
            gpu_pools=("AMPERE_80", "ADA_80_PRO", "HOPPER_141"),
            min_vram_gb=58,
            workers_max=1,
            idle_timeout_s=60,
            # 1-2 min per job at 640 px and 50 steps, several times that at 1024.
            execution_timeout_s=1800,
            # The image's torch is the CUDA 12.8 build (the PyTorch index's cu128 wheel; workers/
            # qwen_image_layered/Dockerfile): Ampere, Hopper and Blackwell, on drivers of CUDA 12.8+.
            allowed_cuda_versions=("12.8", "12.9", "13.0"),
            notes=(
                "Qwen-Image-Layered (~58 GB in bf16): 80 GB pools or larger.",
                "Set the endpoint's cached model to Qwen/Qwen-Image-Layered in the console, or attach "
                "a network volume holding it.",
            ),
        ),
    }


def preset_for(model: str) -> DeployPreset:
    """The preset of `model` ("tts" or "layers"), with images read from the environment now."""
    presets = _presets()
    if model not in presets:
        raise InputError("model", f"no deploy preset for {model!r}; presets: {', '.join(presets)}")
    return presets[model]


PRESETS = tuple(_presets())
