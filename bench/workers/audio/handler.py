"""A worker for jobs_bench.py's memory row: answers every job at once with the same 1 s WAV, in the
TTS worker's output shape, so the client decodes each into an AudioResult (as a real TTS job's)."""

import base64
import io
import math
import struct
import wave

import runpod

CONCURRENCY = 1000
RATE = 22_050


def _one_second() -> str:
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * t / RATE))) for t in range(RATE)
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(frames)
    return base64.b64encode(buffer.getvalue()).decode()


AUDIO = _one_second()


async def handler(job):
    return {
        "audio": AUDIO,
        "format": "wav",
        "sample_rate": RATE,
        "duration": 1.0,
        "engine": "bench",
        "warnings": [],
    }


if __name__ == "__main__":
    runpod.serverless.start({"handler": handler, "concurrency_modifier": lambda current: CONCURRENCY})
