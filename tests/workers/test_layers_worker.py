"""The layered-image worker (workers/qwen_image_layered): both engines, the handler contract, bad
input, the S3 path for large outputs, cancellation, and the `python handler.py --test_input` entry.

The qwen engine runs its real code path through diffusers' QwenImageLayeredPipeline, built from
tiny random components on CPU (tiny_qwen_pipeline.py). The S3 path runs against a real moto server
and downloads the presigned URLs with plain requests.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import os
import socket
import struct
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import requests
from layers_engines import (
    MODEL_ID,
    ColorSplitEngine,
    LayerRequest,
    QwenEngine,
    StopRequested,
    cached_snapshot,
    load_engine,
    resolve_model_source,
)
from layers_images import output_size, read_image, resize_note
from layers_service import LayersService
from layers_storage import Bucket, default_bucket_name, inline_limit_from_env, upload_pngs
from PIL import Image, ImageDraw

from rp_notebook.errors import InputError
from rp_notebook.models import LAYERS
from rp_notebook.models.layers import MAX_IMAGE_PIXELS

LAYERS_WORKER_DIR = Path(__file__).resolve().parents[2] / "workers" / "qwen_image_layered"
SECRET = "wJalrXUtnFEMI-not-a-real-secret-K7MDENG"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def png_base64(picture: Image.Image) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def shapes(size: tuple[int, int] = (96, 64), *, alpha: bool = False) -> Image.Image:
    """Flat coloured shapes on a light ground; with `alpha`, a transparent corner and a soft edge."""
    picture = Image.new("RGBA", size, (240, 236, 220, 255))
    draw = ImageDraw.Draw(picture)
    w, h = size
    draw.rectangle((w // 16, h // 8, w // 3, h // 2), fill=(220, 40, 40, 255))
    draw.ellipse((w // 3, h // 3, 2 * w // 3, 5 * h // 6), fill=(40, 80, 210, 255))
    draw.polygon([(w // 2, h - 2), (3 * w // 4, h // 2), (w - 2, h - 2)], fill=(40, 160, 70, 255))
    if alpha:
        a = np.asarray(picture).copy()
        a[: h // 4, 3 * w // 4 :, 3] = 0  # a fully transparent corner
        a[:, : w // 10, 3] = np.linspace(40, 255, w // 10, dtype=np.uint8)[None, :]  # a soft left edge
        picture = Image.fromarray(a, "RGBA")
    return picture


def decode_layer(value: str) -> Image.Image:
    picture = Image.open(io.BytesIO(base64.b64decode(value)))
    assert picture.format == "PNG"
    picture.load()
    return picture


def request_for(picture: Image.Image, **overrides: Any) -> LayerRequest:
    params = LAYERS.validate({"image": png_base64(picture), **overrides})
    return LayerRequest.from_input(params, picture.convert("RGBA"), params["seed"] or 1)


def header_only_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, followed by a few bytes of pixel data: a bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", binascii.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


# --- the qwen engine, real pipeline code on tiny random weights ------------------------------------


def test_qwen_engine_returns_n_rgba_png_layers_at_the_pipeline_size_and_the_returned_seed_reproduces_them(
    tiny_qwen_pipeline,
):
    steps: list[dict[str, int]] = []
    service = LayersService(QwenEngine(tiny_qwen_pipeline), progress=lambda job, p: steps.append(p))
    job_input = {
        "image": png_base64(shapes((96, 64), alpha=True)),
        "layers": 2,
        "resolution": 640,
        "prompt": "red, blue and green shapes",
        "num_inference_steps": 1,
    }
    first = run(service.handle({"id": "a", "input": {**job_input, "seed": 0}}))

    assert "error" not in first, first
    assert first["engine"] == "qwen" and first["storage"] == "inline"
    # A 3:2 picture at 640: calculate_dimensions gives 768x512, not the input's 96x64, and says so.
    assert (first["width"], first["height"]) == output_size(96, 64, 640) == (768, 512)
    assert first["warnings"] == [resize_note(96, 64, 640)]
    layers = [decode_layer(value) for value in first["layers"]]
    assert len(layers) == 2
    assert all(layer.mode == "RGBA" and layer.size == (768, 512) for layer in layers)
    assert 1 <= first["seed"] <= LAYERS["seed"].maximum  # seed 0 became a real, returned seed
    assert set(first["timing"]) == {"decode_s", "inference_s", "encode_s", "total_s"}
    assert steps == [{"step": 1, "steps": 1}]

    again = run(service.handle({"id": "b", "input": {**job_input, "seed": first["seed"]}}))
    assert again["seed"] == first["seed"]
    assert [np.asarray(decode_layer(v)).tolist() for v in again["layers"]] == [
        np.asarray(layer).tolist() for layer in layers
    ]


def test_qwen_engine_stops_between_denoising_steps_once_the_job_is_cancelled(tiny_qwen_pipeline):
    engine = QwenEngine(tiny_qwen_pipeline)
    passes: list[int] = []
    hook = tiny_qwen_pipeline.transformer.register_forward_hook(lambda *args: passes.append(1))
    done: list[tuple[int, int]] = []
    try:
        with pytest.raises(StopRequested):
            engine.decompose(
                request_for(shapes((64, 64)), layers=2, prompt="shapes", num_inference_steps=3),
                should_stop=lambda: bool(done),  # cancelled while step 1 ran
                on_step=lambda i, n: done.append((i, n)),
            )
    finally:
        hook.remove()
    assert done == [(1, 3)]
    assert len(passes) == 2  # one step: the conditional and the negative (CFG) pass, no more


class RecordingPipeline:
    """Stands in for QwenImageLayeredPipeline's __call__: records the call, returns `layers` images."""

    processor = object()
    _execution_device = "cpu"

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        size = output_size(*kwargs["image"].size, kwargs["resolution"])
        frames = [Image.new("RGBA", size, (i, 0, 0, 255)) for i in range(kwargs["layers"])]
        return type("Output", (), {"images": [frames]})()


