"""Per-model input definitions: the single source of truth for fields, ranges and defaults.

Standard library only, so worker images can import it without the notebook stack.
"""

from ._fields import Field, ModelSpec
from .layers import LAYERS
from .tts import TTS

__all__ = ["LAYERS", "MODELS", "TTS", "Field", "ModelSpec"]

#: Every model by its role name, as used by `%runpod <name>` and endpoint settings.
MODELS: dict[str, ModelSpec] = {TTS.name: TTS, LAYERS.name: LAYERS}
