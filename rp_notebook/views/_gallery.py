"""LayersGallery: the layers of a LayersResult, a composite preview, visibility toggles, saving.

Design:
- Each layer is drawn on a checkerboard (so transparency is visible) into a small PNG here, in the
  kernel, with Pillow; the composite preview is recomputed the same way whenever a toggle changes.
  Baking the checkerboard into the image keeps the front end plain ipywidgets: no custom CSS, no
  JavaScript, so it renders in JupyterLab, Notebook 7, VS Code and Colab alike.
- Toggles only change what the preview shows; the layers themselves are never altered.
- Saving writes the original full-size PNGs (not the previews), as files or one zip.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..saved_notebooks import live_output

if TYPE_CHECKING:
    from PIL import Image

    from ..results import LayersResult

__all__ = ["LayersGallery", "gallery_of"]

THUMBNAIL_PX = 200
PREVIEW_PX = 400
CHECKER_PX = 8


class LayersGallery(widgets.VBox):  # type: ignore[misc]  # ipywidgets has no types
    """An interactive view of a LayersResult."""

    def __init__(self, result: LayersResult, *, folder: str | None = None) -> None:
        self.result = result
        self.toggles = [
            widgets.ToggleButton(value=True, description=f"layer {i + 1}", icon="eye", tooltip="show or hide")
            for i in range(len(result))
        ]
        self.thumbnails = [
            widgets.Image(value=_png(_on_checkerboard(image, THUMBNAIL_PX)), format="png")
            for image in result.images
        ]
        self.preview = widgets.Image(format="png")
        self.folder = widgets.Text(
            value=folder or f"layers-{(result.job_id or 'result')[:8]}",
            description="folder",
            continuous_update=False,
        )
        self.save_files_button = widgets.Button(description="Save PNGs", icon="download")
        self.save_zip_button = widgets.Button(description="Save zip", icon="file-archive-o")
        self.status = widgets.HTML()
        for toggle in self.toggles:
            toggle.observe(self._on_toggle, names="value")
            toggle.add_class("rp-layer-toggle")
        self.save_files_button.on_click(lambda _: self._save(zip_file=False))
        self.save_zip_button.on_click(lambda _: self._save(zip_file=True))
        self.preview.add_class("rp-layers-composite")
        cards = [
            widgets.VBox([thumbnail, toggle], layout=widgets.Layout(align_items="center"))
            for thumbnail, toggle in zip(self.thumbnails, self.toggles, strict=True)
        ]
        grid = widgets.GridBox(
            cards, layout=widgets.Layout(grid_template_columns="repeat(4, 1fr)", grid_gap="8px")
        )
        grid.add_class("rp-layers-grid")
        caption = f"{len(result)} layers · {result.width}x{result.height}"
        if result.engine:
            caption += f" · {result.engine} engine"
        notes = "".join(f"<div style='color:#b45309'>⚠ {w}</div>" for w in result.warnings)
        super().__init__(
            [
                widgets.HBox(
                    [
                        widgets.VBox([self.preview, widgets.HTML("<i>composite of the visible layers</i>")]),
                        grid,
                    ]
                ),
                widgets.HTML(f"<span style='color:#6b7280'>{caption}</span>{notes}"),
                widgets.HBox([self.folder, self.save_files_button, self.save_zip_button]),
                self.status,
            ]
        )
        self.add_class("rp-layers-gallery")
        self._recompose()

    @property
    def visible(self) -> list[bool]:
        return [toggle.value for toggle in self.toggles]

    def _on_toggle(self, change: dict[str, Any]) -> None:
        change["owner"].icon = "eye" if change["new"] else "eye-slash"
        self._recompose()

    def _recompose(self) -> None:
        self.preview.value = _png(_on_checkerboard(self.result.composite(self.visible), PREVIEW_PX))

    def _save(self, *, zip_file: bool) -> None:
        folder = Path(self.folder.value or ".").expanduser()
        try:
            if zip_file:
                saved = [
                    self.result.save_zip(folder.with_suffix(".zip") if folder.suffix != ".zip" else folder)
                ]
            else:
                saved = self.result.save(folder)
        except OSError as exc:
            self.status.value = f"<span style='color:#dc2626'>could not save: {exc}</span>"
            return
        shown = saved[0].parent if len(saved) > 1 else saved[0]
        self.status.value = f"saved {len(self.result)} layers to <code>{shown}</code>"

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        # Live: the widget. Saved (rp_notebook.saved_notebooks): the layers as images and a note.
        static = self.result._repr_mimebundle_()
        note = (
            "<div style='color:#6b7280'>Layer toggles and Save buttons need the running kernel: run this "
            "cell again.</div>"
        )
        return live_output(
            super()._repr_mimebundle_(**kwargs) or {},
            html=static["text/html"] + note,
            text=static["text/plain"],
        )


def _on_checkerboard(image: Image.Image, size: int) -> Image.Image:
    from PIL import Image

    picture = image.copy()
    picture.thumbnail((size, size))
    board = Image.new("RGBA", picture.size, (255, 255, 255, 255))
    grey = Image.new("RGBA", (CHECKER_PX, CHECKER_PX), (204, 204, 204, 255))
    for y in range(0, picture.height, CHECKER_PX):
        for x in range((y // CHECKER_PX % 2) * CHECKER_PX, picture.width, 2 * CHECKER_PX):
            board.paste(grey, (x, y))
    board.alpha_composite(picture)
    return board


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def gallery_of(result: LayersResult) -> LayersGallery:
    """The gallery of `result` (one per result, kept on it, so every display of it shares its toggles)."""
    gallery = result.views.get("gallery")
    if not isinstance(gallery, LayersGallery):
        gallery = result.views["gallery"] = LayersGallery(result)
    return gallery