def test_qwen_engine_calls_the_pipeline_as_qwen_image_layered_needs():
    import torch

    pipe = RecordingPipeline()
    picture = shapes((80, 60), alpha=True)
    engine = QwenEngine(pipe)
    layers = engine.decompose(request_for(picture, layers=3, prompt="  ", seed=1234))
    (call,) = pipe.calls

    image = call["image"]
    assert isinstance(image, Image.Image) and image.mode == "RGBA"
    assert image.getchannel("A").getextrema() == (255, 255)  # RGB then RGBA: the input alpha is dropped
    assert call["prompt"] == ""  # blank means "caption it", which the pipeline does for ""
    assert call["negative_prompt"] == " " and call["true_cfg_scale"] == 4.0  # CFG runs
    assert call["num_images_per_prompt"] == 1 and call["output_type"] == "pil"
    assert (call["layers"], call["resolution"], call["num_inference_steps"]) == (3, 640, 50)
    assert call["cfg_normalize"] is True and call["use_en_prompt"] is True
    generator = call["generator"]
    assert isinstance(generator, torch.Generator)
    assert generator.initial_seed() == 1234 and generator.device.type == "cpu"
    assert len(layers) == 3 and all(layer.mode == "RGBA" for layer in layers)


def test_qwen_engine_without_a_processor_refuses_an_empty_prompt_naming_prompt(tiny_qwen_pipeline):
    service = LayersService(QwenEngine(tiny_qwen_pipeline))
    result = run(service.handle({"id": "j", "input": {"image": png_base64(shapes()), "prompt": ""}}))
    assert set(result) == {"error"} and result["error"].startswith("prompt: ")


