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
stdout: `(port, prices)` in, then `("ready", info)` or `("error", errno, message)` out; then each
call `(name, args, kwargs)` answered by `("ok", value)` or `("raise", exception)`. The API key
travels on that pipe only, never on a command line or in an environment. The process stops its
server (and the server its workers) when its stdin closes: `stop()`, or this process ending in any
way, killed too.
"""

from __future__ import annotations

import atexit
import contextlib
import io
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


def _write(stream: IO[bytes], message: object) -> None:
    stream.write(framing.encode(message))
    stream.flush()


class LocalEndpointProcess:
    """A local endpoint (default endpoints, `prices`) served by a child process on 127.0.0.1."""

    def __init__(self, port: int = 0, *, prices: PriceTable | None = None) -> None:
        self.prices = prices or RUNPOD_PRICES
        self._port = port
        self._process: subprocess.Popen[bytes] | None = None
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
            # A session of its own: a kernel's interrupt (sent to its process group) is meant for
            # the user's code, and the scheduler's per-session shares keep the two apart.
            start_new_session=True,
        )
        assert process.stdin is not None and process.stdout is not None
        self._process = process
        _write(process.stdin, (self._port, self.prices))
        answer: list[Any] = []
        reader = threading.Thread(target=lambda: answer.append(_read_or_none(process.stdout)), daemon=True)
        reader.start()
        reader.join(timeout)
        first = answer[0] if answer else None
        if not isinstance(first, tuple) or first[0] != "ready":
            self._end(process)
            if isinstance(first, tuple) and first[0] == "error":
                raise OSError(first[1], first[2])
            why = "did not start" if not answer else "ended before it was ready"
            raise RuntimeError(f"the local endpoint's process {why} (within {timeout} s)")
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

    @staticmethod
    def _end(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
        assert process.stdin is not None
        with contextlib.suppress(OSError):  # a pipe already broken: the child has ended
            process.stdin.close()  # the child stops its server when its stdin ends
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

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

    port, prices = framing.read(calls_in)
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
