"""What a newcomer meets first in a notebook, in a real IPython shell over real HTTP: `%runpod local
start|stop` and the settings it swaps, help for every command, errors that say `%runpod local
start`, image URLs checked before a job is sent, and `%runpod use` refusing an unknown endpoint."""

from __future__ import annotations

import io
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from helpers import wav_bytes
from IPython.core.error import UsageError
from PIL import Image

from rp_notebook import Job, LayersResult, _api
from rp_notebook._inputs import MAX_VOICE_URL_BYTES, prepare_input
from rp_notebook.config import configure, current_settings, login
from rp_notebook.errors import ConfigurationError, InputError
from rp_notebook.models import LAYERS, TTS

pytestmark = pytest.mark.timeout(120)

KEY = "fake_SECRETSECRETSECRET_0123456789"
#: Nothing listens here: a request sent there would end in a TransportError, not the error expected.
NOWHERE = "http://127.0.0.1:9/v2"


@pytest.fixture
def local_stopped_after():
    """Stop a local endpoint a test started, and forget that one was stopped (process-wide state)."""
    yield
    _api.stop_local()
    _api._stopped = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- 1. %runpod local stop puts the settings back ---------------------------------------------------


def test_local_stop_sends_the_next_tts_to_the_endpoint_configured_before_start(
    ip, use_local, capsys, local_stopped_after
):
    # The session's local server stands in for "the real endpoint", configured as a user would.
    before = current_settings()
    started = ip.run_line_magic("runpod", "local start")
    assert "local endpoint at" in repr(started)
    during = current_settings()
    assert during.endpoint_base_url != before.endpoint_base_url and during.api_key != before.api_key

    ip.run_line_magic("runpod", "local stop")
    out = capsys.readouterr().out
    assert f"jobs go to {use_local.job_api_url} again" in out and "tts on local-tts" in out
    after = current_settings()
    assert (after.api_key, after.endpoint_base_url, after.api_base_url, dict(after.endpoints)) == (
        before.api_key,
        before.endpoint_base_url,
        before.api_base_url,
        dict(before.endpoints),
    )
    job = ip.run_line_magic("runpod", 'tts "Back on the configured endpoint."')
    job.result(timeout=90)  # the endpoint started by `local start` is gone: only the first could answer
    assert use_local.job("local-tts", job.id) is not None


def test_after_local_stop_with_nothing_configured_tts_says_the_local_endpoint_was_stopped_and_how_to_restart(
    ip, capsys, local_stopped_after
):
    ip.run_line_magic("runpod", "local start")
    ip.run_line_magic("runpod", "local stop")
    assert "no other endpoint is configured: %runpod local start starts it again" in capsys.readouterr().out
    assert current_settings().api_key is None and not current_settings().endpoints
    with pytest.raises(ConfigurationError) as caught:
        ip.run_line_magic("runpod", 'tts "Anyone there?"')
    message = str(caught.value)
    assert "local endpoint was stopped" in message and "%runpod local start starts it again" in message
    assert "Connection" not in message


def test_a_job_api_still_set_to_a_stopped_local_endpoint_is_refused_with_how_to_start_one(
    ip, monkeypatch, local_stopped_after
):
    ip.run_line_magic("runpod", "local start")
    server = _api.local_endpoint()
    assert server is not None
    # e.g. a .env written while it ran: not a setting `local start` made, so `local stop` leaves it
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", server.job_api_url)
    monkeypatch.setenv("RUNPOD_API_KEY", server.api_key)
    monkeypatch.setenv("RP_NOTEBOOK_TTS_ENDPOINT", "local-tts")
    ip.run_line_magic("runpod", "local stop")
    with pytest.raises(ConfigurationError) as caught:
        ip.run_line_magic("runpod", 'tts "hi"')
    assert f"The local endpoint at {server.job_api_url} was stopped" in str(caught.value)
    assert "%runpod local start starts a new one" in str(caught.value)


def test_a_key_typed_in_while_the_local_endpoint_ran_is_kept_by_local_stop(ip, local_stopped_after):
    configure(endpoint_base_url="http://runpod.example/v2", endpoints={"layers": "ep-layers"})
    ip.run_line_magic("runpod", "local start")
    login(KEY)  # the login panel, while the local endpoint serves
    ip.run_line_magic("runpod", "local stop")
    settings = current_settings()
    assert settings.api_key is not None and settings.api_key.reveal() == KEY
    assert settings.endpoint_base_url == "http://runpod.example/v2"
    assert dict(settings.endpoints) == {"layers": "ep-layers"}  # tts: back to none


# -- 2. %runpod local start --port N -----------------------------------------------------------------