def test_qwen_engine_load_reads_a_saved_pipeline_in_fp32_on_cpu_without_deprecation_warnings(
    tiny_qwen_pipeline, tmp_path, recwarn
):
    import torch

    tiny_qwen_pipeline.save_pretrained(tmp_path)
    engine = QwenEngine.load(str(tmp_path), device="cpu", processor=None)
    pipe = engine._pipe
    assert pipe.transformer.dtype == torch.float32 and pipe.vae.dtype == torch.float32
    assert pipe.vae.use_slicing
    assert not engine.can_caption
    assert not [w for w in recwarn if "torch_dtype" in str(w.message)]


def test_resolve_model_source_prefers_the_env_then_runpods_model_cache_then_the_hub_id(tmp_path):
    assert resolve_model_source({}, tmp_path) == MODEL_ID
    repo = tmp_path / "models--Qwen--Qwen-Image-Layered"
    old, new = repo / "snapshots" / "aaa", repo / "snapshots" / "bbb"
    for snapshot in (old, new):
        snapshot.mkdir(parents=True)
        (snapshot / "model_index.json").write_text("{}")
    (repo / "snapshots" / "incomplete").mkdir()
    os.utime(old, (1, 1))
    assert cached_snapshot(tmp_path) == new  # no refs/main: the newest complete snapshot
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("aaa\n")
    assert resolve_model_source({}, tmp_path) == str(old)
    assert resolve_model_source({"LAYERS_MODEL_PATH": "/models/qwen"}, tmp_path) == "/models/qwen"


# --- the colorsplit engine ---------------------------------------------------------------------


# The split itself (shapes, background first, exact composite): test_layers_colorsplit.py.


def test_colorsplit_sizes_the_layers_as_the_pipeline_would_at_each_resolution():
    engine = ColorSplitEngine()
    for size, resolution, expected in [((96, 64), 640, (768, 512)), ((1920, 1080), 640, (864, 480))]:
        layers = engine.decompose(request_for(shapes(size), layers=3, resolution=resolution))
        assert {layer.size for layer in layers} == {expected} == {output_size(*size, resolution)}
    layers = engine.decompose(request_for(shapes((300, 200)), layers=2, resolution=1024))
    assert layers[0].size == output_size(300, 200, 1024) == (1248, 832)


def test_colorsplit_gives_a_picture_with_fewer_colours_empty_layers_last_and_says_so():
    picture = Image.new("RGBA", (640, 640), (255, 255, 255, 255))
    ImageDraw.Draw(picture).rectangle((0, 0, 199, 199), fill=(0, 0, 0, 255))
    result = run(
        LayersService(ColorSplitEngine()).handle({"id": "j", "input": {"image": png_base64(picture)}})
    )
    layers = [decode_layer(v) for v in result["layers"]]
    assert len(layers) == 4
    assert [layer.getchannel("A").getbbox() is not None for layer in layers] == [True, True, False, False]
    assert layers[0].getpixel((639, 639)) == (255, 255, 255, 255)  # the background, first
    assert layers[1].getpixel((0, 0)) == (0, 0, 0, 255)
    assert result["warnings"] == [
        "layers: layers 3, 4 are fully transparent (of 4); the picture gave the engine no more"
    ]


def test_colorsplit_warns_about_each_model_only_input_changed_from_its_default():
    changed = {
        "prompt": "a cat",
        "negative_prompt": "blurry",
        "num_inference_steps": 20,
        "true_cfg_scale": 6,
        "seed": 5,
        "cfg_normalize": False,
        "use_en_prompt": False,
    }
    service = LayersService(ColorSplitEngine())
    image = png_base64(shapes())
    result = run(service.handle({"id": "j", "input": {"image": image, "layers": 3, **changed}}))
    resized = resize_note(96, 64, 640)  # the picture is 96x64: the layers are 768x512, and it says so
    assert result["warnings"][-1] == resized
    ignored = result["warnings"][:-1]
    assert sorted(w.split(":", 1)[0] for w in ignored) == sorted(changed)
    assert all("colorsplit" in w for w in ignored)
    at_defaults = run(service.handle({"id": "k", "input": {**LAYERS.defaults(), "image": image}}))
    assert at_defaults["warnings"] == [resized]


