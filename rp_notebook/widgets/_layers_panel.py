"""LayersPanel: upload a picture, set the layer count and sampling, press Generate, get a gallery.

The controls come from the LAYERS spec's fields (layer count 2-10, resolution 640/1024, steps,
true CFG, ...), as the magic's flags do. The picture comes from a `FileUpload`; its bytes are sent
as base64, after the same checks as `rp_notebook.layers()` (a readable image, under the pixel
limit). Each job joins the history as its card, which shows the interactive gallery of its
`LayersResult` when the job ends.
"""

from __future__ import annotations

from html import escape
from typing import Any

import ipywidgets as widgets

from ..errors import InputError
from ..models import LAYERS
from ._common import guarded
from ._fields import FieldForm, media_problem
from ._model_panel import ModelPanel

__all__ = ["LayersPanel"]

PREVIEW_PX = 240
#: Image widget formats for the upload preview, by MIME type (anything else shows no preview).
_PREVIEW_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp", "image/gif": "gif"}


class LayersPanel(ModelPanel):
    """Split a picture into RGBA layers, with live status and a history of job cards (each a gallery).

    endpoint: the endpoint id (default: the one configured for "layers" when Generate is pressed).
    """

    saved_as = "Layers panel (%runpod panel layers)"

    model = "layers"
    main_fields = ("prompt", "layers", "resolution", "num_inference_steps", "true_cfg_scale")

    def __init__(self, *, endpoint: str | None = None) -> None:
        self.form = FieldForm(LAYERS, skip=("image",), multiline=("prompt",))
        self.form["prompt"].placeholder = "Describe the whole picture (empty: the model captions it)"
        self.form["prompt"].layout.width = "100%"
        self._image: tuple[str, bytes] | None = None
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload image")
        self.upload.add_class("rp-layers-upload")
        self.upload.observe(self._on_upload, names="value")
        self.preview = widgets.Image(format="png", layout=widgets.Layout(max_width=f"{PREVIEW_PX}px"))
        self.preview.layout.display = "none"  # until there is a picture
        self.preview.add_class("rp-layers-input")
        self.image_name = widgets.HTML()
        self.image_name.add_class("rp-layers-image-name")
        self._check_image()
        super().__init__(
            endpoint=endpoint,
            special=(
                widgets.VBox(
                    [
                        widgets.HBox(
                            [self.upload, self.image_name], layout=widgets.Layout(flex_flow="row wrap")
                        ),
                        self.form.message("image"),
                    ]
                ),
                self.preview,
            ),
        )

    @guarded
    def _on_upload(self, change: dict[str, Any]) -> None:
        files = change["new"]
        if not files:
            self._image = None
            self.preview.layout.display = "none"
            self.image_name.value = ""
            self._check_image()
            return
        upload = files[0]
        self._image = (str(upload["name"]), bytes(upload["content"]))
        self._check_image()
        self.image_name.value = f"<code>{escape(self._image[0])}</code> ({len(self._image[1]):,} bytes)"
        preview_format = _PREVIEW_FORMATS.get(str(upload.get("type", "")))
        if preview_format is None:
            self.preview.layout.display = "none"
            return
        self.preview.format = preview_format
        self.preview.value = self._image[1]
        self.preview.layout.display = None

    def _check_image(self) -> None:
        """Check the picture as the client will before a submit (a picture Pillow reads, under the
        pixel limit), and show what is wrong under the upload row."""
        if self._image is None:
            problem: InputError | None = _no_image()
        else:
            problem = media_problem(LAYERS, "image", self._image[1])
        self.form.set_problem("image", problem)

    def _inputs(self) -> tuple[dict[str, Any], str]:
        if self._image is None:
            raise _no_image()
        values = {"image": self._image[1], **self.form.values()}
        return values, f"image: {self._image[0]}"


def _no_image() -> InputError:
    return InputError("image", "upload a picture first (PNG, JPEG or WebP)")