def test_local_start_listens_on_the_port_given_and_a_second_start_says_where_it_runs(
    ip, capsys, local_stopped_after
):
    port = free_port()
    ip.run_line_magic("runpod", f"local start --port {port}")
    url = f"http://127.0.0.1:{port}"
    assert current_settings().endpoint_base_url == f"{url}/v2"
    key = current_settings().api_key
    assert key is not None
    health = requests.get(
        f"{url}/v2/local-tts/health", headers={"Authorization": f"Bearer {key.reveal()}"}, timeout=10
    )
    assert health.status_code == 200
    capsys.readouterr()
    ip.run_line_magic("runpod", "local start")
    assert f"already running at {url}" in capsys.readouterr().out
    ip.run_line_magic("runpod", f"local start --port {port + 1 if port < 65535 else port - 1}")
    assert "%runpod local stop, then %runpod local start --port" in capsys.readouterr().out


@pytest.mark.parametrize("port", ["0", "65536", "-5", "eighty"])
def test_local_start_refuses_a_port_outside_1_to_65535(ip, port):
    with pytest.raises(UsageError, match=rf"--port: expected a port number from 1 to 65535, got '{port}'"):
        ip.run_line_magic("runpod", f"local start --port={port}")
    assert _api.local_endpoint() is None


def test_local_start_refuses_a_port_in_use_naming_it(ip, local_stopped_after):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError, match=rf"port {port} is in use on 127.0.0.1"):
            ip.run_line_magic("runpod", f"local start --port {port}")
    assert _api.local_endpoint() is None and current_settings().api_key is None


# -- 3. help -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("--help", "%runpod local start [--port N]"),
        ("-h", "usage: %runpod tts"),
        ("help", "usage: %runpod layers"),
        ("tts --help", "--exaggeration EXAGGERATION"),
        ("tts -h", "usage: %runpod tts"),
        ("layers --help", "--resolution RESOLUTION"),
        ("local --help", "--port N"),
        ("help local", "usage: %runpod local"),
        ("use --help", "usage: %runpod use"),
        ("jobs --help", "usage: %runpod jobs"),
    ],
)
def test_help_is_printed_for_the_magic_and_each_command_without_an_error(ip, capsys, line, shown):
    configure(api_key=KEY, endpoint_base_url=NOWHERE, endpoints={"tts": "ep", "layers": "ep"})
    assert ip.run_line_magic("runpod", line) is None
    captured = capsys.readouterr()
    assert shown in captured.out and "Traceback" not in captured.out + captured.err


# -- 4. messages name %runpod local start ---------------------------------------------------------------


def test_a_magic_run_with_no_api_key_says_runpod_local_start_not_the_python_call(ip):
    configure(endpoints={"tts": "ep"})
    with pytest.raises(ConfigurationError) as caught:
        ip.run_line_magic("runpod", 'tts "hi"')
    assert "No Runpod API key" in str(caught.value)
    assert "%runpod local start" in str(caught.value) and "rp_notebook.start_local()" not in str(caught.value)


# -- 5. image URLs -------------------------------------------------------------------------------------


def png_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk that claim a canvas of width x height (no pixel data)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


OVERSIZE = _api.MAX_IMAGE_URL_BYTES + 1


