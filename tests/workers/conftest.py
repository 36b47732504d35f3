"""Shared setup for the worker tests.

A worker runs with its own folder as the working directory (`python handler.py`), so its modules
import their siblings by bare name. The tests put the worker folders on sys.path to match. Each
worker's modules carry a worker prefix (tts_*.py, layers_*.py) so that folders never shadow each
other; only handler.py is common to all workers, so it is loaded under a unique module name.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

WORKERS_DIR = Path(__file__).resolve().parents[2] / "workers"
TTS_WORKER_DIR = WORKERS_DIR / "chatterbox_tts"
LAYERS_WORKER_DIR = WORKERS_DIR / "qwen_image_layered"

for _worker_dir in (TTS_WORKER_DIR, LAYERS_WORKER_DIR):
    if str(_worker_dir) not in sys.path:
        sys.path.insert(0, str(_worker_dir))

# The tiny Qwen pipeline is built in memory; nothing may reach the Hugging Face hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


def load_handler(worker_dir: Path, module_name: str) -> ModuleType:
    """Import `worker_dir/handler.py` as `module_name`, a fresh module each time."""
    spec = importlib.util.spec_from_file_location(module_name, worker_dir / "handler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def load_tts_handler():
    """Load a fresh TTS handler module (the caller sets TTS_ENGINE and friends first)."""
    return lambda module_name: load_handler(TTS_WORKER_DIR, module_name)


@pytest.fixture(scope="module")
def tts_handler() -> ModuleType:
    """The TTS worker's handler module, with the piper engine (loaded once per test module)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TTS_ENGINE", "piper")
        mp.delenv("RUNPOD_WEBHOOK_POST_OUTPUT", raising=False)
        return load_handler(TTS_WORKER_DIR, "chatterbox_tts_handler")


@pytest.fixture
def load_layers_handler():
    """Load a fresh layered-image handler module (the caller sets LAYERS_ENGINE and friends first)."""
    return lambda module_name: load_handler(LAYERS_WORKER_DIR, module_name)


@pytest.fixture(scope="module")
def layers_handler() -> ModuleType:
    """The layered-image worker's handler module: colorsplit engine, no bucket (once per test module)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAYERS_ENGINE", "colorsplit")
        for name in ("RUNPOD_WEBHOOK_POST_OUTPUT", "LAYERS_INLINE_LIMIT_BYTES", "BUCKET_ENDPOINT_URL"):
            mp.delenv(name, raising=False)
        return load_handler(LAYERS_WORKER_DIR, "qwen_image_layered_handler")


@pytest.fixture(scope="session")
def tiny_qwen_pipeline() -> Any:
    """A tiny random QwenImageLayeredPipeline (tests/workers/tiny_qwen_pipeline.py), built once."""
    from tiny_qwen_pipeline import build_tiny_pipeline

    return build_tiny_pipeline()


@pytest.fixture
def run_test_input():
    """Run a worker's handler.py with `--test_input` in a subprocess, as worker-template CI does.

    Call it as run_test_input(worker_dir, job, env={"TTS_ENGINE": "piper"}): variables of the job
    server (RUNPOD_*), of storage (BUCKET_*) and of the workers (TTS_*, LAYERS_*) are dropped, so
    the SDK runs its local test mode with exactly `env`.
    """

    def run(worker_dir: Path, job: dict[str, Any], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        clean = {
            k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "BUCKET_", "TTS_", "LAYERS_"))
        }
        return subprocess.run(
            [sys.executable, "handler.py", "--test_input", json.dumps(job)],
            cwd=worker_dir,
            env={**clean, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run
