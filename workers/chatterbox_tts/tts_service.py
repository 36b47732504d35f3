"""One TTS job from input to output, independent of the runpod SDK (tests drive it directly).

The job runs as an asyncio task: the runpod SDK stops a job by cancelling that task (its /job-stop
channel). Model calls block, so each chunk runs in a worker thread via `asyncio.to_thread`, and the
task can be cancelled between chunks; a chunk that is already running finishes in its thread and
its audio is dropped.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import numpy as np
from tts_audio import encode, fetch_url, join_chunks, read_voice, write_temp_wav
from tts_engines import Engine, SpeechOptions
from tts_text import MAX_CHUNK_CHARS, split_for_streaming, split_text

from rp_notebook.errors import InputError
from rp_notebook.models import TTS

__all__ = ["PAUSE_SECONDS", "RESULT_WARN_BYTES", "ProgressCallback", "TTSService"]

#: Silence between chunks: about a sentence break, since most chunks end a sentence.
PAUSE_SECONDS = 0.2
#: The job API's payload limit for /run (20 MB for /runsync); a bigger result may not come back.
RESULT_WARN_BYTES = 10_000_000

#: Called after each chunk with the job and {"chunk": done, "chunks": total}.
ProgressCallback = Callable[[Mapping[str, Any], dict[str, int]], None]


class TTSService:
    """Validates a job's input, speaks it chunk by chunk with one engine, and encodes the result."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_chunk_chars: int = MAX_CHUNK_CHARS,
        pause_s: float = PAUSE_SECONDS,
        progress: ProgressCallback | None = None,
        fetch: Callable[[str], bytes] = fetch_url,
    ) -> None:
        self.engine = engine
        self.max_chunk_chars = max_chunk_chars
        self.pause_s = pause_s
        self._progress = progress
        self._fetch = fetch
        # Models keep per-call state (Chatterbox's voice conditioning), and the chunk of a cancelled
        # job may still be running in its thread when the next job starts: one model call at a time.
        self._model_lock = threading.Lock()

    async def handle(self, job: Mapping[str, Any]) -> dict[str, Any]:
        """The whole answer to one job as one dict: the final output, or {"error": "<field>: ..."}."""
        last: dict[str, Any] = {}
        async for item in self.stream(job):
            last = item
        return last

    async def stream(self, job: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The worker's answer, part by part (the handler is a generator; see handler.py).

        With `stream` on, each chunk's audio is yielded as soon as it is spoken (a standalone file in
        the requested format, `{"audio", ..., "chunk", "chunks"}`); the last item is always the whole
        result with `"final": True`. A bad input yields one `{"error": ...}`, which fails the job.
        """
        try:
            async for item in self._run(job):
                yield item
        except InputError as err:
            yield {"error": str(err)}

    async def _run(self, job: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        params = TTS.validate(job.get("input"))
        warnings = list(self.engine.check(params))
        split = split_for_streaming if params["stream"] else split_text
        chunks = split(params["text"], self.max_chunk_chars)
        if not chunks:
            raise InputError("text", "has nothing to speak")

        voice_path = None
        if params.get("voice"):
            # Decoded even by an engine that ignores it, so a bad clip fails the same way everywhere.
            clip = await asyncio.to_thread(read_voice, params["voice"], fetch=self._fetch)
            if self.engine.clones_voice:
                voice_path = await asyncio.to_thread(write_temp_wav, clip)
        options = SpeechOptions.from_input(params, voice_path)

        sample_rate = self.engine.sample_rate
        audio_chunks: list[np.ndarray] = []
        streamed = 0
        try:
            for index, chunk in enumerate(chunks):
                # Yield before starting a chunk, so that a cancel requested without an await since the
                # last one (e.g. from the progress callback) lands before the next thread starts.
                await asyncio.sleep(0)
                audio = await asyncio.to_thread(self._speak, chunk, options.for_chunk(index))
                audio_chunks.append(audio)
                if self._progress is not None:
                    self._progress(job, {"chunk": index + 1, "chunks": len(chunks)})
                if params["stream"] and audio.size:
                    piece = await self._encoded(audio, sample_rate, params["format"])
                    streamed += len(piece["audio"])
                    yield {**piece, "chunk": index + 1, "chunks": len(chunks)}
        finally:
            if voice_path is not None:
                self._discard(voice_path)

        audio = join_chunks(audio_chunks, sample_rate, self.pause_s)
        if audio.size == 0:
            raise InputError("text", "produced no audio; it has no speakable words")
        whole = await self._encoded(audio, sample_rate, params["format"])
        total = streamed + len(whole["audio"])
        if total > RESULT_WARN_BYTES:
            warnings.append(
                f"audio: the result is {total / 1e6:.1f} MB of base64, over the job API's "
                f"{RESULT_WARN_BYTES / 1e6:.0f} MB limit for /run; use format 'ogg' or 'flac', less text, "
                "or stream false (streamed parts are sent twice: as parts and in the whole file)"
            )
        yield {
            **whole,
            "engine": self.engine.name,
            "chunks": len(chunks),
            "warnings": warnings,
            "final": True,
        }

    async def _encoded(self, audio: np.ndarray, sample_rate: int, fmt: str) -> dict[str, Any]:
        data = await asyncio.to_thread(encode, audio, sample_rate, fmt)
        return {
            "audio": base64.b64encode(data).decode("ascii"),
            "format": fmt,
            "sample_rate": sample_rate,
            "duration": round(audio.size / sample_rate, 3),
        }

    def _speak(self, text: str, options: SpeechOptions) -> np.ndarray:
        with self._model_lock:
            return self.engine.synthesize(text, options)

    def _discard(self, path: str) -> None:
        # After a cancel, the running chunk may still be reading the voice file: delete it once the
        # model is free, without blocking the event loop.
        if self._model_lock.acquire(blocking=False):
            try:
                _unlink(path)
            finally:
                self._model_lock.release()
        else:
            threading.Thread(target=self._discard_when_free, args=(path,), daemon=True).start()

    def _discard_when_free(self, path: str) -> None:
        with self._model_lock:
            _unlink(path)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
