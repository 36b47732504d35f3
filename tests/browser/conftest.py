"""Fixtures for the real-browser tests: JupyterLab on 127.0.0.1, Debian's Chromium driven by Playwright.

Design (the setup proven in shared/docs/browser-testing.md):

- The browser is the system's `/usr/bin/chromium` (Debian's package), never one that Playwright
  downloads: `playwright install` needs a CDN this machine cannot reach. `.ci/run` installs it.
  Where it is missing the tests fail with a message saying how to install it; a developer may
  skip them instead with RP_NOTEBOOK_SKIP_BROWSER_TESTS=1, which CI (CI set) ignores.
- JupyterLab serves *copies* of the tutorials from a temporary folder: it autosaves open
  notebooks, and the executed copies must never overwrite the reference outputs in notebooks/.
  Its config, runtime and settings live in that folder too (news, update checks and toasts off;
  every cell kept in the DOM). The kernels it starts inherit this process's environment, so the
  throwaway config and data folders set by tests/conftest.py apply to them as well.
- One server and one browser serve the whole session; each test gets a fresh browser context,
  and afterwards every kernel session is deleted (closing a page does not stop its kernel).
- The page's requests are recorded: the tests assert that nothing left 127.0.0.1 (no widget CDN,
  no fonts, no telemetry); blob: and data: URLs are how widgets hand media to <audio> and <img>.
- The JupyterLab log and the screenshots go to test-artifacts/browser/ (gitignored), for a person
  to look at after a run, failed or not.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from lab_page import LabPage

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = Path(os.environ.get("RP_NOTEBOOK_CHROMIUM", "/usr/bin/chromium"))
SKIP_ENV = "RP_NOTEBOOK_SKIP_BROWSER_TESTS"
#: The tutorials the browser tests open; copied, never opened in place.
SERVED = ("01_quickstart.ipynb", "04_panels_and_batches.ipynb")
#: Flags from browser-testing.md: no sandbox (root), no GPU, no background traffic to Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
]
LAB_START_S = 90


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives JupyterLab in Debian's headless Chromium (part of the normal run)"
    )


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The Chromium executable, or a failure (a skip only where a developer asked for one)."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if os.environ.get(SKIP_ENV) == "1" and not _in_ci():
        pytest.skip(f"{CHROMIUM} is not installed and {SKIP_ENV}=1 asks to skip the browser tests")
    pytest.fail(
        f"{CHROMIUM} is not installed. Install Debian's Chromium "
        "(`DEBIAN_FRONTEND=noninteractive apt-get install -y chromium`; .ci/run does this), "
        f"or set {SKIP_ENV}=1 to skip the browser tests on this machine (CI ignores it)",
        pytrace=False,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_lab_settings(config_dir: Path) -> None:
    settings = config_dir / "lab" / "user-settings" / "@jupyterlab"
    files = {
        # No news or update checks (they would fetch from the internet), no toasts over the UI.
        "apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
            "doNotDisturbMode": True,
        },
        # Every cell stays in the DOM, so selectors see outputs that are scrolled out of view.
        "notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    }
    for name, value in files.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


@dataclass
class Lab:
    """A running JupyterLab: its URL, token and the folder it serves."""

    base: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def url(self, path: str) -> str:
        separator = "&" if "?" in path else "?"
        return f"{self.base}{path}{separator}token={self.token}"

    def stop_kernels(self) -> None:
        for session in requests.get(f"{self.base}/api/sessions", headers=self.headers, timeout=10).json():
            requests.delete(f"{self.base}/api/sessions/{session['id']}", headers=self.headers, timeout=30)


# Module scope, not session: while sync_playwright() is open, its event loop counts as running in the
# main thread, and every later test that calls asyncio.run() would fail.
@pytest.fixture(scope="module")
def lab(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on a free loopback port, serving copies of the tutorials."""
    home = tmp_path_factory.mktemp("jupyterlab")
    root = home / "notebooks"
    root.mkdir()
    for name in SERVED:
        shutil.copy(NOTEBOOKS / name, root / name)
    config = home / "config"
    _write_lab_settings(config)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "jupyterlab.log"
    port, token = _free_port(), os.urandom(16).hex()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        "--allow-root",  # CI runs as root, and jupyter refuses root without it
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        "--LabApp.expose_app_in_browser=True",
    ]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Lab(f"http://127.0.0.1:{port}", token, root, process, log)
    try:
        _wait_until_up(server)
        yield server
    finally:
        _stop(server)


def _wait_until_up(server: Lab) -> None:
    deadline = time.monotonic() + LAB_START_S
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {server.process.returncode}; see {server.log}")
        try:
            if requests.get(server.url("/api/status"), timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"jupyter lab did not answer within {LAB_START_S} s; see {server.log}")
        time.sleep(0.25)


def _stop(server: Lab) -> None:
    process = server.process
    if process.poll() is None:
        try:
            requests.post(f"{server.base}/api/shutdown", headers=server.headers, timeout=10)
            process.wait(timeout=20)
        except (requests.RequestException, subprocess.TimeoutExpired):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(process.pid, sig)
                    process.wait(timeout=10)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue


@pytest.fixture(scope="module")
def browser(chromium: Path, lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Headless Debian Chromium, launched by Playwright through its pipe (no debugging port)."""
    from playwright.sync_api import sync_playwright

    profile_home = tmp_path_factory.mktemp("chromium-home")
    # Chromium writes crash reports and caches under HOME even with a temporary profile.
    env = {
        **os.environ,
        "HOME": str(profile_home),
        "XDG_CONFIG_HOME": str(profile_home / "config"),
        "XDG_CACHE_HOME": str(profile_home / "cache"),
    }
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS, env=env
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def notebook_page(browser: object, lab: Lab, request: pytest.FixtureRequest) -> Iterator[LabPage]:
    """A fresh page in its own browser context, with its traffic recorded (see `LabPage`)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1700})  # type: ignore[attr-defined]
    lab_page = LabPage(context.new_page(), lab.url, ARTIFACTS)
    try:
        yield lab_page
    finally:
        (ARTIFACTS / f"{request.node.name}.console.txt").write_text(lab_page.traffic.report())
        context.close()
        lab.stop_kernels()
