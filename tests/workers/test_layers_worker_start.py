"""The layered-image worker when its engine cannot start: it keeps serving and fails every job with why.

A worker that exits before `runpod.serverless.start` is restarted by Runpod over and over, each
start billed, and its jobs never hear the reason. So the handler module must import cleanly
whatever goes wrong while loading, and answer each job at once with the reason.

The GPU case uses the real torch (the CPU build here) with its CUDA answers replaced: a CUDA 12.8
build that sees no GPU, as on a Runpod host whose driver is too old for the image. The real-model
counterpart, a checkpoint missing a file through the local endpoint, is in
tests/real_models/test_qwen_real.py.
"""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from rp_notebook.worker_runtime import ALLOWED_CUDA_ENV, LOCAL_ENDPOINT_ENV


def picture_job(job_id: str) -> dict[str, object]:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(buffer, format="PNG")
    return {"id": job_id, "input": {"image": base64.b64encode(buffer.getvalue()).decode(), "prompt": "x"}}


@pytest.fixture
def on_runpod(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment of a Runpod worker deployed by the layers preset; no job server."""
    monkeypatch.setenv("RUNPOD_ENDPOINT_ID", "ep123")
    monkeypatch.delenv(LOCAL_ENDPOINT_ENV, raising=False)
    monkeypatch.setenv(ALLOWED_CUDA_ENV, "12.8,12.9,13.0")
    monkeypatch.delenv("RUNPOD_WEBHOOK_POST_OUTPUT", raising=False)


def test_on_runpod_a_cuda_build_that_sees_no_gpu_fails_every_job_naming_the_build_and_never_loads_on_cpu(
    on_runpod: None, monkeypatch: pytest.MonkeyPatch, load_layers_handler, tmp_path: Path
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setenv("LAYERS_ENGINE", "qwen")
    # Nothing there: had the engine gone on to load on the CPU, the error would be a load error.
    monkeypatch.setenv("LAYERS_MODEL_PATH", str(tmp_path / "no-checkpoint"))

    worker = load_layers_handler("qwen_image_layered_handler_no_gpu")

    assert worker.SERVICE is None
    answers = [asyncio.run(worker.handler(picture_job(job_id))) for job_id in ("a", "b")]
    assert answers[0] == answers[1] and set(answers[0]) == {"error"}
    error = answers[0]["error"]
    assert error.startswith("the worker could not start, so it fails every job: GPUUnavailableError: ")
    assert "Qwen-Image-Layered needs a GPU" in error and "a CUDA 12.8 build" in error
    assert "the endpoint allows CUDA 12.8,12.9,13.0" in error
    assert "could not be loaded" not in error


def test_off_runpod_the_same_loader_takes_the_cpu_in_fp32(
    monkeypatch: pytest.MonkeyPatch, tiny_qwen_pipeline, tmp_path: Path
) -> None:
    import torch
    from layers_engines import QwenEngine

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("RUNPOD_ENDPOINT_ID", raising=False)
    tiny_qwen_pipeline.save_pretrained(tmp_path)
    engine = QwenEngine.load(str(tmp_path), processor=None)
    assert engine._pipe.device.type == "cpu" and engine._pipe.transformer.dtype == torch.float32


def test_a_checkpoint_that_does_not_load_fails_every_job_naming_the_folder_and_the_setting(
    monkeypatch: pytest.MonkeyPatch, load_layers_handler, tiny_qwen_pipeline, tmp_path: Path
) -> None:
    tiny_qwen_pipeline.save_pretrained(tmp_path)
    (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    monkeypatch.setenv("LAYERS_ENGINE", "qwen")
    monkeypatch.setenv("LAYERS_MODEL_PATH", str(tmp_path))
    monkeypatch.delenv("RUNPOD_WEBHOOK_POST_OUTPUT", raising=False)

    worker = load_layers_handler("qwen_image_layered_handler_broken_checkpoint")

    error = asyncio.run(worker.handler(picture_job("a")))["error"]
    assert error.startswith("the worker could not start, so it fails every job: ModelLoadError: ")
    assert f"Qwen-Image-Layered could not be loaded from {tmp_path} (LAYERS_MODEL_PATH)" in error
    assert "diffusion_pytorch_model" in error


def test_a_bad_setting_fails_every_job_naming_it_instead_of_exiting(
    monkeypatch: pytest.MonkeyPatch, load_layers_handler
) -> None:
    monkeypatch.setenv("LAYERS_ENGINE", "colorsplit")
    monkeypatch.setenv("LAYERS_INLINE_LIMIT_BYTES", "8MB")
    monkeypatch.delenv("RUNPOD_WEBHOOK_POST_OUTPUT", raising=False)

    worker = load_layers_handler("qwen_image_layered_handler_bad_setting")

    error = asyncio.run(worker.handler(picture_job("a")))["error"]
    assert error.startswith("the worker could not start, so it fails every job: ValueError: ")
    assert "LAYERS_INLINE_LIMIT_BYTES" in error
