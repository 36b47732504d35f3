"""The panels on real ipywidgets objects, against the local endpoint over real HTTP.

Buttons are pressed with `Button.click()` (it runs the handlers registered with `on_click`, as a
front end's click does); uploads are set the way ipywidgets 8 delivers them (a tuple of dicts with
a `content` memoryview). Results arrive from the job manager's threads while the test waits.
"""

from __future__ import annotations

import datetime
import io
import json
import math
import struct
import wave
from html import escape

import ipywidgets as widgets
import pytest
from helpers import all_widget_state, eventually
from IPython.core.error import UsageError
from PIL import Image

import rp_notebook
from rp_notebook.errors import InputError
from rp_notebook.jobs import get_manager
from rp_notebook.jobs._job import WATCH_NEW_JOBS
from rp_notebook.models import LAYERS, TTS, Field, ModelSpec
from rp_notebook.views import JobCard, LayersGallery, StreamingAudioPlayer
from rp_notebook.widgets import FieldForm, JobsPanel, LayersPanel, TTSPanel, field_control

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def opened():
    """Panels made by a test, closed after it (so the shared ticker stops refreshing them)."""
    panels = []
    yield panels.append
    for panel in panels:
        panel.close()


def upload(name: str, mime: str, data: bytes) -> tuple[dict, ...]:
    return (
        {
            "name": name,
            "type": mime,
            "size": len(data),
            "content": memoryview(data),
            "last_modified": datetime.datetime.now(tz=datetime.UTC),
        },
    )


