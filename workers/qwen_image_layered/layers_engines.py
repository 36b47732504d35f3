"""The two engines behind the layered-image worker's one input/output contract.

- `qwen`: diffusers' `QwenImageLayeredPipeline` with the Qwen/Qwen-Image-Layered weights (GPU
  image). torch and diffusers are imported only when the real model is loaded, so the colorsplit
  engine starts in a fraction of a second, and tests can inject any pipeline object (the tiny
  random one in tests/workers).
- `colorsplit`: a LOCAL DEMO ENGINE, not the model. It puts each connected shape of one colour in
  its own layer, the background first (layers_colorsplit.py), on CPU in well under a second, so the
  worker, the local endpoint and the notebook side can be tried without a GPU. Its layers have the
  same count, size, order (bottom first) and format as the model's, and composite back to the
  picture at the output size exactly.

An engine turns one `LayerRequest` into `layers` RGBA images, all of one size; encoding, storage
and timing are the service's job.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from layers_colorsplit import split_colors
from layers_images import output_size
from PIL import Image

from rp_notebook.errors import InputError
from rp_notebook.models import LAYERS
from rp_notebook.worker_runtime import choose_device

__all__ = [
    "ENGINES",
    "MODEL_ID",
    "MODEL_NAME",
    "RUNPOD_MODEL_CACHE",
    "ColorSplitEngine",
    "Engine",
    "LayerRequest",
    "ModelLoadError",
    "QwenEngine",
    "StepCallback",
    "StopRequested",
    "cached_snapshot",
    "load_engine",
    "resolve_model_source",
    "split_colors",
]

#: Called from the model's thread after each denoising step with (steps done, steps in all).
StepCallback = Callable[[int, int], None]


class StopRequested(Exception):
    """Raised inside the model's thread between denoising steps once the job has been cancelled."""


@dataclass(frozen=True)
class LayerRequest:
    """One decomposition, as an engine sees it: the decoded picture and the validated inputs."""

    #: The input picture, RGBA with its own alpha.
    image: Image.Image
    layers: int
    resolution: int
    prompt: str
    negative_prompt: str
    num_inference_steps: int
    true_cfg_scale: float
    #: Never 0: the service has already picked a seed for "random".
    seed: int
    cfg_normalize: bool
    use_en_prompt: bool

    @classmethod
    def from_input(cls, params: Mapping[str, Any], image: Image.Image, seed: int) -> LayerRequest:
        return cls(
            image=image,
            layers=params["layers"],
            resolution=params["resolution"],
            prompt=params["prompt"],
            negative_prompt=params["negative_prompt"],
            num_inference_steps=params["num_inference_steps"],
            true_cfg_scale=params["true_cfg_scale"],
            seed=seed,
            cfg_normalize=params["cfg_normalize"],
            use_en_prompt=params["use_en_prompt"],
        )


class Engine(Protocol):
    name: str

    def check(self, params: Mapping[str, Any]) -> list[str]:
        """Raise InputError for inputs this engine cannot serve; return warnings for ignored ones."""
        ...

    def decompose(
        self,
        request: LayerRequest,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        on_step: StepCallback | None = None,
    ) -> list[Image.Image]:
        """`request.layers` RGBA images of one size. Blocking; not thread-safe."""
        ...


# --- qwen ---------------------------------------------------------------------------------------

MODEL_ID = "Qwen/Qwen-Image-Layered"
MODEL_NAME = "Qwen-Image-Layered"
#: Where Runpod's cached models (the endpoint's "Model" field) appear inside a worker.
RUNPOD_MODEL_CACHE = Path("/runpod-volume/huggingface-cache/hub")


