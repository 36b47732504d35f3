"""`rp-notebook`: the same core from a terminal, for scripts.

    rp-notebook status                              what is configured (never the key's value)
    rp-notebook --version                           the installed version
    rp-notebook tts "Hello" -o hello.wav            speak via the configured tts endpoint
    rp-notebook layers photo.png -o layers/         split a picture (a path or an http(s) URL) into
                                                    layer_01.png, ... and composite.png in layers/
    rp-notebook cancel JOB_ID [--endpoint ID]       cancel a job (one left running by Ctrl+C, say)
    rp-notebook gpus [--model tts|layers]           GPU pools, prices per second and hour, what fits
    rp-notebook cost [--jobs N]                     estimated spend per job, endpoint and day
    rp-notebook templates | endpoints               your templates; your endpoints, workers and queue
    rp-notebook deploy tts|layers [options]         a template + an endpoint from the model's preset
    rp-notebook scale ENDPOINT --min N --max N      change an endpoint's worker counts
    rp-notebook delete [endpoint] ENDPOINT [--yes]  scale to 0 and delete; asks first unless --yes
    rp-notebook delete template NAME [--yes]
    rp-notebook use ENDPOINT|none as tts|layers     the endpoint later runs use (your user config)
    rp-notebook local up [--port N] [--api-key K]   serve the local Runpod-compatible endpoint

Every command that talks to Runpod takes --local: a local endpoint (CPU engines, no account) is
started for that run and stopped at its end. The model commands' options come from the models'
field definitions, like the magics' (`rp-notebook tts --help`); the provisioning commands take the
magics' options (`_cli_provisioning`).

Errors print as one line, `error: ...`, never a traceback. Exit status: 0 on success, 1 when a job
or a request failed, 2 on bad usage or input (refused before any job or change), 130 when
interrupted (Ctrl+C; a job that was queued keeps running, and the message says how to cancel it).
A result that cannot be written where -o says is still in the job ledger's results folder (or, if
that failed too, a new temporary folder), and the message gives its path.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn, cast

from IPython.core.error import UsageError

from . import config
from .errors import ConfigurationError, InputError, RunpodError, WaitTimeoutError
from .models import LAYERS, TTS, ModelSpec

__all__ = ["main"]

PROG = "rp-notebook"
#: Exit statuses (the module docstring).
OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


class CliUsageError(Exception):
    """Bad usage: printed as one `error:` line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (`error: ...`, then exit status 2), not usage + message."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(**kwargs)

    def error(self, message: str) -> NoReturn:
        raise CliUsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def main(argv: list[str] | None = None) -> int:
    previous_hint = config.use_local_hint("--local")  # messages such as "No Runpod API key" name --local
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help and --version; main returns, so that tests can call it
        return exc.code if isinstance(exc.code, int) else OK
    except CliUsageError as exc:
        return _fail(str(exc), USAGE)
    except UsageError as exc:  # a magic's check, reached through a provisioning command
        return _fail(str(exc).splitlines()[0], USAGE)
    except (InputError, ConfigurationError) as exc:  # refused before any job or change
        return _fail(str(exc), USAGE)
    except RunpodError as exc:
        return _fail(str(exc), FAILED)
    except OSError as exc:
        return _fail(str(exc), FAILED)
    except KeyboardInterrupt:
        return _fail("interrupted", INTERRUPTED)
    finally:
        config.use_local_hint(previous_hint)


def _fail(message: str, status: int) -> int:
    print(
        f"error: {' '.join(line.strip() for line in message.splitlines() if line.strip())}", file=sys.stderr
    )
    return status


def _main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # The model commands start theirs once the input is checked: bad input costs no server start.
    local = bool(getattr(args, "local", False)) and not getattr(args, "cli_spec", None)
    check = getattr(args, "cli_check", None)
    if check is not None:  # usage a command refuses beyond argparse, before any server starts
        check(args)
    with _local_endpoint(local):
        status: int = args.cli_run(args)
        return status