def wav_clip(seconds: float = 1.5, rate: int = 16_000) -> bytes:
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 220 * i / rate)))
        for i in range(int(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


def status_of(panel) -> str:
    return panel.status.value


def form_widgets(panel) -> list[widgets.Widget]:
    """Every widget of a panel above its buttons (the form), boxes and accordions opened."""
    found: list[widgets.Widget] = []

    def walk(widget: widgets.Widget) -> None:
        found.append(widget)
        if isinstance(widget, widgets.Box):
            for child in widget.children:
                walk(child)

    for child in panel.children:
        if child is panel.generate_button or panel.generate_button in getattr(child, "children", ()):
            break
        walk(child)
    return found


def client_message(spec: ModelSpec, **values) -> str:
    """The message of the client's own InputError for these values."""
    with pytest.raises(InputError) as caught:
        spec.validate(values)
    return str(caught.value)


def shown_under(panel, message: widgets.HTML, widget: widgets.Widget) -> bool:
    """Whether `message` is visible, directly after `widget` in the box that holds both."""
    for box in form_widgets(panel):
        children = list(getattr(box, "children", ()))
        if widget in children and message in children:
            return children.index(message) == children.index(widget) + 1 and message.layout.display != "none"
    return False


# -- controls come from the field definitions ---------------------------------------------------------


@pytest.mark.parametrize(("panel_class", "spec"), [(TTSPanel, TTS), (LayersPanel, LAYERS)])
def test_every_control_has_the_range_step_choices_and_default_of_its_field(panel_class, spec, opened):
    panel = panel_class()
    opened(panel)
    assert set(panel.form.controls) == {f.name for f in spec.fields if not f.media}
    sliders = 0
    for name, control in panel.form.controls.items():
        field = spec[name]
        if isinstance(control, widgets.FloatSlider | widgets.IntSlider):
            sliders += 1
            assert (control.min, control.max) == (field.minimum, field.maximum)
            assert control.step == (field.step or 1)
        if isinstance(control, widgets.BoundedIntText):
            assert (control.min, control.max) == (field.minimum, field.maximum)
        if isinstance(control, widgets.Dropdown):
            assert [value for _, value in control.options] == list(field.choices)
        expected = field.default if field.default is not None else ""
        assert control.value == expected, name
    assert sliders >= 3  # TTS: exaggeration, cfg_weight, temperature; layers: layers, steps, cfg


def test_a_changed_field_definition_changes_the_control():
    spec = ModelSpec(
        name="demo",
        title="demo",
        positional="text",
        fields=(
            Field("text", str, "t", required=True),
            Field("speed", float, "s", default=1.25, minimum=0.5, maximum=3.0, step=0.25),
            Field("count", int, "c", default=3, minimum=1, maximum=7),
            Field("seed", int, "seed", default=0, minimum=0, maximum=2**32 - 1),
            Field("mode", int, "m", default=640, choices=(640, 1024)),
        ),
    )
    form = FieldForm(spec)
    speed, count, seed, mode = form["speed"], form["count"], form["seed"], form["mode"]
    assert isinstance(speed, widgets.FloatSlider)
    assert (speed.min, speed.max, speed.step, speed.value) == (0.5, 3.0, 0.25, 1.25)
    assert isinstance(count, widgets.IntSlider) and (count.min, count.max, count.value) == (1, 7, 3)
    assert isinstance(seed, widgets.BoundedIntText)  # 4 billion positions do not fit a slider
    assert mode.value == 640 and isinstance(mode.value, int)
    assert "rp-demo-speed" in speed._dom_classes
    form["text"].value = ""
    assert form.values() == {"text": "", "speed": 1.25, "count": 3, "seed": 0, "mode": 640}
    with pytest.raises(TypeError, match="media"):
        field_control(Field("clip", str, "a clip", media=True))


@pytest.mark.parametrize("panel_class", [TTSPanel, LayersPanel])
def test_every_field_row_of_a_panel_has_one_label_width_that_holds_its_longest_label(panel_class, opened):
    panel = panel_class()
    opened(panel)
    labelled = [
        widget
        for widget in form_widgets(panel)
        if getattr(widget, "description", "")
        and hasattr(widget.style, "description_width")
        and not isinstance(widget, widgets.Button | widgets.FileUpload)
    ]
    assert set(panel.form.controls.values()) <= set(labelled)  # every field, sliders and boxes alike
    widths = {widget.style.description_width for widget in labelled}
    assert len(widths) == 1, widths
    (width,) = widths
    assert width.endswith("ch") and int(width[:-2]) > max(len(w.description) for w in labelled)
    for name, control in panel.form.controls.items():
        if isinstance(control, widgets.Checkbox):
            assert control.indent, name  # its box in the control column, under the sliders
        # The message line starts where the control does, past the label column.
        assert width in panel.form.messages[name].layout.margin


# -- checked as the values change ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["   ", "x" * 5_001], ids=["empty", "too-long"])
def test_a_bad_text_disables_generate_and_says_why_under_the_text(text, opened):
    panel = TTSPanel(text="Fine text.")
    opened(panel)
    message = panel.form.messages["text"]
    assert not panel.generate_button.disabled and message.value == "" and message.layout.display == "none"

    panel.text.value = text
    expected = client_message(TTS, text=text)  # what the client's InputError says, word for word
    assert expected.startswith("text: ") and "expected text of 1 to 5,000 characters" in expected
    assert panel.generate_button.disabled and expected in panel.generate_button.tooltip
    assert escape(expected) in message.value and "rp-error" in message.value
    assert shown_under(panel, message, panel.text)
    assert all(m.value == "" for name, m in panel.form.messages.items() if name != "text")

    panel.text.value = "Fixed."
    assert not panel.generate_button.disabled
    assert message.value == "" and message.layout.display == "none"


def test_a_new_tts_panel_without_text_offers_no_generate(opened):
    panel = TTSPanel()
    opened(panel)
    assert panel.generate_button.disabled
    assert escape(client_message(TTS, text="")) in panel.form.messages["text"].value


def test_a_voice_the_client_would_refuse_disables_generate_with_the_message_under_the_voice(opened):
    panel = TTSPanel(text="Fine text.", voices={"missing": "/nonexistent/voice.wav"})
    opened(panel)
    message = panel.form.messages["voice"]
    voice_row = next(box for box in form_widgets(panel) if panel.voice in getattr(box, "children", ()))
    panel.voice.value = "preset:missing"
    assert panel.generate_button.disabled and "voice: no such file: /nonexistent/voice.wav" in message.value
    assert shown_under(panel, message, voice_row)
    panel.voice.value = "built-in"
    assert not panel.generate_button.disabled and message.value == ""

    panel.voice_upload.value = upload("notes.txt", "text/plain", b"this is not audio at all")
    assert panel.voice.value == "uploaded" and panel.generate_button.disabled
    assert "voice: is not an audio file" in message.value
    panel.voice_upload.value = upload("clip.wav", "audio/wav", wav_clip(0.2))
    assert not panel.generate_button.disabled and message.value == ""


def test_layers_generate_waits_for_a_picture_the_client_accepts(opened):
    panel = LayersPanel()
    opened(panel)
    message = panel.form.messages["image"]
    upload_row = next(box for box in form_widgets(panel) if panel.upload in getattr(box, "children", ()))
    assert panel.generate_button.disabled and shown_under(panel, message, upload_row)
    assert "image: upload a picture first" in message.value

    panel.upload.value = upload("notes.txt", "text/plain", b"not a picture")
    assert panel.generate_button.disabled and "image: is not a picture Pillow can read" in message.value

    png = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 20, 30)).save(png, format="PNG")
    panel.upload.value = upload("small.png", "image/png", png.getvalue())
    assert not panel.generate_button.disabled and message.value == "" and message.layout.display == "none"

    panel.form["prompt"].value = "y" * 2_001  # a form field of the layers spec, checked the same way
    expected = client_message(LAYERS, image="http://example.com/x.png", prompt="y" * 2_001)
    assert panel.generate_button.disabled and escape(expected) in panel.form.messages["prompt"].value
    assert shown_under(panel, panel.form.messages["prompt"], panel.form["prompt"])
    panel.form["prompt"].value = "a red square"
    assert not panel.generate_button.disabled


