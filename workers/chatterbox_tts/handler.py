"""Runpod serverless worker: text to speech with Chatterbox (or Piper, for CPU-only local runs).

TTS_ENGINE=chatterbox (default) | piper picks the engine. The model loads once, here at import,
so a FlashBoot snapshot holds a warm process. The job logic lives in tts_service.py.

A model that fails to load (a missing checkpoint file, no GPU on Runpod, out of memory) does not
end the process: Runpod would start the worker again and again, billing each start, and the jobs
would wait until they time out. The worker serves anyway and fails every job at once with
`{"error": "model failed to load: <why>"}`; the traceback is in the worker's log.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import AsyncIterator
from typing import Any

import runpod
from tts_engines import load_engine
from tts_service import TTSService

# progress_update POSTs to the job-done URL; in `--test_input` and other local runs there is none.
_progress = runpod.serverless.progress_update if os.environ.get("RUNPOD_WEBHOOK_POST_OUTPUT") else None

SERVICE: TTSService | None = None
#: Why the model could not be loaded; every job gets it as its error.
LOAD_ERROR: str | None = None
try:
    SERVICE = TTSService(load_engine(os.environ.get("TTS_ENGINE", "chatterbox")), progress=_progress)
except Exception as exc:  # noqa: BLE001 - anything, so that the worker always reaches serverless.start
    traceback.print_exc()
    LOAD_ERROR = f"model failed to load: {type(exc).__name__}: {exc}"


async def handler(job: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    # A generator, so parts reach /stream as they are spoken. return_aggregate_stream makes /run and
    # /status give the list of every yield too (else their output would be []); its last item is the
    # whole result.
    if SERVICE is None:
        yield {"error": LOAD_ERROR}
        return
    async for item in SERVICE.stream(job):
        yield item


async def whole_result(job: dict[str, Any]) -> dict[str, Any]:
    if SERVICE is None:
        return {"error": LOAD_ERROR}
    return await SERVICE.handle(job)


if __name__ == "__main__":
    # The SDK's local test mode (--test_input, or no job server to take jobs from) calls the handler
    # once and does not drain generators (runpod 1.12.0 rp_local -> run_job): give it the whole result.
    local_test = "--test_input" in sys.argv or not os.environ.get("RUNPOD_WEBHOOK_GET_JOB")
    runpod.serverless.start(
        {"handler": whole_result if local_test else handler, "return_aggregate_stream": True}
    )