def _parser() -> Parser:
    from ._cli_provisioning import add_provisioning_commands

    parser = Parser(prog=PROG, description="Run Runpod serverless models from a terminal or a script.")
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status = commands.add_parser("status", help="show what is configured (never the key's value)")
    status.set_defaults(cli_run=_status)
    local_flag = Parser(add_help=False)
    local_flag.add_argument(
        "--local",
        action="store_true",
        help="start a local endpoint for this run (CPU engines, no account); it stops when the run ends",
    )
    _add_model_command(commands, TTS, local_flag, "text to speech: write the audio file", "FILE")
    _add_model_command(
        commands,
        LAYERS,
        local_flag,
        "split a picture into RGBA layers: write them as PNGs into a folder",
        "DIR",
    )
    cancel = commands.add_parser(
        "cancel",
        help="cancel a job",
        description="Cancel a job by id: one from the job ledger (every job this machine submitted), or "
        "any job with --endpoint.",
    )
    cancel.add_argument("job_id", metavar="JOB_ID", help="the job's id")
    cancel.add_argument("--endpoint", help="its endpoint, for a job that is not in the job ledger")
    cancel.set_defaults(cli_run=_cancel)
    add_provisioning_commands(commands, local_flag)
    from .magics._cost import cost_parser

    magic_cost = cost_parser()  # the magic's options, so the two cannot drift apart
    cost = commands.add_parser(
        "cost",
        help="estimated spend per job, per endpoint and per day (the job ledger)",
        description=magic_cost.description,
        parents=[cast(Any, magic_cost)],
        add_help=False,
        conflict_handler="resolve",  # this -h replaces the magic's
    )
    cost.add_argument("-h", "--help", action="help", help="show this help and exit")
    cost.set_defaults(cli_run=_cost)
    local = commands.add_parser(
        "local", help="the local Runpod-compatible endpoint: rp-notebook local up --help"
    )
    local_commands = local.add_subparsers(dest="local_command", required=True, metavar="up")
    up = local_commands.add_parser(
        "up",
        help="serve the local endpoint until Ctrl+C",
        description="Run the local Runpod-compatible endpoint.",
    )
    from .local.__main__ import build_up_parser

    build_up_parser(up)
    up.set_defaults(cli_run=_local_up)
    return parser


def _cost(args: argparse.Namespace) -> int:
    from .magics._cost import cost_command

    print(cost_command(["--jobs", str(args.jobs)])._repr_mimebundle_()["text/plain"])
    return OK


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rp_notebook")
    except PackageNotFoundError:  # run from a source tree that is not installed
        from . import __version__

        return __version__


# -- the model commands ------------------------------------------------------------------------------


def _add_model_command(
    commands: Any, spec: ModelSpec, local_flag: Parser, help_text: str, output: str
) -> None:
    from .magics._parsing import model_parser

    command = commands.add_parser(
        spec.name,
        help=help_text,
        description=spec.title,
        parents=[model_parser(spec, spec.name, Parser), local_flag],
        add_help=False,
    )
    command.add_argument("-h", "--help", action="help", help="show this help and exit")
    if spec is LAYERS:  # the field's help speaks of magics; here a path is read and sent, a URL sent
        for action in command._actions:
            if action.dest == spec.positional:
                action.help = (
                    "the picture: a file path (PNG, JPEG, WebP), or an http(s) URL the worker downloads"
                )
    where = (
        "the audio file to write (or an existing folder: JOB_ID.FORMAT in it)"
        if output == "FILE"
        else "the folder to write layer_01.png, ... and composite.png into (created if missing)"
    )
    command.add_argument("-o", "--output", type=Path, required=True, metavar=output, help=where)
    command.add_argument(
        "--timeout",
        type=_seconds,
        default=900,
        metavar="SECONDS",
        help="how long to wait for the job (default 900)",
    )
    command.set_defaults(cli_run=_run_model, cli_spec=spec, cli_parser=command)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return value


def _run_model(args: argparse.Namespace) -> int:
    from . import _api
    from .magics._parsing import split_inputs

    spec: ModelSpec = args.cli_spec
    output: Path = args.output.expanduser()
    options = argparse.Namespace(**{k: v for k, v in vars(args).items() if not k.startswith("cli_")})
    for name in ("output", "timeout", "local", "command"):
        delattr(options, name)
    inputs, endpoint = split_inputs(spec, options)
    _check_output(args.cli_parser, spec, output)
    clean = _api.prepare_input(spec, inputs)  # bad input ends here, before a local endpoint starts
    with _local_endpoint(args.local):
        return _submit_and_write(spec, clean, endpoint, output, args)


def _submit_and_write(
    spec: ModelSpec, inputs: dict[str, Any], endpoint: str | None, output: Path, args: argparse.Namespace
) -> int:
    from . import _api

    job = None
    try:
        job = _api.submit(spec.name, endpoint=endpoint, **inputs)
        print(f"job {job.id} queued on {job.endpoint_id}", file=sys.stderr)
        result = _wait(job, args.timeout)
    except KeyboardInterrupt:
        if job is None:
            return _fail(
                "interrupted while the job was being submitted; it may have been queued", INTERRUPTED
            )
        return _fail(f"interrupted: {_still_running(job, args.local)}", INTERRUPTED)
    except WaitTimeoutError:
        assert job is not None
        return _fail(
            f"job {job.id} still {str(job.status).lower()} after {args.timeout:g} s: "
            + _still_running(job, args.local),
            FAILED,
        )
    return _write(job, result, output)


