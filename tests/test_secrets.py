"""The API key never leaks: not into a file others can read, widget state, outputs, logs or messages.

Three layers are tried with real parts:

- the .env writer: the file's mode, how it is created (the `os.open` flags and mode recorded as it
  happens, under the most permissive umask) and published (the temporary file's mode at the rename);
- the login panel on real ipywidgets objects: the key arrives as a frontend's `update` message, the
  button is clicked, then the widget state (also the whole manager state that Jupyter embeds in a
  saved notebook) and every comm message the kernel sent are searched for the key;
- real kernels (nbclient) executing the tutorials and a login-flow notebook with distinct fake keys
  in the environment, saved with nbformat: the saved files, and everything the kernels wrote to
  rp_notebook's config and data folders, are searched for the key, plain and base64 at any offset.

Where the server itself quotes the key back (a proxy page, an error that echoes the request), a
small stdlib HTTP server stands in for it, since Runpod's cloud cannot be made to do that here.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import ipywidgets as widgets
import nbformat
import pytest
from helpers import all_widget_state
from nbclient import NotebookClient

import rp_notebook
from rp_notebook.config import (
    Secret,
    configure,
    current_settings,
    login,
    reset_configuration,
    save_api_key,
)
from rp_notebook.errors import APIError, ConfigurationError, ProvisioningError, RunpodError
from rp_notebook.widgets import LoginPanel

REPO = Path(__file__).resolve().parents[1]
KEY = "secret-key-not-real-7f3a9c2e41b8d605"
TUTORIALS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LOGIN_NOTEBOOK = REPO / "tests" / "fixtures" / "notebooks" / "login_flow.ipynb"


# -- how a key is looked for ---------------------------------------------------------------------------


def key_forms(key: str) -> dict[str, str]:
    """The key as text, hex, and base64 (standard and URL-safe) at each of the 3 byte offsets.

    Inside a larger base64 stream (an audio player's data: URL, a widget's buffers) the key's
    characters depend on where it starts modulo 3, and the groups at its two ends mix with the
    bytes around it; so each form keeps only the groups made of key bytes alone.
    """
    raw = key.encode()
    forms = {"plain": key, "hex": raw.hex()}
    for offset in range(3):
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            text = encode(b"\0" * offset + raw).decode()
            forms[f"{name}@{offset}"] = text[4 if offset else 0 : -4]
    return forms


def traces_of(key: str, data: bytes) -> list[str]:
    """Which forms of `key` occur in `data`, also once line breaks and JSON's escaped ones are gone."""
    text = data.decode("utf-8", errors="replace")
    squashed = "".join(text.replace("\\n", "").replace("\\r", "").split())
    return [name for name, form in key_forms(key).items() if form in text or form in squashed]


def test_the_scan_finds_the_key_plain_in_hex_and_in_base64_at_every_offset():
    assert all(len(form) >= 16 for form in key_forms(KEY).values())  # long enough to mean something
    assert traces_of(KEY, b"nothing here " * 100) == []
    assert traces_of(KEY, f'{{"text": "key {KEY}"}}'.encode()) == ["plain"]
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            payload = encode(os.urandom(30 + offset) + KEY.encode() + os.urandom(7)).decode()
            wrapped = "\\n".join(
                payload[i : i + 76] for i in range(0, len(payload), 76)
            )  # JSON-escaped lines
            assert traces_of(KEY, f'{{"image/png": "{wrapped}"}}'.encode()), (offset, encode)


