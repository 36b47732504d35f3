"""Audio in and out of the TTS worker: the reference voice clip, joining chunks, encoding the result."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf

from rp_notebook.errors import InputError
from rp_notebook.models._media import download_input, media_bytes

__all__ = [
    "FORMATS",
    "MAX_VOICE_DOWNLOAD_BYTES",
    "MIN_VOICE_SECONDS",
    "VoiceClip",
    "as_mono",
    "encode",
    "fetch_url",
    "join_chunks",
    "read_voice",
    "write_temp_wav",
]

#: Output format -> (soundfile container, subtype). PCM_16 halves WAV/FLAC size against float and is
#: what every player expects; Vorbis is the lossy format libsndfile can write.
FORMATS: dict[str, tuple[str, str]] = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
}
_WRITE_BLOCK_FRAMES = 1 << 16
#: A voice URL may point anywhere; cap what we download (a 10 s clip is well under 2 MB as WAV).
MAX_VOICE_DOWNLOAD_BYTES = 20_000_000
#: Shorter clips give the speaker encoder too little to work on (and silence-trimmed, can be empty).
MIN_VOICE_SECONDS = 1.0


@dataclass(frozen=True)
class VoiceClip:
    """A decoded reference clip: mono float32 samples in [-1, 1]."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def as_mono(audio: Any) -> np.ndarray:
    """A model's output, (1, N) tensor or array, (N,) or (C, N), as 1-D float32 numpy."""
    if hasattr(audio, "detach"):  # a torch tensor; torch itself is never imported here
        audio = audio.detach().to("cpu").float().numpy()
    array = np.asarray(audio, dtype=np.float32)
    if array.ndim == 2:
        array = array[0] if array.shape[0] == 1 else array.mean(axis=0)
    if array.ndim != 1:
        raise ValueError(f"expected audio shaped (N,) or (channels, N), got {array.shape}")
    return array


def join_chunks(chunks: Sequence[np.ndarray], sample_rate: int, pause_s: float) -> np.ndarray:
    """Concatenate chunks with `pause_s` of silence between them (none before or after)."""
    gap = np.zeros(round(pause_s * sample_rate), dtype=np.float32)
    parts: list[np.ndarray] = []
    for chunk in chunks:
        if chunk.size == 0:
            continue
        if parts:
            parts.append(gap)
        parts.append(chunk.astype(np.float32, copy=False))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def encode(samples: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """Encode mono float samples as a complete wav/flac/ogg file, in memory."""
    container, subtype = FORMATS[fmt]
    # Clip first: PCM_16 would wrap around on overs and Vorbis distorts on them.
    samples = np.clip(samples, -1.0, 1.0)
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", sample_rate, 1, subtype, format=container) as file:
        # libvorbis allocas a stack buffer the size of one write: a few minutes of audio in a single
        # call segfaults the process (python-soundfile#233/#396, libsndfile#1095). Write in blocks.
        for start in range(0, len(samples), _WRITE_BLOCK_FRAMES):
            file.write(samples[start : start + _WRITE_BLOCK_FRAMES])
    return buffer.getvalue()


def fetch_url(url: str) -> bytes:
    """Download a voice clip, refusing anything over MAX_VOICE_DOWNLOAD_BYTES."""
    return download_input(url, field="voice", max_bytes=MAX_VOICE_DOWNLOAD_BYTES)


def read_voice(value: str, *, fetch: Callable[[str], bytes] = fetch_url) -> VoiceClip:
    """Decode the `voice` input (base64, data: URL or http(s) URL) into a mono clip.

    Raises InputError naming `voice` when it cannot be fetched or decoded as audio.
    """
    raw = media_bytes(value, field="voice", fetch=fetch)
    try:
        samples, sample_rate = sf.read(io.BytesIO(raw), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise InputError(
            "voice", f"could not be decoded as audio ({err}); send WAV, FLAC, OGG or MP3"
        ) from None
    clip = VoiceClip(samples.mean(axis=1).astype(np.float32), int(sample_rate))
    if clip.duration < MIN_VOICE_SECONDS:
        raise InputError(
            "voice", f"is {clip.duration:.2f} s of audio; at least {MIN_VOICE_SECONDS:g} s is needed"
        )
    return clip


def write_temp_wav(clip: VoiceClip) -> str:
    """Write the clip to a new temporary WAV file and return its path; the caller deletes it."""
    fd, path = tempfile.mkstemp(prefix="voice-", suffix=".wav")
    try:
        with os.fdopen(fd, "wb") as file:
            sf.write(file, np.clip(clip.samples, -1.0, 1.0), clip.sample_rate, format="WAV", subtype="PCM_16")
    except BaseException:
        os.unlink(path)
        raise
    return path
