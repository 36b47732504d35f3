"""A tiny random `QwenImageLayeredPipeline`, built in memory with no hub and no files.

The recipe of shared/docs/qwen-tiny-pipeline.md §3: the real model's shapes where they matter to
the worker's glue (RGBA VAE with 4 input channels and spatial scale 8, the real transformer
flags), everything else as small as it goes (base_dim 8, z_dim 8, 2 layers of width 16, a
byte-level tokenizer with a 512-entry vocab). `processor=None`: a prompt must always be given,
since captioning needs the processor. One call at resolution 640 with 2 layers takes a few
seconds on 2 CPU cores.
"""

from __future__ import annotations

from typing import Any

SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
VOCAB_SIZE = 512
Z_DIM = 8


def byte_level_vocab() -> dict[str, int]:
    """GPT-2's bytes-to-unicode table as a vocab: every byte is one token, ids 0-255."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {ch: i for i, ch in enumerate(sorted(chr(c) for c in cs))}


def byte_level_tokenizer(first_special_id: int = 256) -> tuple[Any, dict[str, int]]:
    """A Qwen2Tokenizer over the byte-level vocab, the special tokens from `first_special_id` on (keep
    them below the text encoder's vocab_size); and the specials' ids, for the encoder's config."""
    from transformers import Qwen2Tokenizer

    vocab = byte_level_vocab()
    for i, token in enumerate(SPECIALS):
        vocab[token] = first_special_id + i
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=[],
        unk_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIALS[1:],
    )
    return tokenizer, {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIALS}


def build_tiny_pipeline() -> Any:
    import torch
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageLayeredPipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    tokenizer, ids = byte_level_tokenizer()

    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=4 * Z_DIM,
        out_channels=Z_DIM,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=3,
        joint_attention_dim=16,
        guidance_embeds=False,
        axes_dims_rope=(8, 4, 4),
        use_additional_t_cond=True,
        use_layer3d_rope=True,
    )
    # z_dim must not be 4 with 4 input channels: the pipeline would take the RGBA picture for latents.
    vae = AutoencoderKLQwenImage(
        base_dim=8,
        z_dim=Z_DIM,
        num_res_blocks=1,
        dim_mult=[1, 2, 4, 4],
        temperal_downsample=[False, True, True],
        input_channels=4,
        latents_mean=[0.0] * Z_DIM,
        latents_std=[1.0] * Z_DIM,
    )
    # Token ids go inside text_config: at the top level they do not reach it (pitfall 5).
    config = Qwen2_5_VLConfig(
        text_config={
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1_000_000.0,
            "vocab_size": VOCAB_SIZE,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_heads": 2,
            "out_hidden_size": 16,
        },
        hidden_size=16,
        vocab_size=VOCAB_SIZE,
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        vision_token_id=ids["<|image_pad|>"],
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
    )
    text_encoder = Qwen2_5_VLForConditionalGeneration(config).eval()
    pipe = QwenImageLayeredPipeline(
        transformer=transformer.eval(),
        vae=vae.eval(),
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        processor=None,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
