"""Runpod serverless worker: one picture in, N RGBA layers out, with Qwen-Image-Layered.

LAYERS_ENGINE=qwen (default) | colorsplit picks the engine; colorsplit is a CPU demo that splits by
colour, for local runs. The model loads once, here at import, so a FlashBoot snapshot holds a warm
process; if it cannot load, the worker still starts and answers every job with the reason. The
job logic lives in layers_service.py.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

import runpod
from layers_engines import load_engine
from layers_service import LayersService
from layers_storage import inline_limit_from_env

# progress_update POSTs to the job-done URL; in `--test_input` and other local runs there is none.
_progress = runpod.serverless.progress_update if os.environ.get("RUNPOD_WEBHOOK_POST_OUTPUT") else None


def _start() -> tuple[LayersService | None, str]:
    """The service, or why there is none.

    A worker that exits at start is restarted by Runpod again and again, billed each time, and no
    job ever hears why. So a failure here (no GPU on a Runpod host, weights that do not load, a bad
    setting) leaves the worker serving, and every job fails at once with the reason.
    """
    try:
        engine = load_engine(os.environ.get("LAYERS_ENGINE", "qwen"))
        return LayersService(engine, inline_limit=inline_limit_from_env(), progress=_progress), ""
    except Exception as error:  # noqa: BLE001 - every start-up failure, reported to every job
        traceback.print_exc()  # the worker's log keeps the whole story
        return None, f"the worker could not start, so it fails every job: {type(error).__name__}: {error}"


SERVICE, START_ERROR = _start()


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    if SERVICE is None:
        return {"error": START_ERROR}
    return await SERVICE.handle(job)


if __name__ == "__main__":
    runpod.serverless.start({"handler": handler})