def cached_snapshot(cache_dir: Path, model_id: str = MODEL_ID) -> Path | None:
    """The snapshot folder of `model_id` in a hub-layout cache, or None when it is not there.

    The snapshot `refs/main` names wins; otherwise the newest complete one (with model_index.json).
    """
    repo = cache_dir / ("models--" + model_id.replace("/", "--"))
    ref = repo / "refs" / "main"
    if ref.is_file():
        snapshot = repo / "snapshots" / ref.read_text().strip()
        if (snapshot / "model_index.json").is_file():
            return snapshot
    snapshots = repo / "snapshots"
    complete = (
        [p for p in snapshots.glob("*") if (p / "model_index.json").is_file()] if snapshots.is_dir() else []
    )
    return max(complete, key=lambda p: p.stat().st_mtime) if complete else None


def resolve_model_source(
    environ: Mapping[str, str] | None = None, cache_dir: Path = RUNPOD_MODEL_CACHE
) -> str:
    """Where the weights come from: $LAYERS_MODEL_PATH, else Runpod's cached model, else the hub id.

    The hub id downloads about 58 GB into $HF_HOME on first start; point HF_HOME at a network
    volume (/runpod-volume/...) so that happens once per volume, not once per worker.
    """
    environ = os.environ if environ is None else environ
    explicit = environ.get("LAYERS_MODEL_PATH", "").strip()
    if explicit:
        return explicit
    snapshot = cached_snapshot(cache_dir)
    return str(snapshot) if snapshot is not None else MODEL_ID


class ModelLoadError(RuntimeError):
    """The pipeline could not be loaded from its source; the message names the source and the cause."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


class QwenEngine:
    """Qwen-Image-Layered through diffusers' QwenImageLayeredPipeline (any object with its `__call__`)."""

    name = "qwen"

    def __init__(self, pipeline: Any, *, generator_device: Any = None) -> None:
        self._pipe = pipeline
        # With CPU offload the modules sit on the CPU between calls but run on CUDA: the pipeline's
        # execution device is where latents are drawn, so the generator must live there.
        self._generator_device = generator_device or getattr(pipeline, "_execution_device", None) or "cpu"
        # An empty prompt makes the pipeline caption the picture with Qwen2.5-VL through its processor.
        self.can_caption = getattr(pipeline, "processor", None) is not None

    @classmethod
    def load(
        cls,
        source: str | None = None,
        *,
        device: str | None = None,
        offload: bool | None = None,
        **from_pretrained: Any,
    ) -> QwenEngine:
        """Load the real pipeline: bf16 on CUDA (fp32 on CPU), once per worker.

        `offload` (default: $LAYERS_CPU_OFFLOAD) keeps each module on the CPU until it runs, for
        cards with less than about 64 GB; it needs accelerate and costs time on every job.
        Raises GPUUnavailableError on a Runpod worker whose torch sees no GPU (a 58 GB model on the
        CPU would bill until the execution timeout), ModelLoadError when the weights do not load.
        """
        import torch
        from diffusers import QwenImageLayeredPipeline

        source = source or resolve_model_source()
        device = device or choose_device(torch, model=MODEL_NAME)
        on_cuda = device.startswith("cuda")
        offload = _truthy(os.environ.get("LAYERS_CPU_OFFLOAD")) if offload is None else offload
        # `dtype`, not the deprecated `torch_dtype` (diffusers 0.42).
        dtype = torch.bfloat16 if on_cuda else torch.float32
        try:
            pipe = QwenImageLayeredPipeline.from_pretrained(source, dtype=dtype, **from_pretrained)
        except Exception as error:
            # diffusers' own message names the missing file, not what was being loaded or which setting
            # pointed there.
            setting = (
                " (LAYERS_MODEL_PATH)" if source == os.environ.get("LAYERS_MODEL_PATH", "").strip() else ""
            )
            raise ModelLoadError(
                f"{MODEL_NAME} could not be loaded from {source}{setting}: {type(error).__name__}: {error}"
            ) from error
        if offload and on_cuda:
            pipe.enable_model_cpu_offload()
        else:
            pipe.to(device)
        # The layers are decoded as one batch; slicing decodes them one at a time, which keeps the
        # VAE's peak flat in the layer count (10 layers at 1024 otherwise spike the memory).
        pipe.vae.enable_slicing()
        # One tqdm line per step is noise in the worker's log; progress goes through on_step.
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe)

    def check(self, params: Mapping[str, Any]) -> list[str]:
        if not params["prompt"].strip() and not self.can_caption:
            raise InputError(
                "prompt", "is required: this pipeline has no processor to caption the picture itself"
            )
        return []

    def decompose(
        self,
        request: LayerRequest,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        on_step: StepCallback | None = None,
    ) -> list[Image.Image]:
        import torch

        if should_stop():
            raise StopRequested
        # As the Qwen app does: the RGBA-VAE takes 4 channels, and the input's own alpha is dropped.
        image = request.image.convert("RGB").convert("RGBA")
        generator = torch.Generator(device=self._generator_device).manual_seed(request.seed)

        def step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if on_step is not None:
                on_step(step + 1, request.num_inference_steps)
            # A cancelled job frees the GPU at the next step, not after all 50 and the VAE decode.
            if should_stop():
                raise StopRequested
            return tensors

        out = self._pipe(
            image=image,
            # "", " " and None make the pipeline caption the picture; a blank prompt means the same.
            prompt=request.prompt if request.prompt.strip() else "",
            # CFG runs only when a negative prompt is given (and true_cfg_scale > 1).
            negative_prompt=request.negative_prompt,
            true_cfg_scale=request.true_cfg_scale,
            layers=request.layers,
            num_inference_steps=request.num_inference_steps,
            resolution=request.resolution,
            cfg_normalize=request.cfg_normalize,
            use_en_prompt=request.use_en_prompt,
            generator=generator,
            # >1 mis-groups the frames into lists (qwen-tiny-pipeline.md §5, pitfall 7).
            num_images_per_prompt=1,
            output_type="pil",
            callback_on_step_end=step_end,
        )
        layers = [layer if layer.mode == "RGBA" else layer.convert("RGBA") for layer in out.images[0]]
        if len(layers) != request.layers:
            raise RuntimeError(f"the pipeline returned {len(layers)} layers, not {request.layers}")
        return layers


