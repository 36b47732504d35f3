"""LayersResult and its gallery, on real ipywidgets objects."""

from __future__ import annotations

import base64
import io
import zipfile

import pytest
from PIL import Image, ImageChops, ImageDraw

from rp_notebook.results import LayersResult, MalformedOutputError
from rp_notebook.views import gallery_of


def png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
def three_layers() -> list[Image.Image]:
    colours = [(200, 30, 30, 255), (30, 200, 30, 255), (30, 30, 200, 160)]
    layers = []
    for index, colour in enumerate(colours):
        layer = Image.new("RGBA", (96, 64), (0, 0, 0, 0))
        ImageDraw.Draw(layer).rectangle(
            [index * 20, index * 10, 40 + index * 20, 40 + index * 10], fill=colour
        )
        layers.append(layer)
    return layers


@pytest.fixture
def result(three_layers) -> LayersResult:
    output = {"layers": [png_b64(x) for x in three_layers], "width": 96, "height": 64, "engine": "colorsplit"}
    return LayersResult.from_output(output, "job-abcdef123")


def test_layers_decode_to_rgba_images_and_composite_bottom_first(result, three_layers):
    assert len(result) == 3 and all(image.mode == "RGBA" and image.size == (96, 64) for image in result)
    expected = Image.new("RGBA", (96, 64))
    for layer in three_layers:
        expected.alpha_composite(layer)
    assert ImageChops.difference(result.composite(), expected).getbbox() is None
    only_first = result.composite([True, False, False])
    assert ImageChops.difference(only_first, three_layers[0]).getbbox() is None


def test_layers_given_as_urls_are_fetched(three_layers):
    files = {
        f"https://bucket.example/{i}.png?sig=x": base64.b64decode(png_b64(x))
        for i, x in enumerate(three_layers)
    }
    fetched = []

    def fetch(url):
        fetched.append(url)
        return files[url]

    result = LayersResult.from_output(
        {"layers": list(files), "width": 96, "height": 64, "storage": "s3"}, "j", fetch=fetch
    )
    assert fetched == list(files) and result.storage == "s3" and len(result.images) == 3


@pytest.mark.parametrize(
    ("output", "words"),
    [
        ({"layers": []}, "list of 'layers'"),
        ({"images": ["x"]}, "list of 'layers'"),
        ({"layers": ["not base64!"]}, "layer 1 is neither base64 nor a URL"),
        ({"layers": [base64.b64encode(b"GIF89a....").decode()]}, "layer 1 is not a PNG"),
    ],
)
def test_a_malformed_output_is_an_error_not_an_empty_result(output, words):
    with pytest.raises(MalformedOutputError, match=words):
        LayersResult.from_output(output, "j")


def test_save_writes_every_layer_and_zip_holds_them_all(result, tmp_path):
    paths = result.save(tmp_path / "out")
    assert [p.name for p in paths] == ["layer_01.png", "layer_02.png", "layer_03.png"]
    assert all(Image.open(p).mode == "RGBA" for p in paths)
    archive = result.save_zip(tmp_path / "layers.zip")
    with zipfile.ZipFile(archive) as zipped:
        assert zipped.namelist() == ["layer_01.png", "layer_02.png", "layer_03.png"]
        assert zipped.read("layer_02.png") == result.pngs[1]


def test_gallery_toggles_change_the_composite_preview(result):
    gallery = gallery_of(result)
    shown = gallery.preview.value
    gallery.toggles[1].value = False  # what a click on the toggle does
    hidden_one = gallery.preview.value
    assert hidden_one != shown and gallery.visible == [True, False, True]
    assert gallery.toggles[1].icon == "eye-slash"
    gallery.toggles[1].value = True
    assert gallery.preview.value == shown
    for toggle in gallery.toggles:
        toggle.value = False
    empty = Image.open(io.BytesIO(gallery.preview.value))
    assert empty.getcolors(1 << 16) and {c[:3] for _, c in empty.getcolors(1 << 16)} <= {
        (255, 255, 255),
        (204, 204, 204),
    }


def test_gallery_save_buttons_write_files_and_report_where(result, tmp_path):
    gallery = gallery_of(result)
    gallery.folder.value = str(tmp_path / "saved")
    gallery.save_files_button.click()
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == [
        "layer_01.png",
        "layer_02.png",
        "layer_03.png",
    ]
    assert "saved 3 layers" in gallery.status.value
    gallery.save_zip_button.click()
    assert (tmp_path / "saved.zip").is_file()


def test_a_result_renders_itself_statically_and_its_view_adds_the_widget(result):
    bundle = result._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" not in bundle  # results never import a view
    assert bundle["text/html"].count("data:image/png;base64,") == 4  # 3 layers + the composite as one image
    assert bundle["text/plain"] == "LayersResult(3 layers, 96x64, colorsplit engine)"
    data, metadata = gallery_of(result)._repr_mimebundle_()  # live; the saved file keeps the HTML
    assert "application/vnd.jupyter.widget-view+json" in data and metadata == {
        "rp_notebook": {"live_view": True}
    }
    assert (
        data["text/html"].count("data:image/png;base64,") == 4
        and "need the running kernel" in data["text/html"]
    )
    assert gallery_of(result) is gallery_of(result)  # one per result: every display shares its toggles
