"""How the TTS worker loads Chatterbox, and what it does when it cannot.

- `TTS_CHECKPOINT_DIR`: every file the two model classes read is checked before anything loads,
  and a missing one is named; with the folder, both classes load with `from_local`, without it
  with `from_pretrained`.
- The device comes from `rp_notebook.worker_runtime.choose_device`: the CPU off Runpod, an error on
  Runpod when torch sees no GPU.
- A model that fails to load leaves the handler module importable (so the worker reaches
  `runpod.serverless.start`), and every job fails at once with the reason.
- The attention hooks that each multilingual generate() leaves behind are removed.

Chatterbox and torch 2.6.0 are not in the project's environment: loading runs against stand-in
`torch` and `chatterbox` modules (what they stand in for is in each docstring), the hook removal
against the project's real torch. The real library runs through the same handler in
tests/real_models/test_chatterbox_real.py.
"""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tts_engines import (
    ENGLISH_CHECKPOINT_FILES,
    MULTILINGUAL_CHECKPOINT_FILES,
    ChatterboxEngine,
    SpeechOptions,
    check_checkpoint,
    load_engine,
)


def items(generator: AsyncIterator[Any]) -> list[Any]:
    async def drain() -> list[Any]:
        return [item async for item in generator]

    return asyncio.run(drain())


class StandIn:
    """Stands in for ChatterboxTTS / ChatterboxMultilingualTTS: `.sr`, `.conds`, `.generate()`."""

    sr = 24000

    def __init__(self) -> None:
        self.conds: Any = "builtin voice"

    def generate(self, text: str, **kwargs: Any) -> np.ndarray:
        return np.zeros((1, 240), dtype=np.float32)


# --- the checkpoint folder ----------------------------------------------------------------------