# -- the TTS panel ---------------------------------------------------------------------------------------


def card_done(card: JobCard) -> bool:
    """The card shows its job's end: its one result widget (a TTS job's stream player gave way)."""
    return (
        card.job.done()
        and len(card.body.children) == 1
        and not isinstance(card.body.children[0], StreamingAudioPlayer)
    )


def test_generate_puts_the_jobs_card_in_the_history_at_once_and_it_ends_as_one_player(use_local, opened):
    panel = TTSPanel(text="Hello from the panel.")
    opened(panel)
    panel.form["temperature"].value = 0.65
    panel.form["format"].value = "flac"
    panel.generate_button.click()
    assert len(panel.jobs) == 1 and "rp-status" in status_of(panel)
    assert panel.jobs[0].watched  # watched from its submit on: short polls keep the status live
    # The card is there from the submit on (the card of the magics and the jobs panel), not at the end.
    (card,) = panel.history.children
    assert isinstance(card, JobCard) and card.job is panel.jobs[0] and "rp-tts-entry" in card._dom_classes
    eventually(lambda: card_done(card))
    (player,) = card.body.children
    assert player.value.count("<audio") == 1 and "src='data:audio/flac;base64,ZkxhQ" in player.value
    assert "temperature 0.65" in card.head.value and "format flac" in card.head.value
    assert "“Hello from the panel.”" in card.head.value and "voice: built-in" in card.caption.value
    assert "data-status='COMPLETED'" in status_of(panel) and panel.cancel_button.disabled

    jobs = JobsPanel()  # "open" on the jobs panel shows the job's card: the same player
    opened(jobs)
    jobs.rows[panel.jobs[0].id].open_button.click()
    (opened_card,) = jobs.result_area.children
    assert isinstance(opened_card, JobCard) and opened_card.job is panel.jobs[0]
    assert opened_card.body.children[0].value == player.value


def test_cancel_ends_a_queued_generation_as_cancelled(use_local, release, opened):
    blocker = get_manager().submit("echo", {"wait_for_file": str(release)})  # the one echo worker is busy
    panel = TTSPanel(endpoint="echo", text="This waits behind the blocker.")
    opened(panel)
    panel.generate_button.click()
    (job,) = panel.jobs
    assert not job.done() and not panel.cancel_button.disabled
    panel.cancel_button.click()
    eventually(lambda: "data-status='CANCELLED'" in status_of(panel))
    assert "cancelled" in status_of(panel) and job.status == "CANCELLED"
    assert panel.cancel_button.disabled
    (card,) = panel.history.children  # the card says so too, and offers to run the input again
    eventually(lambda: "data-status='CANCELLED'" in card.head.value)
    assert card.retry_button.layout.display == "" and card.cancel_button.layout.display == "none"
    release.touch()
    assert blocker.result(timeout=60)["echo"]["wait_for_file"] == str(release)


