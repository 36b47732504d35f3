"""%runpod layers end to end: magic -> local endpoint -> the layered-image worker (colorsplit) -> gallery."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from rp_notebook import Job, LayersResult
from rp_notebook.config import configure
from rp_notebook.errors import InputError, JobFailedError
from rp_notebook.jobs import get_manager
from rp_notebook.views import view_of


def scene() -> Image.Image:
    """Four flat colours: sky, grass, sun, house."""
    picture = Image.new("RGB", (480, 320), (150, 200, 240))
    draw = ImageDraw.Draw(picture)
    draw.rectangle([0, 220, 480, 320], fill=(90, 160, 80))
    draw.ellipse([360, 30, 440, 110], fill=(250, 210, 60))
    draw.rectangle([120, 140, 260, 250], fill=(190, 70, 60))
    return picture


@pytest.mark.timeout(120)
def test_layers_magic_returns_layers_whose_composite_matches_the_picture(ip, use_local):
    ip.user_ns["picture"] = scene()
    job = ip.run_line_magic("runpod", "layers picture --layers 4")
    assert isinstance(job, Job) and job.endpoint_id == "local-layers"
    result = job.result(timeout=100)
    assert isinstance(result, LayersResult) and len(result) == 4
    # The bucket of the model: 640 px on the long side's area, rounded as the pipeline does (3:2 -> 768x512).
    assert (result.width, result.height) == (768, 512)
    assert all(layer.mode == "RGBA" and layer.size == (768, 512) for layer in result)
    # Tolerance: the worker resizes to the bucket (edge pixels blend) and quantises to N colours, each
    # blended edge pixel snapping to the nearest of the 4; the flat areas match exactly. A mean
    # difference under 2/255 per channel allows for the edges and fails for any wrong or missing layer
    # (dropping one layer, such as the house at 10 % of the picture, costs far more than that).
    original = scene().convert("RGBA").resize((768, 512))
    assert max(ImageStat.Stat(ImageChops.difference(result.composite(), original)).mean) < 2
    for hidden in range(4):
        partial = result.composite([index != hidden for index in range(4)])
        assert max(ImageStat.Stat(ImageChops.difference(partial, original)).mean) > 2


@pytest.mark.timeout(120)
def test_an_image_from_a_file_path_works_and_the_gallery_shows_up_in_the_job_display(ip, use_local, tmp_path):
    path = tmp_path / "scene.png"
    scene().save(path)
    job = ip.run_line_magic("runpod", f"layers {path} --layers 3 --steps 10 --cfg 2")
    result = job.result(timeout=100)
    assert len(result) == 3
    assert "num_inference_steps" in " ".join(result.warnings)  # the demo engine says what it ignores
    bundle = view_of(job).bundle()  # what the notebook shows for the job (rp_notebook.views)
    assert "rp-notebook-layers" in bundle["text/html"] and "rp-notebook-composite" in bundle["text/html"]


def test_a_file_that_is_not_a_picture_is_refused_before_any_request(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    configure(api_key="k", endpoint_base_url="http://127.0.0.1:9/v2", endpoints={"layers": "ep"})
    import rp_notebook

    with pytest.raises(InputError, match=r"^image: is not a picture"):
        rp_notebook.layers(notes)


def test_a_50_megapixel_picture_is_refused_before_any_request():
    configure(api_key="k", endpoint_base_url="http://127.0.0.1:9/v2", endpoints={"layers": "ep"})
    huge = io.BytesIO()
    Image.new("L", (8000, 6250)).save(huge, format="PNG")  # 50 MP, a few hundred kB as PNG
    import rp_notebook

    with pytest.raises(InputError, match=r"image: is 8000x6250 \(50.0 megapixels\); the limit is 16.8"):
        rp_notebook.layers(huge.getvalue())


@pytest.mark.timeout(120)
def test_bad_input_the_client_cannot_see_fails_in_the_worker_which_keeps_serving(use_local):
    import rp_notebook

    manager = get_manager()
    # An unreachable URL can only be found out by the worker; the spec itself is bypassed here.
    bad = manager.submit("local-layers", {"image": "http://127.0.0.1:9/missing.png"}, model="layers")
    with pytest.raises(JobFailedError, match="image: "):
        bad.result(timeout=100)
    not_image = manager.submit("local-layers", {"image": "aGVsbG8gd29ybGQ="}, model="layers")  # "hello world"
    with pytest.raises(JobFailedError, match="image: "):
        not_image.result(timeout=100)
    assert len(rp_notebook.layers(scene(), layers=2).result(timeout=100)) == 2


@pytest.mark.timeout(120)
def test_a_large_result_goes_through_s3_and_the_client_fetches_it_transparently(
    local_server, use_local, moto_s3
):
    import boto3

    import rp_notebook
    from rp_notebook.local import EndpointConfig

    if "layers-s3" not in local_server.endpoint_ids:
        local_server.add_endpoint(
            EndpointConfig(
                id="layers-s3",
                worker_dir=local_server.endpoint_config("local-layers").worker_dir,
                env={"LAYERS_ENGINE": "colorsplit", "LAYERS_INLINE_LIMIT_BYTES": "1000"},  # force the S3 path
            )
        )
    boto3.client(
        "s3",
        endpoint_url=moto_s3,
        aws_access_key_id="ak",
        aws_secret_access_key="moto-secret-7f3a",
        region_name="us-east-1",
    ).create_bucket(Bucket="rp-layers")
    s3 = {
        "accessId": "ak",
        "accessSecret": "moto-secret-7f3a",
        "bucketName": "rp-layers",
        "endpointUrl": moto_s3,
    }
    job = rp_notebook.layers(scene(), layers=4, endpoint="layers-s3", s3_config=s3)
    result = job.result(timeout=100)
    assert result.storage == "s3" and len(result) == 4
    assert len(result.urls) == 4 and all(url.startswith(f"{moto_s3}/rp-layers/") for url in result.urls)
    assert job.output is None  # the raw output is not kept beside the result
    assert (
        max(
            ImageStat.Stat(
                ImageChops.difference(result.composite(), scene().convert("RGBA").resize((768, 512)))
            ).mean
        )
        < 2
    )
    assert "moto-secret-7f3a" not in str(job.output)
