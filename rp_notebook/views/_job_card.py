"""JobCard: one job, the same everywhere it is shown (a magic's output, a panel's history, the jobs panel).

    [tts] 5f2a91c0…  (running 12 s)  “Hello from a Runpod GPU” · exaggeration 0.5
    ███████░░░░░  part 3 of 5
    [Cancel] [Retry]
    <the result: one audio player, the layer gallery, or the error>

Design:
- The card is an ipywidgets VBox that subscribes to its Job (`jobs/` knows nothing of it). Job
  updates arrive on the job manager's thread and only set widget traits, which ipykernel sends
  from any thread; the ticker (`TICKER`) refreshes the elapsed time once a second.
- One audio player: a streaming TTS job plays its parts in a StreamingAudioPlayer while it runs;
  when the job ends the player is replaced by one seekable `<audio>` of the whole clip.
- Retry runs the input again (`Job.rerun`): Runpod's retry for a failed or timed-out job, a new job
  for a cancelled one, which the card then follows.
- `static_html()` is what a saved notebook shows in the card's place (rp_notebook.saved_notebooks):
  the same head line, the embedded `<audio>` or the layers as images, and, where the live card had
  buttons, a short note that they need the running kernel.
- The status words are `display.status_style`'s, the words of every view of a job.
"""

from __future__ import annotations

import base64
import threading
from html import escape
from typing import Any

import ipywidgets as widgets
import traitlets

from .. import display
from ..client import JobStatus
from ..jobs import Job, JobUpdate
from ..results import AudioResult, LayersResult
from ..results._audio import AUDIO_MIME, audio_html
from ..results._html import BOX
from ._ticker import TICKER

__all__ = ["JobCard", "card_head_html", "card_static_html"]

#: How much of a text input the head line quotes.
QUOTE_CHARS = 80
#: Input values longer than this (uploaded media as base64, long prompts) are not repeated.
MAX_SHOWN_VALUE = 40
ERROR_COLOR = "#dc2626"
MUTED_COLOR = "#6b7280"


