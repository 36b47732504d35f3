"""LayersResult: a picture split into RGBA layers by the layered-image worker.

Layers arrive as base64 PNGs, or as URLs when the worker stored a large result in S3; either way
they are fetched and decoded here, so `job.result()` is the same object. Layers stack in order:
layer 0 is at the bottom, and alpha-compositing them all gives the picture back.
"""

from __future__ import annotations

import base64
import binascii
import io
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..client._files import download
from ._errors import MalformedOutputError, describe
from ._html import BOX, CHECKERBOARD

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["LayersResult"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True, repr=False)
class LayersResult:
    """The layers as PNG files (RGBA), with their size and how they were made."""

    pngs: tuple[bytes, ...]
    width: int
    height: int
    job_id: str = ""
    engine: str | None = None
    seed: int | None = None
    storage: str = "inline"
    warnings: tuple[str, ...] = field(default_factory=tuple)
    timing: dict[str, float] = field(default_factory=dict)
    #: Where the layers were fetched from when they came through S3 (presigned URLs, valid 7 days).
    urls: tuple[str, ...] = ()
    #: Where views keep what they made for this result (its interactive gallery), so it lives as long
    #: as the result and every display of the result shares it. Not part of the result's value.
    views: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    @classmethod
    def from_output(
        cls, output: Any, job_id: str = "", *, fetch: Callable[[str], bytes] = download
    ) -> LayersResult:
        layers = output.get("layers") if isinstance(output, dict) else None
        if not isinstance(layers, list) or not layers or not all(isinstance(x, str) for x in layers):
            raise MalformedOutputError(
                f"job {job_id}: expected an output with a list of 'layers', got {describe(output)}"
            )
        pngs = tuple(_layer_bytes(layer, index, job_id, fetch) for index, layer in enumerate(layers))
        return cls(
            pngs=pngs,
            width=int(output.get("width", 0)),
            height=int(output.get("height", 0)),
            job_id=job_id,
            engine=output.get("engine"),
            seed=output.get("seed"),
            storage=str(output.get("storage", "inline")),
            warnings=tuple(output.get("warnings") or ()),
            timing=dict(output.get("timing") or {}),
            urls=tuple(layer for layer in layers if layer.startswith(("http://", "https://"))),
        )

    # -- as images ----------------------------------------------------------------------------------

    @cached_property
    def images(self) -> list[Image.Image]:
        """The layers as RGBA PIL images, bottom first."""
        from PIL import Image

        return [Image.open(io.BytesIO(png)).convert("RGBA") for png in self.pngs]

    def __len__(self) -> int:
        return len(self.pngs)

    def __getitem__(self, index: int) -> Image.Image:
        return self.images[index]

    def __iter__(self) -> Iterator[Image.Image]:
        return iter(self.images)

    def composite(self, visible: Sequence[bool] | None = None) -> Image.Image:
        """Alpha-composite the layers (all, or those marked visible), bottom first."""
        from PIL import Image

        canvas = Image.new("RGBA", self.images[0].size, (0, 0, 0, 0))
        for index, layer in enumerate(self.images):
            if visible is None or visible[index]:
                canvas.alpha_composite(layer)
        return canvas

    # -- saving -------------------------------------------------------------------------------------

    def file_names(self) -> list[str]:
        return [f"layer_{index + 1:02d}.png" for index in range(len(self.pngs))]

    def save(self, folder: str | Path) -> list[Path]:
        """Write each layer as `layer_01.png`, ... into `folder` (created if needed)."""
        target = Path(folder).expanduser()
        target.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, png in zip(self.file_names(), self.pngs, strict=True):
            path = target / name
            path.write_bytes(png)
            paths.append(path)
        return paths

    def save_zip(self, path: str | Path) -> Path:
        """Write every layer into one zip file."""
        target = Path(path).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:  # PNG is compressed
            for name, png in zip(self.file_names(), self.pngs, strict=True):
                archive.writestr(name, png)
        return target

    # -- display ------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"LayersResult({len(self.pngs)} layers, {self.width}x{self.height}, {self.engine or 'unknown'} engine)"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # Static: a saved notebook shows it with no kernel. In a live kernel, rp_notebook.views shows
        # the interactive gallery instead (an IPython formatter it registers for this type).
        return {"text/plain": repr(self), "text/html": layers_html(self)}


def _layer_bytes(layer: str, index: int, job_id: str, fetch: Callable[[str], bytes]) -> bytes:
    if layer.startswith(("http://", "https://")):
        data = fetch(layer)
    else:
        try:
            data = base64.b64decode(layer, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedOutputError(
                f"job {job_id}: layer {index + 1} is neither base64 nor a URL"
            ) from None
    if not data.startswith(PNG_SIGNATURE):
        raise MalformedOutputError(f"job {job_id}: layer {index + 1} is not a PNG file")
    return data


def layers_html(result: LayersResult) -> str:
    """A static gallery: each layer on a checkerboard, and the composite as the layers stacked in CSS
    (the browser alpha-composites them exactly as the worker's layers stack)."""
    sources = [f"data:image/png;base64,{base64.b64encode(png).decode()}" for png in result.pngs]
    cards = "".join(
        f"<figure style='margin:0'><img src='{src}' style='width:100%;display:block;{CHECKERBOARD}'>"
        f"<figcaption style='text-align:center;color:#6b7280'>layer {index + 1}</figcaption></figure>"
        for index, src in enumerate(sources)
    )
    # The composite as one image, made here: stacked <img>s would need CSS positioning, which GitHub
    # and sanitising renderers strip.
    composite = f"data:image/png;base64,{base64.b64encode(_png_of(result.composite())).decode()}"
    notes = "".join(f"<div style='color:#b45309'>⚠ {escape(w)}</div>" for w in result.warnings)
    caption = f"{len(sources)} layers · {result.width}x{result.height}"
    if result.engine:
        caption += f" · {escape(result.engine)} engine"
    return (
        f"<div class='rp-notebook-layers' style='{BOX}'>"
        f"<div style='display:flex;gap:16px;align-items:flex-start'>"
        f"<figure style='flex:0 0 320px;margin:0'><img class='rp-notebook-composite' src='{composite}' "
        f"style='width:100%;display:block;{CHECKERBOARD}'>"
        f"<figcaption style='text-align:center;color:#6b7280'>composite</figcaption></figure>"
        f"<div style='flex:1;display:grid;grid-template-columns:repeat(4,1fr);gap:8px'>{cards}</div></div>"
        f"<div style='color:#6b7280'>{caption}</div>{notes}</div>"
    )


def _png_of(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
