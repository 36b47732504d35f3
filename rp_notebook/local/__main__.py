"""`python -m rp_notebook.local up [--port N] [--api-key K | --api-key-file F] [--state-dir D] [--lenient]`.

Runs the local endpoint in the foreground until Ctrl+C / SIGTERM. The API key is never printed:
a generated key is written to `<state dir>/api_key` (mode 0600) and the path is printed instead.
`main_local_up(argv)` parses and runs; `run_local_up(args)` runs what `build_up_parser` parsed, for a
CLI that embeds these options (`rp-notebook local up`). Every option is checked by its argparse type, so
a bad one ends in argparse's usage error, never a traceback: a port outside 0-65535, a log level that
is not one.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ._config import RUN_RESULT_RETENTION_S
from ._server import LocalEndpoint, serve

__all__ = ["build_up_parser", "main", "main_local_up", "run_local_up"]

#: The largest TCP port.
MAX_PORT = 65535
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def build_up_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The options of `local up`; pass a subparser to embed them in another CLI."""
    parser = parser or argparse.ArgumentParser(
        prog="rp-notebook local up", description="Run the local Runpod-compatible endpoint."
    )
    parser.add_argument(
        "--port", type=_port, default=8000, help="port on 127.0.0.1, 1-65535 (0: any free port; default 8000)"
    )
    key = parser.add_mutually_exclusive_group()
    key.add_argument("--api-key", help="the API key clients must send (default: a random one)")
    key.add_argument("--api-key-file", type=Path, help="read the API key from this file")
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="folder for the key file, server.json and worker logs (default: a temp dir)",
    )
    parser.add_argument(
        "--log-level",
        type=_log_level,
        default="INFO",
        metavar="LEVEL",
        help=f"server log level: {', '.join(LOG_LEVELS)} (default INFO)",
    )
    parser.add_argument(
        "--result-retention",
        type=_positive_seconds,
        default=RUN_RESULT_RETENTION_S,
        metavar="SECONDS",
        help="how long a finished /run job's result stays readable (default 1800, Runpod's 30 min)",
    )
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="accept what Runpod refuses: policy.executionTimeout under 5 s and policy.ttl under 10 s, "
        "and jobs past Runpod's queue cap (max(50, workersMax x 500)); for tests and demos that need short "
        "timings. Off by default, so that what works here also works on Runpod",
    )
    return parser


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number (a whole number), got {text!r}") from None
    if not 0 <= port <= MAX_PORT:
        raise argparse.ArgumentTypeError(
            f"{port} is not a TCP port: expected 1 to {MAX_PORT}, or 0 for any free port"
        )
    return port


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return level


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _print_banner(server: LocalEndpoint) -> None:
    lines = [
        f"rp-notebook local endpoint listening on {server.url}",
        f"  job API base URL: {server.job_api_url}   (instead of https://api.runpod.ai/v2)",
        f"  management API: {server.management_url}/graphql and {server.management_url}/v2/serverless   "
        f"(RUNPOD_API_BASE_URL={server.management_url}, instead of https://api.runpod.io)",
    ]
    for endpoint_id in server.endpoint_ids:
        config = server.endpoint_config(endpoint_id)
        lines.append(
            f"  endpoint {endpoint_id}: {server.endpoint_url(endpoint_id)}  "
            f"(worker {config.worker_dir}, workers_max {config.workers_max})"
        )
    if server.api_key_generated:
        lines.append(f"  API key: generated; read it from {server.api_key_file} (mode 0600)")
    else:
        lines.append(f"  API key: the one you gave (also in {server.api_key_file}, mode 0600)")
    lines.append(f"  worker logs: {server.logs_dir}")
    retention = server.result_retention_s
    kept = "until the server stops" if retention is None else f"{retention:g} s after a job ends"
    lines.append(f"  /run results kept {kept}")
    if server.lenient_limits:
        lines.append(
            "  --lenient: accepting policies under Runpod's minimums and queues past its cap "
            "(Runpod refuses those)"
        )
    lines.append("Press Ctrl+C to stop.")
    print("\n".join(lines), flush=True)


def main_local_up(argv: Sequence[str] | None = None) -> int:
    return run_local_up(build_up_parser().parse_args(argv))


def run_local_up(args: argparse.Namespace) -> int:
    """Serve until Ctrl+C / SIGTERM with the options `build_up_parser` parsed; the exit status."""
    log_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=args.log_level, format=log_format)
    api_key = args.api_key
    if args.api_key_file is not None:
        try:
            api_key = args.api_key_file.read_text().strip()
        except OSError as exc:
            print(f"error: cannot read the API key file: {exc}", file=sys.stderr)
            return 2
        if not api_key:
            print(f"error: {args.api_key_file} is empty", file=sys.stderr)
            return 2
    try:
        serve(
            args.port,
            api_key,
            state_dir=args.state_dir,
            on_ready=_print_banner,
            result_retention_s=args.result_retention,
            lenient_limits=args.lenient,
        )
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("rp-notebook local endpoint stopped.", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "up":
        usage = "usage: python -m rp_notebook.local up [--port N] [--api-key K] [--state-dir D]"
        print(usage, file=sys.stderr)
        return 2
    return main_local_up(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