# --- input decoding ------------------------------------------------------------------------------


def test_read_image_accepts_base64_data_urls_and_downloads_keeping_alpha():
    picture = shapes((50, 40), alpha=True)
    encoded = png_base64(picture)
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return base64.b64decode(encoded)

    for value in (encoded, "data:image/png;base64," + encoded, "https://example.com/p.png"):
        decoded = read_image(value, fetch=fetch)
        assert decoded.mode == "RGBA" and decoded.size == (50, 40)
        assert np.array_equal(np.asarray(decoded), np.asarray(picture))
    assert fetched == ["https://example.com/p.png"]


# --- bad input through the real handler ----------------------------------------------------------

TEXT_FILE = base64.b64encode(b"name,size\nlayer,4\n" * 40).decode()
BOMB = base64.b64encode(header_only_png(10_000, 5_000)).decode()  # 50 megapixels, a few bytes of data
TRUNCATED = png_base64(shapes((200, 200)))[:400]
TRUNCATED = TRUNCATED[: len(TRUNCATED) // 4 * 4]
SLIVER = png_base64(Image.new("RGB", (4000, 1), "red"))
GOOD = png_base64(shapes())
DEAD_URL = f"http://127.0.0.1:{free_port()}/picture.png"

BAD_INPUTS = [
    ("image", {}, "is required"),
    ("image", {"image": "not base64!"}, "not valid base64"),
    ("image", {"image": TEXT_FILE}, "not a picture"),
    ("image", {"image": BOMB}, "10000x5000 (50.0 megapixels); the limit is 16.8 megapixels (4096x4096)"),
    ("image", {"image": TRUNCATED}, "could not be decoded"),
    ("image", {"image": SLIVER}, "aspect ratio"),
    ("image", {"image": DEAD_URL}, "could not be downloaded from " + DEAD_URL),
    ("layers", {"image": GOOD, "layers": 1}, LAYERS["layers"].allowed()),
    ("layers", {"image": GOOD, "layers": 11}, LAYERS["layers"].allowed()),
    ("layers", {"image": GOOD, "layers": "many"}, LAYERS["layers"].allowed()),
    ("resolution", {"image": GOOD, "resolution": 512}, LAYERS["resolution"].allowed()),
    ("num_inference_steps", {"image": GOOD, "num_inference_steps": 0}, "from 1 to 50"),
    ("true_cfg_scale", {"image": GOOD, "true_cfg_scale": 0.5}, "from 1 to 10"),
    ("seed", {"image": GOOD, "seed": -1}, "an integer"),
    ("strength", {"image": GOOD, "strength": 0.5}, "not an input of layers"),
]


@pytest.mark.parametrize(
    ("field", "values", "says"), BAD_INPUTS, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(BAD_INPUTS)]
)
def test_each_bad_input_is_an_error_naming_its_field_and_the_same_service_serves_the_next_job(
    layers_handler, field, values, says
):
    result = run(layers_handler.handler({"id": "bad", "input": values}))
    assert set(result) == {"error"}
    assert result["error"].startswith(f"{field}: ")
    assert says in result["error"]
    good = run(layers_handler.handler({"id": "good", "input": {"image": GOOD, "layers": 2}}))
    assert "error" not in good and len(good["layers"]) == 2


def test_the_pixel_limit_is_the_spec_s_and_is_checked_from_the_header_before_decoding():
    assert MAX_IMAGE_PIXELS == 4096 * 4096
    # The header claims 50 MP but holds 64 bytes of pixels: decoding would fail differently.
    with pytest.raises(InputError, match=r"50\.0 megapixels"):
        read_image(BOMB)


