"""`LocalEndpointProcess`: a `LocalEndpoint` served by a process of its own, driven from this one.

Why: `start_local()` (and `%runpod local start`, the tutorials' and Binder's default) is called from a
notebook's kernel. Served from a thread of the kernel, the endpoint shares the kernel's interpreter
with the user's cells: with 500 instant jobs in flight the slowest trivial cell took 71-96 ms
(median 80) against 18.6-30.3 ms (median 27) with the endpoint in a process of its own, and the
batch 1.00 s against 0.70 s (bench/README.md). The process runs in a session of its own, so the
machine's per-session CPU shares (Linux autogroup) keep it apart from the kernel too.

The handle has the surface a notebook uses: the addresses and key, `prices`, `running`, `stop()`,
and the inspection and endpoint methods of `LocalEndpoint` (`add_endpoint`, `workers`, `job`, ...),
each a call into the process. In-process controls such as `faults` stay with `LocalEndpoint`.

Protocol: frames (`rp_notebook._frames`: length-prefixed pickles) on the process's stdin and
stdout: `(port, prices, log_level)` in, then `("ready", info)` or `("error", errno, message)` out;
then each call `(name, args, kwargs)` answered by `("ok", value)` or `("raise", exception)`. The API
key travels on that pipe only, never on a command line or in an environment. The process stops its
server (and the server its workers) when its stdin closes: `stop()`, or this process ending in any
way, killed too.

Its log: the server reports what goes wrong out of any call (a worker that exited, one that cannot
start, a webhook that failed) as log records, which a notebook user must see where they saw them
when the server ran in the kernel: in the notebook. So the child writes each record to its stderr as
one marked line, and a thread here logs it again on the same logger at the same level (records from
`log_level`, this process's level for `rp_notebook.local`, up); whatever else the child writes there
(a traceback as it dies) goes on to this process's stderr, and its last lines into the error of a
start that failed.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import io
import json
import logging
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from .. import _frames as framing
from ..costs import RUNPOD_PRICES

if TYPE_CHECKING:
    from ..costs import PriceTable
    from ._config import EndpointConfig
    from ._limits import RateLimitStats
    from ._records import JobInfo, WorkerInfo

__all__ = ["LocalEndpointProcess"]

#: What the handle may ask of the server in the child (LocalEndpoint's attribute names).
_CALLS = frozenset(
    {
        "endpoint_ids",
        "add_endpoint",
        "remove_endpoint",
        "endpoint_config",
        "templates",
        "managed_endpoints",
        "job",
        "jobs",
        "workers",
        "health",
        "rate_limit_stats",
    }
)


#: Marks a line of the child's stderr that is a log record (JSON `[level, logger, message]`).
_RECORD = b"\x1erp-notebook-log "
_LOGGER = "rp_notebook.local"


def _write(stream: IO[bytes], message: object) -> None:
    stream.write(framing.encode(message))
    stream.flush()


class LocalEndpointProcess:
    """A local endpoint (default endpoints, `prices`) served by a child process on 127.0.0.1."""

    def __init__(self, port: int = 0, *, prices: PriceTable | None = None) -> None:
        self.prices = prices or RUNPOD_PRICES
        self._port = port
        self._process: subprocess.Popen[bytes] | None = None
        self._output: _OutputRelay | None = None
        self._info: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 60.0) -> LocalEndpointProcess:
        """Start the process; returns once its server listens. OSError: it could not listen."""
        if self._process is not None or self._stopped:
            raise RuntimeError("this local endpoint was already started; create a new one")
        root = str(Path(__file__).resolve().parents[2])  # so the child imports this very rp_notebook
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; sys.path.insert(0, sys.argv[1]); "
                "from rp_notebook.local._process import child_main; child_main()",
                root,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # A session of its own: a kernel's interrupt (sent to its process group) is meant for
            # the user's code, and the scheduler's per-session shares keep the two apart.
            start_new_session=True,
        )
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        self._process = process
        self._output = _OutputRelay(process.stderr)
        with contextlib.suppress(BrokenPipeError):  # it has ended already: the read below says so
            _write(process.stdin, (self._port, self.prices, logging.getLogger(_LOGGER).getEffectiveLevel()))
        answer: list[Any] = []
        reader = threading.Thread(target=lambda: answer.append(_read_or_none(process.stdout)), daemon=True)
        reader.start()
        reader.join(timeout)
        first = answer[0] if answer else None
        if not isinstance(first, tuple) or first[0] != "ready":
            self._end(process)
            if isinstance(first, tuple) and first[0] == "error":
                raise OSError(first[1], first[2])
            why = f"did not start within {timeout} s" if not answer else "ended before it was ready"
            last = self._output.last_line()
            raise RuntimeError(f"the local endpoint's process {why}" + (f": {last}" if last else ""))
        self._info = first[1]
        atexit.register(self.stop)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server and its workers, and end the process. Safe to call twice."""
        process, self._process = self._process, None
        self._stopped = True
        if process is None:
            return
        atexit.unregister(self.stop)
        self._end(process, timeout)

    def _end(self, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
        assert process.stdin is not None
        with contextlib.suppress(OSError):  # a pipe already broken: the child has ended
            process.stdin.close()  # the child stops its server when its stdin ends
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if self._output is not None:  # what it logged as it stopped, before this returns
            self._output.join(timeout=5.0)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> LocalEndpointProcess:
        if self._process is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        ids = self.endpoint_ids if self.running else []
        return f"<LocalEndpoint {self.url} {state} endpoints={ids} (process {self.pid})>"

    # ------------------------------------------------------------------ what the process said at start
    @property
    def url(self) -> str:
        return str(self._info.get("url", f"http://127.0.0.1:{self._port}"))

    @property
    def job_api_url(self) -> str:
        return str(self._info["job_api_url"])

    @property
    def management_url(self) -> str:
        return str(self._info["management_url"])

    @property
    def port(self) -> int:
        return int(self._info.get("port", self._port))

    @property
    def api_key(self) -> str:
        return str(self._info["api_key"])

    @property
    def state_dir(self) -> Path:
        return Path(self._info["state_dir"])

    @property
    def logs_dir(self) -> Path:
        return Path(self._info["logs_dir"])

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def endpoint_url(self, endpoint_id: str) -> str:
        return f"{self.job_api_url}/{endpoint_id}"

    # ------------------------------------------------------------------ calls into the process
    @property
    def endpoint_ids(self) -> list[str]:
        return cast("list[str]", self._call("endpoint_ids"))

    def add_endpoint(self, config: EndpointConfig, *, check: bool = True) -> None:
        """Register an endpoint (see `LocalEndpoint.add_endpoint`)."""
        self._call("add_endpoint", config, check=check)

    def remove_endpoint(self, endpoint_id: str) -> None:
        self._call("remove_endpoint", endpoint_id)

    def endpoint_config(self, endpoint_id: str) -> EndpointConfig:
        return cast("EndpointConfig", self._call("endpoint_config", endpoint_id))

    def templates(self) -> list[dict[str, Any]]:
        return cast("list[dict[str, Any]]", self._call("templates"))

    def managed_endpoints(self) -> list[dict[str, Any]]:
        return cast("list[dict[str, Any]]", self._call("managed_endpoints"))

    def job(self, endpoint_id: str, job_id: str) -> JobInfo | None:
        return cast("JobInfo | None", self._call("job", endpoint_id, job_id))

    def jobs(self, endpoint_id: str) -> list[JobInfo]:
        return cast("list[JobInfo]", self._call("jobs", endpoint_id))

    def workers(self, endpoint_id: str, *, include_exited: bool = False) -> list[WorkerInfo]:
        return cast("list[WorkerInfo]", self._call("workers", endpoint_id, include_exited=include_exited))

    def health(self, endpoint_id: str) -> dict[str, Any]:
        return cast("dict[str, Any]", self._call("health", endpoint_id))

    def rate_limit_stats(self, endpoint_id: str) -> RateLimitStats:
        return cast("RateLimitStats", self._call("rate_limit_stats", endpoint_id))

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        assert name in _CALLS, name  # the child answers only these
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None:
                raise RuntimeError("the local endpoint is not running")
            assert process.stdin is not None and process.stdout is not None
            try:
                _write(process.stdin, (name, args, kwargs))
                outcome = framing.read(process.stdout)
            except (OSError, EOFError) as exc:
                raise RuntimeError(f"the local endpoint's process ended ({exc})") from None
        if outcome[0] == "raise":
            raise outcome[1]
        return outcome[1]


class _OutputRelay:
    """Reads the child's stderr on a thread of its own: a marked line is a log record, logged again
    here; any other line goes on to this process's stderr, and the last few are kept for an error."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._last: collections.deque[str] = collections.deque(maxlen=20)
        self._thread = threading.Thread(target=self._relay, name="rp-local-endpoint-output", daemon=True)
        self._thread.start()

    def last_line(self) -> str:
        return self._last[-1] if self._last else ""

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _relay(self) -> None:
        # Read to the end whatever happens: a child whose stderr pipe is full would block.
        for line in self._stream:
            if line.startswith(_RECORD):
                with contextlib.suppress(ValueError, TypeError):
                    level, name, message = json.loads(line[len(_RECORD) :])
                    logging.getLogger(str(name)).log(int(level), "%s", message)
                    continue
            text = line.decode(errors="replace")
            if text.strip():
                self._last.append(text.strip())
            with contextlib.suppress(ValueError, OSError):  # this process's stderr closed
                sys.stderr.write(text)


class _RecordLines(logging.Handler):
    """In the child: each record as one marked line on stderr, for `_OutputRelay` to log again."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            # One line whatever the message holds: JSON escapes its newlines and non-ASCII.
            sys.stderr.write(_RECORD.decode() + json.dumps([record.levelno, record.name, message]) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging's own convention: a handler never raises
            self.handleError(record)


def _log_to_parent(level: int) -> None:
    """In the child: every record from `level` up (the parent's) and any library's warnings go to
    the parent, as lines `_OutputRelay` reads; none is printed here as well."""
    root = logging.getLogger()
    root.addHandler(_RecordLines())
    root.setLevel(logging.WARNING)  # as Python's own default, for other libraries' loggers
    logging.getLogger(_LOGGER).setLevel(level)


def _read_or_none(stream: IO[bytes] | None) -> Any:
    try:
        return framing.read(stream) if stream is not None else None
    except (OSError, EOFError, pickle.UnpicklingError):
        return None


def child_main() -> None:
    """The process: serve a LocalEndpoint, answer calls from stdin, stop when stdin closes."""
    answers_out = io.BufferedWriter(framing.child_stdio())
    calls_in = sys.stdin.buffer
    from ._server import LocalEndpoint

    port, prices, log_level = framing.read(calls_in)
    _log_to_parent(log_level)
    server = LocalEndpoint(port=port, prices=prices)
    try:
        server.start()
    except OSError as exc:
        _write(answers_out, ("error", exc.errno, exc.strerror or str(exc)))
        return
    info = {
        "url": server.url,
        "job_api_url": server.job_api_url,
        "management_url": server.management_url,
        "port": server.port,
        "api_key": server.api_key,
        "state_dir": str(server.state_dir),
        "logs_dir": str(server.logs_dir),
    }
    _write(answers_out, ("ready", info))
    try:
        while True:
            try:
                name, args, kwargs = framing.read(calls_in)
            except EOFError:
                return
            try:
                if name not in _CALLS:
                    raise AttributeError(f"LocalEndpoint has no call {name!r}")
                value = getattr(server, name)  # a property (endpoint_ids) or a method
                answer: tuple[str, Any] = ("ok", value(*args, **kwargs) if callable(value) else value)
            except Exception as exc:  # noqa: BLE001 - raised again in the calling process
                answer = ("raise", exc)
            try:
                _write(answers_out, answer)
            except (pickle.PicklingError, TypeError, AttributeError) as unpicklable:
                _write(answers_out, ("raise", RuntimeError(f"{name}: {answer[1]!r} ({unpicklable})")))
    finally:
        server.stop()
