"""The %runpod / %%runpod magics: a thin router over the Python API in rp_notebook._api.

%runpod                         setup status: key set or not (never its value), endpoints
%runpod tts "Hello" [--opts]    speak; returns a Job handle at once, which turns into a player
%%runpod tts [--opts]           the cell body is the text
%%runpod tts --batch [lines]    one job per paragraph (blank-line separated) or per line; a Batch
%runpod panel tts|layers|jobs|deploy|login
                                an interactive panel (--endpoint ID; tts: --voices VARIABLE)
%runpod jobs [--limit N]        recent jobs of this and earlier sessions (the job ledger)
%runpod attach JOB_ID | --all   follow jobs again after a restart, or show their saved results
%runpod cost [--jobs N]         estimated spend per job, per endpoint, per day, this notebook
%runpod budget [USD [--per session|day] | off]
                                a spending limit checked before every submission
%runpod local start [--port N]|stop|status
                                the local Runpod-compatible endpoint (CPU engines, no account);
                                stop puts back the settings start replaced
%runpod gpus|templates|endpoints|deploy|scale|delete|use
                                provisioning: GPU pools, templates, endpoints (see below)
%runpod help [COMMAND]          this help, or one command's (also: %runpod COMMAND --help)
"""

from __future__ import annotations

import argparse
import re
from typing import Any, cast

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.utils.process import arg_split  # type: ignore[attr-defined]  # re-exported, untyped

from .. import _api, display
from ..config import current_settings
from ..display import Rendered
from ..jobs import watching_new_jobs
from ..models import MODELS, ModelSpec
from ..widgets._panels import PANELS
from ._cost import budget_command, cost_command
from ._cost import help_texts as cost_help
from ._jobs import attach_command, jobs_command
from ._jobs import help_texts as jobs_help
from ._parsing import HelpShown, MagicArgumentParser, model_parser, split_inputs
from ._provisioning import COMMANDS as PROVISIONING_COMMANDS
from ._provisioning import FORGET
from ._provisioning import help_texts as provisioning_help
from ._provisioning import run_command as run_provisioning

__all__ = ["RunpodMagics"]

_SUBCOMMANDS = (*MODELS, "panel", "jobs", "attach", "cost", "budget", "local", *PROVISIONING_COMMANDS, "help")
#: --batch: how the text is split into one job each (a bare --batch means paragraphs).
BATCH_SPLITS = ("paragraphs", "lines")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
#: Longer magic lines are refused before parsing (the longest valid input, TTS text, is 5,000).
MAX_LINE_CHARS = 20_000


def _model_parser(spec: ModelSpec) -> argparse.ArgumentParser:
    parser = model_parser(spec, f"%runpod {spec.name}")
    parser.add_argument(
        "--batch",
        nargs="?",
        const="paragraphs",
        default=None,
        choices=BATCH_SPLITS,
        help=f"One job per paragraph (blank-line separated) or per line of the {spec.positional}; "
        "returns a Batch.",
    )
    return parser


def _panel_parser() -> argparse.ArgumentParser:
    parser = MagicArgumentParser(prog="%runpod panel", description="An interactive panel.")
    parser.add_argument("kind", choices=PANELS, help="Which panel.")
    parser.add_argument("--endpoint", default=None, help="Endpoint id (default: the configured one).")
    parser.add_argument(
        "--voices", default=None, help="tts: a variable holding preset voices, name -> file path or URL."
    )
    return parser


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {text!r}")
    return port


def _local_parser() -> argparse.ArgumentParser:
    parser = MagicArgumentParser(
        prog="%runpod local",
        description="The local Runpod-compatible endpoint on 127.0.0.1: Runpod's job and management APIs, "
        "serving the workers on their CPU engines (no account, no GPU). start points this session at it; "
        "stop puts back the key, URLs and endpoints it replaced.",
    )
    parser.add_argument(
        "action",
        nargs="?",
        default="status",
        choices=("start", "stop", "status"),
        help="start it, stop it, or show the settings (default).",
    )
    parser.add_argument(
        "--port", type=_port, metavar="N", help="start: the port to listen on, 1-65535 (default: a free one)."
    )
    return parser