def _check_output(parser: Parser, spec: ModelSpec, output: Path) -> None:
    """Refuse an output the result could not be written to, before the job costs anything: a file's
    folder must exist; the layers' folder is created, so it must not be a file, nor be under one."""
    try:
        if spec is LAYERS:
            for folder in (output, *output.parents):
                if folder.exists():
                    if not folder.is_dir():
                        which = "it" if folder == output else str(folder)
                        parser.error(f"-o {output}: {which} is a file, not a folder")
                    return
            return
        if not output.is_dir() and not output.parent.is_dir():
            parser.error(f"-o {output}: there is no folder {output.parent}")
    except OSError as exc:  # e.g. a name too long for the file system
        parser.error(f"-o {output}: {exc.strerror or exc}")


def _wait(job: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        if job.status != last:
            last = job.status
            print(f"  {last.lower()}", file=sys.stderr)
        try:
            result = job.result(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
        except WaitTimeoutError:
            if time.monotonic() >= deadline:
                raise
            continue
        print(
            f"  {job.status.lower()} (queued {job.delay_time or 0:.1f} s, ran {job.execution_time or 0:.1f} s)",
            file=sys.stderr,
        )
        return result


def _still_running(job: Any, local: bool) -> str:
    if local:
        return f"job {job.id} stops with the local endpoint of this run"
    from .jobs import get_manager

    with contextlib.suppress(Exception):  # the ledger entry is what `cancel` finds the job by
        get_manager().recorder.flush(timeout=5)
    return (
        f"job {job.id} keeps running on endpoint {job.endpoint_id} (Runpod keeps its result 30 minutes "
        f"after it ends); to cancel it: {PROG} cancel {job.id}"
    )


def _write(job: Any, result: Any, output: Path) -> int:
    from .results import AudioResult

    try:
        if isinstance(result, AudioResult):
            path = result.save(output)
            print(f"{path} ({result.duration:.1f} s of audio)")
            return OK
        paths = result.save(output)
        composite = output / "composite.png"
        result.composite().save(composite)
    except OSError as exc:
        saved = _saved_copy(job, result)
        where = f"the result was saved at {saved}" if saved else f"the job id is {job.id}"
        return _fail(f"could not write {output}: {exc.strerror or exc}; {where}", FAILED)
    for path in [*paths, composite]:
        print(path)
    print(f"  {len(paths)} layers, {result.width}x{result.height}, and their composite", file=sys.stderr)
    return OK


def _saved_copy(job: Any, result: Any) -> Path | None:
    """Where the result is safe: the job ledger's copy (saved before the job resolved), else a
    copy written now to a new temporary folder; None when neither exists."""
    from .jobs import get_manager
    from .jobs._saved import MANIFEST, save_result
    from .results import AudioResult

    ledger = get_manager().ledger
    folder = ledger.result_folder(job.id) if ledger is not None else None
    if folder is None or not (folder / MANIFEST).is_file():
        try:
            folder = save_result(result, Path(tempfile.mkdtemp(prefix="rp-notebook-")) / job.id)
        except OSError:
            return None
    audio = folder / f"speech.{result.format}" if isinstance(result, AudioResult) else None
    return audio if audio is not None and audio.is_file() else folder


# -- the other commands -------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    settings = config.current_settings()
    print(f"RUNPOD_API_KEY: {'set' if settings.api_key else 'not set'}")
    print(f"job API: {settings.endpoint_base_url}")
    for model, endpoint in sorted(settings.endpoints.items()):
        print(f"{model} endpoint: {endpoint}")
    return OK


def _cancel(args: argparse.Namespace) -> int:
    from .jobs import get_manager

    manager = get_manager()
    if args.endpoint is not None:
        job = manager.attach(config.check_endpoint_id(args.endpoint), args.job_id)
    else:
        ledger = manager.ledger
        if ledger is None or not ledger.find(args.job_id):
            raise InputError(
                "job_id",
                f"job {args.job_id} is not in the job ledger; give its endpoint: "
                f"{PROG} cancel {args.job_id} --endpoint ENDPOINT_ID",
            )
        job = manager.resume(args.job_id)
    if job.done():
        print(f"job {job.id} already ended: {str(job.status).lower()}")
        return OK
    status = job.cancel()
    if status == "CANCELLED":
        print(f"job {job.id} cancelled")
    else:
        print(f"job {job.id} is {str(status).lower()}: not cancelled")
    return OK


def _local_up(args: argparse.Namespace) -> int:
    from .local.__main__ import run_local_up

    return run_local_up(args)


@contextlib.contextmanager
def _local_endpoint(wanted: bool) -> Iterator[None]:
    if not wanted:
        yield
        return
    from . import _api

    try:
        server = _api.start_local()
        print(f"local endpoint at {server.url} (stops when this run ends)", file=sys.stderr)
        yield
    finally:
        _api.stop_local()


if __name__ == "__main__":
    sys.exit(main())
