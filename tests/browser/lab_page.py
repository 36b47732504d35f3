"""LabPage: a JupyterLab notebook tab driven like a person would, with waits that proved robust.

The selectors and waits follow shared/docs/browser-testing.md (JupyterLab 4.6):

- Every selector is scoped to the visible notebook panel (`PANEL`): a restored workspace can hold
  other tabs whose cells would match too. Each open uses its own workspace name with `?reset`.
- "Kernel ready" is the status bar's "<kernel> | Idle", not the toolbar indicator, which reads
  idle while the kernel is still starting.
- "All cells ran" is every code cell's prompt showing a number, and the kernel idle again. Run
  All stops at a cell that raises, so an error output (read from the notebook's model, where it
  differs from a warning on stderr) ends the wait at once with its message.
- A widget that fails to render says "Error displaying widget" where the widget should be; that
  is checked once no output still says "Loading widget...".
- Media checks run in the page: an <audio> is playable when its metadata loaded and it has a
  positive duration; an <img> is decoded when it is complete with a natural width. Waits use
  Playwright's auto-retrying `expect` and `wait_for_function`, never sleeps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from playwright.sync_api import Locator, Page, expect

PANEL = "#jp-main-dock-panel .jp-NotebookPanel:not(.lm-mod-hidden)"
KERNEL_IDLE = re.compile(r"Python 3 \(ipykernel\) \| Idle")
OPEN_S = 120
#: An <audio> whose metadata loaded (readyState >= HAVE_METADATA) and that lasts a while.
_AUDIO_PLAYABLE = "el => el.readyState >= 1 && Number.isFinite(el.duration) && el.duration > 0"
_IMAGE_DECODED = "el => el.complete && el.naturalWidth > 0 && el.naturalHeight > 0"
#: The visible notebook's error outputs, from its model (needs --LabApp.expose_app_in_browser).
_ERRORS = """() => {
    const notebook = window.jupyterapp?.shell.currentWidget?.content?.model;
    const errors = [];
    if (!notebook) return errors;
    for (let i = 0; i < notebook.cells.length; i++) {
        const cell = notebook.cells.get(i);
        if (cell.type !== 'code') continue;
        for (let j = 0; j < cell.outputs.length; j++) {
            const output = cell.outputs.get(j).toJSON();
            if (output.output_type === 'error') errors.push(`${output.ename}: ${output.evalue}`);
        }
    }
    return errors;
}"""


@dataclass
class Traffic:
    """What a page asked for (requests and websockets) and the errors it logged."""

    urls: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def outside_loopback(self) -> list[str]:
        """URLs that went anywhere but 127.0.0.1 (blob: and data: stay inside the page)."""
        outside = []
        for url in self.urls:
            parsed = urlparse(url)
            if parsed.scheme in ("blob", "data"):
                continue
            if parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname == "127.0.0.1":
                continue
            outside.append(url[:200])
        return outside

    def report(self) -> str:
        return (
            f"{len(self.urls)} requests and websockets\n\nconsole errors:\n"
            + "\n".join(self.console_errors)
            + "\n\npage errors:\n"
            + "\n".join(self.page_errors)
            + "\n"
        )


class LabPage:
    """One browser page showing one notebook in JupyterLab."""

    def __init__(self, page: Page, url: Callable[[str], str], artifacts: Path) -> None:
        self.page = page
        self._url = url
        self.artifacts = artifacts
        self.traffic = Traffic()
        page.set_default_timeout(60_000)
        page.add_init_script(f"window.rpNotebookErrors = {_ERRORS};")
        # On the context, so requests of the page's workers count too.
        page.context.on("request", lambda request: self.traffic.urls.append(request.url))
        page.on("websocket", lambda socket: self.traffic.urls.append(socket.url))
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.traffic.page_errors.append(str(error)))

    def _on_console(self, message: Any) -> None:
        if message.type == "error":
            self.traffic.console_errors.append(message.text)

    @property
    def panel(self) -> Locator:
        return self.page.locator(PANEL)

    def open(self, notebook: Path, workspace: str) -> None:
        """Open `notebook` (a file in the served folder) in a fresh workspace; wait for an idle kernel."""
        self.page.goto(self._url(f"/lab/workspaces/{workspace}/tree/{notebook.name}?reset"))
        expect(self.page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")).to_contain_text(
            notebook.name, timeout=OPEN_S * 1000
        )
        expect(self.panel.locator(".jp-Notebook .jp-Cell").first).to_be_visible(timeout=OPEN_S * 1000)
        self.wait_idle(OPEN_S)

    def save(self) -> None:
        """File ▸ Save (Ctrl+S), then wait until the tab no longer shows unsaved changes."""
        self.panel.locator(".jp-Notebook").first.click()
        self.page.keyboard.press("Control+s")
        expect(
            self.page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current.jp-mod-dirty")
        ).to_have_count(0, timeout=OPEN_S * 1000)

    def wait_idle(self, timeout_s: float) -> None:
        expect(self.page.locator(".jp-StatusBar-Widget", has_text=KERNEL_IDLE).first).to_be_visible(
            timeout=timeout_s * 1000
        )

    def run_all(self) -> None:
        """Run ▸ Run All Cells, through the menu bar as a person would."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        self.page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()

    def wait_all_ran(self, code_cells: int, timeout_s: float) -> None:
        """Every code cell shows an execution count, then the kernel is idle.

        JupyterLab's Run All stops at a cell that raises, so an error output ends the wait at once
        and fails with the error's text instead of a time-out.
        """
        self.page.wait_for_function(
            """([panel, n]) => {
                if (window.rpNotebookErrors().length) return true;
                const root = document.querySelector(panel);
                if (!root) return false;
                const prompts = [...root.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
                return prompts.length === n && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
            }""",
            arg=[PANEL, code_cells],
            timeout=timeout_s * 1000,
        )
        errors = self.error_outputs()
        assert not errors, f"a cell raised: {errors}"
        self.wait_idle(timeout_s)

    def error_outputs(self) -> list[str]:
        """Every error output of the notebook as "EName: message", read from the notebook's model
        (in the DOM a traceback and a warning on stderr look the same)."""
        return self.page.evaluate("window.rpNotebookErrors()")

    def widget_errors(self, timeout_s: float = 60) -> list[str]:
        """Cells whose widget output failed to render ("Error displaying widget: ..."), once every
        widget output has left its "Loading widget..." placeholder; each as "code line: error"."""
        outputs = self.panel.locator(".jp-OutputArea-output")
        expect(outputs.filter(has_text="Loading widget...")).to_have_count(0, timeout=timeout_s * 1000)
        failed = self.panel.locator(".jp-CodeCell").filter(
            has=self.page.locator(".jp-OutputArea-output", has_text="Error displaying widget")
        )
        return [
            f"{cell.locator('.jp-InputArea-editor').inner_text().strip().splitlines()[-1]}: "
            f"{cell.locator('.jp-OutputArea-output', has_text='Error displaying widget').first.inner_text()}"
            for cell in failed.all()
        ]

    def wait_playable(self, audio: Locator, timeout_s: float = 60) -> dict[str, Any]:
        """Wait until `audio` has loaded its metadata; returns its source scheme and duration."""
        handle = audio.element_handle(timeout=timeout_s * 1000)
        self.page.wait_for_function(_AUDIO_PLAYABLE, arg=handle, timeout=timeout_s * 1000)
        return handle.evaluate(
            "el => ({src: (el.currentSrc || el.src).slice(0, 30), duration: el.duration,"
            " readyState: el.readyState})"
        )

    def wait_decoded(self, images: Locator, timeout_s: float = 60) -> list[dict[str, Any]]:
        """Wait until every image of `images` is decoded; returns their sources and sizes."""
        found = []
        for index in range(images.count()):
            handle = images.nth(index).element_handle(timeout=timeout_s * 1000)
            self.page.wait_for_function(_IMAGE_DECODED, arg=handle, timeout=timeout_s * 1000)
            found.append(
                handle.evaluate(
                    "el => ({src: el.src.slice(0, 30), width: el.naturalWidth, height: el.naturalHeight})"
                )
            )
        return found

    def screenshot(self, name: str, target: Locator | None = None) -> Path:
        """A PNG under the artifacts folder: the element `target`, or the whole viewport."""
        path = self.artifacts / f"{name}.png"
        if target is None:
            self.page.screenshot(path=str(path))
        else:
            target.scroll_into_view_if_needed()
            target.screenshot(path=str(path))
        return path


def code_cell_count(notebook: Path) -> int:
    return sum(cell["cell_type"] == "code" for cell in json.loads(notebook.read_text())["cells"])
