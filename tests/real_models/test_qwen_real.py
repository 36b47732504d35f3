"""Qwen-Image-Layered for real: the unmodified worker, its image's own environment, diffusers' own
pipeline code, through the local endpoint and rp_notebook's client.

What is real: workers/qwen_image_layered/handler.py as its Dockerfile starts it, with
LAYERS_ENGINE=qwen, on the Python of an environment built from the Dockerfile's pip installs
(torch 2.14.1 + torchvision 0.29.1, diffusers, transformers, runpod, the pinned versions); the
checkpoint is loaded by the engine's plain `QwenImageLayeredPipeline.from_pretrained(folder)`, and
every job runs the whole pipeline (text encoder, transformer, RGBA VAE encode and decode; with an
empty prompt also the Qwen2-VL processor, the vision tower and `generate` for the caption). The
results go through the runpod SDK to the local endpoint, and rp_notebook's client polls them,
decodes them, and downloads them from a moto S3 server when they are too large to return inline.

What is not: the weights are random and tiny (tests/workers/tiny_qwen_pipeline.py's components plus
a real Qwen2VLProcessor, written by write_tiny_qwen_checkpoint.py with the environment's own
libraries), so the layers are noise, and the device is the CPU (the local endpoint marks its
workers as local, where the engine may use the CPU). Nothing is stubbed.

Deployed the way a user deploys an image: a template whose image is `local:<the worker folder>`
and whose env selects the engine and the checkpoint, and an endpoint on it, over GraphQL.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image, ImageDraw

import rp_notebook
from rp_notebook import LayersResult
from rp_notebook.config import configure
from rp_notebook.errors import JobFailedError
from rp_notebook.local import LocalEndpoint

from .conftest import REPO, WORKERS_DIR, checkpoints_dir, run_in, worker_python

sys.path.insert(0, str(REPO / "tests" / "local"))
from management_helpers import Management, unique

# The first run builds the worker environment (about 6 GB; see the worker's README for timings);
# each job's own wait below is much shorter, so a stuck job fails long before this.
pytestmark = pytest.mark.timeout(1800)

WORKER = WORKERS_DIR / "qwen_image_layered"
WRITER = Path(__file__).with_name("write_tiny_qwen_checkpoint.py")
BUILDER = REPO / "tests" / "workers" / "tiny_qwen_pipeline.py"
JOB_TIMEOUT_S = 600
#: The cheapest call that still runs every stage: 1 step, no CFG (one transformer pass), 640 px.
FAST = {"num_inference_steps": 1, "true_cfg_scale": 1.0, "resolution": 640, "seed": 11}


def picture() -> Image.Image:
    """A 3:2 picture: the pipeline's 640 px bucket for it is 768x512."""
    image = Image.new("RGB", (300, 200), (150, 200, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 140, 300, 200], fill=(90, 160, 80))
    draw.ellipse([220, 20, 270, 70], fill=(250, 210, 60))
    return image


@pytest.fixture(scope="module")
def python() -> str:
    return worker_python("qwen_image_layered")


@pytest.fixture(scope="module")
def checkpoint(python: str) -> Path:
    """The tiny checkpoint folder, written once per writer, builder and environment."""
    digest = hashlib.sha256()
    for source in (WRITER, BUILDER):
        digest.update(source.read_bytes())
    digest.update(Path(python).parents[1].name.encode())  # the environment's key: its library versions
    folder = checkpoints_dir() / f"qwen-image-layered-{digest.hexdigest()[:16]}"
    if not (folder / "model_index.json").is_file():
        # Written under a temporary name and renamed when complete, so an interrupted write is
        # never mistaken for a checkpoint.
        partial = Path(tempfile.mkdtemp(prefix=f"{folder.name}.partial-", dir=checkpoints_dir()))
        try:
            run_in(python, str(WRITER), str(partial))
            try:
                partial.rename(folder)
            except OSError:
                if not (folder / "model_index.json").is_file():  # not another run that got there first
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return folder


def deploy(server: LocalEndpoint, env: dict[str, str]) -> str:
    """A template for the worker folder with `env`, and an endpoint on it; the endpoint id."""
    mgmt = Management(server)
    template = mgmt.save_template(
        name=unique("qwen-image-layered"),
        imageName=f"local:{WORKER}",
        env=[{"key": key, "value": value} for key, value in env.items()],
    )
    endpoint = mgmt.save_endpoint(
        name=unique("qwen-image-layered"),
        templateId=template["id"],
        gpuIds="AMPERE_80",
        workersMax=1,
        idleTimeout=600,  # one warm worker for the whole module: each start loads the model again
    )
    return endpoint["id"]


def qwen_env(checkpoint: Path, **more: str) -> dict[str, str]:
    return {"LAYERS_ENGINE": "qwen", "LAYERS_MODEL_PATH": str(checkpoint), "HF_HUB_OFFLINE": "1", **more}