def _help() -> str:
    parts = [__doc__ or ""]
    for spec in MODELS.values():
        parts.append(_model_parser(spec).format_help())
    parts.append(_panel_parser().format_help())
    parts.append(_local_parser().format_help())
    parts.extend(jobs_help())
    parts.extend(cost_help())
    parts.extend(provisioning_help())
    return "\n".join(parts)


def split_batch(text: str, how: str) -> list[str]:
    """The pieces of `text` for --batch: paragraphs (split at blank lines) or lines; blanks dropped."""
    pieces = text.splitlines() if how == "lines" else _BLANK_LINE.split(text)
    return [piece.strip() for piece in pieces if piece.strip()]


@magics_class
class RunpodMagics(Magics):
    @property
    def user_ns(self) -> dict[str, Any]:
        """The notebook's variables (a magic always runs in a shell)."""
        assert self.shell is not None
        return cast(dict[str, Any], self.shell.user_ns)

    def runpod(self, line: str, cell: str | None = None) -> Any:
        try:
            return self._run(line, cell)
        except HelpShown:  # `--help` printed a command's help: nothing to return
            return None

    runpod.__doc__ = _help()
    runpod = line_cell_magic(runpod)  # type: ignore[assignment]  # IPython's decorator types are loose

    def _run(self, line: str, cell: str | None) -> Any:
        if len(line) > MAX_LINE_CHARS:
            # IPython's arg_split takes seconds on a line of a megabyte, before any field is checked.
            raise UsageError(
                f"the %runpod line is {len(line):,} characters (at most {MAX_LINE_CHARS:,}); "
                "put long text in the cell body: %%runpod tts"
            )
        words = arg_split(line, posix=True)
        if not words:
            if cell is not None:
                raise UsageError("%%runpod needs a model: %%runpod tts [options]")
            return self._setup_status()
        command, args = words[0], words[1:]
        if command in ("-h", "--help"):
            print(_help())
            return None
        if command in MODELS:
            spec = MODELS[command]
            namespace = _model_parser(spec).parse_args(args)
            batch = namespace.batch
            del namespace.batch  # not a model input
            inputs, endpoint = split_inputs(spec, namespace, cell)
            if batch:
                return self._batch(spec, inputs, endpoint, batch)
            with watching_new_jobs():  # the handle is about to be displayed: follow it in short rounds
                return _api.submit(command, endpoint=endpoint, **self._with_variables(spec, inputs))
        if cell is not None:
            raise UsageError(f"%%runpod {command} takes no cell body")
        if command == "panel":
            return self._panel(args)
        if command == "jobs":
            return jobs_command(args)
        if command == "attach":
            return attach_command(args)
        if command == "cost":
            return cost_command(args)
        if command == "budget":
            return budget_command(args)
        if command == "local":
            return self._local(args)
        if command == "use":
            _check_use(args)
        if command in PROVISIONING_COMMANDS:
            return run_provisioning(command, args)
        if command == "help":
            if not args:
                print(_help())
                return None
            if args[0] not in _SUBCOMMANDS or args[0] == "help":
                raise UsageError(f"%runpod help [COMMAND]; commands: {', '.join(_SUBCOMMANDS)}")
            return self._run(f"{args[0]} --help", None)
        raise UsageError(f"unknown %runpod command {command!r}; commands: {', '.join(_SUBCOMMANDS)}")

    def _with_variables(self, spec: ModelSpec, inputs: dict[str, Any]) -> dict[str, Any]:
        """`%runpod layers photo` where `photo` is a variable (a PIL image, bytes, a path)."""
        resolved = dict(inputs)
        for field in spec.fields:
            value = resolved.get(field.name)
            if field.media and isinstance(value, str) and value.isidentifier() and value in self.user_ns:
                resolved[field.name] = self.user_ns[value]
        return resolved

    def _batch(self, spec: ModelSpec, inputs: dict[str, Any], endpoint: str | None, how: str) -> Any:
        text = inputs.pop(spec.positional, None)
        pieces = split_batch(text, how) if isinstance(text, str) else []
        if not pieces:
            raise UsageError(
                f"--batch needs the {spec.positional}s: one per paragraph (or line) of the cell body"
            )
        items = [self._with_variables(spec, {spec.positional: piece}) for piece in pieces]
        return _api.submit_many(spec.name, items, endpoint=endpoint, **self._with_variables(spec, inputs))

    def _panel(self, args: list[str]) -> Any:
        namespace = _panel_parser().parse_args(args)
        options: dict[str, Any] = {}
        if namespace.voices is not None:
            if namespace.kind != "tts":
                raise UsageError("--voices is an option of the tts panel")
            if namespace.voices not in self.user_ns:
                raise UsageError(f"--voices: no variable named {namespace.voices!r}")
            options["voices"] = self.user_ns[namespace.voices]
        from ..widgets import panel

        return panel(namespace.kind, endpoint=namespace.endpoint, **options)

    def _local(self, args: list[str]) -> Any:
        namespace = _local_parser().parse_args(args)
        if namespace.port is not None and namespace.action != "start":
            raise UsageError("--port is an option of %runpod local start")
        if namespace.action == "start":
            running = _api.local_endpoint()
            if running is not None:
                note = f"the local endpoint is already running at {running.url}"
                if namespace.port is not None and namespace.port != running.port:
                    note += (
                        f"; to move it to port {namespace.port}: %runpod local stop, "
                        f"then %runpod local start --port {namespace.port}"
                    )
                print(note)
                return self._setup_status()
            server = _api.start_local(port=namespace.port or 0)
            return Rendered(display.setup_bundle(_setup_rows()), f"local endpoint at {server.url}")
        if namespace.action == "stop":
            running = _api.local_endpoint()
            _api.stop_local()  # also when it died on its own: its settings are put back
            print(_after_stop() if running is not None else "the local endpoint is not running")
            return None
        return self._setup_status()

    def _setup_status(self) -> Any:
        return Rendered(display.setup_bundle(_setup_rows()), "")


