"""Write a random-weight Chatterbox checkpoint folder that the real library loads and runs offline.

    python tiny_chatterbox.py OUT_DIR [--multilingual] [--small-t3] [--fp16] [--speech-tokens K]
                              [--seed N] [--if-missing]
    TTS_CHECKPOINT_DIR=OUT_DIR python tiny_chatterbox.py --exec workers/chatterbox_tts/handler.py ...

Run it with the Python of an environment built like the worker's GPU image
(workers/chatterbox_tts/requirements.txt, then the Dockerfile's `pip install --no-deps
chatterbox-tts==0.1.7 s3tokenizer==0.3.0 resemble-perth==1.0.1`), never the project's .venv. It
uses only the standard library and what chatterbox itself needs (torch, safetensors, numpy, srsly).

The folder holds what `ChatterboxTTS.from_local(OUT_DIR, device)` opens (ve.safetensors,
t3_cfg.safetensors, s3gen.safetensors, tokenizer.json, conds.pt) and, with --multilingual, what
`ChatterboxMultilingualTTS.from_local(OUT_DIR, device)` opens too (ve.pt, t3_mtl23ls_v2.safetensors,
s3gen.pt, grapheme_mtl_merged_expanded_v1.json; conds.pt is shared, as in the hub repo
ResembleAI/chatterbox), plus what the multilingual tokenizer looks for at init:

- Cangjie5_TC.json in a Hugging Face cache layout under OUT_DIR (MTLTokenizer calls
  `hf_hub_download("ResembleAI/chatterbox", "Cangjie5_TC.json", cache_dir=OUT_DIR)`), found with
  HF_HUB_OFFLINE=1 (missing, it only logs a warning);
- a tiny spacy-pkuseg model in OUT_DIR/pkuseg. MTLTokenizer builds `spacy_pkuseg.pkuseg()`, which
  downloads its model into $PKUSEG_HOME unless $PKUSEG_HOME/spacy_ontonotes.zip exists, and a
  failed download (requests.ConnectionError) fails the load. PKUSEG_HOME must point there before
  spacy_pkuseg is first imported (it reads the variable at import): `prepare_loading` does it.

A manifest (tiny_chatterbox.json, written last) records what the files depend on
(`checkpoint_key`); `ensure_checkpoint` / --if-missing reuse a folder whose manifest matches.

Every module is the library's own class, built with its default constructor and seeded random
init; their state_dicts are saved. The built-in voice (conds.pt) comes from the library's own
`prepare_conditionals` on a synthetic 1 s clip, so the S3 tokenizer, CAMPPlus and the voice
encoder run once while writing.

--small-t3: the T3 backbone with 14 Llama layers of MLP width 512 (SMALL_T3) instead of 30 of
4096: 90M parameters instead of 530M, about 4x faster to write, load and sample. T3 takes its
config from a library-global table, so the loading process must call `use_small_t3()` first:
`prepare_loading(OUT_DIR)` does it from the manifest, and `--exec SCRIPT` runs an unmodified
worker script after it. Without it, loading fails (RuntimeError: Error(s) in loading state_dict
for T3: Missing key(s) ... "tfmr.layers.14...").

--fp16: weights stored as float16 (half the disk), loaded into the float32 modules as usual.

Random T3 weights never emit the stop token, so `generate()` would run all 1000 steps. A few T3
weights are therefore set so that it stops after K speech tokens (--speech-tokens, default 8;
each token is 40 ms of audio), whatever the sampling options:

- Two residual-stream channels, D_BIAS and D_STOP, are fed only by the speech position embeddings
  (speech_emb's two columns are zeroed, and no layer writes to them: those rows of every o_proj and
  down_proj are zero), so at speech position p the final hidden state holds exactly
  (+S, -S) for p < K and (+S, +S) for p >= K, before the final RMSNorm.
- speech_head (it has no bias in the Llama T3) reads them: the stop token's row gets +A on D_STOP,
  the "repeat" token R's row +A/2 on D_STOP, and the ids S3Gen cannot take (6561..8193 but the
  stop token) -A on D_BIAS. All other rows keep 0 there.
- English: before position K the stop logit is about -A*S/rms, from K on +A*S/rms, hundreds above
  any other: exactly K tokens, then the stop, for any temperature in 0.05-5, min_p, top_p,
  repetition penalty (the stop token is never in the history), exaggeration and cfg_weight in 0-1
  (both CFG rows see the same channels).
- Multilingual: its AlignmentStreamAnalyzer pins the stop logit at -2**15 while the (random)
  attention alignment has not reached the end of the text, but forces a stop once the last two
  tokens repeat. From position K, R leads (still, after repetition_penalty=2 halves it), so it is
  sampled twice and the analyser forces the stop: K + 2 tokens, or K when the stop is not
  suppressed (short texts).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import struct
import sys
import time
import wave
from pathlib import Path
from typing import Any

#: Bump when anything written changes, so cached checkpoints are rebuilt.
FORMAT_VERSION = 1

ENGLISH_FILES = ("ve.safetensors", "t3_cfg.safetensors", "s3gen.safetensors", "tokenizer.json", "conds.pt")
MULTILINGUAL_FILES = (
    "ve.pt",
    "t3_mtl23ls_v2.safetensors",
    "s3gen.pt",
    "grapheme_mtl_merged_expanded_v1.json",
)
MANIFEST = "tiny_chatterbox.json"
#: Where the multilingual tokenizer's pkuseg model lives; point PKUSEG_HOME here.
PKUSEG_DIR = "pkuseg"

HUB_REPO = "ResembleAI/chatterbox"
#: A made-up commit id for the Hugging Face cache layout that holds Cangjie5_TC.json.
FAKE_COMMIT = "0" * 40

# The stop-after-K surgery (see the module docstring).
D_BIAS = 1022
D_STOP = 1023
STREAM_SCALE = 4.0  # S: the two channels' value, about the rest of the stream's RMS
HEAD_SCALE = 400.0  # A
REPEAT_TOKEN = 1234  # R: any ordinary speech token id (< 6561)

# Text vocabularies. The hub's tokenizers are BPE over graphemes with [SPACE] for spaces; these are
# the same kind (a BPE with no merges: one token per character) with far fewer entries.
# T3 pads with start_text_token=255 and stop_text_token=0 itself; the tokenizer's own [START] and
# [STOP] sit at those ids too.
SPECIALS = {
    "[STOP]": 0,
    "[UNK]": 1,
    "[SPACE]": 2,
    "[PAD]": 3,
    "[SEP]": 4,
    "[CLS]": 5,
    "[MASK]": 6,
    "[START]": 255,
}
#: chatterbox.mtl_tts.SUPPORTED_LANGUAGES
LANGUAGES = ("ar", "da", "de", "el", "en", "es", "fi", "fr", "he", "hi", "it", "ja")
LANGUAGES += ("ko", "ms", "nl", "no", "pl", "pt", "ru", "sv", "sw", "tr", "zh")
EN_VOCAB_SIZE = 704  # T3Config.english_only().text_tokens_dict_size
MTL_VOCAB_SIZE = 2454  # T3Config.multilingual().text_tokens_dict_size
#: A few Cangjie codes (Cangjie5_TC.json lines are "glyph\tcode").
CANGJIE = ["你\tonf", "好\tvnd", "世\tpt", "界\twol", "中\tl", "文\tyk", "我\thqi", "是\tamyo"]

BUILTIN_VOICE_SECONDS = 1.0

#: --small-t3: the T3 backbone's Llama config with fewer, thinner layers. T3 reads its config by name
#: (T3Config.llama_config_name, always "Llama_520M") from chatterbox.models.t3.llama_configs
#: .LLAMA_CONFIGS when it is built, so the loading process must call `use_small_t3()` before
#: from_local too. hidden_size stays 1024 (the Perceiver's width is fixed); the multilingual
#: model's alignment analyser reads attention heads (9, 2), (12, 15), (13, 11), so 14 layers of
#: 16 heads is the least.
SMALL_T3 = {"num_hidden_layers": 14, "intermediate_size": 512}


def use_small_t3() -> None:
    """Make every T3 built from now on in this process use SMALL_T3 (a library-global setting)."""
    from chatterbox.models.t3 import llama_configs

    llama_configs.LLAMA_CONFIGS["Llama_520M"] = {**llama_configs.LLAMA_520M_CONFIG_DICT, **SMALL_T3}


def _ascii_chars() -> list[str]:
    return [chr(c) for c in range(33, 127)]


def _multilingual_chars() -> list[str]:
    """Characters the multilingual front-ends produce: lowercased NFKD text in 23 languages."""
    ranges = [
        (0x00DF, 0x00FF),  # Latin-1 lowercase letters (most decompose under NFKD anyway)
        (0x0300, 0x036F),  # combining diacritics (NFKD)
        (0x03B1, 0x03C9),  # Greek lowercase
        (0x0430, 0x045F),  # Cyrillic lowercase
        (0x05D0, 0x05EA),  # Hebrew letters
        (0x0621, 0x064A),  # Arabic letters
        (0x0900, 0x097F),  # Devanagari
        (0x1100, 0x11FF),  # Hangul Jamo (korean_normalize decomposes syllables)
        (0x3041, 0x30FF),  # hiragana and katakana
        (0x3001, 0x3002),  # 、。
        (0xFF01, 0xFF1F),  # fullwidth punctuation and digits
    ]
    chars = [chr(c) for lo, hi in ranges for c in range(lo, hi + 1)]
    # Turkish dotless i and Polish l with stroke, which have no NFKD decomposition.
    return [*chars, "\u0131", "\u0142"]


def tokenizer_json(multilingual: bool) -> dict[str, Any]:
    """A `tokenizers` JSON: BPE without merges, the specials (and language tags) as added tokens."""
    vocab = dict(SPECIALS)
    added = list(SPECIALS)
    if multilingual:
        added += [f"[{code}]" for code in LANGUAGES] + [f"[cj_{c}]" for c in "abcdefghijklmnopqrstuvwxyz."]
    symbols = _ascii_chars() + (_multilingual_chars() if multilingual else [])
    next_id = 7
    for token in [t for t in added if t not in vocab] + symbols:
        if token in vocab:
            continue
        if next_id == SPECIALS["[START]"]:
            next_id += 1
        vocab[token] = next_id
        next_id += 1
    limit = MTL_VOCAB_SIZE if multilingual else EN_VOCAB_SIZE
    assert max(vocab.values()) < limit, (len(vocab), limit)
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": vocab[token],
                "content": token,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for token in added
        ],
        "normalizer": None,
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": None,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "[UNK]",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": vocab,
            "merges": [],
        },
    }


def voice_clip(path: Path, seconds: float, sample_rate: int = 24_000, seed: int = 0) -> None:
    """A voice-like 16-bit mono WAV: a gliding harmonic tone with syllable-rate amplitude and noise."""
    rng = random.Random(seed)
    n = int(seconds * sample_rate)
    frames = bytearray()
    phase = 0.0
    for i in range(n):
        t = i / sample_rate
        f0 = 140.0 + 30.0 * math.sin(2 * math.pi * 0.7 * t)
        phase += 2 * math.pi * f0 / sample_rate
        tone = sum(math.sin(k * phase) / k for k in range(1, 6))
        envelope = 0.5 + 0.5 * math.sin(2 * math.pi * 4.0 * t) ** 2
        sample = 0.25 * envelope * tone + 0.01 * rng.uniform(-1, 1)
        frames += struct.pack("<h", max(-32767, min(32767, int(sample * 32767))))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(bytes(frames))


def stop_after(t3: Any, speech_tokens: int) -> None:
    """Set the few T3 weights that make generation stop after `speech_tokens` tokens (docstring)."""
    import torch

    hp = t3.hp
    with torch.no_grad():
        for layer in t3.tfmr.layers:
            layer.self_attn.o_proj.weight[[D_BIAS, D_STOP], :] = 0
            layer.mlp.down_proj.weight[[D_BIAS, D_STOP], :] = 0
        t3.speech_emb.weight[:, [D_BIAS, D_STOP]] = 0
        positions = t3.speech_pos_emb.emb.weight
        positions[:, D_BIAS] = STREAM_SCALE
        positions[:, D_STOP] = STREAM_SCALE
        positions[:speech_tokens, D_STOP] = -STREAM_SCALE
        head = t3.speech_head.weight
        head[:, [D_BIAS, D_STOP]] = 0
        never = torch.ones(hp.speech_tokens_dict_size, dtype=torch.bool)
        never[: hp.start_speech_token] = False
        never[hp.stop_speech_token] = False
        head[never, D_BIAS] = -HEAD_SCALE
        head[hp.stop_speech_token, D_STOP] = HEAD_SCALE
        head[REPEAT_TOKEN, D_STOP] = HEAD_SCALE / 2


def _state(module: Any, fp16: bool) -> dict[str, Any]:
    import torch

    state = {}
    for key, value in module.state_dict().items():
        value = value.detach().contiguous()
        if fp16 and value.is_floating_point():
            value = value.to(torch.float16)
        state[key] = value
    return state


def checkpoint_key(
    multilingual: bool, seed: int, speech_tokens: int, fp16: bool, small_t3: bool = False
) -> dict[str, Any]:
    """What the written files depend on; a cached folder is reusable while its manifest matches.

    It includes a hash of this file, so any edit to the writer invalidates cached folders.
    """
    from importlib.metadata import version

    return {
        "format": FORMAT_VERSION,
        "writer_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16],
        "chatterbox-tts": version("chatterbox-tts"),
        "torch": version("torch").split("+")[0],
        "multilingual": multilingual,
        "seed": seed,
        "speech_tokens": speech_tokens,
        "fp16": fp16,
        "small_t3": SMALL_T3 if small_t3 else None,
    }


def is_current(out_dir: Path, key: dict[str, Any]) -> bool:
    try:
        return json.loads((Path(out_dir) / MANIFEST).read_text()) == key
    except (OSError, ValueError):
        return False


def write_checkpoint(
    out_dir: str | os.PathLike[str],
    *,
    multilingual: bool = False,
    seed: int = 0,
    speech_tokens: int = 8,
    fp16: bool = False,
    small_t3: bool = False,
) -> Path:
    """Write the folder (replacing what is there); return its path. The manifest is written last."""
    import torch
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.t3.modules.t3_config import T3Config
    from chatterbox.models.tokenizers import EnTokenizer
    from chatterbox.models.voice_encoder import VoiceEncoder
    from chatterbox.tts import ChatterboxTTS
    from safetensors.torch import save_file

    if not 1 <= speech_tokens <= 900:
        raise ValueError("speech_tokens must be 1-900")
    out = Path(out_dir)
    key = checkpoint_key(multilingual, seed, speech_tokens, fp16, small_t3)
    if small_t3:
        use_small_t3()
    (out / MANIFEST).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    for name in (*ENGLISH_FILES, *MULTILINGUAL_FILES, PKUSEG_DIR, "models--" + HUB_REPO.replace("/", "--")):
        stale = out / name
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink(missing_ok=True)

    torch.manual_seed(seed)
    ve = VoiceEncoder().eval()
    s3gen = S3Gen().eval()
    t3 = T3().eval()
    stop_after(t3, speech_tokens)
    save_file(_state(ve, fp16), out / "ve.safetensors")
    save_file(_state(s3gen, fp16), out / "s3gen.safetensors")
    save_file(_state(t3, fp16), out / "t3_cfg.safetensors")
    (out / "tokenizer.json").write_text(json.dumps(tokenizer_json(multilingual=False), ensure_ascii=False))

    # The built-in voice, made the way the library makes one from a clip.
    clip = out / "builtin_voice.wav"
    voice_clip(clip, BUILTIN_VOICE_SECONDS, seed=seed)
    model = ChatterboxTTS(t3, s3gen, ve, EnTokenizer(str(out / "tokenizer.json")), "cpu")
    model.prepare_conditionals(str(clip), exaggeration=0.5)
    model.conds.save(out / "conds.pt")
    clip.unlink()
    del model, t3

    if multilingual:
        torch.save(_state(ve, fp16), out / "ve.pt")
        torch.save(_state(s3gen, fp16), out / "s3gen.pt")
        del s3gen
        t3 = T3(T3Config.multilingual()).eval()
        stop_after(t3, speech_tokens)
        save_file(_state(t3, fp16), out / "t3_mtl23ls_v2.safetensors")
        del t3
        (out / "grapheme_mtl_merged_expanded_v1.json").write_text(
            json.dumps(tokenizer_json(multilingual=True), ensure_ascii=False)
        )
        _write_cangjie(out)
        _write_pkuseg(out / PKUSEG_DIR)

    (out / MANIFEST).write_text(json.dumps(key, indent=1) + "\n")
    return out


def ensure_checkpoint(out_dir: str | os.PathLike[str], **options: Any) -> Path:
    """`write_checkpoint(out_dir, **options)` unless out_dir already holds that same checkpoint."""
    key = checkpoint_key(
        options.get("multilingual", False),
        options.get("seed", 0),
        options.get("speech_tokens", 8),
        options.get("fp16", False),
        options.get("small_t3", False),
    )
    if is_current(Path(out_dir), key):
        return Path(out_dir)
    return write_checkpoint(out_dir, **options)


def prepare_loading(ckpt_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Ready this process to load the checkpoint in ckpt_dir with the unmodified library.

    Sets PKUSEG_HOME to its pkuseg model (it must be set before spacy_pkuseg is first imported,
    which the multilingual tokenizer does at init) and, for a --small-t3 checkpoint, registers the
    small Llama config. Returns the manifest.
    """
    ckpt = Path(ckpt_dir)
    manifest = json.loads((ckpt / MANIFEST).read_text())
    if (ckpt / PKUSEG_DIR).is_dir():
        if "spacy_pkuseg" in sys.modules and os.environ.get("PKUSEG_HOME") != str(ckpt / PKUSEG_DIR):
            raise RuntimeError("spacy_pkuseg was imported before PKUSEG_HOME pointed at the checkpoint")
        os.environ["PKUSEG_HOME"] = str(ckpt / PKUSEG_DIR)
    if manifest.get("small_t3"):
        if manifest["small_t3"] != SMALL_T3:
            raise RuntimeError(
                f"{ckpt}: written with small_t3={manifest['small_t3']}, this script has {SMALL_T3}"
            )
        use_small_t3()
    return manifest