# -- the .env file ---------------------------------------------------------------------------------------


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_save_api_key_writes_a_0600_dotenv_that_keeps_its_other_lines_and_is_read_back(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("# mine\nRP_NOTEBOOK_TTS_ENDPOINT=abc123\nexport RUNPOD_API_KEY=old-key-not-real\n")
    dotenv.chmod(0o644)  # a world-readable file from before is replaced by a private one
    assert save_api_key(KEY, dotenv) == dotenv
    assert mode_of(dotenv) == 0o600
    lines = dotenv.read_text().splitlines()
    assert lines[:2] == ["# mine", "RP_NOTEBOOK_TTS_ENDPOINT=abc123"]
    assert [line for line in lines if "RUNPOD_API_KEY" in line] == [f"RUNPOD_API_KEY='{KEY}'"]
    settings = current_settings(cwd=tmp_path, home=tmp_path)
    assert settings.api_key == Secret(KEY) and settings.sources["RUNPOD_API_KEY"] == ".env"
    assert settings.endpoints == {"tts": "abc123"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]  # no temporary file left behind


def test_the_dotenv_is_created_private_and_published_by_one_rename_whatever_the_umask(tmp_path, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text("OTHER=1\n")
    opened: list[tuple[str, int, int]] = []
    renamed: list[tuple[int, str, str]] = []
    widened: list[int] = []
    real_open, real_replace, real_chmod = os.open, os.replace, os.chmod

    def recording_open(path, flags, mode=0o777, *args, **kwargs):
        if str(path).startswith(str(tmp_path)) and flags & os.O_CREAT:
            opened.append((str(path), flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    def recording_replace(src, dst, *args, **kwargs):
        # The moment the key becomes visible under the real name: what does the file look like?
        renamed.append((mode_of(Path(src)), Path(src).read_text(), Path(dst).read_text()))
        return real_replace(src, dst, *args, **kwargs)

    def recording_chmod(path, mode, *args, **kwargs):
        widened.append(mode)
        return real_chmod(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    monkeypatch.setattr(os, "replace", recording_replace)
    monkeypatch.setattr(os, "chmod", recording_chmod)
    old_umask = os.umask(0)  # the most permissive umask: the mode must not depend on it
    try:
        save_api_key(KEY, dotenv)
    finally:
        os.umask(old_umask)
    assert len(opened) == 1, opened  # one new file, created private and exclusive
    path, flags, mode = opened[0]
    assert Path(path).parent == tmp_path and Path(path).name != ".env"
    assert flags & os.O_EXCL and mode == 0o600
    assert widened == []
    [(temp_mode, temp_text, old_text)] = renamed
    assert temp_mode == 0o600 and KEY in temp_text and KEY not in old_text
    assert mode_of(dotenv) == 0o600 and KEY in dotenv.read_text()


def test_save_api_key_replaces_a_planted_link_instead_of_writing_through_it(tmp_path):
    elsewhere = tmp_path / "shared.txt"
    elsewhere.write_text("someone else's file\n")
    elsewhere.chmod(0o644)
    dotenv = tmp_path / ".env"
    dotenv.symlink_to(elsewhere)
    save_api_key(KEY, dotenv)
    assert elsewhere.read_text() == "someone else's file\n"
    assert not dotenv.is_symlink() and mode_of(dotenv) == 0o600


# -- login() and the key's own checks --------------------------------------------------------------------


def test_login_uses_the_key_in_this_process_only_and_says_where_it_came_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = login(f"  {KEY}\n")  # a paste with a line break
    assert settings.api_key == Secret(KEY) and settings.sources["RUNPOD_API_KEY"] == "login"
    assert list(tmp_path.iterdir()) == []  # nothing written without save_to
    assert KEY not in repr(settings) and KEY not in str(settings)
    configure(api_key="another-key-not-real")
    assert current_settings().sources["RUNPOD_API_KEY"] == "configure()"
    reset_configuration()
    # (cwd and home: a developer's own .env or ~/.runpod must not decide this test)
    assert current_settings(cwd=tmp_path, home=tmp_path).api_key is None


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        (f"{KEY} {KEY}", "spaces"),
        (f"{KEY}\n{KEY}", "line breaks"),
        (f"{KEY}\u2019", "ASCII"),
        (f"{KEY}\x07", "ASCII"),
    ],
)
def test_a_malformed_key_is_refused_without_being_quoted(typed, words, tmp_path):
    with pytest.raises(ConfigurationError, match=words) as caught:
        login(typed, save_to=tmp_path / ".env")
    assert KEY not in str(caught.value) and KEY[:8] not in str(caught.value)
    assert not (tmp_path / ".env").exists() and current_settings(cwd=tmp_path, home=tmp_path).api_key is None


def test_a_runpod_cli_file_is_a_key_source_and_every_repr_masks_the_key(tmp_path):
    (tmp_path / ".runpod").mkdir()
    (tmp_path / ".runpod/config.toml").write_text(f'[default]\napi_key = "{KEY}"\n')
    settings = current_settings(cwd=tmp_path, home=tmp_path)
    assert settings.api_key.reveal() == KEY
    assert settings.sources["RUNPOD_API_KEY"] == "~/.runpod/config.toml"
    for shown in (repr(settings), str(settings), repr(settings.api_key), f"{settings.api_key}"):
        assert KEY not in shown
    assert settings.redact(f"echo: Bearer {KEY}") == "echo: Bearer ********"


# -- the login panel -------------------------------------------------------------------------------------


@pytest.fixture
def panel(tmp_path) -> Iterator[LoginPanel]:
    made = LoginPanel(dotenv_path=tmp_path / ".env", save=True)
    yield made
    made.close()


def record_messages(*controls: widgets.Widget) -> list[dict]:
    """Every comm message these widgets send to the frontend, from now on."""
    sent: list[dict] = []
    for control in controls:
        control.comm.send = lambda data=None, metadata=None, buffers=None: sent.append(data)
    return sent


def type_into(field: widgets.Widget, text: str) -> None:
    """What a frontend does when the user types and leaves the field: an `update` comm message."""
    field._handle_msg(
        {
            "content": {"data": {"method": "update", "state": {"value": text}, "buffer_paths": []}},
            "buffers": [],
        }
    )


def everything_in(panel: LoginPanel) -> Iterator[widgets.Widget]:
    yield panel
    for child in panel.children:
        yield from everything_in(child) if isinstance(child, widgets.Box) else (child,)


def test_the_login_panel_never_holds_the_key_in_widget_state_after_the_click(panel, tmp_path):
    sent = record_messages(*everything_in(panel))
    type_into(panel.key_field, KEY)
    assert panel.key_field.value == KEY
    assert not any(KEY in json.dumps(message) for message in sent)  # not echoed to other frontends
    panel.button.click()

    assert panel.key_field.value == ""
    for widget in everything_in(panel):
        assert KEY not in json.dumps(widget.get_state(), default=str)
    # What Jupyter embeds in a saved notebook: the state of every live widget.
    assert KEY not in json.dumps(all_widget_state(), default=str)
    assert {"method": "update", "state": {"value": ""}, "buffer_paths": []} in sent  # the frontend is emptied
    assert not any(KEY in json.dumps(message) for message in sent)
    assert KEY not in repr(panel) and KEY not in panel.status.value
    assert "set for this kernel" in panel.status.value and "mode 0600" in panel.status.value

    assert current_settings().api_key == Secret(KEY)
    assert current_settings().sources["RUNPOD_API_KEY"] == "login"
    dotenv = tmp_path / ".env"
    assert mode_of(dotenv) == 0o600 and f"RUNPOD_API_KEY='{KEY}'" in dotenv.read_text()


def test_a_plain_password_field_would_echo_the_key_which_is_why_the_panel_uses_its_own():
    plain = widgets.Password()
    sent = record_messages(plain)
    type_into(plain, KEY)
    assert any(KEY in json.dumps(message) for message in sent)
    plain.close()


@pytest.mark.parametrize("typed", ["", f"{KEY}\n{KEY}"])
def test_the_field_is_emptied_even_when_the_key_is_refused(panel, tmp_path, typed):
    type_into(panel.key_field, typed)
    panel.button.click()
    assert panel.key_field.value == ""
    assert "rp-error" in panel.status.value and KEY not in panel.status.value
    assert current_settings(cwd=tmp_path, home=tmp_path).api_key is None and not (tmp_path / ".env").exists()


def test_without_save_the_panel_writes_nothing(tmp_path):
    panel = LoginPanel(dotenv_path=tmp_path / ".env")
    type_into(panel.key_field, KEY)
    panel.button.click()
    assert current_settings().api_key == Secret(KEY) and list(tmp_path.iterdir()) == []
    panel.close()


def test_the_panel_magic_offers_the_login_panel(ip):
    panel = ip.run_line_magic("runpod", "panel login")
    assert isinstance(panel, LoginPanel) and repr(panel) == "LoginPanel()"
    panel.close()


# -- messages and logs when a server quotes the key back -------------------------------------------------


class _QuotingServer(BaseHTTPRequestHandler):
    """Answers every request by quoting its Authorization header back, as a careless proxy or an
    error page that echoes the request would. The endpoint id picks the answer: quote-401 -> 401."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        quoted = self.headers.get("Authorization", "")
        if self.path.startswith("/graphql"):
            status, body = 200, {"errors": [{"message": f"the key {quoted} may not do this"}]}
        else:
            answer = self.path.split("/")[2].rsplit("-", 1)[1]
            if answer == "html":
                status, body = 200, f"<html>proxy login page for {quoted}</html>"
            else:
                status, body = int(answer), {"error": f"refused: {quoted}"}
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        return None


@pytest.fixture(scope="module")
def quoting_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _QuotingServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def expect_error(call) -> RunpodError:
    with pytest.raises(RunpodError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 500])
def test_an_error_that_quotes_the_key_back_is_shown_with_the_key_masked(quoting_server, status, caplog):
    caplog.set_level(logging.DEBUG)
    configure(api_key=KEY, endpoint_base_url=f"{quoting_server}/v2")
    error = expect_error(lambda: rp_notebook.tts("hi", endpoint=f"quote-{status}"))
    assert isinstance(error, APIError) and error.status_code == status
    # The server's text is kept with the key masked (a 5xx to a run may be reworded: it is ambiguous).
    assert "refused: Bearer ********" in str(error) or status >= 500
    for shown in (str(error), repr(error), "".join(error._render_traceback_()), caplog.text):
        assert KEY not in shown


def test_a_non_json_answer_that_quotes_the_key_is_shown_with_the_key_masked(quoting_server):
    configure(api_key=KEY, endpoint_base_url=f"{quoting_server}/v2")
    error = expect_error(lambda: rp_notebook.tts("hi", endpoint="quote-html"))
    assert "proxy login page" in str(error) and KEY not in str(error)


def test_a_graphql_error_that_quotes_the_key_is_shown_with_the_key_masked(quoting_server):
    from rp_notebook.provisioning import Provisioner

    configure(api_key=KEY, api_base_url=quoting_server)
    with Provisioner() as provisioner:
        error = expect_error(lambda: provisioner.endpoints(health=False))
    assert isinstance(error, ProvisioningError) and "may not do this" in str(error)
    assert KEY not in str(error)


@pytest.mark.timeout(180)
def test_the_logs_of_a_real_job_and_of_refused_requests_never_hold_the_key(use_local, caplog):
    local_key = use_local.api_key
    caplog.set_level(logging.DEBUG)  # everything: rp_notebook, aiohttp, urllib3, the local server
    # Importing the runpod SDK (other tests do, in this process) sets urllib3's logger to WARNING.
    caplog.set_level(logging.DEBUG, logger="urllib3")
    # The job manager's requests go through aiohttp; the provisioning client's through urllib3.
    rp_notebook.get_manager().client().health("local-tts")  # one request through urllib3 as well
    speech = rp_notebook.tts("Logged.", format="flac").result(timeout=120)
    assert speech.format == "flac"
    configure(api_key=KEY)  # the local endpoint refuses this one
    error = expect_error(lambda: rp_notebook.tts("Refused."))
    assert "401" in str(error)
    records = caplog.records
    assert any(record.name.startswith("urllib3") for record in records)  # the capture did see requests
    logged = caplog.text + "".join(str(record.args) for record in records)
    for key in (KEY, local_key):
        assert traces_of(key, logged.encode()) == []
        assert key not in str(error) and key not in repr(error)


# -- real kernels, saved notebooks -----------------------------------------------------------------------


def execute_and_save(notebook: Path, workdir: Path) -> Path:
    """Run `notebook` in a fresh kernel in `workdir`, keep widget state, save it; return the saved file."""
    copy = workdir / notebook.name
    shutil.copy(notebook, copy)
    node = nbformat.read(copy, as_version=4)
    client = NotebookClient(
        node,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
        store_widget_state=True,
    )
    client.execute()
    saved = workdir / f"executed-{notebook.name}"
    nbformat.write(node, saved)
    return saved


@pytest.mark.timeout(600)
@pytest.mark.parametrize("notebook", [*TUTORIALS, LOGIN_NOTEBOOK], ids=lambda path: path.stem)
def test_an_executed_and_saved_notebook_holds_no_trace_of_the_key(notebook, monkeypatch):
    workdir = Path(tempfile.mkdtemp(prefix="rp-secrets-nb-"))
    # A key of its own for each notebook and role, so a trace could only come from this run.
    env_key = f"env-key-not-real-{notebook.stem.replace('_', '-')}-{os.urandom(6).hex()}"
    typed_key = f"typed-key-not-real-{os.urandom(8).hex()}"
    monkeypatch.setenv("RUNPOD_API_KEY", env_key)
    monkeypatch.setenv("RP_NOTEBOOK_TEST_LOGIN_KEY", typed_key)
    monkeypatch.setenv("RP_NOTEBOOK_CONFIG_DIR", str(workdir / "config"))
    monkeypatch.setenv("RP_NOTEBOOK_DATA_DIR", str(workdir / "data"))
    monkeypatch.setenv("RP_NOTEBOOK_TEST_LOGIN_DIR", str(workdir / "login"))
    try:
        saved = execute_and_save(notebook, workdir)
        node = nbformat.read(saved, as_version=4)
        widget_state = node.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json")
        shows_widgets = any(
            "application/vnd.jupyter.widget-view+json" in output.get("data", {})
            for cell in node.cells
            for output in cell.get("outputs", [])
        )
        if shows_widgets:  # then their state must have been saved, or the scan below proves little
            assert widget_state and widget_state["state"], "the kernel's widget state was not saved"
        for key in (env_key, typed_key):
            assert traces_of(key, saved.read_bytes()) == [], saved
            assert traces_of(key, json.dumps(widget_state or {}).encode()) == []
            # Whatever the kernel wrote: the job ledger, saved results, user config, the notebook's files.
            for written in workdir.rglob("*"):
                if written.is_file() and written.name != ".env" and written != saved:
                    assert traces_of(key, written.read_bytes()) == [], written
        if notebook == LOGIN_NOTEBOOK:
            # The keys were really there to leak: the kernel saw the environment's key, and the
            # typed one opened the local endpoint, which accepts no other.
            text = saved.read_text()
            assert "RUNPOD_API_KEY   set  (environment)" in text and "AuthenticationError" in text
            assert "field emptied; key from login" in text and "wav True" in text
            dotenv = workdir / "login" / ".env"  # the panel saved the typed key, privately
            assert mode_of(dotenv) == 0o600 and typed_key in dotenv.read_text()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
