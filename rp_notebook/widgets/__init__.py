"""ipywidgets panels: the model panels (TTS, layers), the jobs and deploy panels, the login panel.

Panels are built from the models' field definitions (`_fields`), submit through the same API as the
magics (`rp_notebook._api`), and are updated from background threads by setting traits only (see
`_common`). The pieces they show jobs and results with (players, galleries, progress) live in
`rp_notebook.views`. Names load on first use: importing one panel does not build the others.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = [
    "PANELS",
    "DeployPanel",
    "FieldForm",
    "JobsPanel",
    "LayersPanel",
    "LoginPanel",
    "ModelPanel",
    "TTSPanel",
    "field_control",
    "field_value",
    "panel",
]

_EXPORTS = {
    "PANELS": "._panels",
    "panel": "._panels",
    "DeployPanel": "._deploy_panel",
    "FieldForm": "._fields",
    "field_control": "._fields",
    "field_value": "._fields",
    "JobsPanel": "._jobs_panel",
    "LayersPanel": "._layers_panel",
    "LoginPanel": "._login",
    "ModelPanel": "._model_panel",
    "TTSPanel": "._tts_panel",
}

if TYPE_CHECKING:
    from ._deploy_panel import DeployPanel
    from ._fields import FieldForm, field_control, field_value
    from ._jobs_panel import JobsPanel
    from ._layers_panel import LayersPanel
    from ._login import LoginPanel
    from ._model_panel import ModelPanel
    from ._panels import PANELS, panel
    from ._tts_panel import TTSPanel


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rp_notebook.widgets' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
