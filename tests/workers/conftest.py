"""Shared setup for the worker tests.

A worker runs with its own folder as the working directory (`python handler.py`), so its modules
import their siblings by bare name. The tests put the worker folder on sys.path to match. Each
worker's modules carry a worker prefix (tts_*.py) so that folders never shadow each other; only
handler.py is common to all workers, so it is loaded under a unique module name.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

WORKERS_DIR = Path(__file__).resolve().parents[2] / "workers"
TTS_WORKER_DIR = WORKERS_DIR / "chatterbox_tts"

if str(TTS_WORKER_DIR) not in sys.path:
    sys.path.insert(0, str(TTS_WORKER_DIR))


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
