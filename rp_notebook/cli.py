"""`rp-notebook`: the same core from a terminal, for scripts.

    rp-notebook status                         what is configured (never the key's value)
    rp-notebook tts "Hello" -o hello.wav       speak via the configured tts endpoint
    rp-notebook tts "Hello" -o hello.wav --local   ... via a local endpoint started for this run
    rp-notebook local up [--port N] [--api-key K]  serve the local Runpod-compatible endpoint

Exit status: 0 on success, 1 when the job or a request failed, 2 on bad usage or input.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import cast

from . import _api
from .config import current_settings
from .errors import InputError, RunpodError, WaitTimeoutError
from .jobs import Job
from .magics._parsing import model_parser, split_inputs
from .models import TTS
from .results import AudioResult

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["local"]:
        from .local.__main__ import main as local_main

        return local_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="rp-notebook", description="Run Runpod serverless models from scripts."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="show what is configured")
    commands.add_parser("local", help="the local Runpod-compatible endpoint: rp-notebook local up --help")
    tts = commands.add_parser(
        "tts",
        help="text to speech",
        parents=[model_parser(TTS, "tts", argparse.ArgumentParser)],
        add_help=False,
    )
    tts.add_argument("-h", "--help", action="help")
    tts.add_argument("-o", "--output", type=Path, required=True, help="audio file (or folder) to write")
    tts.add_argument("--timeout", type=float, default=900, help="seconds to wait for the job (default 900)")
    tts.add_argument("--local", action="store_true", help="start a local endpoint for this run (no account)")
    args = parser.parse_args(argv)
    if args.command == "status":
        return _status()
    return _tts(tts, args)


def _status() -> int:
    settings = current_settings()
    print(f"RUNPOD_API_KEY: {'set' if settings.api_key else 'not set'}")
    print(f"job API: {settings.endpoint_base_url}")
    for model, endpoint in sorted(settings.endpoints.items()):
        print(f"{model} endpoint: {endpoint}")
    return 0


def _tts(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    output, timeout, local = args.output, args.timeout, args.local
    for name in ("output", "timeout", "local", "command"):
        delattr(args, name)
    try:
        inputs, endpoint = split_inputs(TTS, args)
        if local:
            _api.start_local()
        job = _api.submit("tts", endpoint=endpoint, **inputs)
        print(f"job {job.id} queued on {job.endpoint_id}", file=sys.stderr)
        result = _wait(job, timeout)
        path = result.save(output)
    except InputError as exc:
        parser.error(str(exc))
    except RunpodError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if local:
            _api.stop_local()
    print(f"{path} ({result.duration:.1f} s of audio)")
    return 0


def _wait(job: Job, timeout: float) -> AudioResult:
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
        return cast(AudioResult, result)


if __name__ == "__main__":
    sys.exit(main())
