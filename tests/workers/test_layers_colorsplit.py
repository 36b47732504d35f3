"""The colorsplit engine (workers/qwen_image_layered/layers_colorsplit.py): one layer per connected
shape of one colour, the background first (the model's and the client's order: layer 1 is the
bottom), composing back to the picture exactly; and the note that says why the layers are not the
input's size.

"Exactly" has no tolerance here: each visible pixel is in exactly one layer with its own RGBA, and
Pillow's alpha_composite over a transparent ground returns such a pixel unchanged. Only the colour
of fully transparent pixels is not compared (the layers have none there; Pillow gives 0, 0, 0, 0).
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections import deque
from typing import Any

import numpy as np
import pytest
from layers_colorsplit import label_components, split_colors
from layers_engines import ColorSplitEngine, LayerRequest
from layers_images import output_size, resize_note
from layers_service import LayersService
from PIL import Image, ImageDraw

from rp_notebook import LayersResult
from rp_notebook.models import LAYERS

WHITE, RED, BLUE = (255, 255, 255), (220, 30, 30), (30, 60, 210)


def png_base64(picture: Image.Image) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def request_for(picture: Image.Image, **overrides: Any) -> LayerRequest:
    params = LAYERS.validate({"image": png_base64(picture), **overrides})
    return LayerRequest.from_input(params, picture.convert("RGBA"), params["seed"] or 1)


def handle(picture: Image.Image, **inputs: Any) -> dict[str, Any]:
    job = {"id": "j", "input": {"image": png_base64(picture), **inputs}}
    result = asyncio.run(LayersService(ColorSplitEngine()).handle(job))
    assert "error" not in result, result
    return result


def composite(layers: list[Image.Image]) -> np.ndarray:
    out = Image.new("RGBA", layers[0].size, (0, 0, 0, 0))
    for layer in layers:
        out = Image.alpha_composite(out, layer)
    return np.asarray(out)


def assert_composes_to(layers: list[Image.Image], picture: Image.Image) -> None:
    """Disjoint layers whose composite is `picture` pixel for pixel (alpha included)."""
    want = np.asarray(picture.convert("RGBA"))
    alphas = np.stack([np.asarray(layer)[..., 3] for layer in layers])
    assert ((alphas > 0).sum(axis=0) <= 1).all()  # no pixel is in two layers
    got = composite(layers)
    assert np.array_equal(got[..., 3], want[..., 3])  # no pixel lost, none added
    seen = want[..., 3] > 0
    assert np.array_equal(got[seen], want[seen])


def antialiased(size: int, draw: Any, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """A picture drawn at 4x and downsampled: every edge is a ramp of blended colours."""
    big = Image.new("RGB", (4 * size, 4 * size), background)
    draw(ImageDraw.Draw(big), 4)
    return big.resize((size, size), Image.Resampling.LANCZOS).convert("RGBA")


def triangle_and_rectangle(size: int = 640) -> Image.Image:
    def draw(d: ImageDraw.ImageDraw, k: int) -> None:
        s = size * k
        d.polygon([(0.05 * s, 0.9 * s), (0.35 * s, 0.08 * s), (0.62 * s, 0.9 * s)], fill=RED)
        d.rectangle((0.68 * s, 0.3 * s, 0.95 * s, 0.7 * s), fill=BLUE)

    return antialiased(size, draw)


def pure(layer: Image.Image, colour: tuple[int, int, int]) -> int:
    """How many visible pixels of `layer` are exactly `colour`."""
    a = np.asarray(layer)
    return int(((a[..., :3] == colour).all(axis=-1) & (a[..., 3] > 0)).sum())


def main_share(layer: Image.Image, colour: tuple[int, int, int]) -> float:
    """The share of the layer's visible pixels within 32 of `colour` (its edges are blends)."""
    a = np.asarray(layer).astype(int)
    visible = a[..., 3] > 0
    near = (np.abs(a[..., :3] - colour).max(axis=-1) <= 32) & visible
    return near.sum() / visible.sum()


def test_a_red_triangle_and_a_blue_rectangle_on_white_are_three_one_colour_layers_that_compose_to_the_input():
    picture = triangle_and_rectangle()
    colours = {tuple(c) for c in np.asarray(picture)[..., :3].reshape(-1, 3)}
    assert len(colours) > 100  # the edges are antialiased: many blended colours besides the three

    result = handle(picture, layers=4)
    assert (result["width"], result["height"]) == (640, 640)  # 640x640 at 640: no resize, no note
    # The client's own reading and compositing: what a notebook shows.
    layers = LayersResult.from_output(result).images
    assert len(layers) == 4
    assert_composes_to(layers, picture)  # the blended edges included
    background, triangle, rectangle, empty = layers
    # The background first (the model's order), then the shapes by area.
    assert background.getpixel((0, 0)) == (*WHITE, 255) and main_share(background, WHITE) > 0.98
    assert main_share(triangle, RED) > 0.95 and pure(triangle, RED) > 80_000
    assert main_share(rectangle, BLUE) > 0.95 and pure(rectangle, BLUE) > 40_000
    for layer, own in ((background, WHITE), (triangle, RED), (rectangle, BLUE)):
        assert [pure(layer, c) > 0 for c in (WHITE, RED, BLUE)] == [c == own for c in (WHITE, RED, BLUE)]
    # Not one purple layer: no layer mixes the two shapes.
    assert triangle.getbbox()[2] < rectangle.getbbox()[0]
    assert empty.getbbox() is None
    assert result["warnings"] == [
        "layers: layer 4 is fully transparent (of 4); the picture gave the engine no more"
    ]