def test_check_checkpoint_names_every_missing_file_and_the_variable(tmp_path: Path) -> None:
    for name in ENGLISH_CHECKPOINT_FILES:
        (tmp_path / name).write_bytes(b"")
    assert check_checkpoint(tmp_path, multilingual=False) == tmp_path
    with pytest.raises(FileNotFoundError) as err:
        check_checkpoint(tmp_path)
    missing = [name for name in MULTILINGUAL_CHECKPOINT_FILES if name not in ENGLISH_CHECKPOINT_FILES]
    assert str(err.value).startswith(f"TTS_CHECKPOINT_DIR={tmp_path} lacks {', '.join(missing)} (")
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks tokenizer\.json \("):
        check_checkpoint(tmp_path, multilingual=False)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        check_checkpoint(tmp_path / "nowhere")


# --- loading, the device, and a load that fails -------------------------------------------------


def fake_torch(*, cuda: bool) -> types.ModuleType:
    """What loading reads of torch: cuda.is_available(), version.cuda, __version__ (of 2.6.0+cu124)."""
    torch = types.ModuleType("torch")
    torch.__version__ = "2.6.0+cu124"
    torch.cuda = types.SimpleNamespace(is_available=lambda: cuda)  # type: ignore[attr-defined]
    torch.version = types.SimpleNamespace(cuda="12.4")  # type: ignore[attr-defined]
    return torch


def fake_chatterbox(loads: list[tuple[str, str, str]]) -> types.ModuleType:
    """A `chatterbox` module whose two classes record their from_local / from_pretrained calls."""
    module = types.ModuleType("chatterbox")

    def model_class(name: str) -> type[StandIn]:
        class Model(StandIn):
            @classmethod
            def from_local(cls, ckpt_dir: Any, device: str) -> Model:
                loads.append((name, "from_local", f"{ckpt_dir}@{device}"))
                return cls()

            @classmethod
            def from_pretrained(cls, device: str) -> Model:
                loads.append((name, "from_pretrained", device))
                return cls()

        return Model

    module.ChatterboxTTS = model_class("ChatterboxTTS")  # type: ignore[attr-defined]
    module.ChatterboxMultilingualTTS = model_class("ChatterboxMultilingualTTS")  # type: ignore[attr-defined]
    return module


@pytest.fixture
def chatterbox_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """TTS_ENGINE=chatterbox on the local endpoint, with a complete (empty-file) checkpoint folder."""
    for name in {*ENGLISH_CHECKPOINT_FILES, *MULTILINGUAL_CHECKPOINT_FILES}:
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setenv("TTS_ENGINE", "chatterbox")
    monkeypatch.setenv("TTS_CHECKPOINT_DIR", str(tmp_path))
    monkeypatch.setenv("RUNPOD_ENDPOINT_ID", "ep123")
    monkeypatch.setenv("RP_NOTEBOOK_LOCAL_ENDPOINT", "1")
    monkeypatch.delenv("RUNPOD_WEBHOOK_POST_OUTPUT", raising=False)
    return tmp_path


def test_load_reads_tts_checkpoint_dir_with_from_local_and_falls_back_to_the_cpu_only_off_runpod(
    monkeypatch: pytest.MonkeyPatch, chatterbox_env: Path
) -> None:
    loads: list[tuple[str, str, str]] = []
    monkeypatch.setitem(sys.modules, "torch", fake_torch(cuda=False))
    monkeypatch.setitem(sys.modules, "chatterbox", fake_chatterbox(loads))
    engine = load_engine("chatterbox")
    assert loads == [
        ("ChatterboxTTS", "from_local", f"{chatterbox_env}@cpu"),
        ("ChatterboxMultilingualTTS", "from_local", f"{chatterbox_env}@cpu"),
    ]
    assert engine.name == "chatterbox" and "ja" in engine.languages  # type: ignore[attr-defined]
    loads.clear()
    monkeypatch.delenv("TTS_CHECKPOINT_DIR")
    monkeypatch.setitem(sys.modules, "torch", fake_torch(cuda=True))
    load_engine("chatterbox")
    assert loads == [
        ("ChatterboxTTS", "from_pretrained", "cuda"),
        ("ChatterboxMultilingualTTS", "from_pretrained", "cuda"),
    ]


def test_on_runpod_without_a_gpu_the_worker_serves_and_fails_every_job_at_once_with_the_gpu_error(
    monkeypatch: pytest.MonkeyPatch, chatterbox_env: Path, load_tts_handler: Any
) -> None:
    loads: list[tuple[str, str, str]] = []
    monkeypatch.setitem(sys.modules, "torch", fake_torch(cuda=False))
    monkeypatch.setitem(sys.modules, "chatterbox", fake_chatterbox(loads))
    monkeypatch.delenv("RP_NOTEBOOK_LOCAL_ENDPOINT")  # a real Runpod worker
    monkeypatch.setenv("RP_NOTEBOOK_ALLOWED_CUDA", "12.4,12.8")
    module = load_tts_handler("chatterbox_tts_handler_no_gpu")  # importing it does not raise
    assert loads == []  # nothing was loaded on the CPU
    errors = []
    for job_id in ("a", "b"):
        (result,) = items(module.handler({"id": job_id, "input": {"text": "Hello."}}))
        assert set(result) == {"error"}
        errors.append(result["error"])
    errors.append(asyncio.run(module.whole_result({"id": "c", "input": {"text": "Hello."}}))["error"])
    assert len(set(errors)) == 1
    assert errors[0].startswith(
        "model failed to load: GPUUnavailableError: Chatterbox TTS needs a GPU and torch sees none "
        "on this Runpod worker: torch 2.6.0+cu124 is a CUDA 12.4 build"
    )
    assert "the endpoint allows CUDA 12.4,12.8" in errors[0]


def test_a_checkpoint_folder_missing_a_file_fails_every_job_naming_it_before_torch_is_imported(
    monkeypatch: pytest.MonkeyPatch, chatterbox_env: Path, load_tts_handler: Any
) -> None:
    (chatterbox_env / "s3gen.pt").unlink()
    # None in sys.modules makes `import torch` fail: the check must come before any import.
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "chatterbox", None)
    module = load_tts_handler("chatterbox_tts_handler_missing_file")
    (result,) = items(module.handler({"id": "a", "input": {"text": "Hello."}}))
    assert result["error"].startswith(
        f"model failed to load: FileNotFoundError: TTS_CHECKPOINT_DIR={chatterbox_env} lacks s3gen.pt ("
    )


# --- the multilingual model's attention hooks ---------------------------------------------------


def test_chatterbox_removes_the_hooks_each_generate_leaves_on_t3_and_keeps_the_others() -> None:
    import torch

    class HookLeaving(StandIn):
        """Registers forward hooks on its T3 and never removes them, as the multilingual generate()
        does through AlignmentStreamAnalyzer (chatterbox 0.1.7), then runs T3 once."""

        def __init__(self) -> None:
            super().__init__()
            self.t3 = torch.nn.Sequential(torch.nn.Linear(2, 2))
            self.seen: list[int] = []

        def generate(self, text: str, **kwargs: Any) -> np.ndarray:
            layer = self.t3[0]
            layer.register_forward_hook(lambda module, args, output: self.seen.append(len(self.seen)))
            layer.register_forward_hook(lambda module, args, kwargs, output: None, with_kwargs=True)
            self.t3(torch.zeros(1, 2))
            return super().generate(text, **kwargs)

    model = HookLeaving()
    kept = model.t3[0].register_forward_hook(lambda module, args, output: None)
    engine = ChatterboxEngine(StandIn(), model)
    for _ in range(3):
        engine.synthesize("Bonjour.", SpeechOptions(language="fr"))
    layer = model.t3[0]
    assert model.seen == [0, 1, 2]  # each call's hook ran in its call, and none in a later one
    assert list(layer._forward_hooks) == [kept.id]
    assert dict(layer._forward_hooks_with_kwargs) == {}
