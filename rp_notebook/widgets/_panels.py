"""panel(): every panel by its name, as `%runpod panel NAME` and `rp_notebook.panel(NAME)` open them."""

from __future__ import annotations

from typing import Any

import ipywidgets

from ..errors import InputError

__all__ = ["PANELS", "panel"]

PANELS = ("tts", "layers", "jobs", "deploy", "login")


def panel(kind: str = "tts", *, endpoint: str | None = None, **options: Any) -> ipywidgets.Widget:
    """An interactive panel: "tts" (text to speech), "layers" (layered images), "jobs", "deploy"
    (create an endpoint from a model's preset), or "login" (the API key, from a password field).

    endpoint: the endpoint id for a model panel (default: the configured one, read at each submit).
    Options: `voices` (name -> file path or URL of a reference clip) and `text` for "tts";
    `max_rows` for "jobs"; `model` ("tts" or "layers") for "deploy"; `dotenv_path` and `save` for
    "login".
    """
    if kind == "tts":
        from ._tts_panel import TTSPanel

        return TTSPanel(endpoint=endpoint, **options)
    if kind == "layers":
        from ._layers_panel import LayersPanel

        return LayersPanel(endpoint=endpoint, **options)
    if kind not in PANELS:
        raise InputError("panel", f"unknown panel {kind!r}; panels: {', '.join(PANELS)}")
    if endpoint is not None:  # the other panels are not tied to one endpoint
        raise InputError("endpoint", f"the {kind} panel is not tied to one endpoint; it takes none")
    if kind == "jobs":
        from ._jobs_panel import JobsPanel

        return JobsPanel(**options)
    if kind == "deploy":
        from ._deploy_panel import DeployPanel

        return DeployPanel(**options)
    from ._login import LoginPanel

    return LoginPanel(**options)
