"""The tutorials in a real browser: JupyterLab, Debian's Chromium, the local endpoint, real clicks.

The nbval runs prove the notebooks' Python; these prove what a person sees. Each test opens a
tutorial in JupyterLab, runs every cell through the Run menu, and checks the rendered page:

- audio results become <audio> elements whose media the browser decodes (metadata loads, the
  duration is positive), whether embedded as data: URLs or handed over by a widget as blob: URLs;
- the TTS panel's Generate button, clicked in the page, sends the text typed in the page through
  the kernel to the local endpoint, and the job's card joins the panel's history and ends as a player;
- the job card in each state (failed, cancelled, running with progress, queued, done), screenshotted;
- the layer galleries' images decode, a toggle clicked in the page changes the composite, and a
  picture uploaded through the layers panel's file chooser comes back as a gallery;
- the jobs panel lists the job started by the click;
- the page never talks to anything but 127.0.0.1 (no widget CDN, fonts or telemetry).

Screenshots land in test-artifacts/browser/.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from lab_page import LabPage, code_cell_count
from PIL import Image, ImageDraw
from playwright.sync_api import Locator, expect

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

#: Running a whole tutorial on 2 shared cores: starting workers and speaking takes a while.
RUN_ALL_S = 300
JOB_S = 150
TYPED_TEXT = "Typed in a real browser and spoken by the local worker."


def test_quickstart_results_play_live_and_after_save_reload_without_kernel_and_in_the_html_export(
    notebook_page: LabPage, lab, tmp_path: Path
):
    notebook = lab.root / "01_quickstart.ipynb"
    notebook_page.open(notebook, "quickstart")
    notebook_page.run_all()
    notebook_page.wait_all_ran(code_cell_count(notebook), RUN_ALL_S)
    panel = notebook_page.panel
    assert notebook_page.widget_errors() == []

    # `speech`: an AudioResult, and the two job cards' results: each one <audio> with the clip
    # embedded as a data: URL (the streaming player of the second job gave way to it at the end).
    cards = panel.locator(".rp-job-card")
    expect(cards).to_have_count(2)
    for index in range(2):
        expect(cards.nth(index).locator(".rp-chip")).to_have_attribute(
            "data-status", "COMPLETED", timeout=JOB_S * 1000
        )
        expect(cards.nth(index).locator("audio")).to_have_count(1)
    audio = panel.locator(".rp-notebook-audio audio")
    expect(audio).to_have_count(3)
    for index in range(3):
        played = notebook_page.wait_playable(audio.nth(index))
        assert played["src"].startswith("data:audio/") and played["duration"] > 1
    expect(panel.locator(".rp-stream-player")).to_have_count(0)
    notebook_page.screenshot("quickstart-notebook")
    notebook_page.screenshot("job-card-done", cards.nth(1))
    assert notebook_page.traffic.outside_loopback() == []

    # Saved, kernel shut down, page reloaded: every result still there, no "model not found".
    _save_and_reopen_without_kernel(notebook_page, lab, panel.locator(".rp-job-card-static"), 2)
    saved = notebook.read_text()
    assert "rp-job-card" in saved and WIDGET_VIEW not in saved
    audio = panel.locator(".rp-notebook-audio audio")
    expect(audio).to_have_count(3)
    for index in range(3):
        assert notebook_page.wait_playable(audio.nth(index))["duration"] > 1
    notebook_page.screenshot("quickstart-reopened-without-kernel")

    # The nbconvert HTML export of the saved file, in the same browser.
    export = tmp_path / "quickstart.html"
    subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "html", str(notebook), "--output", str(export)],
        check=True,
        capture_output=True,
    )
    page = notebook_page.page
    page.goto(export.as_uri())
    exported = page.locator(".rp-notebook-audio audio")
    expect(exported).to_have_count(3)
    for index in range(3):
        assert notebook_page.wait_playable(exported.nth(index))["duration"] > 1
    assert page.get_by_text("model not found").count() == 0
    notebook_page.screenshot("quickstart-nbconvert-export")


def test_panels_notebook_generate_click_adds_a_playable_player_and_galleries_decode(
    notebook_page: LabPage, lab, tmp_path: Path
):
    notebook = lab.root / "04_panels_and_batches.ipynb"
    notebook_page.open(notebook, "panels")
    notebook_page.run_all()
    notebook_page.wait_all_ran(code_cell_count(notebook), RUN_ALL_S)
    panel, page = notebook_page.panel, notebook_page.page
    assert notebook_page.widget_errors() == []

    # The TTS panel's history holds the card of the job the notebook started with generate().
    tts = panel.locator(".rp-tts-panel")
    expect(tts).to_have_count(1)
    entries = tts.locator(".rp-tts-entry.rp-job-card")
    expect(entries).to_have_count(1, timeout=JOB_S * 1000)

    # Type a new text and click Generate: the browser -> kernel -> endpoint -> kernel -> browser trip.
    # The job's card joins the history at the click and turns into one player when the job ends.
    tts.locator("textarea").fill(TYPED_TEXT)
    tts.locator("button.rp-tts-generate").click()
    expect(entries).to_have_count(2, timeout=JOB_S * 1000)
    newest = entries.first  # the history is newest first
    expect(newest).to_contain_text(TYPED_TEXT[:40])
    expect(newest.locator(".rp-chip")).to_have_attribute("data-status", "COMPLETED", timeout=JOB_S * 1000)
    player = newest.locator("audio")
    expect(player).to_have_count(1)
    expect(player).to_have_attribute("src", re.compile(r"^data:audio/"))
    assert notebook_page.wait_playable(player)["duration"] > 1
    expect(tts.locator(".rp-tts-status .rp-status")).to_have_attribute("data-status", "COMPLETED")
    clicked_job = newest.locator("code[data-job-id]").get_attribute("data-job-id") or ""
    assert clicked_job
    notebook_page.screenshot("panels-tts-panel", tts)

    # The notebook's layers_many result: a gallery of decoded layer thumbnails and a composite.
    gallery = panel.locator(".rp-layers-gallery:not(.rp-layers-panel .rp-layers-gallery)")
    expect(gallery).to_have_count(1)
    toggles = gallery.locator(".rp-layer-toggle")
    layer_count = toggles.count()
    assert layer_count >= 2
    images = gallery.locator("img.widget-image")
    expect(images).to_have_count(layer_count + 1)  # the layers and the composite
    decoded = notebook_page.wait_decoded(images)
    assert all(image["src"].startswith("blob:") and image["width"] > 0 for image in decoded)

    # A toggle clicked in the page recomposes the preview in the kernel: a new image arrives.
    composite = gallery.locator("img.rp-layers-composite")
    before = composite.get_attribute("src")
    toggles.first.click()
    expect(composite).not_to_have_attribute("src", before or "")
    notebook_page.wait_decoded(composite)
    notebook_page.screenshot("panels-layers-gallery", gallery)

    # The layers panel: pick a picture through the file chooser, click Generate, get a gallery.
    picture = tmp_path / "upload.png"
    _draw_picture(picture)
    layers = panel.locator(".rp-layers-panel")
    with page.expect_file_chooser() as chooser:
        layers.locator(".rp-layers-upload").click()
    chooser.value.set_files(str(picture))
    expect(layers.locator(".rp-layers-image-name")).to_contain_text("upload.png")
    notebook_page.wait_decoded(layers.locator("img.rp-layers-input"))
    layers.locator("button.rp-layers-generate").click()
    entry = layers.locator(".rp-layers-entry.rp-job-card")
    expect(entry).to_have_count(1, timeout=JOB_S * 1000)
    panel_toggles = entry.locator(".rp-layer-toggle")
    expect(panel_toggles.first).to_be_visible(timeout=JOB_S * 1000)
    panel_images = entry.locator("img.widget-image")
    expect(panel_images).to_have_count(panel_toggles.count() + 1)
    assert all(image["width"] > 0 for image in notebook_page.wait_decoded(panel_images))
    notebook_page.screenshot("panels-layers-panel", layers)

    # The jobs panel lists the job the Generate click started, as done; Open shows its card.
    jobs = panel.locator(".rp-jobs-panel")
    expect(jobs).to_have_count(1)
    row = jobs.locator(".rp-jobs-row", has_text=clicked_job[:18])
    expect(row.locator(".rp-status")).to_have_attribute("data-status", "COMPLETED", timeout=30_000)
    row.locator("button.rp-jobs-open").click()
    opened_card = jobs.locator(".rp-jobs-result .rp-job-card")
    expect(opened_card.locator(f"code[data-job-id='{clicked_job}']")).to_have_count(1)
    opened = opened_card.locator("audio")
    expect(opened).to_have_attribute("src", re.compile(r"^data:audio/"))
    assert notebook_page.wait_playable(opened)["duration"] > 1
    notebook_page.screenshot("panels-jobs-panel", jobs)

    notebook_page.screenshot("panels-notebook")
    assert notebook_page.traffic.outside_loopback() == []

    # Saved and reopened without a kernel: each panel is one line, the galleries are images.
    _save_and_reopen_without_kernel(notebook_page, lab, panel.locator(".rp-notebook-saved-panel"), 3)
    static_layers = panel.locator(".rp-notebook-layers img")
    assert static_layers.count() >= 3
    assert all(image["width"] > 0 for image in notebook_page.wait_decoded(static_layers))
    notebook_page.screenshot("panels-reopened-without-kernel")


#: A notebook that puts one job in each state the card shows, on the test echo worker (one worker, so
#: a job submitted while another waits for the gate stays queued).
CARD_STATES_CELLS = [
    "%load_ext rp_notebook\n"
    "from pathlib import Path\n"
    "import rp_notebook\n"
    "from rp_notebook.jobs import get_manager\n"
    "from rp_notebook.local import EndpointConfig\n"
    "server = rp_notebook.start_local()\n"
    "server.add_endpoint(EndpointConfig(id='echo', worker_dir=Path({echo!r}), workers_max=1))\n"
    "gate = Path('gate').resolve()\n"
    "jobs = get_manager()",
    "failed = jobs.submit('echo', {{'raise': 'CUDA out of memory (as a worker reports it)'}})\n"
    "failed.exception(timeout=120)\n"
    "failed",
    "cancelled = jobs.submit('echo', {{'wait_for_file': str(gate) + '.never', 'sleep': 1}})\n"
    "cancelled.cancel()\n"
    "cancelled",
    "running = jobs.submit('echo', {{'progress': [{{'step': 3, 'steps': 8}}], 'wait_for_file': str(gate)}})\n"
    "running",
    "queued = jobs.submit('echo', {{'text': 'waits for the one worker'}})\nqueued",
]


def test_the_job_card_in_each_state_failed_cancelled_running_queued_then_done(notebook_page: LabPage, lab):
    notebook = lab.root / "job_card_states.ipynb"
    echo = str(Path(__file__).resolve().parents[1] / "fixtures" / "workers" / "echo")
    cells = [nbformat.v4.new_code_cell(source.format(echo=echo)) for source in CARD_STATES_CELLS]
    kernel = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": kernel}), notebook)
    notebook_page.open(notebook, "card-states")
    notebook_page.run_all()
    notebook_page.wait_all_ran(len(cells), RUN_ALL_S)
    assert notebook_page.widget_errors() == []
    cards = notebook_page.panel.locator(".rp-job-card:not(.rp-job-card-static)")
    expect(cards).to_have_count(4)
    failed, cancelled, running, queued = (cards.nth(index) for index in range(4))

    # Each card: the chip's state and words, and the buttons that state offers.
    expect(failed.locator(".rp-chip")).to_have_attribute("data-status", "FAILED", timeout=JOB_S * 1000)
    expect(failed.locator(".rp-job-error")).to_contain_text("CUDA out of memory")
    expect(failed.locator("button.rp-job-retry")).to_be_visible()
    expect(failed.locator("button.rp-job-cancel")).to_be_hidden()
    expect(cancelled.locator(".rp-chip")).to_have_attribute("data-status", "CANCELLED", timeout=JOB_S * 1000)
    expect(cancelled.locator("button.rp-job-retry")).to_be_visible()
    expect(running.locator(".rp-chip")).to_have_attribute("data-status", "IN_PROGRESS", timeout=JOB_S * 1000)
    expect(running.locator(".rp-chip")).to_contain_text(re.compile(r"running \d+(\.\d+)? s"))
    expect(running.locator(".rp-job-progress")).to_be_visible(timeout=JOB_S * 1000)
    expect(running).to_contain_text("step 3 of 8")
    expect(running.locator("button.rp-job-cancel")).to_be_visible()
    expect(queued.locator(".rp-chip")).to_have_attribute("data-status", "IN_QUEUE")
    expect(queued.locator(".rp-chip")).to_contain_text("queued")
    for name, card in (
        ("failed", failed),
        ("cancelled", cancelled),
        ("running", running),
        ("queued", queued),
    ):
        notebook_page.screenshot(f"job-card-{name}", card)

    # The gate opens: the running job ends, the queued one runs, both cards say done.
    (lab.root / "gate").touch()
    for card in (running, queued):
        expect(card.locator(".rp-chip")).to_have_attribute("data-status", "COMPLETED", timeout=JOB_S * 1000)
        expect(card.locator("button.rp-job-cancel")).to_be_hidden()
        expect(card.locator(".rp-job-progress")).to_be_hidden()
    notebook_page.screenshot("job-card-states")


def _save_and_reopen_without_kernel(notebook_page: LabPage, lab, kept: Locator, count: int) -> None:
    """Save (Ctrl+S), shut the kernel down, reload the page: `count` of `kept` show, no widget errors."""
    notebook_page.save()
    lab.stop_kernels()
    notebook_page.page.reload()
    expect(kept).to_have_count(count, timeout=60_000)
    expect(notebook_page.panel.get_by_text("model not found")).to_have_count(0)
    expect(notebook_page.panel.get_by_text("Error displaying widget")).to_have_count(0)


def _draw_picture(path: Path) -> None:
    picture = Image.new("RGB", (240, 160), (120, 180, 230))
    draw = ImageDraw.Draw(picture)
    draw.rectangle([0, 110, 240, 160], fill=(70, 140, 60))
    draw.ellipse([170, 20, 220, 70], fill=(250, 220, 80))
    picture.save(path)