def test_a_refresh_between_a_jobs_end_and_its_done_callbacks_already_turns_cancel_off(
    use_local, release, opened
):
    # The ticker refreshes panels on its own thread: one can fall after the job's status turned
    # final and before the panel's done-callback ran. Subscribers are told just in that gap.
    blocker = get_manager().submit("echo", {"wait_for_file": str(release)})
    panel = TTSPanel(endpoint="echo", text="This waits behind the blocker.")
    opened(panel)
    panel.generate_button.click()
    (job,) = panel.jobs
    seen_in_the_gap: list[tuple[str, bool]] = []

    def refresh_in_the_gap(update):
        if update.ended:
            panel._tick()  # what the ticker does
            seen_in_the_gap.append((job.status, panel.cancel_button.disabled))

    job.subscribe(refresh_in_the_gap)
    panel.cancel_button.click()
    eventually(lambda: seen_in_the_gap)
    assert seen_in_the_gap == [("CANCELLED", True)]
    assert "data-status='CANCELLED'" in status_of(panel)
    release.touch()
    blocker.result(timeout=60)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: setattr(p.text, "value", "   "), "text: is empty"),
        (lambda p: setattr(p.text, "value", "x" * 5001), "text: is 5,001 characters"),
        (lambda p: setattr(p.voice, "value", "preset:missing"), "voice: no such file"),
    ],
    ids=["empty-text", "too-long-text", "missing-preset-file"],
)
def test_bad_values_show_the_fields_message_and_submit_nothing(use_local, opened, setup, message):
    panel = TTSPanel(voices={"missing": "/nonexistent/voice.wav"}, text="Fine text.")
    opened(panel)
    before = len(get_manager().jobs())
    setup(panel)
    # Offered no more, and the same message stands under the field ...
    assert panel.generate_button.disabled
    assert any(message in line.value for line in panel.form.messages.values())
    panel.generate_button.click()  # ... and a click anyway must not raise: it goes to the status line
    assert message in status_of(panel) and "rp-error" in status_of(panel)
    assert panel.jobs == [] and len(get_manager().jobs()) == before


def test_without_an_endpoint_the_status_says_how_to_configure_one(opened):
    panel = TTSPanel(text="Hello.")
    opened(panel)
    panel.generate_button.click()
    assert "No endpoint for &#x27;tts&#x27;" in status_of(panel) and panel.jobs == []


def test_an_uploaded_clip_becomes_the_voice_and_reaches_the_worker(use_local, opened):
    panel = TTSPanel(text="Cloned, if the engine could.")
    opened(panel)
    # Starts like a WAV file (so the client's header check passes) but is not one.
    panel.voice_upload.value = upload(
        "noise.wav", "audio/wav", b"RIFF\0\0\0\0WAVE" + b"this is not audio at all"
    )
    assert panel.voice.value == "uploaded" and ("uploaded: noise.wav", "uploaded") in panel.voice.options
    panel.generate_button.click()
    # Every engine decodes the clip, so undecodable bytes fail the job with the worker's voice message.
    eventually(lambda: "data-status='FAILED'" in status_of(panel))
    assert "voice: could not be decoded as audio" in status_of(panel)
    (card,) = panel.history.children
    eventually(lambda: card_done(card))
    assert "voice: could not be decoded as audio" in card.body.children[0].value
    assert "voice: noise.wav" in card.caption.value


def test_a_preset_voice_is_offered_by_name_and_used(use_local, opened, tmp_path):
    clip = tmp_path / "narrator.wav"
    clip.write_bytes(wav_clip())
    panel = TTSPanel(voices={"narrator": clip}, text="A preset voice.")
    opened(panel)
    assert [label for label, _ in panel.voice.options] == ["built-in voice", "narrator"]
    panel.voice.value = "preset:narrator"
    panel.generate_button.click()
    eventually(lambda: card_done(panel.history.children[0]))
    assert "data-status='COMPLETED'" in status_of(panel)
    assert "voice: narrator" in panel.history.children[0].caption.value


# -- the layers panel ------------------------------------------------------------------------------------