# --- colorsplit ---------------------------------------------------------------------------------

#: Inputs only the model uses; colorsplit names each one the caller changed from its default.
_MODEL_ONLY = (
    "prompt",
    "negative_prompt",
    "num_inference_steps",
    "true_cfg_scale",
    "seed",
    "cfg_normalize",
    "use_en_prompt",
)


class ColorSplitEngine:
    """LOCAL DEMO ENGINE, not Qwen-Image-Layered: one layer per connected shape of one colour, on CPU.

    It honours `layers` and `resolution` (the output is sized as the model's would be, and the
    layers stack bottom first, the background first, as the model's do) and reports every
    model-only input the caller changed from its default in `warnings`. More shapes than `layers`
    are merged (no pixel is dropped); fewer leave the last layers empty.
    """

    name = "colorsplit"

    def check(self, params: Mapping[str, Any]) -> list[str]:
        # Clients fill in defaults before sending, so only a value the caller changed is worth a warning.
        return [
            f"{name}: ignored by the colorsplit engine (a local demo that splits by colour, not the model)"
            for name in _MODEL_ONLY
            if params[name] != LAYERS[name].default
        ]

    def decompose(
        self,
        request: LayerRequest,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        on_step: StepCallback | None = None,
    ) -> list[Image.Image]:
        return split_colors(
            request.image, request.layers, output_size(*request.image.size, request.resolution)
        )


#: LAYERS_ENGINE value -> loader.
ENGINES: dict[str, Callable[[], Engine]] = {
    "qwen": QwenEngine.load,
    "colorsplit": ColorSplitEngine,
}


def load_engine(name: str | None = None) -> Engine:
    """Load the engine named by `name`, else by $LAYERS_ENGINE, else qwen."""
    name = (name or os.environ.get("LAYERS_ENGINE") or "qwen").strip().lower()
    if name not in ENGINES:
        raise ValueError(f"LAYERS_ENGINE={name!r} is not an engine; choose one of: {', '.join(ENGINES)}")
    return ENGINES[name]()
