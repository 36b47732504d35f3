"""The %runpod / %%runpod magics: a thin router over the Python API in rp_notebook._api.

%runpod                         setup status: key set or not (never its value), endpoints
%runpod tts "Hello" [--opts]    speak; returns a Job handle at once, which turns into a player
%%runpod tts [--opts]           the cell body is the text
%runpod jobs                    the jobs of this kernel
%runpod local start|stop|status the local Runpod-compatible endpoint (CPU engines, no account)
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.utils.process import arg_split

from .. import _api, display
from ..config import current_settings
from ..jobs import get_manager
from ..models import MODELS
from ._parsing import model_parser, split_inputs

__all__ = ["RunpodMagics"]

_SUBCOMMANDS = (*MODELS, "jobs", "local", "help")


def _help() -> str:
    parts = [__doc__ or ""]
    for spec in MODELS.values():
        parts.append(model_parser(spec, f"%runpod {spec.name}").format_help())
    return "\n".join(parts)


@magics_class
class RunpodMagics(Magics):
    def runpod(self, line: str, cell: str | None = None) -> Any:
        words = arg_split(line, posix=True)
        if not words:
            if cell is not None:
                raise UsageError("%%runpod needs a model: %%runpod tts [options]")
            return self._setup_status()
        command, args = words[0], words[1:]
        if command in MODELS:
            spec = MODELS[command]
            namespace = model_parser(spec, f"%runpod {command}").parse_args(args)
            inputs, endpoint = split_inputs(spec, namespace, cell)
            for field in spec.fields:
                # `%runpod layers photo` where `photo` is a variable (a PIL image, bytes, a path).
                value = inputs.get(field.name)
                if (
                    field.media
                    and isinstance(value, str)
                    and value.isidentifier()
                    and value in self.shell.user_ns
                ):
                    inputs[field.name] = self.shell.user_ns[value]
            return _api.submit(command, endpoint=endpoint, **inputs)
        if cell is not None:
            raise UsageError(f"%%runpod {command} takes no cell body")
        if command == "jobs":
            return _jobs_table()
        if command == "local":
            return self._local(args)
        if command == "help":
            print(_help())
            return None
        raise UsageError(f"unknown %runpod command {command!r}; commands: {', '.join(_SUBCOMMANDS)}")

    runpod.__doc__ = _help()
    runpod = line_cell_magic(runpod)

    def _local(self, args: list[str]) -> Any:
        action = args[0] if args else "status"
        if action == "start":
            server = _api.start_local()
            return _Rendered(display.setup_bundle(_setup_rows()), f"local endpoint at {server.url}")
        if action == "stop":
            _api.stop_local()
            print("local endpoint stopped")
            return None
        if action == "status":
            return self._setup_status()
        raise UsageError("%runpod local start | stop | status")

    def _setup_status(self) -> Any:
        return _Rendered(display.setup_bundle(_setup_rows()), "")


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


def _jobs_table() -> Any:
    jobs = get_manager().jobs()
    if not jobs:
        return _Rendered({"text/plain": "no jobs in this kernel yet"}, "")
    rows = [(job.id, f"{job.model or job.endpoint_id} · {job.status}", job.timing_summary()) for job in jobs]
    return _Rendered(display.setup_bundle(rows), "")


class _Rendered:
    """A ready mimebundle as a magic's return value (so `;` silences it and Out[] keeps it)."""

    def __init__(self, bundle: dict[str, str], summary: str) -> None:
        self._bundle = bundle
        self._summary = summary

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return self._bundle

    def __repr__(self) -> str:
        return self._summary or self._bundle.get("text/plain", "")
