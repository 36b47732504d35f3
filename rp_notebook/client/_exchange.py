"""One HTTP exchange on aiohttp, here or in a helper process: what the async transport sends through.

Why a helper process at all: in a Jupyter kernel the job manager's HTTP competes with the user's
cells for the kernel's interpreter. Measured with 500 instant jobs in flight (bench/README.md), the
round trip of a trivial cell had a p99 of ~40 ms with the HTTP in the kernel's process, ~23 ms with
the exchanges in a helper process (a client wholly outside the kernel: ~11 ms): aiohttp's request
path is most of the manager's CPU per job, and its short-lived objects bring on one full garbage
collection (30-45 ms with a kernel's heap) per few hundred jobs. Starting the helper only once many
requests are in flight was measured too and is worse than none: the burst is over, or mostly sent,
before a new interpreter has imported aiohttp (~0.3 s), and the start competes with it for the CPU.
So where a helper is wanted (`helper_wanted`: in a kernel, or as RP_NOTEBOOK_HTTP_HELPER says) the
transport starts it with its first request, in the background, and sends requests through it once
it has said it is ready; the requests before that go from the transport's own process. Elsewhere (a
script, the CLI, the tests' own processes) there are no cells to keep free and the process is saved.

The split: the helper does only the exchange (`Exchange` in, `Answered` or `NoAnswer` out). The
request budget, retries, the count of requests sent and the reading of an answer (`_http.answer`)
stay with the transport, so they are the same whichever process carried the bytes, and one
function, `exchange_here`, is the aiohttp call for both.

Protocol: frames (`rp_notebook._frames`: length-prefixed pickles) on the helper's stdin and
stdout, each side writing what one turn of its event loop produced in one write: `(number,
Exchange)` asks, `(number, None)` drops a request whose caller was cancelled, `(number, Answered |
NoAnswer)` answers, `(0, None)` says the helper is ready. The helper is this module, started from
`sys.executable`, so unpickling its answers is as safe as importing it. The API key travels only
inside the requests' headers on that pipe: never on the helper's command line or in its environment.

Lifetime: the helper exits when its stdin closes: the transport closed it, or the process that
started it is gone (killed too). It runs in a session of its own and ignores SIGINT, so a kernel's
interrupt (sent to the kernel's process group) stops the user's code, not the requests in flight.
If the helper dies first, every request waiting on it gets a
`NoAnswer` that does not claim it was never sent (it may have reached the server), which the
transport retries or reports like any broken connection, and the transport keeps its requests in
its own process from then on.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import pickle
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import _frames as framing
from ._http import decode_body

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "Answered",
    "Exchange",
    "HelperProcess",
    "NoAnswer",
    "exchange_here",
    "helper_main",
    "helper_wanted",
    "new_session",
]

log = logging.getLogger("rp_notebook")

_HELLO = 0  # the number of the helper's first frame: it is ready
# How much a pipe reader buffers before it stops reading: an answer of megabytes (audio in base64)
# then arrives in a few reads, not in one per 64 KiB.
_READ_CHUNK = 4 * 2**20


def helper_wanted() -> bool:
    """RP_NOTEBOOK_HTTP_HELPER=1 / 0 if set, else whether this process is a Jupyter kernel."""
    setting = os.environ.get("RP_NOTEBOOK_HTTP_HELPER", "").strip().lower()
    if setting:
        return setting not in ("0", "false", "no", "off")
    # Asked of modules already loaded: importing ipykernel to ask would cost ~0.3 s where it is not.
    zmqshell, ipython = sys.modules.get("ipykernel.zmqshell"), sys.modules.get("IPython")
    if zmqshell is None or ipython is None:
        return False
    return isinstance(ipython.get_ipython(), zmqshell.ZMQInteractiveShell)


class Exchange(NamedTuple):
    """One HTTP request as the transport has prepared it (headers carry the key: never log this)."""

    method: str
    url: str
    data: bytes | None
    params: dict[str, Any] | None
    headers: dict[str, str]
    read_timeout: float
    proxy: str | None


class Answered(NamedTuple):
    status: int
    body: Any  # as `_http.decode_body` gives it: decoded where the bytes arrived
    retry_after: str | None  # the Retry-After header as sent
    url: str  # the URL that answered (after redirects)


class NoAnswer(Exception):
    """No HTTP answer came: `reason` says why ("ServerDisconnectedError: ..."); `never_sent` is True
    only when the request provably never reached the server (connection refused, connect timeout)."""

    def __init__(self, reason: str, never_sent: bool) -> None:
        super().__init__(reason, never_sent)
        self.reason = reason
        self.never_sent = never_sent

    def __str__(self) -> str:
        return self.reason


async def exchange_here(session: aiohttp.ClientSession, request: Exchange) -> Answered:
    """Send `request` on `session` (in this process) and read its whole answer."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=request.read_timeout)
    try:
        async with session.request(
            request.method,
            request.url,
            data=request.data,
            params=request.params,
            headers=request.headers,
            timeout=timeout,
            proxy=request.proxy,
        ) as response:
            body = decode_body(await response.text())
            return Answered(response.status, body, response.headers.get("Retry-After"), str(response.url))
    except (TimeoutError, aiohttp.ClientError) as exc:
        never_sent = isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
        raise NoAnswer(f"{type(exc).__name__}: {exc}", never_sent) from None


