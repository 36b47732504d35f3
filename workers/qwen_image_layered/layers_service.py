"""One layered-image job from input to output, independent of the runpod SDK (tests drive it directly).

The job runs as an asyncio task: the runpod SDK stops a job by cancelling that task (its /job-stop
channel). Each heavy stage (decode, model, PNG encode, upload) runs in a worker thread via
`asyncio.to_thread`, so a cancel lands between stages. The model stage is minutes long on a GPU,
so a cancel also sets a flag that the engine checks after every denoising step: the GPU is free
again within a step, not after the remaining ones and the VAE decode.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from layers_engines import Engine, LayerRequest, StopRequested
from layers_images import base64_length, encode_png, fetch_url, read_image, resize_note
from layers_storage import (
    DEFAULT_INLINE_LIMIT,
    Bucket,
    bucket_for_job,
    too_large_message,
    upload_pngs,
)
from PIL import Image

from rp_notebook.errors import InputError
from rp_notebook.models import LAYERS

__all__ = ["LayersService", "ProgressCallback", "new_seed"]

#: Called with the job and {"step": done, "steps": total} after each denoising step.
ProgressCallback = Callable[[Mapping[str, Any], dict[str, int]], None]


def new_seed() -> int:
    """A seed for `seed: 0` ("random"), within the spec's range and never 0 itself."""
    return 1 + secrets.randbelow(int(LAYERS["seed"].maximum or 2**32 - 1))


class LayersService:
    """Validates a job's input, runs one engine, and returns the layers inline or as bucket URLs."""

    def __init__(
        self,
        engine: Engine,
        *,
        inline_limit: int = DEFAULT_INLINE_LIMIT,
        progress: ProgressCallback | None = None,
        fetch: Callable[[str], bytes] = fetch_url,
        upload: Callable[..., tuple[list[str], list[str]]] = upload_pngs,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.engine = engine
        self.inline_limit = inline_limit
        self._progress = progress
        self._fetch = fetch
        self._upload = upload
        self._environ = os.environ if environ is None else environ
        # The model is not thread-safe, and the step of a cancelled job may still be running in its
        # thread when the next job starts: one model call at a time.
        self._model_lock = threading.Lock()

    async def handle(self, job: Mapping[str, Any]) -> dict[str, Any]:
        """The worker's answer to one job: the output dict, or {"error": "<field>: ..."}."""
        try:
            return await self._run(job)
        except InputError as err:
            return {"error": str(err)}

    async def _run(self, job: Mapping[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        params = LAYERS.validate(job.get("input"))
        # Checked now so that a malformed s3Config fails before any GPU time.
        bucket = bucket_for_job(job, self._environ)
        warnings = list(self.engine.check(params))

        picture = await asyncio.to_thread(read_image, params["image"], fetch=self._fetch)
        # Refuses an aspect ratio the model cannot work at, before the model runs; says when the
        # layers will not be the picture's size.
        resized = resize_note(*picture.size, params["resolution"])
        if resized is not None:
            warnings.append(resized)
        decoded = time.perf_counter()

        seed = params["seed"] or new_seed()
        request = LayerRequest.from_input(params, picture, seed)
        stop = threading.Event()
        # Yield first, so that a cancel requested since the last await lands before the model starts.
        await asyncio.sleep(0)
        try:
            layers = await asyncio.to_thread(self._decompose, request, stop, job)
        except asyncio.CancelledError:
            stop.set()
            raise
        inferred = time.perf_counter()
        width, height = _check_layers(layers, request.layers)
        warnings += _empty_layer_warnings(layers)

        pngs = await asyncio.to_thread(lambda: [encode_png(layer) for layer in layers])
        total = sum(base64_length(len(png)) for png in pngs)
        if total <= self.inline_limit:
            data = [base64.b64encode(png).decode("ascii") for png in pngs]
            storage = "inline"
        else:
            data, upload_warnings = await self._store(pngs, bucket, total, params, job)
            warnings += upload_warnings
            storage = "s3"
        finished = time.perf_counter()
        return {
            "layers": data,
            "width": width,
            "height": height,
            "engine": self.engine.name,
            "seed": seed,
            "timing": {
                "decode_s": round(decoded - started, 3),
                "inference_s": round(inferred - decoded, 3),
                # PNG encoding and, for storage "s3", the upload.
                "encode_s": round(finished - inferred, 3),
                "total_s": round(finished - started, 3),
            },
            "storage": storage,
            "warnings": warnings,
        }

    async def _store(
        self,
        pngs: list[bytes],
        bucket: Bucket | None,
        total: int,
        params: Mapping[str, Any],
        job: Mapping[str, Any],
    ) -> tuple[list[str], list[str]]:
        if bucket is None:
            raise InputError(
                "output",
                too_large_message(
                    total,
                    self.inline_limit,
                    layers=params["layers"],
                    resolution=params["resolution"],
                    environ=self._environ,
                ),
            )
        return await asyncio.to_thread(self._upload, pngs, bucket, job_id=str(job.get("id") or "job"))

    def _decompose(
        self, request: LayerRequest, stop: threading.Event, job: Mapping[str, Any]
    ) -> list[Image.Image]:
        def on_step(done: int, total: int) -> None:
            if self._progress is not None and not stop.is_set():
                self._progress(job, {"step": done, "steps": total})

        with self._model_lock:
            try:
                return self.engine.decompose(request, should_stop=stop.is_set, on_step=on_step)
            except StopRequested:
                # Only a cancelled job stops, and its task no longer awaits this result.
                return []


def _check_layers(layers: list[Image.Image], expected: int) -> tuple[int, int]:
    # An engine bug, not the caller's: let it fail the job loudly.
    sizes = {layer.size for layer in layers}
    if len(layers) != expected or len(sizes) != 1:
        raise RuntimeError(
            f"the engine returned {len(layers)} layers of sizes {sorted(sizes)}; expected {expected}"
        )
    (size,) = sizes
    return size


def _empty_layer_warnings(layers: list[Image.Image]) -> list[str]:
    empty = [i + 1 for i, layer in enumerate(layers) if layer.getchannel("A").getbbox() is None]
    if not empty:
        return []
    which = f"layer {empty[0]} is" if len(empty) == 1 else f"layers {', '.join(map(str, empty))} are"
    return [f"layers: {which} fully transparent (of {len(layers)}); the picture gave the engine no more"]