def test_two_separate_shapes_of_one_colour_are_two_layers_when_layers_allow_and_one_layer_when_not():
    def draw(d: ImageDraw.ImageDraw, k: int) -> None:
        d.ellipse((40 * k, 40 * k, 280 * k, 280 * k), fill=RED)
        d.ellipse((380 * k, 380 * k, 580 * k, 580 * k), fill=RED)
        d.rectangle((400 * k, 60 * k, 600 * k, 220 * k), fill=BLUE)

    picture = antialiased(640, draw)
    four = split_colors(picture, 4)
    assert_composes_to(four, picture)
    big_red, blue, small_red = four[1:]
    assert main_share(big_red, RED) > 0.95 and main_share(small_red, RED) > 0.95
    assert main_share(blue, BLUE) > 0.95
    assert big_red.getbbox()[2] < small_red.getbbox()[0]  # one disc each

    three = split_colors(picture, 3)
    assert_composes_to(three, picture)
    # One layer short: the smaller disc joins the shape of its own colour, not the background.
    assert main_share(three[1], RED) > 0.95 and pure(three[1], RED) == pure(big_red, RED) + pure(
        small_red, RED
    )
    assert main_share(three[2], BLUE) > 0.95


def test_more_shapes_than_layers_are_merged_without_losing_a_pixel():
    palette = [(200, 40, 40), (40, 160, 70), (40, 80, 210), (240, 200, 40), (150, 60, 180), (20, 20, 20)]

    def draw(d: ImageDraw.ImageDraw, k: int) -> None:
        for i, colour in enumerate(palette):
            x, y = 40 + (i % 3) * 200, 60 + (i // 3) * 300
            d.rectangle((x * k, y * k, (x + 120 + 10 * i) * k, (y + 200) * k), fill=colour)

    picture = antialiased(640, draw, background=(235, 230, 215))
    for layers in (2, 3, 5):
        out = split_colors(picture, layers)
        assert len(out) == layers and all(layer.getbbox() is not None for layer in out)
        assert_composes_to(out, picture)  # merged shapes keep their own colours
    # With a layer each, the six squares and the background come apart, the largest square first.
    seven = split_colors(picture, 7)
    assert_composes_to(seven, picture)
    assert [
        main_share(layer, colour) > 0.95 for layer, colour in zip(seven[1:], palette[::-1], strict=True)
    ] == [True] * 6


def test_the_background_is_the_region_touching_the_border_even_when_a_shape_is_larger():
    picture = Image.new("RGBA", (640, 640), (*WHITE, 255))
    ImageDraw.Draw(picture).rectangle((60, 60, 580, 580), fill=RED)  # 66 % of the picture
    background, square = split_colors(picture, 2)
    assert background.getpixel((0, 0)) == (*WHITE, 255) and background.getpixel((320, 320))[3] == 0
    assert square.getpixel((320, 320)) == (*RED, 255)


def test_a_hole_of_the_background_colour_stays_with_the_background():
    def draw(d: ImageDraw.ImageDraw, k: int) -> None:
        d.ellipse((100 * k, 100 * k, 540 * k, 540 * k), fill=BLUE)
        d.ellipse((250 * k, 250 * k, 390 * k, 390 * k), fill=WHITE)

    picture = antialiased(640, draw)
    layers = split_colors(picture, 4)
    assert_composes_to(layers, picture)
    assert layers[0].getpixel((320, 320)) == (*WHITE, 255)  # the hole, with the ground around the ring
    assert layers[1].getpixel((150, 320)) == (*BLUE, 255)
    assert layers[2].getbbox() is None and layers[3].getbbox() is None


@pytest.mark.parametrize("count", [2, 4, 10])
def test_layers_are_disjoint_rgba_background_first_and_compose_to_a_picture_with_its_own_alpha(count):
    # Four flat colours, a fully transparent corner and a soft (semi-transparent) left edge.
    picture = Image.new("RGBA", (640, 640), (240, 236, 220, 255))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((40, 80, 213, 320), fill=(220, 40, 40, 255))
    draw.ellipse((213, 213, 426, 533), fill=(40, 80, 210, 255))
    draw.polygon([(320, 638), (480, 320), (638, 638)], fill=(40, 160, 70, 255))
    a = np.asarray(picture).copy()
    a[:160, 480:, 3] = 0
    a[:, :64, 3] = np.linspace(40, 255, 64, dtype=np.uint8)[None, :]
    picture = Image.fromarray(a, "RGBA")

    layers = ColorSplitEngine().decompose(request_for(picture, layers=count))
    assert len(layers) == count
    assert all(layer.mode == "RGBA" and layer.size == (640, 640) for layer in layers)
    assert_composes_to(layers, picture)  # whatever the count: merging never changes a pixel
    assert layers[0].getpixel((639, 639)) == (240, 236, 220, 255)  # the background first
    areas = [int((np.asarray(layer)[..., 3] > 0).sum()) for layer in layers[1:]]
    assert areas == sorted(areas, reverse=True)  # then the largest shape first
    assert [area > 0 for area in areas] == [i < 3 for i in range(count - 1)]  # 3 shapes, then empty
    # The soft edge is the background's and the red square's, with their own alpha.
    assert layers[0].getpixel((0, 639)) == (240, 236, 220, 40)


def test_a_resized_picture_composes_to_its_lanczos_resize_and_each_shape_is_one_layer():
    picture = triangle_and_rectangle(96)  # 8x up to 640: resampling blends every edge again
    layers = ColorSplitEngine().decompose(request_for(picture, layers=3))
    assert_composes_to(layers, picture.resize((640, 640), Image.Resampling.LANCZOS))
    assert [main_share(layer, c) > 0.9 for layer, c in zip(layers, (WHITE, RED, BLUE), strict=True)] == [
        True
    ] * 3


def test_a_256px_picture_comes_back_at_640_px_with_a_note_saying_it_was_resized_and_why():
    picture = triangle_and_rectangle(256)
    result = handle(picture, layers=3)
    assert (result["width"], result["height"]) == (640, 640)
    note = (
        "resolution: resized 256x256 -> 640x640: Qwen-Image-Layered works at 640 or 1024 px "
        "(resolution=640: an area of about 640x640, the picture's aspect ratio kept, each side a multiple of 32)"
    )
    assert result["warnings"] == [note] == [resize_note(256, 256, 640)]
    # The client keeps it and shows it with the layers.
    shown = LayersResult.from_output(result)
    assert shown.warnings == (note,)
    assert "resized 256x256 -&gt; 640x640" in shown._repr_mimebundle_()["text/html"]
    assert_composes_to(shown.images, picture.resize((640, 640), Image.Resampling.LANCZOS))

    at_1024 = handle(Image.new("RGBA", (1920, 1080), (*WHITE, 255)), layers=2, resolution=1024)
    assert at_1024["warnings"][0].startswith("resolution: resized 1920x1080 -> 1376x768: ")
    assert "(resolution=1024: an area of about 1024x1024" in at_1024["warnings"][0]
    assert output_size(1920, 1080, 1024) == (1376, 768)
    # A picture already at the model's size is not resized, and nothing is said.
    assert resize_note(640, 640, 640) is None and resize_note(864, 480, 640) is None


def test_a_photo_is_split_into_the_requested_layers_and_composes_to_itself():
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:640, 0:640]
    noisy = np.stack([x / 3, y / 3, (x + y) / 6], axis=-1) + rng.normal(0, 14, (640, 640, 3))
    picture = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB").convert("RGBA")
    layers = split_colors(picture, 4)
    assert all(layer.getbbox() is not None for layer in layers)
    assert_composes_to(layers, picture)


