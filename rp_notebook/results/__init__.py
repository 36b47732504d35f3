"""Typed results decoded from a worker's output: what `job.result()` returns.

Each model's worker returns JSON; the decoder registered for the model turns it into an object
with the data, the metadata, `save()`, and notebook display (`_repr_mimebundle_`). A malformed
output is an error, not a silently empty result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._audio import AudioResult
from ._errors import MalformedOutputError
from ._layers import LayersResult

__all__ = ["AudioResult", "LayersResult", "MalformedOutputError", "decode_output"]

_DECODERS: dict[str, Callable[[Any, str], Any]] = {
    "tts": AudioResult.from_output,
    "layers": LayersResult.from_output,
}


def decode_output(model: str | None, output: Any, job_id: str) -> Any:
    """The typed result for a model's output; the raw output for an endpoint of unknown model."""
    decoder = _DECODERS.get(model or "")
    return decoder(output, job_id) if decoder else output
