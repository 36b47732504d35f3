"""The async client's TLS trust: the CA bundle the environment names (REQUESTS_CA_BUNDLE, then
SSL_CERT_FILE, as requests honours them) is what an HTTPS answer is checked against, in the
transport's own process and in its HTTP helper process alike; with neither set, the system's CAs.

Against a real HTTPS server (aiohttp, a certificate from a private CA made by trustme), so a
certificate the client does not trust is refused by the real TLS handshake.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from rp_notebook.client._exchange import Exchange, HelperProcess, NoAnswer, exchange_here, new_session

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[trustme.CA, Path]]:
    ca = trustme.CA()
    pem = tmp_path_factory.mktemp("ca") / "private-ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    yield ca, pem


def _exchange(url: str) -> Exchange:
    return Exchange("GET", url, None, None, {"Accept": "application/json"}, 10.0, None)


async def _with_https_server(ca: trustme.CA, client: Any) -> Any:
    """Run `client(url)` against an HTTPS server whose certificate `ca` signed."""

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"workers": {"idle": 1}})

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        return await client(f"https://127.0.0.1:{port}/health")
    finally:
        await runner.cleanup()


async def _here(url: str) -> Any:
    session = new_session()
    try:
        return (await exchange_here(session, _exchange(url))).body
    except NoAnswer as refused:
        return refused
    finally:
        await session.close()


async def _through_helper(url: str) -> Any:
    helper = HelperProcess()
    helper.start()
    try:
        for _ in range(1500):
            if helper.ready or helper.failed:
                break
            await asyncio.sleep(0.02)
        assert helper.ready, "the HTTP helper process never became ready"
        try:
            return (await helper.exchange(_exchange(url))).body
        except NoAnswer as refused:
            return refused
    finally:
        await helper.aclose()


@pytest.mark.parametrize("where", [_here, _through_helper], ids=["in-process", "helper-process"])
@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_the_ca_bundle_the_environment_names_is_trusted(private_ca, monkeypatch, where, variable):
    ca, pem = private_ca
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv(variable, str(pem))

    assert asyncio.run(_with_https_server(ca, where)) == {"workers": {"idle": 1}}


@pytest.mark.parametrize("where", [_here, _through_helper], ids=["in-process", "helper-process"])
def test_a_certificate_from_a_ca_nobody_named_is_refused_before_anything_is_sent(
    private_ca, monkeypatch, where
):
    ca, _ = private_ca
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)

    refused = asyncio.run(_with_https_server(ca, where))

    assert isinstance(refused, NoAnswer)
    assert "certificate verify failed" in refused.reason
    assert refused.never_sent  # the handshake failed: the request never reached the server