class _Files(BaseHTTPRequestHandler):
    """Serves FILES (path -> content type, body), with byte ranges; /huge* stream OVERSIZE bytes."""

    FILES: dict[str, tuple[str, bytes]] = {}

    def log_message(self, *args: object) -> None:  # keep the test output quiet
        return None

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, *, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path.startswith("/huge"):
            self._huge(body=body, say_length=path == "/huge.png")
            return
        if path not in self.FILES:
            self.send_error(404, "Not Found")
            return
        content_type, data = self.FILES[path]
        status, first, last = 200, 0, len(data) - 1
        ranged = self.headers.get("Range", "")
        if ranged.startswith("bytes="):
            start, _, end = ranged[6:].partition("-")
            status, first, last = 206, int(start), min(int(end or last), last)
            if first > last:
                self.send_error(416, "Range Not Satisfiable")
                return
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(last - first + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
        self.end_headers()
        if body:
            self.wfile.write(data[first : last + 1])

    def _huge(self, *, body: bool, say_length: bool) -> None:
        """A PNG of OVERSIZE bytes; without a length (`/huge-unsized.png`) only reading tells its size."""
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        if say_length:
            self.send_header("Content-Length", str(OVERSIZE))
        self.end_headers()
        if not body:
            return
        self.close_connection = True
        head = png_header_claiming(640, 480)
        block = bytes(1 << 20)
        try:
            self.wfile.write(head)
            sent = len(head)
            while sent < OVERSIZE:
                piece = block[: OVERSIZE - sent]
                self.wfile.write(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading, as it should


@pytest.fixture(scope="module")
def files() -> Iterator[str]:
    _Files.FILES = {
        "/pic.png": ("image/png", png_bytes()),
        "/pic-no-type": ("application/octet-stream", png_bytes()),
        "/notes.txt": ("text/plain; charset=utf-8", b"hello, not a picture\n" * 10),
        "/page.png": ("text/html", b"<!doctype html><title>Sign in</title>"),
        "/empty.png": ("image/png", b""),
        "/vast.png": ("image/png", png_header_claiming(8000, 8000)),
        "/voice.wav": ("audio/wav", wav_bytes(0.1)),
        "/voice-unsniffed.m4a": ("audio/mp4", b"\x00\x00\x00\x20ftypM4A " + bytes(64)),
        "/voice-page.wav": ("audio/wav", b"<!doctype html><title>Sign in</title>"),
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/missing.png", "could not be downloaded from {url}/missing.png: HTTP 404"),
        ("/notes.txt", "{url}/notes.txt is not an image: its content type is text/plain"),
        ("/page.png", "{url}/page.png is not an image: its content type is text/html"),
        ("/empty.png", "{url}/empty.png is empty"),
        ("/huge.png", "{url}/huge.png is 64.0 MB, over the 64 MB limit"),
        ("/huge-unsized.png", "{url}/huge-unsized.png is over the 64 MB limit"),
        ("/vast.png", "is 8000x8000 (64.0 megapixels); the limit is 16.8 megapixels"),
    ],
)
def test_an_image_url_that_is_missing_not_an_image_or_too_large_is_refused_before_the_job_is_sent(
    ip, files, path, words
):
    configure(api_key=KEY, endpoint_base_url=NOWHERE, endpoints={"layers": "ep"})
    with pytest.raises(InputError) as caught:
        ip.run_line_magic("runpod", f"layers {files}{path}?X-Amz-Signature=secret")
    assert caught.value.field == "image"
    assert words.format(url=files) in str(caught.value)
    assert "secret" not in str(caught.value)  # a presigned URL's query is a credential


def test_the_url_size_limit_is_the_one_the_layers_worker_downloads_with():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "workers" / "qwen_image_layered" / "layers_images.py"
    spec = importlib.util.spec_from_file_location("layers_images_for_limit", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.MAX_IMAGE_DOWNLOAD_BYTES == _api.MAX_IMAGE_URL_BYTES


def test_an_unreachable_image_url_is_refused_naming_the_url(ip):
    configure(api_key=KEY, endpoint_base_url=NOWHERE, endpoints={"layers": "ep"})
    url = f"http://127.0.0.1:{free_port()}/photo.png"
    with pytest.raises(InputError, match=rf"image: could not be downloaded from {url}: ConnectionError"):
        ip.run_line_magic("runpod", f"layers {url}")


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/missing.wav", "could not be downloaded from {url}/missing.wav: HTTP 404"),
        ("/pic.png", "{url}/pic.png is not an audio file: its content type is image/png"),
        ("/voice-page.wav", "{url}/voice-page.wav is not an audio file: its content type is audio/wav"),
        ("/empty.png", "{url}/empty.png is empty"),
    ],
)
def test_a_voice_url_that_is_missing_or_not_audio_is_refused_before_the_job_is_sent(files, path, words):
    configure(api_key=KEY, endpoint_base_url=NOWHERE, endpoints={"tts": "ep"})
    with pytest.raises(InputError) as caught:
        _api.tts("Hello.", voice=f"{files}{path}?X-Amz-Signature=secret")
    assert caught.value.field == "voice"
    assert words.format(url=files) in str(caught.value)
    assert "secret" not in str(caught.value)  # a presigned URL's query is a credential


@pytest.mark.parametrize("path", ["/voice.wav", "/voice-unsniffed.m4a"])
def test_a_voice_url_of_audio_is_sent_as_the_url(files, path):
    url = f"{files}{path}"
    assert prepare_input(TTS, {"text": "Hello.", "voice": url})["voice"] == url


def test_the_voice_url_size_limit_is_the_one_the_tts_worker_downloads_with(monkeypatch):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "workers" / "chatterbox_tts" / "tts_audio.py"
    spec = importlib.util.spec_from_file_location("tts_audio_for_limit", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    assert module.MAX_VOICE_DOWNLOAD_BYTES == MAX_VOICE_URL_BYTES


def test_a_png_url_is_checked_then_sent_as_the_url_and_the_worker_splits_it(ip, use_local, files):
    job = ip.run_line_magic("runpod", f"layers {files}/pic.png --layers 2")
    assert isinstance(job, Job)
    result = job.result(timeout=100)
    assert isinstance(result, LayersResult) and len(result) == 2
    # A picture served as octet-stream is told by its first bytes.
    _api.prepare_input(LAYERS, {"image": f"{files}/pic-no-type"})


# -- 6. %runpod use checks the endpoint ---------------------------------------------------------------


def test_use_refuses_an_endpoint_the_job_api_does_not_know_naming_the_id_and_url(ip, use_local):
    before = current_settings().endpoints.get("tts")
    with pytest.raises(InputError) as caught:
        ip.run_line_magic("runpod", "use no-such-endpoint as tts --session-only")
    message = str(caught.value)
    assert "no-such-endpoint" in message and f"{use_local.job_api_url}/no-such-endpoint/health" in message
    assert "404" in message and current_settings().endpoints.get("tts") == before


def test_use_accepts_an_endpoint_the_job_api_knows(ip, use_local, capsys):
    ip.run_line_magic("runpod", "use echo as tts --session-only")
    assert current_settings().endpoints["tts"] == "echo"
    assert "tts now uses endpoint echo" in capsys.readouterr().out