def test_a_fully_transparent_picture_gives_empty_layers():
    layers = split_colors(Image.new("RGBA", (64, 64), (10, 20, 30, 0)), 3)
    assert [layer.getbbox() for layer in layers] == [None] * 3


def bfs_components(labels: np.ndarray) -> np.ndarray:
    """The reference: 8-connected components by breadth-first search."""
    height, width = labels.shape
    out = np.full(labels.shape, -1)
    count = 0
    for start in zip(*np.nonzero(labels >= 0), strict=True):
        if out[start] >= 0:
            continue
        out[start] = count
        queue = deque([start])
        while queue:
            y, x = queue.popleft()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    inside = 0 <= ny < height and 0 <= nx < width
                    if inside and out[ny, nx] < 0 and labels[ny, nx] == labels[y, x]:
                        out[ny, nx] = count
                        queue.append((ny, nx))
        count += 1
    return out


@pytest.mark.parametrize("seed", range(6))
def test_label_components_finds_the_same_8_connected_shapes_as_a_breadth_first_search(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(-1, 3, size=(37, 41))
    labels[rng.random(labels.shape) < 0.5] = 1  # large connected areas as well as specks
    component, values = label_components(labels)
    reference = bfs_components(labels)
    assert np.array_equal(component < 0, labels < 0)
    shown = labels >= 0
    # The same partition: a one-to-one map between the two numberings.
    pairs = set(zip(component[shown].tolist(), reference[shown].tolist(), strict=True))
    assert len(pairs) == len(set(component[shown].tolist())) == len(set(reference[shown].tolist()))
    assert np.array_equal(values[component[shown]], labels[shown])
