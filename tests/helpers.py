"""Small helpers shared by the tests (importable as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import io
import time
import wave
from collections.abc import Callable


def eventually(predicate: Callable[[], object], timeout: float = 120) -> None:
    """Wait until predicate() is true; fail after `timeout` seconds. A wait, not a timing assert."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)


def wav_bytes(seconds: float = 0.1) -> bytes:
    """A silent 16-bit mono WAV file at 8 kHz: a voice clip the decoders accept."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * int(8000 * seconds))
    return buffer.getvalue()
