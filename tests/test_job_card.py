"""The job card (rp_notebook.views.JobCard) and what a saved notebook keeps of it.

Real jobs on the session's local endpoint (the echo worker, the TTS worker's CPU engine), real
ipywidgets objects, a real Jupyter Server contents manager for the save.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import ipywidgets as widgets
import nbformat
import pytest
from helpers import eventually
from jupyter_server.services.contents.filemanager import FileContentsManager

import rp_notebook
from rp_notebook import saved_notebooks
from rp_notebook.jobs import get_manager
from rp_notebook.saved_notebooks import WIDGET_VIEW_MIME, keep_static, live_output
from rp_notebook.views import StreamingAudioPlayer
from rp_notebook.views._job_card import JobCard, card_static_html

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def cards():
    made: list[JobCard] = []
    yield made.append
    for card in made:
        card.close()


def _audio_elements(html: str) -> int:
    return html.count("<audio")


def test_a_finished_tts_card_shows_one_seekable_audio_player_and_its_text_and_parameters(use_local, cards):
    job = rp_notebook.tts("The card plays this sentence.", exaggeration=0.7)
    card = JobCard(job)
    cards(card)
    job.result(timeout=120)
    # The head line and then the body change on the manager's thread: wait for the body's final widget
    # (a TTS job streams, so until then it is the stream player).
    eventually(
        lambda: (
            "data-status='COMPLETED'" in card.head.value
            and len(card.body.children) == 1
            and isinstance(card.body.children[0], widgets.HTML)
        )
    )
    assert "“The card plays this sentence.”" in card.head.value and "exaggeration 0.7" in card.head.value
    assert card.head.value.count("done") == 1
    (body,) = card.body.children
    assert isinstance(body, widgets.HTML) and _audio_elements(body.value) == 1
    assert "src='data:audio/" in body.value
    assert card.cancel_button.layout.display == "none" and card.retry_button.layout.display == "none"
    static = card_static_html(job)
    assert _audio_elements(static) == 1 and "exaggeration 0.7" in static


def test_a_streaming_tts_card_plays_parts_then_swaps_the_stream_player_for_one_audio(use_local, cards):
    job = rp_notebook.tts("First part of it. Second part of it. Third part of it.", stream=True)
    card = JobCard(job)
    cards(card)
    if not job.done():
        assert isinstance(card.body.children[0], StreamingAudioPlayer)
    job.result(timeout=120)
    eventually(lambda: card.job.done() and isinstance(card.body.children[0], widgets.HTML))
    (body,) = card.body.children
    assert _audio_elements(body.value) == 1  # one player: the stream player is gone
    assert card.player is None


def test_a_running_card_shows_elapsed_time_and_the_workers_progress_as_a_bar(use_local, release, cards):
    job = get_manager().submit(
        "echo", {"progress": [{"step": 3, "steps": 10}], "wait_for_file": str(release)}, model="echo"
    )
    job.watch()
    card = JobCard(job)
    cards(card)
    eventually(lambda: card.progress.layout.display == "" and card.progress.value == pytest.approx(0.3))
    assert "step 3 of 10" in card.progress_label.value
    assert "running" in card.head.value and " s</span>" in card.head.value  # "running 2 s"
    release.touch()
    job.result(timeout=60)
    eventually(lambda: card.progress.layout.display == "none")


def test_cancel_on_the_card_cancels_the_job_and_retry_sends_the_same_input_as_a_new_job(
    use_local, release, cards
):
    job = get_manager().submit("echo", {"wait_for_file": str(release), "card": 1}, model="echo")
    card = JobCard(job)
    cards(card)
    eventually(lambda: job.refresh() == "IN_PROGRESS")
    assert card.retry_button.layout.display == "none"
    card.cancel_button.click()
    eventually(lambda: "data-status='CANCELLED'" in card.head.value)
    assert card.retry_button.layout.display == "" and card.cancel_button.layout.display == "none"
    release.touch()
    card.retry_button.click()
    assert card.message.value == ""
    assert card.job is not job and card.job.input == job.input  # Runpod retries no cancelled job
    assert card.job.result(timeout=60)["echo"] == job.input
    eventually(lambda: f"data-job-id='{card.job.id}'" in card.head.value and "COMPLETED" in card.head.value)


def test_retry_on_a_failed_card_reruns_the_same_job_through_runpods_retry(use_local, tmp_path, cards):
    flag = tmp_path / "ready"
    job = get_manager().submit("echo", {"fail_unless_file": str(flag)}, model="echo")
    card = JobCard(job)
    cards(card)
    eventually(lambda: "data-status='FAILED'" in card.head.value and len(card.body.children) == 1)
    (error,) = card.body.children
    assert "the file is not there yet" in error.value
    flag.touch()
    card.retry_button.click()
    assert card.job is job  # the same job id, run again
    assert job.result(timeout=60)["echo"]["fail_unless_file"] == str(flag)
    eventually(lambda: "data-status='COMPLETED'" in card.head.value)


def test_a_card_button_error_is_shown_under_the_buttons(use_local, cards):
    job = get_manager().submit("echo", {"n": 1}, model="echo")
    card = JobCard(job)
    cards(card)
    job.result(timeout=60)
    card.retry()  # a completed job cannot run again
    assert "only a failed, timed-out, cancelled or unsent job can run again" in card.message.value


def test_a_layers_card_keeps_the_interactive_gallery_live_and_images_with_a_note_when_saved(
    use_local, cards, tmp_path
):
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (96, 64), "white")
    ImageDraw.Draw(picture).rectangle([10, 10, 40, 40], fill="red")
    path = tmp_path / "shapes.png"
    picture.save(path)
    job = rp_notebook.layers(path, layers=2)
    card = JobCard(job)
    cards(card)
    result = job.result(timeout=120)
    eventually(lambda: card.body.children and type(card.body.children[0]).__name__ == "LayersGallery")
    static = card_static_html(job)
    assert static.count("<img") == len(result) + 1  # every layer and the composite
    assert "rp-notebook-composite" in static and "need the running kernel" in static


def test_a_card_saved_while_its_job_runs_says_how_to_get_the_result_back(use_local, release):
    job = get_manager().submit("echo", {"wait_for_file": str(release)}, model="echo")
    static = card_static_html(job)
    assert f"%runpod attach {job.id}" in static
    release.touch()
    job.result(timeout=60)


# -- what the saved file keeps ------------------------------------------------------------------------


def _notebook_with(outputs: list[dict]) -> dict:
    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(nbformat.v4.new_code_cell("x", outputs=[nbformat.from_dict(o) for o in outputs]))
    return json.loads(nbformat.writes(notebook))


def _display(data: dict, metadata: dict) -> dict:
    return {"output_type": "display_data", "data": data, "metadata": metadata}


def test_keep_static_drops_only_this_packages_widget_views_and_keeps_their_html():
    ours = live_output(
        {WIDGET_VIEW_MIME: {"model_id": "abc", "version_major": 2, "version_minor": 0}, "text/plain": "w"},
        html="<audio controls></audio>",
        text="tts · done",
    )
    theirs = {
        WIDGET_VIEW_MIME: {"model_id": "def", "version_major": 2, "version_minor": 0},
        "text/plain": "x",
    }
    notebook = _notebook_with([_display(*ours), _display(theirs, {})])
    assert keep_static(notebook) == 1
    kept, untouched = notebook["cells"][0]["outputs"]
    assert (
        WIDGET_VIEW_MIME not in kept["data"]
        and "".join(kept["data"]["text/html"]) == "<audio controls></audio>"
    )
    assert (
        untouched["data"][WIDGET_VIEW_MIME] == theirs[WIDGET_VIEW_MIME]
    )  # another library's widget is left as it was
    assert keep_static(notebook) == 0  # idempotent
    nbformat.validate(nbformat.from_dict(notebook))


def test_jupyter_server_saves_a_notebook_with_static_results_and_the_page_keeps_its_widgets(tmp_path):
    manager = FileContentsManager(root_dir=str(tmp_path))
    server = SimpleNamespace(contents_manager=manager, log=logging.getLogger("test-server"))
    saved_notebooks._load_jupyter_server_extension(server)
    data, metadata = live_output(
        {WIDGET_VIEW_MIME: {"model_id": "abc", "version_major": 2, "version_minor": 0}},
        html="<div class='rp-job-card'>done</div>",
        text="done",
    )
    content = _notebook_with([_display(data, metadata)])
    sent = json.loads(json.dumps(content))
    manager.save({"type": "notebook", "format": "json", "content": content}, "saved.ipynb")
    on_disk = json.loads((tmp_path / "saved.ipynb").read_text())
    output = on_disk["cells"][0]["outputs"][0]
    assert WIDGET_VIEW_MIME not in output["data"] and "rp-job-card" in "".join(output["data"]["text/html"])
    assert WIDGET_VIEW_MIME in sent["cells"][0]["outputs"][0]["data"]  # the page's own copy is not ours
    assert manager.get("saved.ipynb")["content"]["cells"][0]["outputs"][0]["data"].keys() == {
        "text/html",
        "text/plain",
    }


def test_the_package_enables_its_server_extension_for_every_jupyter_server_of_the_environment():
    from jupyter_core.paths import jupyter_config_path

    found = [
        json.loads(path.read_text())
        for folder in jupyter_config_path()
        for path in [Path(folder) / "jupyter_server_config.d" / "rp_notebook.json"]
        if path.exists()
    ]
    assert found, "etc/jupyter/jupyter_server_config.d/rp_notebook.json is not installed"
    assert found[0]["ServerApp"]["jpserver_extensions"] == {"rp_notebook.saved_notebooks": True}
    assert saved_notebooks._jupyter_server_extension_points() == [{"module": "rp_notebook.saved_notebooks"}]


def test_keep_static_file_rewrites_a_notebook_saved_elsewhere(tmp_path):
    data, metadata = live_output(
        {WIDGET_VIEW_MIME: {"model_id": "abc", "version_major": 2, "version_minor": 0}},
        html="<b>kept</b>",
        text="kept",
    )
    path = tmp_path / "elsewhere.ipynb"
    path.write_text(json.dumps(_notebook_with([_display(data, metadata)])))
    assert saved_notebooks.keep_static_file(path) == 1
    assert WIDGET_VIEW_MIME not in path.read_text()
    assert saved_notebooks.keep_static_file(path) == 0


def test_a_large_clip_is_named_with_its_saved_file_instead_of_embedded():
    from rp_notebook.results import AudioResult
    from rp_notebook.results._audio import MAX_EMBEDDED_AUDIO_BYTES, audio_html

    big = AudioResult(
        data=b"\0" * (MAX_EMBEDDED_AUDIO_BYTES + 1), format="wav", sample_rate=24000, duration=200
    )
    html = audio_html(big, saved_to=Path("/data/results/job-1"))
    assert "<audio" not in html and "/data/results/job-1" in html and "the limit is 8 MB" in html
    small = AudioResult(data=b"RIFF" + b"\0" * 40, format="wav", sample_rate=24000, duration=0.1)
    assert base64.b64encode(small.data).decode() in audio_html(small)


def test_runpod_jobs_lists_jobs_in_the_cards_words_not_runpods_raw_states(ip, use_local):
    job = get_manager().submit("echo", {"words": 1}, model="echo")
    job.result(timeout=60)
    table = ip.run_line_magic("runpod", "jobs")._repr_mimebundle_()["text/plain"]
    (row,) = [line for line in table.splitlines() if line.startswith(job.id)]
    assert " done " in row and "COMPLETED" not in row
