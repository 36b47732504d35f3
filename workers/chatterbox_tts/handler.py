"""Runpod serverless worker: text to speech with Chatterbox (or Piper, for CPU-only local runs).

TTS_ENGINE=chatterbox (default) | piper picks the engine. The model loads once, here at import,
so a FlashBoot snapshot holds a warm process. The job logic lives in tts_service.py.
"""

from __future__ import annotations

import os
from typing import Any

import runpod
from tts_engines import load_engine
from tts_service import TTSService

# progress_update POSTs to the job-done URL; in `--test_input` and other local runs there is none.
_progress = runpod.serverless.progress_update if os.environ.get("RUNPOD_WEBHOOK_POST_OUTPUT") else None

SERVICE = TTSService(load_engine(os.environ.get("TTS_ENGINE", "chatterbox")), progress=_progress)


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    return await SERVICE.handle(job)


if __name__ == "__main__":
    runpod.serverless.start({"handler": handler})
