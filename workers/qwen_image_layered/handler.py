"""Runpod serverless worker: one picture in, N RGBA layers out, with Qwen-Image-Layered.

LAYERS_ENGINE=qwen (default) | colorsplit picks the engine; colorsplit is a CPU demo that splits by
colour, for local runs. The model loads once, here at import, so a FlashBoot snapshot holds a warm
process. The job logic lives in layers_service.py.
"""

from __future__ import annotations

import os
from typing import Any

import runpod
from layers_engines import load_engine
from layers_service import LayersService
from layers_storage import inline_limit_from_env

# progress_update POSTs to the job-done URL; in `--test_input` and other local runs there is none.
_progress = runpod.serverless.progress_update if os.environ.get("RUNPOD_WEBHOOK_POST_OUTPUT") else None

SERVICE = LayersService(
    load_engine(os.environ.get("LAYERS_ENGINE", "qwen")),
    inline_limit=inline_limit_from_env(),
    progress=_progress,
)


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    return await SERVICE.handle(job)


if __name__ == "__main__":
    runpod.serverless.start({"handler": handler})
