"""Inputs of the layered-image worker (workers/qwen_image_layered).

Defaults and ranges follow Qwen-Image-Layered's README and demo app (shared/docs/workers-models.md
§2.2 and §4): 4 layers (the app's slider: 2-10), resolution bucket 640 or 1024 (the pipeline
asserts these), 50 steps (1-50), true CFG 4.0 (1-10) with negative prompt " " (CFG runs only with
a negative prompt), cfg_normalize and use_en_prompt on as the app has them.
"""

from __future__ import annotations

import math

from ..errors import InputError
from ._fields import Field, ModelSpec

RESOLUTIONS = (640, 1024)
#: base64 of the input image; with the JSON around it, a /run body stays under the 10 MB limit.
MAX_IMAGE_BASE64 = 9_000_000
#: Larger pictures are refused by the worker before any GPU time: the pipeline resizes to the
#: resolution bucket anyway, and decoding a huge image costs memory for nothing.
MAX_IMAGE_PIXELS = 4096 * 4096
MAX_PROMPT_CHARS = 2_000

LAYERS = ModelSpec(
    name="layers",
    title="Qwen-Image-Layered: split a picture into RGBA layers",
    positional="image",
    fields=(
        Field(
            "image",
            str,
            "The picture: base64 (PNG, JPEG, WebP), a data: URL or an http(s) URL "
            "(in a magic, also a file path or a variable holding a PIL image).",
            required=True,
            media=True,
            max_length=MAX_IMAGE_BASE64,
        ),
        Field("layers", int, "How many RGBA layers to return.", default=4, minimum=2, maximum=10),
        Field("resolution", int, "Resolution bucket the model works at.", default=640, choices=RESOLUTIONS),
        Field(
            "prompt",
            str,
            "A description of the whole picture, occluded parts included; empty lets the model caption it.",
            default="",
            max_length=MAX_PROMPT_CHARS,
        ),
        Field(
            "negative_prompt",
            str,
            "What to avoid; true CFG runs only when this is given.",
            default=" ",
            max_length=MAX_PROMPT_CHARS,
        ),
        Field(
            "num_inference_steps",
            int,
            "Denoising steps: more is slower and finer.",
            default=50,
            minimum=1,
            maximum=50,
            aliases=("--steps",),
        ),
        Field(
            "true_cfg_scale",
            float,
            "Classifier-free guidance strength.",
            default=4.0,
            minimum=1.0,
            maximum=10.0,
            step=0.5,
            aliases=("--cfg",),
        ),
        Field(
            "seed", int, "Random seed; 0 picks a new one each time.", default=0, minimum=0, maximum=2**32 - 1
        ),
        Field("cfg_normalize", bool, "Rescale the guided prediction to the conditional norm.", default=True),
        Field(
            "use_en_prompt", bool, "Caption in English (else Chinese) when no prompt is given.", default=True
        ),
    ),
)


def check_image_size(width: int, height: int) -> None:
    """Refuse a picture over MAX_IMAGE_PIXELS; the client (before upload) and the worker share this."""
    if width * height > MAX_IMAGE_PIXELS:
        side = math.isqrt(MAX_IMAGE_PIXELS)
        raise InputError(
            "image",
            f"is {width}x{height} ({width * height / 1e6:.1f} megapixels); the limit is "
            f"{MAX_IMAGE_PIXELS / 1e6:.1f} megapixels ({side}x{side}): scale it down first "
            "(the model works at 640 or 1024 px anyway)",
        )
