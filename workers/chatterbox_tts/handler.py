"""Runpod serverless worker: text to speech with Chatterbox (or Piper, for CPU-only local runs).

TTS_ENGINE=chatterbox (default) | piper picks the engine. The model loads once, here at import,
so a FlashBoot snapshot holds a warm process. The job logic lives in tts_service.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import runpod
from tts_engines import load_engine
from tts_service import TTSService

# progress_update POSTs to the job-done URL; in `--test_input` and other local runs there is none.
_progress = runpod.serverless.progress_update if os.environ.get("RUNPOD_WEBHOOK_POST_OUTPUT") else None

SERVICE = TTSService(load_engine(os.environ.get("TTS_ENGINE", "chatterbox")), progress=_progress)


async def handler(job: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    # A generator, so parts reach /stream as they are spoken. return_aggregate_stream makes /run and
    # /status give the list of every yield too (else their output would be []); its last item is the
    # whole result.
    async for item in SERVICE.stream(job):
        yield item


async def whole_result(job: dict[str, Any]) -> dict[str, Any]:
    return await SERVICE.handle(job)


if __name__ == "__main__":
    # The SDK's local test mode (--test_input, or no job server to take jobs from) calls the handler
    # once and does not drain generators (runpod 1.12.0 rp_local -> run_job): give it the whole result.
    local_test = "--test_input" in sys.argv or not os.environ.get("RUNPOD_WEBHOOK_GET_JOB")
    runpod.serverless.start(
        {"handler": whole_result if local_test else handler, "return_aggregate_stream": True}
    )