class JobCard(widgets.VBox):  # type: ignore[misc]  # ipywidgets has no types
    """The live card of one job; see the module docstring."""

    #: The job's id and status ("id STATUS"): changes when the job moves on or a rerun replaces it.
    state = traitlets.Unicode("")

    def __init__(self, job: Job, *, caption: str = "") -> None:
        """caption: a line under the head saying what the inputs were, where the job's own input
        cannot (a panel names the uploaded file or the preset voice it sent as bytes)."""
        self.head = widgets.HTML()
        self.caption = widgets.HTML(
            f"<div style='font-size:12px;color:{MUTED_COLOR}'>{escape(caption)}</div>" if caption else ""
        )
        self.caption.layout.display = "" if caption else "none"
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, bar_style="info")
        self.progress.layout.display = "none"
        self.progress_label = widgets.HTML()
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", tooltip="cancel this job")
        self.retry_button = widgets.Button(description="Retry", icon="repeat", tooltip="run this input again")
        self.message = widgets.HTML()
        self.body = widgets.VBox()
        for name, part in (
            ("head", self.head),
            ("caption", self.caption),
            ("progress", self.progress),
            ("cancel", self.cancel_button),
            ("retry", self.retry_button),
            ("message", self.message),
            ("body", self.body),
        ):
            part.add_class(f"rp-job-{name}")
        self.cancel_button.on_click(lambda _: self.cancel())
        self.retry_button.on_click(lambda _: self.retry())
        self.player: Any = None
        self._lock = threading.RLock()
        self._unsubscribe: Any = None
        self._shown_result = False
        super().__init__(
            [
                self.head,
                self.caption,
                widgets.HBox([self.progress, self.progress_label]),
                widgets.HBox([self.cancel_button, self.retry_button, self.message]),
                self.body,
            ]
        )
        self.add_class("rp-job-card")
        self.job = job
        self._follow(job)

    # -- actions -------------------------------------------------------------------------------------

    def cancel(self) -> None:
        """What Cancel does: cancel the job on the server (one request)."""
        self._act(lambda: self.job.cancel())

    def retry(self) -> None:
        """What Retry does: run the input again; a new job (for a cancelled one) replaces this one here."""

        def rerun() -> None:
            job = self.job.rerun()
            if job is not self.job:
                self._follow(job)
            else:
                self.render()

        self._act(rerun)

    def close(self) -> None:
        TICKER.discard(self)
        if self._unsubscribe is not None:
            self._unsubscribe()
        super().close()

    # -- following -----------------------------------------------------------------------------------

    def _follow(self, job: Job) -> None:
        with self._lock:
            if self._unsubscribe is not None:
                self._unsubscribe()
            self.job = job
            self._reset_body()
            if job.streams and not job.done():
                from ._stream_player import StreamingAudioPlayer

                self.player = StreamingAudioPlayer(mime=AUDIO_MIME.get(job.format, "audio/wav"))
                for part in list(job.parts):
                    self._play(part)
                self.body.children = (self.player,)
            self._unsubscribe = job.subscribe(self._on_update)
        if not job.done():
            TICKER.add(self)
        self.render()

    def _reset_body(self) -> None:
        self.player = None
        self._shown_result = False
        self.body.children = ()
        self.message.value = ""

    def _on_update(self, update: JobUpdate) -> None:
        for part in update.new_parts:
            self._play(part)
        if update.ended:
            TICKER.discard(self)
        self.render()

    def _tick(self) -> None:
        if self.job.done():
            TICKER.discard(self)
        self.render()

    def _play(self, part: Any) -> None:
        if self.player is not None and isinstance(part, dict) and isinstance(part.get("audio"), str):
            self.player.add_part(base64.b64decode(part["audio"]), int(part.get("chunks") or 0))

    def _act(self, action: Any) -> None:
        # A button callback: an error goes under the buttons, never into the void of a comm handler.
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.message.value = f"<span style='color:{ERROR_COLOR}'>{escape(str(exc))}</span>"

    # -- rendering -----------------------------------------------------------------------------------

    def render(self) -> None:
        with self._lock:
            job = self.job
            done = job.done()
            if not done and self._shown_result:  # retried under the same id (here or elsewhere)
                self._reset_body()
                TICKER.add(self)
            if done and not self._shown_result:
                # The body before the head: whoever sees the final chip sees the final body too.
                self._shown_result = True
                self.body.children = (self._result_widget(job),)
                self.player = None
            self.head.value = card_head_html(job)
            self._render_progress(job)
            self.cancel_button.layout.display = "none" if job.ended else ""  # agrees with the head
            self.retry_button.layout.display = "" if job.can_rerun else "none"
            if self.player is not None and not done:
                self.player.status = display.status_style(job.status)[1]
            self.state = f"{job.id} {job.status}"

    def _render_progress(self, job: Job) -> None:
        fraction, text = progress_of(job)
        if fraction is None or job.done():
            self.progress.layout.display = "none"
            self.progress_label.value = ""
            return
        self.progress.layout.display = ""
        self.progress.value = fraction
        self.progress_label.value = f"<span style='color:{MUTED_COLOR}'>{escape(text)}</span>"

    def _result_widget(self, job: Job) -> widgets.Widget:
        error = job.exception(timeout=0)
        if error is not None:
            return widgets.HTML(_error_html(job, error))
        result = job.result(timeout=0)
        if isinstance(result, LayersResult):
            from ._gallery import gallery_of

            return gallery_of(result)
        return widgets.HTML(_result_html(job, result))

    def static_html(self) -> str:
        return card_static_html(self.job)

    def __repr__(self) -> str:
        # Short and stable: nbval compares text/plain, and widget reprs list every trait.
        return f"JobCard({self.job!r})"


# -- the card's pieces as HTML: the live head line and the whole card of a saved notebook -------------


def progress_of(job: Job) -> tuple[float | None, str]:
    """(fraction done, words) from the worker's progress (denoising steps) or a stream's parts."""
    progress = job.progress if job.progress is not None or not job.parts else job.parts[-1]
    if isinstance(progress, dict):
        for done_key, total_key, word in (("step", "steps", "step"), ("chunk", "chunks", "part")):
            done, total = progress.get(done_key), progress.get(total_key)
            if isinstance(done, int | float) and isinstance(total, int | float) and total > 0:
                return min(1.0, float(done) / float(total)), f"{word} {done:g} of {total:g}"
    return None, ""


