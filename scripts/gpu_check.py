"""GPU check: both workers' engines on CUDA with full-size models of the real architectures.

    scripts/gpu_check.sh                 # on a machine with an NVIDIA GPU: the whole check, one command

The shell script builds each worker image's environment (the local endpoint's builder, from the
Dockerfiles' pip installs) and runs this file in it, once per model, then once more in the project's
environment to print the table:

    python scripts/gpu_check.py tts    --out tts.json      # in the chatterbox_tts environment
    python scripts/gpu_check.py layers --out layers.json   # in the qwen_image_layered environment
    python scripts/gpu_check.py report tts.json layers.json

Per model: load time, seconds per job at the deploy presets' defaults (TTS: one sentence and twenty;
layers: 4 layers at 640 px with the model's default steps and CFG), peak VRAM, and which of the
preset's GPU pools it fits.

Weights are real when HF_HOME holds them (ResembleAI/chatterbox, Qwen/Qwen-Image-Layered), else
random in the real architectures:
- Chatterbox: tests/workers/tiny_chatterbox.py's full-size checkpoint, whose T3 stops after a set
  number of speech tokens; before each job that number is set to what the job's text would take
  spoken (25 tokens per second of speech at 14 characters per second), so T3 runs as many steps as
  the real model would.
- Qwen-Image-Layered: the published architecture (a 60-layer MMDiT of width 3072, the RGBA
  Qwen-Image VAE, a Qwen2.5-VL-7B text encoder) built with random bf16 weights on the GPU.

`--device cpu --size tiny` runs the same code on the CPU with small models (Chatterbox's small T3
stopping after 8 tokens, the tiny Qwen pipeline), as a smoke test of the script itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TQDM_DISABLE", "1")  # chatterbox's per-token progress bar would bury the figures
SPEECH_TOKENS_PER_S = 25  # S3 tokens: 40 ms each
CHARS_PER_SPEECH_S = 14  # English read aloud, about 170 words a minute
SENTENCE = "The quick brown fox jumps over the lazy dog while the band plays on."
VRAM_HEADROOM = 1.10  # CUDA context, fragmentation and a second request's buffers


def _peak_vram_gb(torch: Any, device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 1e9 if device.startswith("cuda") else None


# ------------------------------------------------------------------------------------------- tts


def check_tts(device: str, size: str) -> dict[str, Any]:
    sys.path[:0] = [str(REPO / "workers" / "chatterbox_tts"), str(REPO / "tests" / "workers")]
    import tiny_chatterbox
    import torch
    from tts_engines import ChatterboxEngine
    from tts_service import TTSService

    real = _hub_has("ResembleAI/chatterbox")
    started = time.monotonic()
    if real:
        engine = ChatterboxEngine.load(device)
    else:
        folder = Path(tempfile.gettempdir()) / f"rp-notebook-gpu-check-chatterbox-{size}"
        tiny_chatterbox.ensure_checkpoint(folder, multilingual=True, small_t3=size == "tiny")
        tiny_chatterbox.prepare_loading(folder)
        engine = ChatterboxEngine.load(device, checkpoint_dir=str(folder))
    load_s = time.monotonic() - started
    service = TTSService(engine)
    jobs = {}
    for sentences in (1, 20):
        text = " ".join([SENTENCE] * sentences)
        if not real and size == "full":  # T3 speaks each chunk for as long as the real model would
            chunk_chars = min(len(text), service.max_chunk_chars)
            tokens = math.ceil(chunk_chars / CHARS_PER_SPEECH_S * SPEECH_TOKENS_PER_S)
            for model in (engine._english, engine._multilingual):
                if model is not None:
                    tiny_chatterbox.stop_after(model.t3, min(tokens, 900))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.monotonic()
        result = asyncio.run(service.handle({"id": f"gpu-check-{sentences}", "input": {"text": text}}))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        assert "error" not in result, result
        jobs[f"{sentences} sentence{'s' * (sentences > 1)}"] = {
            "seconds": round(time.monotonic() - started, 2),
            "audio_s": result.get("duration"),
        }
    return {
        "model": "tts",
        "weights": "real" if real else f"random ({size})",
        "device": device,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "load_s": round(load_s, 2),
        "jobs": jobs,
        "peak_vram_gb": _peak_vram_gb(torch, device),
    }


# ---------------------------------------------------------------------------------------- layers

#: diffusers' QwenImageTransformer2DModel arguments of the published Qwen-Image-Layered transformer.
QWEN_LAYERED_TRANSFORMER = {
    "patch_size": 2,
    "in_channels": 64,
    "out_channels": 16,
    "num_layers": 60,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 3584,
    "guidance_embeds": False,
    "axes_dims_rope": (16, 56, 56),
    "use_additional_t_cond": True,
    "use_layer3d_rope": True,
}
#: Qwen2.5-VL-7B-Instruct, the text encoder.
QWEN_VL_TEXT = {
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "rope_theta": 1_000_000.0,
    "rope_scaling": {"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"},
}
QWEN_VL_VISION = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "out_hidden_size": 3584,
    "fullatt_block_indexes": [7, 15, 23, 31],
}


def _random_qwen_pipeline(torch: Any, device: str) -> Any:
    """The real architecture with random weights, built directly on `device` in bf16."""
    import inspect

    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageLayeredPipeline,
        QwenImageTransformer2DModel,
    )
    from tiny_qwen_pipeline import byte_level_tokenizer
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer, ids = byte_level_tokenizer(first_special_id=151643)  # the real Qwen ids
    accepted = inspect.signature(QwenImageTransformer2DModel.__init__).parameters
    transformer_args = {k: v for k, v in QWEN_LAYERED_TRANSFORMER.items() if k in accepted}
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # 28 B parameters: never materialise them in fp32
    try:
        with torch.device(device):
            transformer = QwenImageTransformer2DModel(**transformer_args)
            vae = AutoencoderKLQwenImage(input_channels=4)
            text_encoder = Qwen2_5_VLForConditionalGeneration(
                Qwen2_5_VLConfig(
                    text_config={
                        **QWEN_VL_TEXT,
                        "bos_token_id": ids["<|endoftext|>"],
                        "eos_token_id": ids["<|im_end|>"],
                        "pad_token_id": ids["<|endoftext|>"],
                    },
                    vision_config=QWEN_VL_VISION,
                    hidden_size=QWEN_VL_TEXT["hidden_size"],
                    vocab_size=QWEN_VL_TEXT["vocab_size"],
                    vision_start_token_id=ids["<|vision_start|>"],
                    vision_end_token_id=ids["<|vision_end|>"],
                    vision_token_id=ids["<|vision_pad|>"],
                    image_token_id=ids["<|image_pad|>"],
                    video_token_id=ids["<|video_pad|>"],
                )
            )
    finally:
        torch.set_default_dtype(previous)
    return QwenImageLayeredPipeline(
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        processor=None,
    )


def check_layers(device: str, size: str) -> dict[str, Any]:
    sys.path[:0] = [str(REPO / "workers" / "qwen_image_layered"), str(REPO / "tests" / "workers")]
    import torch
    from layers_engines import LayerRequest, QwenEngine
    from PIL import Image

    from rp_notebook.models import LAYERS

    real = _hub_has("Qwen/Qwen-Image-Layered")
    started = time.monotonic()
    if real:
        engine = QwenEngine.load(device=device)
    elif size == "tiny":
        from tiny_qwen_pipeline import build_tiny_pipeline

        engine = QwenEngine(build_tiny_pipeline().to(device))
    else:
        pipe = _random_qwen_pipeline(torch, device)
        pipe.set_progress_bar_config(disable=True)
        engine = QwenEngine(pipe)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    load_s = time.monotonic() - started
    defaults = LAYERS.defaults()
    picture = Image.new("RGBA", (640, 640), (40, 90, 200, 255))
    picture.paste((230, 60, 40, 255), (160, 160, 480, 480))
    request = LayerRequest.from_input(
        {**defaults, "layers": 4, "resolution": 640, "prompt": "a red square on a blue background"},
        picture,
        seed=1,
    )
    if size == "tiny":  # the smoke run: the code path, not the figures
        request = LayerRequest.from_input(
            {**defaults, "layers": 2, "num_inference_steps": 1, "prompt": "x"}, picture, 1
        )
    started = time.monotonic()
    layers = engine.decompose(request)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return {
        "model": "layers",
        "weights": "real" if real else f"random ({size})",
        "device": device,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "load_s": round(load_s, 2),
        "jobs": {
            f"{request.layers} layers at {request.resolution} px, {request.num_inference_steps} steps": {
                "seconds": round(time.monotonic() - started, 2),
                "layers": len(layers),
            }
        },
        "peak_vram_gb": _peak_vram_gb(torch, device),
    }


def _hub_has(model_id: str) -> bool:
    """Whether HF_HOME's hub cache holds a snapshot of `model_id` (then the real weights are used)."""
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    snapshots = home / "hub" / ("models--" + model_id.replace("/", "--")) / "snapshots"
    return snapshots.is_dir() and any(snapshots.iterdir())


