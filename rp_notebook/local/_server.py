"""`LocalEndpoint`: the local Runpod-compatible server, run from any Python program or notebook.

The aiohttp app runs on its own event loop in one daemon thread ("rp-local-endpoint"). All job and
worker state lives on that loop; the public methods below marshal onto it and hand back frozen
snapshots, so they are safe to call from any thread. The loop thread also starts every worker
process, which ties the workers' PR_SET_PDEATHSIG to the server's lifetime (see `_workers.py`).

    with LocalEndpoint(port=0) as server:           # random API key, free port
        server.add_endpoint(EndpointConfig(id="echo", worker_dir="tests/fixtures/workers/echo"))
        requests.post(f"{server.job_api_url}/echo/runsync", json={"input": {}},
                      headers={"Authorization": f"Bearer {server.api_key}"})

Management: the server is also Runpod's management API (`management_url`, i.e. what
RUNPOD_API_BASE_URL names in production): GraphQL at `/graphql` and REST v2 at `/v2/serverless`,
`/v2/templates`, `/v2/catalog/gpus` (see `_management.py`). Creating an endpoint there deploys it:
`/v2/{new id}/run` runs the template's worker. `gpu_prices` gives GPU types a price (there is none
otherwise: the local endpoint does not invent prices).

Results and TTL: a finished `/run` job stays readable `result_retention_s` (Runpod's 30 min) on the
default endpoints and on endpoints deployed through the management API; an EndpointConfig given here
keeps its own setting. Every job is deleted once its TTL (`policy.ttl`, default 24 h) has passed.

Faults (tests): `faults` drops connections, answers 500 or 429, or delays answers of the job API, by
rule and seeded (see `_faults.py`); `jobs(endpoint_id)` lists what the server really created, so a
test can check a client against it.

Rate limits: Runpod's per-endpoint table by default (`rate_limits=`, None for none); over them the
job API answers 429 with Retry-After. `rate_limit_stats(endpoint_id)` counts every job-API request,
let through or refused, per operation (see `_limits.py`).

Production's validation: policies under Runpod's minimums (executionTimeout 5 s, ttl 10 s) get 400
and a queue past Runpod's cap gets 429, as on Runpod (see `_jobs_api.py`). `lenient_limits=True`
accepts both, for tests that need sub-second TTLs; it is off unless asked for.

State dir (a fresh temp dir unless given; a temp dir is removed by `stop()`):
    api_key       the client API key, mode 0600 (the key is never printed or logged)
    server.json   url, job API url, pid, endpoints and the local-only rate-limit stats URL, for
                  tools that look for a running server
    logs/<endpoint>/<worker_id>.log   stdout+stderr of each worker process
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from ..client._budget import RUNPOD_RATE_LIMITS, RateLimits
from ..costs import RUNPOD_PRICES, PriceTable
from ._config import RUN_RESULT_RETENTION_S, EndpointConfig
from ._config import default_endpoints as _default_endpoints
from ._faults import Faults
from ._graphql_api import add_graphql_routes
from ._http import CONTEXT, ServerContext, error_middleware
from ._jobs_api import add_job_routes
from ._limits import EndpointRateLimiter, RateLimitStats
from ._management import MANAGEMENT, ManagementStore
from ._records import JobInfo, WorkerInfo
from ._rest_api import add_rest_routes, endpoint_json, template_json
from ._state import EndpointState
from ._webhook import WebhookSender
from ._worker_api import add_worker_routes
from ._workers import WorkerSupervisor

__all__ = ["LocalEndpoint", "serve"]

log = logging.getLogger("rp_notebook.local")

WORKER_MAX_BYTES = 128 * 1024 * 1024  # largest body the app reads (worker results); job routes check less
T = TypeVar("T")


class LocalEndpoint:
    """A Runpod-compatible serverless endpoint server on this machine.

    port: 0 picks a free port. api_key: None generates a random key (see `api_key`, `api_key_file`).
    endpoints: endpoints to add besides the defaults; default_endpoints adds `local-tts`.
    ping_interval_ms: the workers' heartbeat interval (RUNPOD_PING_INTERVAL).
    status_sync: False leaves out the status-sync long-poll, as on a server that lacks it.
    rate_limits: per-endpoint, per-operation limits (default Runpod's); None enforces none (every
        request is still counted).
    network_delay_ms: added to every job-API request, half before and half after it is handled, like
        the round trip to a remote API (for benchmarks); worker routes are not delayed.
    gpu_prices: GPU type id -> price per hour, served as `securePrice` by the management APIs'
        GPU catalog (null for every GPU type when not given): Runpod's Pod prices.
    prices: the serverless price table its endpoints are billed by (`rp_notebook.costs`; default
        Runpod's, dated). `start_local` makes the client estimate its jobs' costs with it, so
        costs and budgets work with no account; the jobs' `delayTime`, `executionTime` and
        `workerId` and the workers' idle timeout behave as on Runpod.
    result_retention_s: how long finished `/run` jobs stay readable on the default endpoints and
        on those the management API deploys (None: until the server stops); an EndpointConfig
        passed in `endpoints` or to `add_endpoint` keeps its own `result_retention_s`.
    faults: injected job-API faults (tests); `server.faults` can also be set while it runs.
    lenient_limits: accept what Runpod refuses: `policy.executionTimeout` / `policy.ttl` under
        its minimums (5 s / 10 s) and jobs past its queue cap. Off by default, so that what works
        here works on Runpod; for tests that watch a short TTL or timeout expire.
    """

    def __init__(
        self,
        port: int = 0,
        api_key: str | None = None,
        *,
        host: str = "127.0.0.1",
        state_dir: str | os.PathLike[str] | None = None,
        endpoints: Iterable[EndpointConfig] = (),
        default_endpoints: bool = True,
        ping_interval_ms: int = 10_000,
        job_take_hold_s: float = 30.0,
        term_grace_s: float = 2.0,
        status_sync: bool = True,
        rate_limits: RateLimits | None = RUNPOD_RATE_LIMITS,
        network_delay_ms: float = 0.0,
        gpu_prices: Mapping[str, float] | None = None,
        prices: PriceTable | None = None,
        result_retention_s: float | None = RUN_RESULT_RETENTION_S,
        faults: Faults | None = None,
        lenient_limits: bool = False,
    ) -> None:
        if result_retention_s is not None and result_retention_s <= 0:
            raise ValueError("result_retention_s must be > 0 or None")
        self.prices = prices or RUNPOD_PRICES
        self.host = host
        self._result_retention_s = result_retention_s
        self._status_sync = status_sync
        self._lenient_limits = lenient_limits
        self._port = port
        self._api_key = api_key or secrets.token_urlsafe(24)
        self._api_key_generated = api_key is None
        self._temp_state_dir = state_dir is None
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._context = ServerContext(
            api_key=self._api_key,
            worker_token=secrets.token_urlsafe(24),
            job_take_hold_s=job_take_hold_s,
            job_stop_hold_s=job_take_hold_s,
            limiter=EndpointRateLimiter(rate_limits),
            network_delay_s=network_delay_ms / 1000,
            faults=faults or Faults(),
        )
        self._supervisor = WorkerSupervisor(
            base_url="",
            worker_token=self._context.worker_token,
            logs_dir=Path(),
            ping_interval_ms=ping_interval_ms,
            term_grace_s=term_grace_s,
        )
        self._webhooks = WebhookSender()
        self._management = ManagementStore(
            self._context.endpoints, self._new_managed_state, gpu_prices=gpu_prices
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop_event: asyncio.Event | None = None
        self._start_error: BaseException | None = None
        self._serving = False
        self._stopped = False
        defaults = [self._with_server_retention(c) for c in _default_endpoints_if(default_endpoints)]
        configs = defaults + list(endpoints)
        for config in configs:
            self.add_endpoint(config, check=False)

    # ------------------------------------------------------------------ properties
    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT` (the real port once started)."""
        return f"http://{self._client_host}:{self._port}"

    @property
    def management_url(self) -> str:
        """The base URL clients use instead of https://api.runpod.io (RUNPOD_API_BASE_URL):
        GraphQL at `{management_url}/graphql`, REST v2 at `{management_url}/v2/serverless`."""
        return self.url

    @property
    def job_api_url(self) -> str:
        """The base URL clients use instead of https://api.runpod.ai/v2."""
        return f"{self.url}/v2"

    @property
    def port(self) -> int:
        return self._port

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def result_retention_s(self) -> float | None:
        """How long finished /run jobs stay readable on the default and deployed endpoints."""
        return self._result_retention_s

    @property
    def lenient_limits(self) -> bool:
        """True when the server accepts what Runpod refuses (policy minimums, queue cap)."""
        return self._lenient_limits

    @property
    def faults(self) -> Faults:
        """The job API's injected faults: `server.faults.set(drop=0.1, ...)`, `.counts`."""
        return self._context.faults

    @property
    def api_key_generated(self) -> bool:
        return self._api_key_generated

    @property
    def state_dir(self) -> Path:
        if self._state_dir is None:
            raise RuntimeError("the state dir exists once the server is started")
        return self._state_dir

    @property
    def api_key_file(self) -> Path:
        return self.state_dir / "api_key"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def running(self) -> bool:
        return self._serving and self._thread is not None and self._thread.is_alive()

    @property
    def endpoint_ids(self) -> list[str]:
        return self._call(lambda: list(self._context.endpoints))  # the management API adds and removes them

    def endpoint_url(self, endpoint_id: str) -> str:
        return f"{self.job_api_url}/{endpoint_id}"

    @property
    def _client_host(self) -> str:
        return "127.0.0.1" if self.host in ("", "0.0.0.0", "localhost") else self.host  # noqa: S104

    # ------------------------------------------------------------------ endpoints and inspection
    def add_endpoint(self, config: EndpointConfig, *, check: bool = True) -> None:
        """Register an endpoint (before or after start). check: fail now if handler.py is missing,
        instead of failing its jobs when a worker is started."""
        if check:
            config.check()

        def add() -> None:
            if config.id in self._context.endpoints:
                raise ValueError(f"endpoint {config.id!r} already exists")
            self._context.endpoints[config.id] = self._new_state(config)

        self._call(add)

    def remove_endpoint(self, endpoint_id: str) -> None:
        """Remove an endpoint now (whatever its workers settings, unlike the management API's delete):
        its jobs are cancelled, its workers stopped, and its job routes answer 404."""

        def remove() -> None:
            self._endpoint(endpoint_id)  # KeyError for an unknown endpoint
            self._context.endpoints.pop(endpoint_id).shutdown()

        self._call(remove)

    def templates(self) -> list[dict[str, Any]]:
        """The management API's templates, as REST v2's `GET /v2/templates` lists them."""
        return self._call(lambda: [template_json(t) for t in self._management.templates()])

    def managed_endpoints(self) -> list[dict[str, Any]]:
        """Every endpoint as REST v2's `GET /v2/serverless` lists it (incl. those added here)."""
        return self._call(lambda: [endpoint_json(e) for e in self._management.endpoints()])

    def _new_state(self, config: EndpointConfig) -> EndpointState:
        return EndpointState(config, self._supervisor, on_terminal=self._webhooks.job_finished)

    def _new_managed_state(self, config: EndpointConfig) -> EndpointState:
        """An endpoint the management API deploys: it gets the server's result retention."""
        return self._new_state(self._with_server_retention(config))

    def _with_server_retention(self, config: EndpointConfig) -> EndpointConfig:
        return dataclasses.replace(config, result_retention_s=self._result_retention_s)

    def endpoint_config(self, endpoint_id: str) -> EndpointConfig:
        return self._endpoint(endpoint_id).config

    def job(self, endpoint_id: str, job_id: str) -> JobInfo | None:
        """A snapshot of one job (None if unknown or expired), incl. `late_result_received`."""

        def get() -> JobInfo | None:
            job = self._endpoint(endpoint_id).get(job_id)
            return None if job is None else job.snapshot()

        return self._call(get)

    def jobs(self, endpoint_id: str) -> list[JobInfo]:
        """Snapshots of every job the endpoint still knows (expired ones are gone), oldest first;
        each carries its `input`, so a test can tell what the server really created."""

        def get() -> list[JobInfo]:
            return [job.snapshot() for job in self._endpoint(endpoint_id).jobs.values()]

        return self._call(get)

    def workers(self, endpoint_id: str, *, include_exited: bool = False) -> list[WorkerInfo]:
        """Snapshots of the endpoint's worker processes (pid, status, log_path, cold_start_s...)."""

        def get() -> list[WorkerInfo]:
            endpoint = self._endpoint(endpoint_id)
            alive = [w.snapshot() for w in endpoint.workers.values()]
            exited = [w.snapshot() for w in endpoint.exited_workers] if include_exited else []
            return exited + alive

        return self._call(get)

    def health(self, endpoint_id: str) -> dict[str, Any]:
        return self._call(lambda: self._endpoint(endpoint_id).health())

    def rate_limit_stats(self, endpoint_id: str) -> RateLimitStats:
        """Job-API requests of the endpoint so far, let through and refused (429), per operation."""
        self._endpoint(endpoint_id)  # KeyError for an unknown endpoint
        return self._call(lambda: self._context.limiter.stats(endpoint_id))

    @property
    def rate_limit_stats_url(self) -> str:
        """Where another process reads `rate_limit_stats` (GET, API key; `{endpoint_id}` to fill in)."""
        return f"{self.url}/_local/{{endpoint_id}}/rate-limits"

    def _endpoint(self, endpoint_id: str) -> EndpointState:
        try:
            return self._context.endpoints[endpoint_id]
        except KeyError:
            raise KeyError(f"no endpoint {endpoint_id!r}; have {sorted(self._context.endpoints)}") from None

    def _call(self, fn: Callable[[], T]) -> T:
        """Run fn on the loop thread (or right here when the loop is not running) and return its result."""
        loop = self._loop
        if loop is None or not self._serving or threading.current_thread() is self._thread:
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except Exception as exc:  # noqa: BLE001 - re-raised in the calling thread
                    future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 30.0) -> LocalEndpoint:
        """Start listening; returns once the socket is bound (self.url then has the real port)."""
        if self._thread is not None or self._stopped:
            raise RuntimeError("this LocalEndpoint was already started; create a new one")
        if self._state_dir is None:
            self._state_dir = Path(tempfile.mkdtemp(prefix="rp-notebook-local-"))
        self._state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._supervisor.logs_dir = self.logs_dir
        self._thread = threading.Thread(target=self._thread_main, name="rp-local-endpoint", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the local endpoint did not start within {timeout} s")
        if self._start_error is not None:
            self._thread.join(5)
            self._thread = None
            self._stopped = True
            if self._temp_state_dir:
                shutil.rmtree(self._state_dir, ignore_errors=True)
            raise self._start_error
        self._write_state_files()
        atexit.register(self.stop)
        for endpoint_id in self.endpoint_ids:
            try:
                self.endpoint_config(endpoint_id).check()
            except FileNotFoundError as exc:
                log.warning("%s; jobs will fail", exc)
        log.info("local endpoint listening on %s (endpoints: %s)", self.url, ", ".join(self.endpoint_ids))
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the workers (SIGTERM, then SIGKILL) and the server. Safe to call twice."""
        thread = self._thread
        if thread is None:
            return
        if threading.current_thread() is thread:
            raise RuntimeError("stop() cannot be called from the server's own event loop")
        atexit.unregister(self.stop)
        loop, stop_event = self._loop, self._stop_event
        if loop is not None and stop_event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(timeout)
        if thread.is_alive():
            log.error("the local endpoint did not stop within %s s; killing its workers", timeout)
        self._supervisor.kill_all_now()
        self._thread = None
        self._stopped = True
        if self._temp_state_dir and self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)

    def __enter__(self) -> LocalEndpoint:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LocalEndpoint {self.url} {state} endpoints={self.endpoint_ids}>"

    # ------------------------------------------------------------------ loop thread
    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            log.exception("the local endpoint's event loop failed")
            if not self._ready.is_set():
                self._start_error = exc
        finally:
            self._serving = False
            self._supervisor.kill_all_now()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
            self._ready.set()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        app = web.Application(client_max_size=WORKER_MAX_BYTES, middlewares=[error_middleware])
        app[CONTEXT] = self._context
        app[MANAGEMENT] = self._management
        add_graphql_routes(app)
        add_rest_routes(app)  # before the job routes: both live under /v2/
        add_job_routes(app, status_sync=self._status_sync, lenient_limits=self._lenient_limits)
        add_worker_routes(app)
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._port)
            try:
                await site.start()
            except OSError as exc:
                where = f"{self.host}:{self._port}"
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                self._start_error = OSError(exc.errno, f"cannot listen on {where}: {reason}")
                self._ready.set()
                return
            self._port = runner.addresses[0][1]
            self._supervisor.base_url = self.url
            self._serving = True
            self._ready.set()
            for endpoint in list(self._context.endpoints.values()):
                endpoint.start()  # their workers_min workers (endpoints made before the loop ran)
            await self._stop_event.wait()
            self._serving = False
            await self._shutdown()
        finally:
            await runner.cleanup()

    async def _shutdown(self) -> None:
        # SIGTERM first, then wake the long-polls: the SDK ends its loops on the next 204.
        self._supervisor.signal_all(signal.SIGTERM)
        for endpoint in self._context.endpoints.values():
            endpoint.close()
        await self._supervisor.stop_all()
        await self._webhooks.close()

    def _write_state_files(self) -> None:
        fd = os.open(self.api_key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self._api_key + "\n")
        os.chmod(self.api_key_file, 0o600)
        info = {
            "url": self.url,
            "job_api_url": self.job_api_url,
            "management_url": self.management_url,
            "pid": os.getpid(),
            "endpoints": self.endpoint_ids,
            "api_key_file": str(self.api_key_file),
            "logs_dir": str(self.logs_dir),
            "rate_limit_stats_url": self.rate_limit_stats_url,
        }
        (self.state_dir / "server.json").write_text(json.dumps(info, indent=2) + "\n")


def _default_endpoints_if(enabled: bool) -> list[EndpointConfig]:
    return _default_endpoints() if enabled else []


def serve(
    port: int = 8000,
    api_key: str | None = None,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    endpoints: Iterable[EndpointConfig] = (),
    default_endpoints: bool = True,
    on_ready: Callable[[LocalEndpoint], None] | None = None,
    result_retention_s: float | None = RUN_RESULT_RETENTION_S,
    lenient_limits: bool = False,
) -> None:
    """Run a LocalEndpoint until SIGINT/SIGTERM (for `rp-notebook local up`). Call from the main thread."""
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop_requested.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = LocalEndpoint(
        port,
        api_key,
        state_dir=state_dir,
        endpoints=endpoints,
        default_endpoints=default_endpoints,
        result_retention_s=result_retention_s,
        lenient_limits=lenient_limits,
    )
    try:
        server.start()
        if on_ready is not None:
            on_ready(server)
        while not stop_requested.wait(5.0):
            if not server.running:
                log.error("the local endpoint stopped unexpectedly")
                break
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