def exec_worker(script: str, args: list[str]) -> None:
    """Run a worker script as `python SCRIPT ARGS...` would, after prepare_loading($TTS_CHECKPOINT_DIR).

    The worker's own code is unchanged; only this process's library setup differs (see SMALL_T3).
    """
    import runpy

    prepare_loading(os.environ["TTS_CHECKPOINT_DIR"])
    script_path = Path(script).resolve()
    sys.argv = [str(script_path), *args]
    sys.path[0] = str(script_path.parent)
    runpy.run_path(str(script_path), run_name="__main__")


def _write_cangjie(out: Path) -> None:
    """Cangjie5_TC.json where hf_hub_download(cache_dir=out) finds it offline."""
    repo = out / ("models--" + HUB_REPO.replace("/", "--"))
    snapshot = repo / "snapshots" / FAKE_COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(FAKE_COMMIT)
    (snapshot / "Cangjie5_TC.json").write_text(json.dumps(CANGJIE, ensure_ascii=False))


def _write_pkuseg(home: Path) -> None:
    """A spacy-pkuseg model that `pkuseg()` (model "spacy_ontonotes") loads without downloading.

    pkuseg downloads only when $PKUSEG_HOME/spacy_ontonotes.zip is missing, then loads
    spacy_ontonotes/features.msgpack and weights.npz. Two tags, one feature, zero weights: it
    segments (badly), which is all the tokenizer needs.
    """
    import numpy as np
    import srsly

    model = home / "spacy_ontonotes"
    if model.exists():
        shutil.rmtree(model)
    model.mkdir(parents=True)
    (home / "spacy_ontonotes.zip").write_bytes(b"")  # download_model checks only that it exists
    tags = {"B": 0, "I": 1}
    srsly.write_msgpack(
        model / "features.msgpack",
        {"unigram": [], "bigram": [], "feature_to_idx": {"/": 0}, "tag_to_idx": tags},
    )
    n_tag, n_feature = len(tags), 1
    np.savez(
        model / "weights.npz", sizes=np.array([n_tag, n_feature]), w=np.zeros(n_tag * (n_feature + n_tag))
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--exec"]:
        if len(argv) < 2:
            raise SystemExit("usage: tiny_chatterbox.py --exec SCRIPT [ARGS...]  (reads TTS_CHECKPOINT_DIR)")
        exec_worker(argv[1], argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument(
        "--multilingual", action="store_true", help="also write the multilingual model's files"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speech-tokens", type=int, default=8, help="speech tokens T3 emits before it stops")
    parser.add_argument("--fp16", action="store_true", help="store weights as float16 (loaded into float32)")
    parser.add_argument(
        "--small-t3", action="store_true", help="a 14-layer T3 (the loader must call use_small_t3)"
    )
    parser.add_argument(
        "--if-missing", action="store_true", help="do nothing if OUT_DIR holds this same checkpoint"
    )
    args = parser.parse_args(argv)
    key = checkpoint_key(args.multilingual, args.seed, args.speech_tokens, args.fp16, args.small_t3)
    if args.if_missing and is_current(Path(args.out_dir), key):
        print(f"{args.out_dir}: up to date")
        return 0
    started = time.monotonic()
    write_checkpoint(
        args.out_dir,
        multilingual=args.multilingual,
        seed=args.seed,
        speech_tokens=args.speech_tokens,
        fp16=args.fp16,
        small_t3=args.small_t3,
    )
    print(f"{args.out_dir}: written in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
