"""What a saved notebook keeps: every result, without the kernel.

The problem. A live job card, player, gallery or panel is an ipywidgets view: its output holds
only a pointer (`application/vnd.jupyter.widget-view+json`) to a model that lives in the kernel.
JupyterLab does not save widget state by default, so a reopened notebook shows "Error displaying
widget: model not found" wherever such an output was, even when the output also carries HTML:
a front end always prefers the widget view when it has the widget renderer.

The mechanism. Every output this package shows as a widget also carries a static `text/html`
(the finished job's `<audio>` with the clip embedded, the layers on checkerboards, or for a panel
one line saying what it was) and a marker in the output's metadata (`LIVE_VIEW_METADATA`). When
the notebook is written to disk, `keep_static` drops the widget view of marked outputs, so the
file holds plain HTML that every renderer shows: JupyterLab reopened with no kernel, nbconvert's
HTML export, GitHub and nbviewer. The live page keeps its widgets: only the file changes.

Where it runs:
- a Jupyter Server pre-save hook (`_load_jupyter_server_extension`), enabled for every server of
  the environment by `etc/jupyter/jupyter_server_config.d/rp_notebook.json`, which the package
  installs; so JupyterLab and Notebook 7 save static results with their default settings;
- `scripts/notebooks.py`, which saves the tutorials with their outputs;
- `rp-notebook static NOTEBOOK...` (or `keep_static_file`) for a notebook saved elsewhere (VS Code,
  Colab, a server without this package).

Outputs of other libraries are never touched. This module imports nothing heavy: the server loads
it at start-up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, MutableMapping
from html import escape
from pathlib import Path
from typing import Any

__all__ = [
    "LIVE_VIEW_METADATA",
    "WIDGET_VIEW_MIME",
    "KeptAsOneLine",
    "keep_static",
    "keep_static_file",
    "live_output",
]

log = logging.getLogger(__name__)

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
#: Output metadata of a live view whose other mime types are what the saved file should show.
LIVE_VIEW_METADATA = {"rp_notebook": {"live_view": True}}


def live_output(
    widget_bundle: Mapping[str, Any], *, html: str, text: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(data, metadata) for a widget shown live with `html` and `text` kept for the saved file."""
    data = {k: v for k, v in widget_bundle.items() if k not in ("text/plain", "text/html")}
    data["text/html"] = html
    data["text/plain"] = text
    return data, json.loads(json.dumps(LIVE_VIEW_METADATA))  # a copy the caller may change


class KeptAsOneLine:
    """Mixin for a live panel (before the widget class in the bases): a saved notebook shows one line
    saying what the panel was and how to bring it back, instead of a widget that cannot load."""

    #: What the panel was, e.g. "TTS panel (%runpod panel tts)".
    saved_as: str = "rp_notebook panel"

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        data = super()._repr_mimebundle_(**kwargs) or {}  # type: ignore[misc]
        line = f"{self.saved_as}: a live panel; run this cell with the kernel to bring it back"
        html = (
            "<div class='rp-notebook-saved-panel' style='color:#6b7280;font-family:var(--jp-ui-font-family,"
            f"sans-serif);font-size:13px'>▸ {escape(line)}</div>"
        )
        return live_output(data, html=html, text=line)


def _is_live_view(output: Mapping[str, Any]) -> bool:
    marker = (output.get("metadata") or {}).get("rp_notebook")
    return isinstance(marker, Mapping) and bool(marker.get("live_view"))


def keep_static(notebook: MutableMapping[str, Any]) -> int:
    """Drop the widget view of this package's live outputs in an nbformat-4 notebook (a dict, changed
    in place), keeping their HTML and text; return how many outputs changed."""
    changed = 0
    for cell in notebook.get("cells") or ():
        for output in cell.get("outputs") or ():
            data = output.get("data")
            if isinstance(data, MutableMapping) and WIDGET_VIEW_MIME in data and _is_live_view(output):
                del data[WIDGET_VIEW_MIME]
                changed += 1
    return changed


def keep_static_file(path: str | Path) -> int:
    """`keep_static` on a notebook file, rewritten only when something changed; returns the count."""
    target = Path(path)
    notebook = json.loads(target.read_text(encoding="utf-8"))
    changed = keep_static(notebook)
    if changed:
        # nbformat's own layout (indent 1, keys sorted) so the diff shows only the outputs.
        text = json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        target.write_text(text, encoding="utf-8")
    return changed


# -- the Jupyter Server extension -------------------------------------------------------------------


def pre_save_hook(model: dict[str, Any], path: str = "", **_: Any) -> None:
    """A contents manager pre-save hook: notebooks are written with static results."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), MutableMapping):
        return
    try:
        changed = keep_static(model["content"])
    except Exception:  # a save must never fail because of this package
        log.exception("rp_notebook: could not make the outputs of %s static; saved as they were", path)
        return
    if changed:
        log.debug("rp_notebook: %d live outputs of %s saved as static HTML", changed, path)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": __name__}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    manager = serverapp.contents_manager
    register = getattr(manager, "register_pre_save_hook", None)
    if register is None:  # jupyter_server < 2.? has a single hook slot; never replace the user's
        serverapp.log.warning("rp_notebook: this Jupyter Server has no register_pre_save_hook")
        return
    register(pre_save_hook)
    serverapp.log.info("rp_notebook: notebooks are saved with static results (rp_notebook.saved_notebooks)")