@pytest.mark.parametrize(
    "s3_config",
    [
        "s3://bucket",
        {"accessId": "a", "accessSecret": SECRET, "bucketName": "layers"},
        {"accessId": "a", "accessSecret": SECRET, "bucketName": "layers", "endpointUrl": "ftp://x"},
    ],
)
def test_a_malformed_s3config_is_an_error_naming_s3config_that_never_echoes_the_secret(
    layers_handler, s3_config
):
    result = run(layers_handler.handler({"id": "j", "input": {"image": GOOD}, "s3Config": s3_config}))
    assert set(result) == {"error"} and result["error"].startswith("s3Config: ")
    assert SECRET not in result["error"]


def test_a_job_without_an_input_object_is_an_error_naming_input(layers_handler):
    assert run(layers_handler.handler({"id": "j", "input": "picture.png"}))["error"].startswith("input: ")


# --- large outputs: S3 -----------------------------------------------------------------------------


def make_bucket(endpoint: str, name: str) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="AKIDLAYERS",
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=name)


def assert_urls_hold_the_layers(result: dict[str, Any], inline: dict[str, Any], endpoint: str) -> None:
    assert result["storage"] == "s3" and len(result["layers"]) == len(inline["layers"])
    for url, value in zip(result["layers"], inline["layers"], strict=True):
        assert url.startswith(endpoint + "/")
        response = requests.get(url, timeout=10)
        assert response.status_code == 200
        picture = Image.open(io.BytesIO(response.content))
        assert picture.format == "PNG" and picture.mode == "RGBA"
        assert picture.size == (result["width"], result["height"])
        assert np.array_equal(np.asarray(picture), np.asarray(decode_layer(value)))


def test_a_large_output_goes_to_the_job_s3config_bucket_and_each_url_downloads_its_png(
    moto_s3, monkeypatch, load_layers_handler, capfd
):
    make_bucket(moto_s3, "layers-from-job")
    monkeypatch.setenv("LAYERS_ENGINE", "colorsplit")
    monkeypatch.setenv("LAYERS_INLINE_LIMIT_BYTES", "1000")
    for name in ("RUNPOD_WEBHOOK_POST_OUTPUT", "BUCKET_ENDPOINT_URL", "BUCKET_ACCESS_KEY_ID"):
        monkeypatch.delenv(name, raising=False)
    worker = load_layers_handler("qwen_image_layered_handler_s3")
    job_input = {"image": GOOD, "layers": 3}
    s3_config = {
        "accessId": "AKIDLAYERS",
        "accessSecret": SECRET,
        "bucketName": "layers-from-job",
        "endpointUrl": moto_s3,
    }

    result = run(worker.handler({"id": "job-1", "input": job_input, "s3Config": s3_config}))

    assert "error" not in result, result
    inline = run(LayersService(ColorSplitEngine()).handle({"id": "j", "input": job_input}))
    assert inline["storage"] == "inline"
    assert_urls_hold_the_layers(result, inline, moto_s3)
    assert all("/layers-from-job/job-1/" in url for url in result["layers"])
    assert result["warnings"] == [resize_note(96, 64, 640)]  # GOOD is 96x64
    assert SECRET not in json.dumps(result)
    logged = capfd.readouterr()
    assert SECRET not in logged.out + logged.err