def card_head_html(job: Job) -> str:
    """Model, short job id, the status chip (with elapsed time while running), and the inputs."""
    color, word = display.status_style(job.status)
    chip = word
    if not job.done() and job.status != JobStatus.SUBMITTING:
        chip += f" {job.timing_summary()}"
    short = (job.id[:8] + "…") if len(job.id) > 9 else (job.id or "not sent yet")
    timing = job.timing_summary() if job.done() else ""
    cost = job.cost if job.done() else None
    inputs = inputs_summary(job.input)
    return (
        f"<div class='rp-job-line' style='{BOX}'>"
        f"<b>{escape(job.model or job.endpoint_id)}</b> "
        f"<code title='{escape(job.id)}' data-job-id='{escape(job.id)}'>{escape(short)}</code> "
        f"<span class='rp-chip' data-status='{escape(str(job.status))}' style='background:{color};"
        f"color:#fff;border-radius:9px;padding:0 8px;white-space:nowrap'>{escape(chip)}</span>"
        + (f" <span style='color:{MUTED_COLOR}'>{escape(timing)}</span>" if timing else "")
        + (
            f" <span class='rp-job-cost' title='{escape(cost.basis)}' style='color:{MUTED_COLOR}'>"
            f"· {escape(cost.short())}</span>"
            if cost is not None and cost.usd is not None
            else ""
        )
        + (f"<div class='rp-job-inputs' style='color:#374151'>{inputs}</div>" if inputs else "")
        + "</div>"
    )


def inputs_summary(inputs: dict[str, Any]) -> str:
    """The text quoted, then the other parameters as `name value` (media and long values named only)."""
    parts = []
    text = inputs.get("text") or inputs.get("prompt")
    if isinstance(text, str) and text:
        quote = text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1] + "…"
        parts.append(f"<i>“{escape(quote)}”</i>")
    for name, value in inputs.items():
        if value is None or (name in ("text", "prompt") and value == text) or name == "stream":
            continue
        shown = str(value)
        if isinstance(value, dict | list | bytes) or len(shown) > MAX_SHOWN_VALUE:
            parts.append(f"{escape(name)} (given)")
        else:
            parts.append(f"{escape(name)} {escape(shown)}")
    return " · ".join(parts)


def card_static_html(job: Job) -> str:
    """The card as it stays in a saved notebook: no kernel, no JavaScript, no widget."""
    head = card_head_html(job)
    if not job.done():
        note = (
            f"still {display.status_style(job.status)[1]} when the notebook was saved; with the kernel: "
            f"<code>%runpod attach {escape(job.id)}</code>"
            if job.id
            else "not sent yet when the notebook was saved"
        )
        body = f"<div style='color:{MUTED_COLOR}'>{note}</div>"
    elif (error := job.exception(timeout=0)) is not None:
        body = _error_html(job, error)
    else:
        body = _result_html(job, job.result(timeout=0))
        if isinstance(job.result(timeout=0), LayersResult):
            body += (
                f"<div style='color:{MUTED_COLOR}'>Layer toggles and Save buttons need the running kernel: "
                "<code>rp_notebook.views.gallery_of(job.result())</code>.</div>"
            )
    return f"<div class='rp-job-card rp-job-card-static' style='{BOX}'>{head}{body}</div>"


def _result_html(job: Job, result: Any) -> str:
    if isinstance(result, AudioResult):
        return audio_html(result, saved_to=job.saved_to)
    bundle = display.result_bundle(result)
    return str(bundle.get("text/html") or f"<pre>{escape(repr(result))}</pre>")


def _error_html(job: Job, error: BaseException) -> str:
    if job.status == JobStatus.CANCELLED:
        return f"<div class='rp-job-error' style='color:{MUTED_COLOR}'>cancelled</div>"
    return f"<div class='rp-job-error' style='color:{ERROR_COLOR}'>{escape(type(error).__name__)}: {escape(str(error))}</div>"