@pytest.fixture(scope="module")
def endpoint(server: LocalEndpoint, checkpoint: Path) -> str:
    return deploy(server, qwen_env(checkpoint))


@pytest.fixture(autouse=True)
def client(server: LocalEndpoint) -> Iterator[None]:
    configure(
        api_key=server.api_key, endpoint_base_url=server.job_api_url, api_base_url=server.management_url
    )
    yield


def assert_layers(result: LayersResult, count: int) -> None:
    assert len(result) == count
    assert all(layer.mode == "RGBA" and layer.size == (768, 512) for layer in result)
    # Random weights give noise, but the pipeline's own noise: alpha varies within every layer.
    assert all(
        layer.getchannel("A").getextrema()[0] < layer.getchannel("A").getextrema()[1] for layer in result
    )


@pytest.mark.parametrize("count", [2, 3])
def test_the_qwen_engine_returns_the_requested_number_of_rgba_layers_through_the_client(
    endpoint: str, count: int
) -> None:
    job = rp_notebook.layers(picture(), endpoint=endpoint, layers=count, prompt="a sunny meadow", **FAST)
    result = job.result(timeout=JOB_TIMEOUT_S)
    assert_layers(result, count)
    assert result.engine == "qwen" and result.storage == "inline"
    assert result.seed == FAST["seed"]
    # The only warning is the one that says the layers are the pipeline's bucket, not the input's size.
    assert len(result.warnings) == 1 and "resized 300x200 -> 768x512" in result.warnings[0]


def test_an_empty_prompt_is_captioned_by_the_checkpoints_own_qwen2vl_processor(endpoint: str) -> None:
    # The engine refuses an empty prompt unless the loaded pipeline has a processor, and the
    # pipeline captions "" with it (vision tower, then generate) before anything else runs.
    job = rp_notebook.layers(picture(), endpoint=endpoint, layers=2, prompt="", **FAST)
    result = job.result(timeout=JOB_TIMEOUT_S)
    assert_layers(result, 2)
    assert result.engine == "qwen"


def test_layers_too_large_to_return_inline_come_back_as_presigned_s3_urls_the_client_downloads(
    server: LocalEndpoint, checkpoint: Path, moto_s3: str
) -> None:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=moto_s3,
        aws_access_key_id="ak",
        aws_secret_access_key="moto-secret-qwen",
        region_name="us-east-1",
    ).create_bucket(Bucket="rp-qwen-layers")
    s3 = {
        "accessId": "ak",
        "accessSecret": "moto-secret-qwen",
        "bucketName": "rp-qwen-layers",
        "endpointUrl": moto_s3,
    }
    # 1000 bytes: any real layer PNG is over it, so the worker must upload.
    small_inline = deploy(server, qwen_env(checkpoint, LAYERS_INLINE_LIMIT_BYTES="1000"))
    job = rp_notebook.layers(
        picture(), endpoint=small_inline, layers=2, prompt="a sunny meadow", s3_config=s3, **FAST
    )
    result = job.result(timeout=JOB_TIMEOUT_S)
    assert result.storage == "s3"
    assert_layers(result, 2)
    urls = result.urls
    assert all(url.startswith(f"{moto_s3}/rp-qwen-layers/") for url in urls)
    # What the client decoded is what the bucket holds.
    for url, layer in zip(urls, result, strict=True):
        stored = Image.open(io.BytesIO(requests.get(url, timeout=30).content))
        assert stored.tobytes() == layer.tobytes()
    assert "moto-secret-qwen" not in str(job.body)


def test_a_checkpoint_missing_a_file_fails_every_job_at_once_naming_it_and_the_worker_keeps_serving(
    server: LocalEndpoint, checkpoint: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-checkpoint"
    shutil.copytree(checkpoint, broken)
    (broken / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    endpoint_id = deploy(server, qwen_env(broken))

    errors = []
    for _ in range(2):
        job = rp_notebook.layers(picture(), endpoint=endpoint_id, layers=2, prompt="x", **FAST)
        with pytest.raises(JobFailedError) as failed:
            job.result(timeout=JOB_TIMEOUT_S)
        errors.append(failed.value.error)
    assert errors[0] == errors[1]
    assert errors[0].startswith("the worker could not start, so it fails every job: ModelLoadError: ")
    assert f"Qwen-Image-Layered could not be loaded from {broken} (LAYERS_MODEL_PATH)" in errors[0]
    assert "diffusion_pytorch_model" in errors[0]
    # One worker answered both: it never exited, so the endpoint never saw a failed start.
    health = requests.get(
        f"{server.job_api_url}/{endpoint_id}/health",
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=30,
    ).json()
    assert "error" not in health and health["workers"]["unhealthy"] == 0, health
    assert health["jobs"]["failed"] == 2, health