def test_a_large_output_uses_the_bucket_env_and_names_rp_upload_s_month_bucket_when_none_is_named(
    moto_s3,
):
    month = default_bucket_name()
    make_bucket(moto_s3, month)
    environ = {
        "BUCKET_ENDPOINT_URL": moto_s3,
        "BUCKET_ACCESS_KEY_ID": "AKIDLAYERS",
        "BUCKET_SECRET_ACCESS_KEY": SECRET,
    }
    service = LayersService(ColorSplitEngine(), inline_limit=0, environ=environ)
    job_input = {"image": GOOD, "layers": 2}
    result = run(service.handle({"id": "env-job", "input": job_input}))

    assert "error" not in result, result
    inline = run(LayersService(ColorSplitEngine()).handle({"id": "j", "input": job_input}))
    assert_urls_hold_the_layers(result, inline, moto_s3)
    assert all(f"/{month}/env-job/" in url for url in result["layers"])
    resized, warning = result["warnings"]
    assert resized == resize_note(96, 64, 640)  # GOOD is 96x64
    assert warning.startswith("storage: ") and repr(month) in warning

    make_bucket(moto_s3, "layers-named")
    named = LayersService(
        ColorSplitEngine(), inline_limit=0, environ={**environ, "BUCKET_NAME": "layers-named"}
    )
    result = run(named.handle({"id": "env-job", "input": job_input}))
    assert all("/layers-named/env-job/" in url for url in result["layers"])
    assert result["warnings"] == [resize_note(96, 64, 640)]


def test_a_too_large_output_with_no_bucket_is_an_output_error_saying_how_big_and_how_to_fix_it():
    service = LayersService(
        ColorSplitEngine(), inline_limit=1000, environ={"BUCKET_ENDPOINT_URL": "http://x"}
    )
    result = run(service.handle({"id": "j", "input": {"image": GOOD, "layers": 4, "resolution": 1024}}))
    assert set(result) == {"error"}
    error = result["error"]
    assert error.startswith("output: the 4 layers are ") and "MB of base64, over the 0.0 MB" in error
    for fix in (
        "s3Config",
        "BUCKET_ENDPOINT_URL",
        "BUCKET_SECRET_ACCESS_KEY",
        "fewer layers",
        "resolution 640",
    ):
        assert fix in error
    assert "BUCKET_ACCESS_KEY_ID, BUCKET_SECRET_ACCESS_KEY not set" in error  # the partial env is named


def test_an_upload_that_fails_or_lands_on_local_disk_is_an_output_error_without_the_secret(moto_s3):
    bucket = Bucket(moto_s3, "AKIDLAYERS", SECRET, "no-such-bucket", "s3Config")
    assert SECRET not in repr(bucket)
    with pytest.raises(InputError, match=r"^output: uploading layer 0 to bucket 'no-such-bucket'") as failed:
        upload_pngs([b"png"], bucket, job_id="j")
    assert "NoSuchBucket" in str(failed.value) and SECRET not in str(failed.value)

    def local_fallback(file_name: str, file_data: bytes, **kwargs: Any) -> str:
        return f"local_upload/{file_name}"  # what rp_upload returns without credentials

    with pytest.raises(InputError, match=r"^output: .*gave no URL"):
        upload_pngs([b"png"], bucket, job_id="j", upload=local_fallback)


def test_inline_limit_comes_from_the_env_and_junk_is_refused_at_start():
    assert inline_limit_from_env({}) == 8_000_000
    assert inline_limit_from_env({"LAYERS_INLINE_LIMIT_BYTES": "2_000_000"}) == 2_000_000
    with pytest.raises(ValueError, match="LAYERS_INLINE_LIMIT_BYTES"):
        inline_limit_from_env({"LAYERS_INLINE_LIMIT_BYTES": "8MB"})


# --- cancellation --------------------------------------------------------------------------------


class GatedEngine:
    """Blocks inside decompose until released, then behaves like QwenEngine between steps."""

    name = "gated"

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        self.stopped = threading.Event()
        self.calls = 0

    def check(self, params: Any) -> list[str]:
        return []

    def decompose(
        self,
        request: LayerRequest,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        on_step: Any = None,
    ) -> list[Image.Image]:
        self.calls += 1
        if self.calls == 1:
            self.started.set()
            self.release.wait(timeout=30)
            if should_stop():  # the next step boundary
                self.stopped.set()
                raise StopRequested
        return [Image.new("RGBA", (64, 64), (0, 0, 0, 255))] * request.layers