def new_session(max_connections: int = 0) -> aiohttp.ClientSession:
    """The session both processes use: kept-alive connections, no per-request environment reads.
    max_connections: sockets kept open at once; 0 leaves it to the request budget."""
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=max_connections, limit_per_host=0, keepalive_timeout=60, ssl=_ssl_context()
        ),
        # Proxy and CA bundle are read once by the transport: aiohttp's trust_env reads them again on
        # every request, iterating os.environ, which measured as most of a request's CPU.
        trust_env=False,
    )


def _ssl_context() -> ssl.SSLContext | bool:
    """The bundle REQUESTS_CA_BUNDLE / SSL_CERT_FILE names (as requests honours them), or True where
    neither is set: the system's CAs in the verified context aiohttp built when it was imported.
    Building a context loads the CA store (~33 ms of CPU), so it is done once per process and bundle."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    return _bundle_context(bundle) if bundle else True


@functools.cache
def _bundle_context(bundle: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=bundle)


class _Frames:
    """Writes length-prefixed pickles, all those of one loop turn in one write."""

    def __init__(self, write: Any) -> None:
        self._write = write
        self._pending: list[bytes] = []

    def send(self, message: object) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(framing.encode(message))

    def _flush(self) -> None:
        data, self._pending = b"".join(self._pending), []
        self._write(data)


class HelperProcess:
    """The transport's side of one helper process. Use it on one event loop.

    `start()` launches it in the background; `ready` is True from its hello until it ends;
    `failed` is True once it could not start or ended on its own (no new start after that).
    """

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._frames: _Frames | None = None
        self._waiting: dict[int, asyncio.Future[Answered | NoAnswer]] = {}
        self._last_number = _HELLO
        self._started = False
        self._closing = False
        self.ready = False
        self.failed = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        if self._started or self.failed:
            return
        self._started = True
        task = asyncio.get_running_loop().create_task(self._run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def exchange(self, request: Exchange) -> Answered:
        """Send `request` through the helper (only while `ready`) and await its answer."""
        if not self.ready or self._frames is None:
            raise NoAnswer("HelperEnded: the HTTP helper process is not running", never_sent=True)
        self._last_number += 1
        number = self._last_number
        answer: asyncio.Future[Answered | NoAnswer] = asyncio.get_running_loop().create_future()
        self._waiting[number] = answer
        self._frames.send((number, request))
        try:
            outcome = await answer
        except asyncio.CancelledError:
            # The request is dropped here (a cancelled long-poll, a closing manager): drop it there
            # too, so the helper holds no request the budget no longer counts as in flight.
            if self._waiting.pop(number, None) is not None and self.ready:
                self._frames.send((number, None))
            raise
        if isinstance(outcome, NoAnswer):
            raise outcome
        return outcome

    async def aclose(self) -> None:
        self._closing = True
        self.ready = False
        process = self._process
        if process is None or process.returncode is not None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _run(self) -> None:
        root = str(Path(__file__).resolve().parents[2])  # so the helper imports this very rp_notebook
        if not sys.executable:  # an embedded interpreter: nothing to start a helper with
            self.failed = True
            return
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "import sys; sys.path.insert(0, sys.argv[1]); "
                "from rp_notebook.client._exchange import helper_main; helper_main()",
                root,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                # A session of its own: interrupting a kernel signals its whole process group
                # (jupyter_client's killpg), and a helper killed by that would cost the runs in
                # flight their answers.
                start_new_session=True,
                limit=_READ_CHUNK,
            )
        # NotImplementedError: a loop with no subprocesses, such as asyncio's selector loop on
        # Windows (the policy Jupyter tools often set there).
        except (OSError, NotImplementedError) as exc:
            self.failed = True
            log.warning(
                "rp_notebook: could not start the HTTP helper process (%s: %s); requests stay in this one",
                type(exc).__name__,
                exc,
            )
            return
        assert process.stdin is not None and process.stdout is not None
        self._process = process
        if self._closing:  # closed while it was starting
            process.stdin.close()
            await process.wait()
            return
        self._frames = _Frames(process.stdin.write)
        reason = "it closed its output"
        try:
            number, _ = await framing.read_async(process.stdout)
            if number == _HELLO and not self._closing:
                self.ready = True
            while True:
                number, outcome = await framing.read_async(process.stdout)
                answer = self._waiting.pop(number, None)
                if answer is not None and not answer.done():
                    answer.set_result(outcome)
        except (asyncio.IncompleteReadError, ConnectionError, pickle.UnpicklingError, ValueError) as exc:
            if not isinstance(exc, asyncio.IncompleteReadError):
                reason = f"{type(exc).__name__}: {exc}"
        except asyncio.CancelledError:  # the event loop is shutting down: not the helper's doing
            self._closing = True
            raise
        finally:
            self.ready = False
            if not self._closing:
                self.failed = True
                code = await _exit_code(process)
                log.warning(
                    "rp_notebook: the HTTP helper process ended (%s, exit code %s); requests stay in this one",
                    reason,
                    code,
                )
            waiting, self._waiting = self._waiting, {}
            lost = NoAnswer(f"HelperEnded: the HTTP helper process ended ({reason})", never_sent=False)
            for answer in waiting.values():
                if not answer.done():
                    answer.set_result(lost)


async def _exit_code(process: asyncio.subprocess.Process) -> int | None:
    try:
        return await asyncio.wait_for(process.wait(), 1)
    except TimeoutError:
        return None


def helper_main() -> None:
    """The helper process: answer `Exchange` frames from stdin on stdout until stdin closes."""
    asyncio.run(_serve(framing.child_stdio()))


async def _serve(frames_out: Any) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_READ_CHUNK)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, frames_out)
    frames = _Frames(transport.write)
    session = new_session()
    tasks: dict[int, asyncio.Task[None]] = {}

    async def answer(number: int, request: Exchange) -> None:
        outcome: Answered | NoAnswer
        try:
            outcome = await exchange_here(session, request)
        except NoAnswer as exc:
            outcome = exc
        finally:
            tasks.pop(number, None)
        frames.send((number, outcome))

    frames.send((_HELLO, None))
    try:
        while True:
            try:
                number, request = await framing.read_async(reader)
            except asyncio.IncompleteReadError:
                return  # stdin closed: the transport or its process is gone
            if request is None:  # the transport dropped that request
                if (dropped := tasks.pop(number, None)) is not None:
                    dropped.cancel()
                continue
            tasks[number] = loop.create_task(answer(number, request))
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        await session.close()
