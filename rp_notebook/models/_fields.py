"""Field and ModelSpec: the one definition of a model's inputs.

A `ModelSpec` lists the input fields of one worker. The same object drives:

- the worker's own validation (`spec.validate(job["input"])` in `workers/*/handler.py`),
- client-side validation before any request is sent (so no GPU time is spent on bad input),
- the magic's `--flags` and `%runpod?` help, and
- the widget panels' sliders, dropdowns and their ranges.

This module is standard library only: the worker images import it without the notebook stack.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from ..errors import InputError
from ._media import decode_base64

__all__ = ["Field", "ModelSpec"]

FieldKind = Literal["text", "number", "choice", "flag", "media"]
_MISSING: Any = object()


@dataclass(frozen=True)
class Field:
    """One input of a model: its type, default, allowed range and help text."""

    name: str
    type: type
    help: str
    default: Any = None
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    max_length: int | None = None
    #: "media" fields carry base64 data or an http(s) URL (an audio clip, an image).
    media: bool = False
    #: Extra magic/CLI spellings, e.g. ("--steps",) for num_inference_steps.
    aliases: tuple[str, ...] = ()
    #: Media fields: a check of the decoded file (its format, its size) from its first bytes, raising
    #: InputError. Standard library only, so the client and the worker run the same check.
    check: Callable[[bytes], None] | None = None

    @property
    def flag(self) -> str:
        """The magic/CLI option: cfg_weight -> --cfg-weight."""
        return "--" + self.name.replace("_", "-")

    @property
    def kind(self) -> FieldKind:
        if self.media:
            return "media"
        if self.choices is not None:
            return "choice"
        if self.type is bool:
            return "flag"
        if self.type in (int, float):
            return "number"
        return "text"

    def allowed(self) -> str:
        """What this field accepts, in words, for error messages and help."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) if isinstance(c, str) else str(c) for c in self.choices)
        if self.type is bool:
            return "true or false"
        if self.type in (int, float):
            noun = "an integer" if self.type is int else "a number"
            if self.minimum is not None and self.maximum is not None:
                return f"{noun} from {_num(self.minimum)} to {_num(self.maximum)}"
            if self.minimum is not None:
                return f"{noun} >= {_num(self.minimum)}"
            if self.maximum is not None:
                return f"{noun} <= {_num(self.maximum)}"
            return noun
        if self.media:
            return "base64 data, a data: URL, or an http(s) URL"
        if self.max_length is not None:
            low = "1" if self.required else "0"
            return f"text of {low} to {self.max_length:,} characters"
        return "text"

    def coerce(self, value: Any) -> Any:
        """Return the value in this field's type, or raise InputError naming the field.

        Strings are parsed for numbers and flags (magic and CLI options arrive as text);
        anything else must already have the right type.
        """
        if value is None:
            if self.required:
                raise InputError(self.name, f"is required ({self.allowed()})")
            return None
        if self.type is bool:
            return self._coerce_bool(value)
        if self.type in (int, float):
            number = self._coerce_number(value)
            if self.choices is not None and number not in self.choices:
                raise InputError(self.name, f"expected {self.allowed()}, got {_show(value)}")
            return number
        if not isinstance(value, str):
            raise InputError(self.name, f"expected {self.allowed()}, got {type(value).__name__}")
        if self.choices is not None:
            if value not in self.choices:
                raise InputError(self.name, f"expected {self.allowed()}, got {_show(value)}")
            return value
        if self.media:
            return self._check_media(value)
        if self.required and not value.strip():
            raise InputError(self.name, f"is empty; expected {self.allowed()}")
        if self.max_length is not None and len(value) > self.max_length:
            raise InputError(self.name, f"is {len(value):,} characters; expected {self.allowed()}")
        return value

    def _coerce_bool(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {
            "true",
            "1",
            "yes",
            "on",
            "false",
            "0",
            "no",
            "off",
        }:
            return value.strip().lower() in {"true", "1", "yes", "on"}
        raise InputError(self.name, f"expected {self.allowed()}, got {_show(value)}")

    def _coerce_number(self, value: Any) -> int | float:
        number: int | float
        if isinstance(value, bool):  # bool is an int subclass; True is not a temperature
            raise InputError(self.name, f"expected {self.allowed()}, got {value!r}")
        if not isinstance(value, str | numbers.Real):  # numbers.Real: numpy's numbers too
            raise InputError(self.name, f"expected {self.allowed()}, got {type(value).__name__}")
        try:
            if isinstance(value, str):
                number = int(value) if self.type is int else float(value)
            elif isinstance(value, numbers.Integral):
                number = int(value)
            else:
                number = float(value)
            if self.type is float:
                number = float(number)  # an int too large for a float overflows here
        except (ValueError, OverflowError):
            raise InputError(self.name, f"expected {self.allowed()}, got {_show(value)}") from None
        if self.type is int:
            if isinstance(number, float):
                if not number.is_integer():
                    raise InputError(self.name, f"expected {self.allowed()}, got {number!r}")
                number = int(number)
        elif not math.isfinite(number):
            raise InputError(self.name, f"expected {self.allowed()}, got {number!r}")
        if (self.minimum is not None and number < self.minimum) or (
            self.maximum is not None and number > self.maximum
        ):
            raise InputError(self.name, f"{_num(number)} is out of range; expected {self.allowed()}")
        return number

    def _check_media(self, value: str) -> str:
        if value.startswith(("http://", "https://")):
            # The worker fetches it; all the client can know is that it names a host.
            if not urlsplit(value).hostname:
                raise InputError(self.name, f"is a URL without a host; expected {self.allowed()}")
            return value
        if self.max_length is not None and len(value) > self.max_length:
            raise InputError(
                self.name,
                f"is {len(value) / 1e6:.1f} MB of base64; the limit is {self.max_length / 1e6:.0f} MB",
            )
        raw = decode_base64(value, field=self.name, hint=f"; expected {self.allowed()}")
        if not raw:
            raise InputError(self.name, f"is empty; expected {self.allowed()}")
        if self.check is not None:
            self.check(raw)
        return value


@dataclass(frozen=True)
class ModelSpec:
    """The inputs of one worker, and the endpoint role it is deployed under ("tts", "layers")."""

    name: str
    title: str
    fields: tuple[Field, ...]
    #: The field a magic's positional argument (or a %%cell body) fills.
    positional: str
    _by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})

    def __getitem__(self, name: str) -> Field:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def defaults(self) -> dict[str, Any]:
        return {f.name: f.default for f in self.fields if f.default is not None}

    def validate(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Check every value, fill defaults, and return the input to send.

        Raises InputError for the first bad field: unknown names, missing required fields,
        wrong types and out-of-range values are all reported with the field's name.
        """
        if not isinstance(values, Mapping):
            raise InputError("input", f"expected an object with fields {', '.join(self._by_name)}")
        unknown = [k for k in values if k not in self._by_name]
        if unknown:
            raise InputError(
                unknown[0], f"is not an input of {self.name}; known fields: {', '.join(self._by_name)}"
            )
        clean: dict[str, Any] = {}
        for f in self.fields:
            value = f.coerce(values.get(f.name, f.default))
            if value is not None:
                clean[f.name] = value
        return clean


def _num(x: int | float) -> str:
    if isinstance(x, float):
        return f"{x:g}"
    text = str(x)  # an int: a 400-digit seed must not make a 400-digit message
    return text if len(text) <= 20 else f"{text[:12]}... ({len(text)} digits)"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
