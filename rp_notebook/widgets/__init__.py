"""ipywidgets views: the layer gallery, the model panels (TTS, layers), the jobs and deploy panels.

Panels are built from the models' field definitions (`_fields`), submit through the same API as the
magics, and are updated from background threads by setting traits only (see `_common`).
"""

from ._deploy_panel import DeployPanel
from ._fields import FieldForm, field_control, field_value
from ._gallery import LayersGallery
from ._jobs_panel import JobsPanel
from ._layers_panel import LayersPanel
from ._login import LoginPanel
from ._model_panel import ModelPanel
from ._tts_panel import TTSPanel

__all__ = [
    "DeployPanel",
    "FieldForm",
    "JobsPanel",
    "LayersGallery",
    "LayersPanel",
    "LoginPanel",
    "ModelPanel",
    "TTSPanel",
    "field_control",
    "field_value",
]
