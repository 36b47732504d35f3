"""Write a complete, tiny, random-weight Qwen-Image-Layered checkpoint in `from_pretrained` layout.

    <worker environment's python> write_tiny_qwen_checkpoint.py OUT_DIR

Run with the Python of workers/qwen_image_layered's image environment, which has the image's
diffusers, transformers and torchvision: the checkpoint is then written by the same library
versions that load it. The components are tests/workers/tiny_qwen_pipeline.py's (the real
architectures at toy sizes, random weights, an in-memory byte-level tokenizer); to them this adds
a real `Qwen2VLProcessor` (image processor, video processor, that tokenizer), which needs
torchvision, so the folder holds every component the real checkpoint has and the engine's plain
`QwenImageLayeredPipeline.from_pretrained(folder)` loads it, processor and captioning included.

Before it returns, the folder is loaded back the way the worker loads it, and the processor is run
once on a picture, so a folder that exists is one the worker can use.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workers"))

from tiny_qwen_pipeline import build_tiny_pipeline


def write_checkpoint(out: Path) -> None:
    from diffusers import QwenImageLayeredPipeline
    from PIL import Image
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    tiny = build_tiny_pipeline()
    # The defaults are Qwen2-VL's (patch 14, merge 2, temporal patch 2), which the tiny vision
    # tower's config shares; the pipeline captions with exactly this processor.
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(),
        video_processor=Qwen2VLVideoProcessor(),
        tokenizer=tiny.tokenizer,
    )
    pipe = QwenImageLayeredPipeline(**{**tiny.components, "processor": processor})
    pipe.save_pretrained(out)

    loaded = QwenImageLayeredPipeline.from_pretrained(out, local_files_only=True)
    assert isinstance(loaded.processor, Qwen2VLProcessor), type(loaded.processor)
    inputs = loaded.processor(
        text="<|vision_start|><|image_pad|><|vision_end|>",
        images=Image.new("RGB", (64, 64)),
        return_tensors="pt",
    )
    assert inputs["pixel_values"].shape[0] > 0, "the saved processor gave no image patches"


if __name__ == "__main__":
    write_checkpoint(Path(sys.argv[1]))