# ---------------------------------------------------------------------------------------- report


def report(paths: list[str]) -> str:
    """A table of the results, with each preset pool marked fits / does not fit."""
    from rp_notebook.provisioning import GPU_POOLS, preset_for

    lines = []
    for path in paths:
        result = json.loads(Path(path).read_text())
        preset = preset_for(result["model"])
        lines.append(
            f"{result['model']}: {result['weights']} weights, {result['gpu'] or result['device']}, "
            f"torch {result['torch']}; load {result['load_s']} s"
        )
        for name, job in result["jobs"].items():
            lines.append(f"  {name}: {job['seconds']} s")
        peak = result["peak_vram_gb"]
        if peak is None:
            lines.append("  peak VRAM: not measured (not on a GPU)")
            continue
        lines.append(f"  peak VRAM {peak:.1f} GB (x{VRAM_HEADROOM} headroom: {peak * VRAM_HEADROOM:.1f} GB)")
        for pool_id in preset.gpu_pools:
            pool = GPU_POOLS[pool_id]
            fits = peak * VRAM_HEADROOM <= pool.vram_gb
            lines.append(f"  {pool_id:13s} {pool.vram_gb:4d} GB  {'fits' if fits else 'DOES NOT FIT'}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("tts", "layers", "report"))
    parser.add_argument("results", nargs="*", help="report: the JSON files the other modes wrote")
    parser.add_argument("--out", help="write the result as JSON here")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    args = parser.parse_args()
    if args.what == "report":
        print(report(args.results))
        return
    result = (check_tts if args.what == "tts" else check_layers)(args.device, args.size)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