def test_cancelling_the_handler_task_mid_inference_stops_the_engine_and_the_worker_serves_the_next_job(
    monkeypatch, load_layers_handler
):
    monkeypatch.setenv("LAYERS_ENGINE", "colorsplit")
    monkeypatch.delenv("RUNPOD_WEBHOOK_POST_OUTPUT", raising=False)
    worker = load_layers_handler("qwen_image_layered_handler_cancel")
    engine = GatedEngine()
    worker.SERVICE.engine = engine

    async def scenario() -> None:
        task = asyncio.create_task(worker.handler({"id": "j", "input": {"image": GOOD, "layers": 2}}))
        assert await asyncio.to_thread(engine.started.wait, 30)
        task.cancel()  # what the SDK does on /job-stop
        with pytest.raises(asyncio.CancelledError):
            await task
        engine.release.set()
        assert await asyncio.to_thread(engine.stopped.wait, 30)

    run(scenario())
    assert engine.calls == 1
    result = run(worker.handler({"id": "k", "input": {"image": GOOD, "layers": 2}}))
    assert "error" not in result and len(result["layers"]) == 2


def test_a_job_cancelled_while_its_picture_decodes_never_reaches_the_engine():
    engine = GatedEngine()
    decoding, release = threading.Event(), threading.Event()

    def slow_fetch(url: str) -> bytes:
        decoding.set()
        release.wait(timeout=30)
        return base64.b64decode(GOOD)

    service = LayersService(engine, fetch=slow_fetch)

    async def scenario() -> None:
        task = asyncio.create_task(
            service.handle({"id": "j", "input": {"image": "https://example.com/a.png"}})
        )
        assert await asyncio.to_thread(decoding.wait, 30)
        task.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    assert engine.calls == 0


# --- the worker entry point ----------------------------------------------------------------------


def test_the_handler_sends_progress_updates_only_when_a_job_server_is_configured(
    monkeypatch, load_layers_handler
):
    import runpod

    monkeypatch.setenv("LAYERS_ENGINE", "colorsplit")
    monkeypatch.delenv("RUNPOD_WEBHOOK_POST_OUTPUT", raising=False)
    local = load_layers_handler("qwen_image_layered_handler_local")
    monkeypatch.setenv("RUNPOD_WEBHOOK_POST_OUTPUT", "http://127.0.0.1:9/job-done/$ID?x=1")
    hosted = load_layers_handler("qwen_image_layered_handler_hosted")
    assert local.SERVICE._progress is None
    assert hosted.SERVICE._progress is runpod.serverless.progress_update


def test_load_engine_reads_layers_engine_and_refuses_unknown_names(monkeypatch):
    monkeypatch.setenv("LAYERS_ENGINE", "colorsplit")
    assert load_engine().name == "colorsplit"
    with pytest.raises(ValueError, match="LAYERS_ENGINE='sam'"):
        load_engine("sam")


def test_handler_test_input_with_colorsplit_exits_zero_and_logs_the_layers(run_test_input):
    job = json.loads((LAYERS_WORKER_DIR / "test_input.json").read_text())
    assert len(job["input"]["image"]) < 2000  # the shipped test picture stays small
    done = run_test_input(LAYERS_WORKER_DIR, job, {"LAYERS_ENGINE": "colorsplit"})
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "completed successfully" in log
    assert "'engine': 'colorsplit'" in log and "'width': 640" in log and "'storage': 'inline'" in log


def test_handler_test_input_with_a_bad_field_exits_one_and_logs_the_field(run_test_input):
    done = run_test_input(
        LAYERS_WORKER_DIR, {"input": {"image": GOOD, "resolution": 512}}, {"LAYERS_ENGINE": "colorsplit"}
    )
    assert done.returncode == 1
    assert "resolution: expected one of 640, 1024" in done.stdout + done.stderr
