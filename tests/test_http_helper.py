"""The async transport's helper process (`rp_notebook.client._exchange`), against the real local endpoint.

Where a helper is wanted, the first request starts one and requests go through it once it is ready;
what must hold: the answers and errors are the ones the transport gives in its own process, a helper
is started only where wanted, a helper that dies mid-request costs no answer silently (idempotent
calls are retried here, a run is not re-sent), one that cannot start leaves the requests in this
process with one warning, the key is on neither its command line nor its environment, and it does
not outlive the process that started it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually, http_helpers_of

from rp_notebook.client._async_http import AsyncHTTPTransport
from rp_notebook.client._exchange import helper_wanted
from rp_notebook.config import Settings
from rp_notebook.errors import AuthenticationError, NotFoundError, TransportError
from rp_notebook.local import EndpointConfig, LocalEndpoint

ECHO = Path(__file__).resolve().parent / "fixtures" / "workers" / "echo"

pytestmark = pytest.mark.timeout(120)


def _settings(server: LocalEndpoint, key: str | None = None) -> Settings:
    from rp_notebook.config import Secret

    return Settings(api_key=Secret(key or server.api_key), endpoint_base_url=server.job_api_url)


async def _until_helper_serves(transport: AsyncHTTPTransport) -> None:
    """Send a request (which starts a helper with helper=True) and wait until the helper is ready."""
    await transport.request("GET", "echo/health", idempotent=True)
    deadline = time.monotonic() + 30
    while transport.helper_pid is None:
        assert time.monotonic() < deadline, "the helper process never became ready"
        await asyncio.sleep(0.02)


def _with_transport(
    server: LocalEndpoint, helper: bool, body: Callable[[AsyncHTTPTransport], Awaitable[Any]]
) -> Any:
    async def main() -> Any:
        transport = AsyncHTTPTransport(_settings(server), server.job_api_url, helper=helper)
        try:
            return await body(transport)
        finally:
            await transport.aclose()

    return asyncio.run(main())


def _api_calls(transport: AsyncHTTPTransport) -> Awaitable[dict[str, Any]]:
    async def calls() -> dict[str, Any]:
        job = await transport.request("POST", "echo/run", body={"input": {"n": 3}}, idempotent=False)
        done = await transport.request(
            "POST", f"echo/status-sync/{job['id']}", params={"wait": 20_000}, idempotent=True
        )
        errors = {}
        for name, path in (("unknown job", "echo/status/no-such-job"), ("unknown endpoint", "nope/health")):
            try:
                await transport.request("GET", path, idempotent=True)
            except NotFoundError as exc:
                errors[name] = (type(exc).__name__, exc.status_code, exc.endpoint_id, exc.job_id)
        return {"run": sorted(job), "done": (done["status"], done["output"]), "errors": errors}

    return calls()


def test_requests_through_the_helper_process_are_answered_as_they_are_in_this_one(local_server):
    async def through_helper(transport: AsyncHTTPTransport) -> tuple[dict[str, Any], int]:
        await _until_helper_serves(transport)
        carried = transport.requests_via_helper
        calls = await _api_calls(transport)
        return calls, transport.requests_via_helper - carried

    async def here(transport: AsyncHTTPTransport) -> dict[str, Any]:
        return await _api_calls(transport)

    helper_answers, carried = _with_transport(local_server, True, through_helper)
    own_answers = _with_transport(local_server, False, here)

    assert carried == 4  # run, status-sync, two refused lookups: all carried by the helper
    assert helper_answers == own_answers
    assert helper_answers["done"][0] == "COMPLETED" and helper_answers["done"][1]["echo"] == {"n": 3}
    assert helper_answers["errors"]["unknown job"] == ("NotFoundError", 404, "echo", "no-such-job")


def test_an_answer_of_megabytes_comes_through_the_helper_whole(local_server):
    async def main(transport: AsyncHTTPTransport) -> tuple[int, int]:
        await _until_helper_serves(transport)
        job = await transport.request(
            "POST", "echo/run", body={"input": {"audio_kb": 6000}}, idempotent=False
        )
        done = await transport.request(
            "POST", f"echo/status-sync/{job['id']}", params={"wait": 30_000}, idempotent=True
        )
        assert done["status"] == "COMPLETED"
        return len(base64.b64decode(done["output"]["audio"])), transport.requests_via_helper

    size, carried = _with_transport(local_server, True, main)
    assert size == 6000 * 1024 and carried == 2


def test_a_manager_closed_while_its_helper_starts_leaves_no_helper_behind(local_server):
    async def main(transport: AsyncHTTPTransport) -> None:
        await transport.request("GET", "echo/health", idempotent=True)  # starts the helper
        await asyncio.sleep(0.05)  # its process is being created, or importing
        await transport.aclose()

    assert http_helpers_of(os.getpid()) == []
    _with_transport(local_server, True, main)
    eventually(lambda: http_helpers_of(os.getpid()) == [], timeout=10)


def test_a_refused_key_is_reported_through_the_helper_without_the_key(local_server):
    wrong = "rpa_WRONGKEY0123456789"

    async def main() -> str:
        transport = AsyncHTTPTransport(_settings(local_server, wrong), local_server.job_api_url, helper=True)
        try:
            with pytest.raises(AuthenticationError):  # the first request, in this process
                await transport.request("GET", "echo/health", idempotent=True)
            while transport.helper_pid is None:
                await asyncio.sleep(0.02)
            with pytest.raises(AuthenticationError) as refused:
                await transport.request("GET", "echo/health", idempotent=True)
            assert transport.requests_via_helper == 1
            return str(refused.value)
        finally:
            await transport.aclose()

    message = asyncio.run(main())
    assert "401" in message and wrong not in message


def test_a_helper_is_wanted_in_a_kernel_or_where_the_setting_asks(monkeypatch):
    class KernelShell:  # stands in for ipykernel's ZMQInteractiveShell
        pass

    shell: object = object()  # a terminal IPython, or none
    monkeypatch.setitem(
        sys.modules, "ipykernel.zmqshell", types.SimpleNamespace(ZMQInteractiveShell=KernelShell)
    )
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    monkeypatch.delenv("RP_NOTEBOOK_HTTP_HELPER", raising=False)
    assert not helper_wanted()  # a script, the CLI, a terminal IPython
    shell = KernelShell()
    assert helper_wanted()  # a Jupyter kernel
    for off in ("0", "off", "false"):
        monkeypatch.setenv("RP_NOTEBOOK_HTTP_HELPER", off)
        assert not helper_wanted()
    shell = object()
    monkeypatch.setenv("RP_NOTEBOOK_HTTP_HELPER", "1")
    assert helper_wanted()


def test_a_transport_told_not_to_use_a_helper_starts_none(local_server):
    async def main(transport: AsyncHTTPTransport) -> None:
        polls = [transport.request("GET", "echo/health", idempotent=True) for _ in range(20)]
        await asyncio.gather(*polls)
        await asyncio.sleep(1.0)  # a helper would have said it is ready by now
        await transport.request("GET", "echo/health", idempotent=True)
        assert transport.helper_pid is None and transport.requests_via_helper == 0

    _with_transport(local_server, False, main)


@pytest.fixture
def slow_server():
    server = LocalEndpoint(port=0).start()
    server.add_endpoint(EndpointConfig(id="echo", worker_dir=ECHO, workers_max=1))
    yield server
    server.stop()


def test_a_helper_killed_mid_request_loses_no_answer_silently(slow_server, caplog):
    """A long-poll cut by the helper's death is retried here and answers; a run cut the same way is
    reported as maybe delivered, never re-sent; later requests stay in this process."""

    async def main(transport: AsyncHTTPTransport) -> None:
        await _until_helper_serves(transport)
        pid = transport.helper_pid
        assert pid is not None
        job = await transport.request("POST", "echo/run", body={"input": {"sleep": 1.0}}, idempotent=False)
        slow_server.faults.set(slow=1.0, slow_s=3.0, routes=["run"])
        poll = asyncio.ensure_future(
            transport.request(
                "POST", f"echo/status-sync/{job['id']}", params={"wait": 20_000}, idempotent=True
            )
        )
        run = asyncio.ensure_future(
            transport.request("POST", "echo/run", body={"input": {"n": 1}}, idempotent=False)
        )
        await asyncio.sleep(0.5)  # both are out, through the helper
        sent_before_kill = transport.requests_sent
        os.kill(pid, signal.SIGKILL)

        with pytest.raises(TransportError) as cut:
            await run
        assert cut.value.maybe_delivered and "helper" in str(cut.value)
        assert (await poll)["status"] == "COMPLETED"  # retried, in this process
        assert transport.requests_sent == sent_before_kill + 1  # the poll's retry; the run not re-sent
        assert transport.helper_pid is None
        slow_server.faults.clear()
        carried = transport.requests_via_helper
        assert (await transport.request("GET", "echo/health", idempotent=True)) is not None
        assert transport.requests_via_helper == carried

    _with_transport(slow_server, True, main)
    assert any("HTTP helper process ended" in r.getMessage() for r in caplog.records)


def test_where_no_helper_can_be_started_the_requests_stay_in_this_process_with_one_warning(
    local_server, monkeypatch, caplog
):
    async def no_subprocesses(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError  # as asyncio's selector event loop on Windows does

    monkeypatch.setattr(asyncio, "create_subprocess_exec", no_subprocesses)

    async def main(transport: AsyncHTTPTransport) -> None:
        for _ in range(3):
            assert (await transport.request("GET", "echo/health", idempotent=True)) is not None
            await asyncio.sleep(0.1)
        assert transport.helper_pid is None
        assert transport.requests_sent == 3 and transport.requests_via_helper == 0

    _with_transport(local_server, True, main)
    warned = [r for r in caplog.records if "could not start the HTTP helper" in r.getMessage()]
    assert len(warned) == 1


def test_the_api_key_is_on_neither_the_helpers_command_line_nor_its_environment(local_server, monkeypatch):
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)

    async def main(transport: AsyncHTTPTransport) -> tuple[bytes, bytes]:
        await _until_helper_serves(transport)
        pid = transport.helper_pid
        return Path(f"/proc/{pid}/cmdline").read_bytes(), Path(f"/proc/{pid}/environ").read_bytes()

    cmdline, environ = _with_transport(local_server, True, main)
    assert b"_exchange" in cmdline  # it is the helper
    key = local_server.api_key.encode()
    assert key not in cmdline and key not in environ


_PARENT = textwrap.dedent(
    """
    import asyncio, sys
    from rp_notebook.client._async_http import AsyncHTTPTransport
    from rp_notebook.config import Secret, Settings

    async def main():
        settings = Settings(api_key=Secret(sys.argv[2]), endpoint_base_url=sys.argv[1])
        transport = AsyncHTTPTransport(settings, sys.argv[1], helper=True)
        await transport.request("GET", "echo/health", idempotent=True)
        while transport.helper_pid is None:
            await asyncio.sleep(0.02)
        print(transport.helper_pid, flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_the_helper_does_not_outlive_the_process_that_started_it(local_server):
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, local_server.job_api_url, local_server.api_key],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        helper_pid = int(parent.stdout.readline())
        assert _alive(helper_pid)
        parent.kill()  # SIGKILL: no clean-up runs in the parent
        parent.wait(10)
        eventually(lambda: not _alive(helper_pid), timeout=10)
    finally:
        parent.kill()