def _after_stop() -> str:
    """What `%runpod local stop` says: where jobs go now that the settings are put back."""
    settings = current_settings()
    models = [f"{model} on {endpoint}" for model, endpoint in settings.endpoints.items() if model in MODELS]
    if not models:
        return (
            "local endpoint stopped; no other endpoint is configured: %runpod local start starts it again, "
            "and %runpod shows how to set up Runpod"
        )
    return f"local endpoint stopped; jobs go to {settings.endpoint_base_url} again: {', '.join(models)}"


def _check_use(args: list[str]) -> None:
    """`%runpod use ID as MODEL`: refuse an endpoint the job API does not know, before it is saved."""
    namespace = PROVISIONING_COMMANDS["use"][0]().parse_args(args)
    if namespace.endpoint.lower() == FORGET:  # forget the saved choice: nothing to check
        return
    if _api.check_endpoint(namespace.endpoint) is None:
        print(f"(endpoint {namespace.endpoint} not checked: no API key to ask the job API with)")


def _setup_rows() -> list[tuple[str, str, str]]:
    settings = current_settings()
    sources = settings.sources
    rows = [
        (
            "RUNPOD_API_KEY",
            "set" if settings.api_key else "not set",
            sources.get("RUNPOD_API_KEY", "")
            if settings.api_key
            else "set it in the environment, a .env file, or with `runpod config`",
        ),
        (
            "job API",
            settings.endpoint_base_url,
            sources.get("endpoint_base_url") or sources.get("RUNPOD_ENDPOINT_BASE_URL", "default"),
        ),
        (
            "management API",
            f"{settings.management_api} at {settings.api_base_url}",
            "RP_NOTEBOOK_MANAGEMENT_API=graphql|rest; "
            + (sources.get("api_base_url") or sources.get("RUNPOD_API_BASE_URL", "default")),
        ),
    ]
    for model in MODELS:
        endpoint = settings.endpoints.get(model)
        source = sources.get(f"RP_NOTEBOOK_{model.upper()}_ENDPOINT") or sources.get("endpoints", "")
        rows.append(
            (
                f"{model} endpoint",
                endpoint or "not configured",
                source
                if endpoint
                else f"--endpoint ID, RP_NOTEBOOK_{model.upper()}_ENDPOINT, or %runpod local start",
            )
        )
    local = _api.local_endpoint()
    rows.append(
        ("local endpoint", local.url if local else "not running", "" if local else "%runpod local start")
    )
    return rows