def test_layers_panel_turns_an_uploaded_png_into_a_gallery(use_local, opened):
    picture = Image.new("RGB", (96, 64), (240, 240, 240))
    picture.paste((200, 30, 30), (10, 10, 40, 40))
    picture.paste((30, 30, 200), (50, 20, 90, 60))
    png = io.BytesIO()
    picture.save(png, format="PNG")
    panel = LayersPanel()
    opened(panel)
    assert "rp-layers-upload" in panel.upload._dom_classes
    assert (panel.form["layers"].min, panel.form["layers"].max) == (
        LAYERS["layers"].minimum,
        LAYERS["layers"].maximum,
    )
    panel.upload.value = upload("shapes.png", "image/png", png.getvalue())
    assert bytes(panel.preview.value) == png.getvalue()
    panel.form["layers"].value = 3
    panel.form["num_inference_steps"].value = 2
    panel.generate_button.click()
    (card,) = panel.history.children
    eventually(lambda: card_done(card))
    (gallery,) = card.body.children
    assert isinstance(gallery, LayersGallery) and len(gallery.toggles) == 3
    assert "image: shapes.png" in card.caption.value and "layers 3" in card.head.value


def test_layers_panel_without_a_picture_asks_for_one(use_local, opened):
    panel = LayersPanel()
    opened(panel)
    assert panel.generate_button.disabled
    panel.generate_button.click()
    assert "image: upload a picture first" in status_of(panel) and panel.jobs == []


# -- the jobs panel --------------------------------------------------------------------------------------


def test_jobs_panel_lists_a_running_job_and_its_cancel_button_cancels_it(use_local, release, opened):
    job = get_manager().submit("echo", {"wait_for_file": str(release)})
    panel = JobsPanel()
    opened(panel)
    row = panel.rows[job.id]
    assert row.box in panel.table.children and "echo" in row.label.value
    assert not row.cancel_button.disabled and row.retry_button.disabled
    row.cancel_button.click()
    eventually(lambda: "data-status='CANCELLED'" in row.status.value)
    assert row.cancel_button.disabled and not row.retry_button.disabled and not row.open_button.disabled


def test_jobs_panel_lists_each_job_once_runpod_names_it_and_none_that_was_never_sent(use_local, opened):
    manager = get_manager()
    jobs = manager.submit_many("echo", [{"n": n} for n in range(12)], max_parallel=1)  # one by one
    manager.cancel_many(jobs[8:])  # not sent yet: never will be
    panel = JobsPanel()  # while most are still on their way: no id yet
    opened(panel)

    def settled() -> bool:
        panel.refresh()  # as the ticker does, while the manager's thread names the jobs
        return all(job.done() for job in jobs)

    eventually(settled)
    panel.refresh()
    named = [job for job in jobs if job.id]
    unsent = [job for job in jobs if not job.id]
    assert unsent and all(job.status == "CANCELLED" for job in unsent)
    assert "" not in panel.rows and {job.id for job in named} <= set(panel.rows)
    assert all(panel.rows[job.id].job is job for job in named)
    assert not {id(row.job) for row in panel.rows.values()} & {id(job) for job in unsent}


def test_jobs_panel_retry_sends_a_cancelled_jobs_input_again_as_a_new_listed_job(use_local, release, opened):
    job = get_manager().submit("echo", {"wait_for_file": str(release)})
    panel = JobsPanel()
    opened(panel)
    row = panel.rows[job.id]
    row.cancel_button.click()
    eventually(lambda: "data-status='CANCELLED'" in row.status.value)
    release.touch()
    row.retry_button.click()  # Runpod's /retry refuses a cancelled job: the input goes again as a new job
    (again,) = [other for other in get_manager().jobs() if other.input == job.input and other is not job]
    assert again.id != job.id and f"sent again as job {again.id}" in panel.message.value
    assert again.id in panel.rows and panel.rows[again.id].box in panel.table.children
    eventually(lambda: "data-status='COMPLETED'" in panel.rows[again.id].status.value)
    assert job.status == "CANCELLED"


def test_jobs_panel_shows_the_workers_progress_while_the_job_runs(use_local, release, opened):
    token = WATCH_NEW_JOBS.set(True)  # as a panel submits: polled in short rounds from the start
    try:
        job = get_manager().submit(
            "echo", {"progress": [{"chunk": 2, "chunks": 5}], "wait_for_file": str(release)}
        )
    finally:
        WATCH_NEW_JOBS.reset(token)
    panel = JobsPanel()
    opened(panel)
    row = panel.rows[job.id]
    eventually(lambda: "part 2 of 5" in row.status.value)  # listed jobs are polled in short rounds
    assert "data-status='IN_PROGRESS'" in row.status.value and "running" in row.time.value
    release.touch()
    eventually(lambda: "data-status='COMPLETED'" in row.status.value)
    assert "part" not in row.status.value


