from __future__ import annotations

from typing import Any

from ..errors import RunpodError

__all__ = ["MalformedOutputError", "describe"]


class MalformedOutputError(RunpodError):
    """The job COMPLETED but its output is not what the model's worker promises."""


def describe(value: Any) -> str:
    if isinstance(value, dict):
        return "an object with keys " + ", ".join(sorted(value)) if value else "an empty object"
    return type(value).__name__
