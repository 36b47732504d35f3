"""Magic and CLI options generated from a ModelSpec, so flags, help and ranges never drift.

Values stay strings here; the spec's `validate` converts and range-checks them, so a bad value gets
the same message (naming the field and what it allows) from a magic, the CLI, a panel or the worker.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from IPython.core.error import UsageError

from ..config import check_endpoint_id
from ..models import ModelSpec

__all__ = ["HelpShown", "MagicArgumentParser", "model_parser", "split_inputs"]


class HelpShown(Exception):
    """Raised once `-h` / `--help` has printed a parser's help; the %runpod router returns None.

    argparse would call sys.exit there, and SystemExit in a magic prints a traceback."""

    def _render_traceback_(self) -> list[str]:  # should it ever reach IPython: nothing more to show
        return []


class MagicArgumentParser(argparse.ArgumentParser):
    """argparse that raises UsageError (IPython prints one line) instead of exiting the kernel, and
    whose `-h` / `--help` prints the help and raises HelpShown instead of exiting."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.update(add_help=False, allow_abbrev=False)
        super().__init__(**kwargs)
        self.add_argument("-h", "--help", action="help", help="Show this help.")

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}\n{self.format_usage().strip()}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise UsageError(f"{self.prog}: {(message or 'error').strip()}")
        if message:
            print(message, end="")
        raise HelpShown


def model_parser(
    spec: ModelSpec,
    prog: str,
    parser_class: type[argparse.ArgumentParser] = MagicArgumentParser,
) -> argparse.ArgumentParser:
    """A parser with one option per input field of `spec`, plus --endpoint."""
    parser = parser_class(prog=prog, description=spec.title, add_help=False)
    positional = spec[spec.positional]
    parser.add_argument(positional.name, nargs="*", help=positional.help)
    for field in spec.fields:
        if field.name == spec.positional:
            continue
        shown = repr(field.default) if isinstance(field.default, str) else field.default
        default = f" (default {shown})" if field.default is not None else ""
        parser.add_argument(
            field.flag,
            *field.aliases,
            dest=field.name,
            metavar=field.name.upper(),
            default=None,
            help=f"{field.help} Allowed: {field.allowed()}{default}.",
        )
    parser.add_argument(
        "--endpoint", default=None, help=f"Endpoint id (default: the one configured for {spec.name})."
    )
    return parser


def split_inputs(
    spec: ModelSpec, namespace: argparse.Namespace, body: str | None = None
) -> tuple[dict[str, Any], str | None]:
    """(inputs, endpoint) from parsed options; a %%cell body, when given, is the positional field.

    An --endpoint given empty is refused rather than read as "not given": a variable that expanded
    to nothing must not quietly send the job to the configured endpoint instead.
    """
    values = vars(namespace).copy()
    endpoint = values.pop("endpoint", None)
    if endpoint is not None:
        endpoint = check_endpoint_id(endpoint)
    words = values.pop(spec.positional)
    if body is not None and body.strip():
        if words:
            raise UsageError(
                f"give the {spec.positional} either on the %%runpod line or in the cell body, not both"
            )
        values[spec.positional] = body.strip()
    elif words:
        values[spec.positional] = " ".join(words)
    return {k: v for k, v in values.items() if v is not None}, endpoint
