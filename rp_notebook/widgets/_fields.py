"""Controls built from a model's `Field` definitions, so panels never restate a range or default.

The same `Field` objects drive the magics' flags, client-side validation and the workers' checks;
here they also give each slider its min/max/step and each dropdown its choices. Nothing in a panel
hard-codes a range: change a field in `rp_notebook/models/` and the panel follows.

Checking values is left to the fields too: a `FieldForm` runs each control's value through its
field's own check (`Field.coerce`, what `ModelSpec.validate` runs for every field) whenever the
value changes, and shows the `InputError`'s message, the one a magic or the worker would give, in a
small red line under the control. Media inputs (a clip, a picture) get the client's own check
(`media_problem`). Generate still submits through `rp_notebook._api.submit`, which checks the whole
input again.

How a field becomes a control:

=========================  ============================================================
number with min and max    FloatSlider / IntSlider (an int range too wide to slide, such
                           as a 32-bit seed, gets a BoundedIntText instead)
number, open range         FloatText / IntText
choices                    Dropdown (values keep their type: resolution 640 is an int)
bool                       Checkbox
text                       Text, or Textarea when the panel asks for several lines
media                      not here: panels use a FileUpload and their own presets
=========================  ============================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as widgets

from .._inputs import check_image, encode_media
from ..errors import InputError
from ..models import Field, ModelSpec
from ._common import align_labels, field_message_html

__all__ = ["FieldForm", "field_control", "field_problem", "field_value", "media_problem"]

#: An int range with more positions than this is typed, not slid (nobody drags to seed 3,141,592).
MAX_SLIDER_POSITIONS = 1_000
#: Floats without a step get this many positions across their range.
DEFAULT_FLOAT_POSITIONS = 100

_STYLE = {"description_width": "initial"}


def field_control(field: Field, *, multiline: bool = False, css_prefix: str = "rp") -> widgets.ValueWidget:
    """The control for `field`, set to its default, with its help text as the tooltip.

    The control gets the CSS class `<css_prefix>-<field-name>` (underscores become dashes), e.g.
    `rp-tts-cfg-weight`, which browser tests and user stylesheets can rely on.
    """
    if field.media:
        raise TypeError(f"{field.name} is a media field: panels take it from a FileUpload")
    common: dict[str, Any] = {
        "description": field.name.replace("_", " "),
        "tooltip": f"{field.help} Allowed: {field.allowed()}.",
        "style": _STYLE,
    }
    control: widgets.ValueWidget
    if field.kind == "choice":
        options = [(str(choice), choice) for choice in field.choices or ()]
        control = widgets.Dropdown(options=options, value=field.default, **common)
    elif field.kind == "flag":
        # Indented by the label column, so its box lines up with the sliders above and below it.
        control = widgets.Checkbox(value=bool(field.default), indent=True, **common)
    elif field.kind == "number":
        control = _number_control(field, common)
    elif multiline:
        control = widgets.Textarea(value=field.default or "", rows=4, **common)
    else:
        control = widgets.Text(value=field.default or "", **common)
    control.add_class(f"{css_prefix}-{field.name.replace('_', '-')}")
    return control


def field_value(field: Field, control: widgets.ValueWidget) -> Any:
    """The control's value as the field's input (unvalidated: `ModelSpec.validate` checks it)."""
    value = control.value
    if field.kind == "text" and value == "" and field.default is None and not field.required:
        # An empty box for an optional field with no default means "not given" (a box cannot hold
        # None); a required one is passed on, so validation says it is empty.
        return None
    return value


def field_problem(field: Field, control: widgets.ValueWidget) -> InputError | None:
    """What the field's own check says of the control's value: None when it is fine.

    The value goes through `Field.coerce` as `ModelSpec.validate` would take it (a value left out
    is the field's default), so the message is the one the client and the worker give.
    """
    value = field_value(field, control)
    try:
        field.coerce(field.default if value is None else value)
    except InputError as exc:
        return exc
    return None


def media_problem(spec: ModelSpec, name: str, value: Any) -> InputError | None:
    """What the client's checks before a submit say of one media input: None when it is fine.

    `value` is what a panel would submit (bytes of an upload, a file path, an http(s) URL). It is
    encoded as `rp_notebook._inputs.prepare_input` encodes it and run through the field's check (format
    and size from the first bytes); a picture is also opened (header only), as before an upload.
    """
    if value is None:
        return InputError(name, f"is required ({spec[name].allowed()})") if spec[name].required else None
    try:
        encoded = encode_media(name, value)
        spec[name].coerce(encoded)
        if name == "image" and isinstance(encoded, str) and not encoded.startswith(("http://", "https://")):
            check_image(encoded)
    except InputError as exc:
        return exc
    return None


def _number_control(field: Field, common: dict[str, Any]) -> widgets.ValueWidget:
    low, high = field.minimum, field.maximum
    default = field.default if field.default is not None else (low if low is not None else 0)
    if field.type is int:
        if low is not None and high is not None:
            if high - low <= MAX_SLIDER_POSITIONS:
                step = int(field.step or 1)
                return widgets.IntSlider(value=default, min=low, max=high, step=step, **common)
            return widgets.BoundedIntText(value=default, min=low, max=high, **common)
        return widgets.IntText(value=default, **common)
    if low is not None and high is not None:
        float_step = float(field.step or (high - low) / DEFAULT_FLOAT_POSITIONS)
        return widgets.FloatSlider(
            value=default, min=low, max=high, step=float_step, readout_format=_readout(float_step), **common
        )
    return widgets.FloatText(value=default, **common)


def _readout(step: float) -> str:
    # Show as many decimals as the step has (0.05 -> ".2f", 0.5 -> ".1f"), so the readout is exact.
    decimals = 0
    while decimals < 6 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-9:
        decimals += 1
    return f".{decimals}f"


class FieldForm:
    """Controls for some fields of a spec, and their values read back as one input dict."""

    def __init__(
        self,
        spec: ModelSpec,
        names: Iterable[str] | None = None,
        *,
        multiline: Iterable[str] = (),
        skip: Iterable[str] = (),
    ) -> None:
        """Controls for `names` (default: every non-media field of `spec` in its order, less `skip`)."""
        self.spec = spec
        skipped = set(skip)
        chosen = (
            list(names)
            if names is not None
            else [f.name for f in spec.fields if not f.media and f.name not in skipped]
        )
        wide = set(multiline)
        self.controls: dict[str, widgets.ValueWidget] = {
            name: field_control(spec[name], multiline=name in wide, css_prefix=f"rp-{spec.name}")
            for name in chosen
        }
        self._initial = {name: control.value for name, control in self.controls.items()}
        #: Field name -> the small red line under its control (empty and hidden while the value is fine).
        self.messages: dict[str, widgets.HTML] = {}
        #: Field name -> the control with its message right under it: what a panel lays out.
        self.rows: dict[str, widgets.VBox] = {}
        #: Field name -> what is wrong with its value now; empty when every value passes its check.
        self.problems: dict[str, InputError] = {}
        self._listeners: list[Callable[[], None]] = []
        for name, control in self.controls.items():
            row = widgets.VBox([control, self.message(name)])
            row.add_class("rp-field-row")
            self.rows[name] = row
            control.observe(lambda _change, name=name: self.check(name), names="value")
        for name in self.controls:
            self.check(name)

    def __getitem__(self, name: str) -> widgets.ValueWidget:
        return self.controls[name]

    def __contains__(self, name: object) -> bool:
        return name in self.controls

    @property
    def valid(self) -> bool:
        """Whether every value passes its field's check (the controls' and those set by `set_problem`)."""
        return not self.problems

    def message(self, name: str) -> widgets.HTML:
        """The message line of field `name`; a panel puts the one of a field it takes itself (a media
        field from a FileUpload) under its own widget and reports with `set_problem`."""
        if name not in self.messages:
            message = widgets.HTML("")
            message.layout.display = "none"
            message.add_class("rp-field-message")
            message.add_class(f"rp-{self.spec.name}-{name.replace('_', '-')}-message")
            self.messages[name] = message
        return self.messages[name]

    def check(self, name: str) -> InputError | None:
        """Check one control's value again and show the result under it; returns the problem."""
        problem = field_problem(self.spec[name], self.controls[name])
        self.set_problem(name, problem)
        return problem

    def set_problem(self, name: str, problem: InputError | None) -> None:
        """Show `problem` under field `name` (None clears it), then tell the listeners."""
        message = self.message(name)
        if problem is None:
            self.problems.pop(name, None)
        else:
            self.problems[name] = problem
        message.value = field_message_html(problem)
        message.layout.display = None if problem is not None else "none"
        for listener in list(self._listeners):
            listener()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener()` after every check (any value changed, or `set_problem`)."""
        self._listeners.append(listener)

    def align(self, roots: Iterable[widgets.Widget] = (), *, indent: Iterable[str] = ()) -> str:
        """One label width for every control of the form and every labelled widget under `roots`
        (the panel's own rows). The message of each control, and of the fields named in `indent`
        (ones a panel shows next to a labelled widget of its own), starts under the control, not
        under its label. Returns the width (CSS)."""
        width = align_labels([*roots, *self.rows.values()])
        for name in [*self.controls, *indent]:
            # The label's right margin (8px) and the control's own (2px).
            self.message(name).layout.margin = f"0 0 4px calc({width} + 10px)"
        return width

    def values(self) -> dict[str, Any]:
        """Every control's value by field name; fields left at None are omitted (the spec fills them)."""
        values = {name: field_value(self.spec[name], control) for name, control in self.controls.items()}
        return {name: value for name, value in values.items() if value is not None}

    def reset(self) -> None:
        """Put every control back to its field's default."""
        for name, control in self.controls.items():
            control.value = self._initial[name]
