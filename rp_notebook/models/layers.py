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
from ._media import image_size

RESOLUTIONS = (640, 1024)
#: base64 of the input image; with the JSON around it, a /run body stays under the 10 MB limit.
MAX_IMAGE_BASE64 = 9_000_000
#: Larger pictures (a 50-megapixel photo, say) are refused, not downscaled, in the client before
#: upload and in the worker before decoding. Why refuse: the pipeline works at its 640 or 1024
#: bucket whatever it is given (workers-models.md §2.2), so extra pixels buy nothing; the worker
#: would have to decode all of them (150 MB of RGB for 50 MP) just to throw them away; and a
#: quiet downscale would make the client send, and the ledger record, a picture the user never
#: chose. The message says how big the picture is and what to scale it to. 4096x4096 keeps every
#: ordinary camera and screen size well inside the limit.
MAX_IMAGE_PIXELS = 4096 * 4096
MAX_PROMPT_CHARS = 2_000


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


def check_image_header(raw: bytes) -> None:
    """The `image` field's check: the pixel limit, read from the header of a PNG, JPEG, GIF, WebP
    or BMP file. Part of `LAYERS.validate`, so a decompression bomb (a few bytes that claim a huge
    canvas) is refused before Pillow ever opens it. Other formats are left to Pillow's own checks."""
    size = image_size(raw)
    if size is not None:
        check_image_size(*size)


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
            check=check_image_header,
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