def test_jobs_panel_retries_a_failed_job_that_then_succeeds(use_local, opened, tmp_path):
    flag = tmp_path / "ready"
    job = get_manager().submit("echo", {"fail_unless_file": str(flag)})
    panel = JobsPanel()
    opened(panel)
    row = panel.rows[job.id]
    eventually(lambda: "data-status='FAILED'" in row.status.value)
    row.open_button.click()
    (card,) = panel.result_area.children
    eventually(lambda: card.body.children)
    assert "the file is not there yet" in card.body.children[0].value
    assert not row.retry_button.disabled
    flag.touch()
    row.retry_button.click()  # Runpod's retry: the same job id, followed again (and by its open card)
    eventually(lambda: "data-status='COMPLETED'" in row.status.value)
    assert row.retry_button.disabled and "job " + job.id + ": retried" in panel.message.value
    eventually(lambda: str(flag) in card.body.children[0].value)  # the echo of the same input


def test_jobs_panel_picks_up_jobs_submitted_after_it_opened(use_local, opened):
    panel = JobsPanel()
    opened(panel)
    job = get_manager().submit("echo", {"n": 1})
    eventually(lambda: job.id in panel.rows and panel.rows[job.id].box in panel.table.children)
    eventually(lambda: "data-status='COMPLETED'" in panel.rows[job.id].status.value)


# -- opening panels, and what they show --------------------------------------------------------------------


def test_panel_magic_and_function_return_panels_with_short_stable_reprs(ip, opened):
    tts = ip.run_line_magic("runpod", "panel tts --endpoint my-ep")
    layers = rp_notebook.panel("layers")
    jobs = ip.run_line_magic("runpod", "panel jobs")
    for panel in (tts, layers, jobs):
        opened(panel)
    assert isinstance(tts, TTSPanel) and tts.endpoint == "my-ep"
    assert [repr(tts), repr(layers), repr(jobs)] == [
        "TTSPanel(endpoint='my-ep')",
        "LayersPanel()",
        "JobsPanel()",
    ]
    # Shown live as the widget; a saved notebook keeps one line saying what it was (saved_notebooks).
    data, metadata = tts._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data and metadata == {
        "rp_notebook": {"live_view": True}
    }
    assert "TTS panel (%runpod panel tts): a live panel; run this cell" in data["text/html"]
    assert data["text/plain"].startswith("TTS panel (%runpod panel tts)")
    ip.user_ns["my_voices"] = {"calm": "https://example.com/calm.wav"}
    with_voices = ip.run_line_magic("runpod", "panel tts --voices my_voices")
    opened(with_voices)
    assert "calm" in [label for label, _ in with_voices.voice.options]
    with pytest.raises(UsageError):
        ip.run_line_magic("runpod", "panel nonsense")


def test_the_api_key_never_lands_in_widget_state(use_local, opened):
    panel = TTSPanel(text="Keep the key out.")
    jobs = JobsPanel()
    for each in (panel, jobs, LayersPanel()):
        opened(each)
    panel.generate_button.click()
    eventually(lambda: card_done(panel.history.children[0]))
    jobs.refresh()
    state = all_widget_state()
    dumped = json.dumps(
        state, default=lambda o: bytes(o).decode("latin-1") if isinstance(o, bytes | memoryview) else str(o)
    )
    assert use_local.api_key not in dumped
    assert panel.jobs[0].id in dumped  # the state was really searched


@pytest.mark.parametrize("kind", rp_notebook.widgets.PANELS)
def test_every_panel_opens_a_comm_so_a_browser_can_render_it(kind, use_local, opened):
    # A panel method named like an ipywidgets one (JobsPanel.open once hid Widget.open) leaves the
    # widget without a comm: every frontend then shows "model not found".
    panel = rp_notebook.panel(kind)
    opened(panel)
    assert panel.comm is not None and panel.model_id
