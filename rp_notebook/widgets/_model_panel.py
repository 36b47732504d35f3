"""ModelPanel: what the TTS and layers panels share.

A panel is a form built from the model's fields (`_fields.FieldForm`), Generate and Cancel buttons,
a live status line and a history of its jobs, newest first, each shown as its `JobCard` (the card a
magic's output and the jobs panel show: status chip, progress, Cancel/Retry, then the player or
gallery).

- Every value is checked as it changes, by its field's own check (`FieldForm`): while one is bad,
  Generate is disabled and the message (naming the field and what it allows, as the client's
  InputError does) stands in red under that field; fixing the value clears it.
- Generate validates and submits through `rp_notebook._api.submit`, the path the magics take, so a
  bad value is refused before any request with the same message (naming the field), shown in
  the status line. The click returns as soon as the one `run` request is answered.
- A job joins the history as its card the moment it is submitted; the card follows the job itself.
  The job's end arrives through `Job.add_done_callback` on a poller thread, and the shared ticker
  (`_common.TICKER`) redraws the status line of jobs in flight once a second.
- Cancel cancels every job of this panel that is still queued or running.

Nothing from the settings is put into a widget: the endpoint is resolved when a job is submitted,
and the API key stays in the client.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import ipywidgets as widgets

from .. import _api
from ..jobs import Job
from ..jobs._job import watching_new_jobs
from ..models import MODELS
from ..saved_notebooks import KeptAsOneLine
from ..views import JobCard
from ._common import TICKER, error_html, guarded, job_status_html, note_html
from ._fields import FieldForm

__all__ = ["ModelPanel"]

#: Older jobs are dropped from a panel's history past this many (each card holds its audio or layers).
MAX_HISTORY = 50


class ModelPanel(KeptAsOneLine, widgets.VBox):  # type: ignore[misc]  # ipywidgets has no types
    """Base class: subclasses set `model`, build their own inputs, then call `super().__init__`."""

    model: ClassVar[str]
    #: Fields shown up front; the spec's other fields go under "more options".
    main_fields: ClassVar[tuple[str, ...]] = ()
    #: Fields the subclass takes itself whose message sits under a labelled widget (so it starts
    #: under the control, as a form field's does).
    indented_messages: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, endpoint: str | None = None, special: tuple[widgets.Widget, ...] = ()) -> None:
        self.spec = MODELS[self.model]
        #: The endpoint id to submit to; None uses the one configured for the model at submit time.
        self.endpoint = endpoint
        #: Every job submitted from this panel, oldest first.
        self.jobs: list[Job] = []
        self._lock = threading.RLock()
        self._error: BaseException | None = None

        prefix = f"rp-{self.model}"
        self.generate_button = widgets.Button(description="Generate", button_style="primary", icon="play")
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.status = widgets.HTML(note_html("ready"))
        self.history = widgets.VBox()
        self.generate_button.add_class(f"{prefix}-generate")
        self.cancel_button.add_class(f"{prefix}-cancel")
        self.status.add_class(f"{prefix}-status")
        self.history.add_class(f"{prefix}-history")
        self.generate_button.on_click(self._on_generate)
        self.cancel_button.on_click(self._on_cancel)

        # Each control sits in its row, with its message line under it; a subclass may place a row
        # (or a bare control) in `special` itself.
        placed = {
            name
            for name, control in self.form.controls.items()
            if any(widget is control or widget is self.form.rows[name] for widget in special)
        }
        main = [self.form.rows[name] for name in self.main_fields if name in self.form and name not in placed]
        rest = [
            row for name, row in self.form.rows.items() if name not in self.main_fields and name not in placed
        ]
        self.form.align([*special, *main, *rest], indent=self.indented_messages)
        self.form.on_change(self._on_form_change)
        self._on_form_change()
        sections: list[widgets.Widget] = [*special, *main]
        if rest:
            more = widgets.Accordion(
                children=[widgets.VBox(rest)], titles=("more options",), selected_index=None
            )
            more.add_class(f"{prefix}-more")
            sections.append(more)
        super().__init__(
            [
                widgets.HTML(f"<b>{self.spec.title}</b>"),
                *sections,
                widgets.HBox([self.generate_button, self.cancel_button]),
                self.status,
                self.history,
            ]
        )
        self.add_class(f"{prefix}-panel")
        TICKER.add(self)

    #: Built by the subclass before `super().__init__`.
    form: FieldForm

    # -- what subclasses provide ----------------------------------------------------------------------

    def _inputs(self) -> tuple[dict[str, Any], str]:
        """(the raw inputs to submit, a short description of them for the job's card)."""
        raise NotImplementedError

    # -- actions ----------------------------------------------------------------------------------------

    @guarded
    def generate(self) -> Job | None:
        """What Generate does: validate and submit the panel's values.

        Returns the job, or None when it was refused (the reason is in the status line).
        """
        inputs, described = self._inputs()
        # Watched from birth: polled in short rounds, so the status line shows running and progress.
        with watching_new_jobs():
            job = _api.submit(self.model, endpoint=self.endpoint, **inputs)
        card = JobCard(job, caption=described)
        card.add_class(f"rp-{self.model}-entry")
        with self._lock:
            self._error = None
            self.jobs.append(job)
            kept = (card, *self.history.children)
            self.history.children = kept[:MAX_HISTORY]
        for dropped in kept[MAX_HISTORY:]:
            dropped.close()
        self._refresh()
        job.add_done_callback(self._on_done)
        return job

    @guarded
    def cancel(self) -> None:
        """What Cancel does: cancel every job of this panel still queued or running."""
        jobs = self._running()
        first_error: Exception | None = None
        for job in jobs:
            try:
                job.cancel()
            except Exception as exc:  # noqa: BLE001 - try the others, then report the first problem
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        self._refresh()

    def close(self) -> None:
        TICKER.discard(self)
        cards, self.history.children = self.history.children, ()
        for card in cards:
            card.close()
        super().close()

    # -- callbacks --------------------------------------------------------------------------------------

    def _on_generate(self, _button: widgets.Button) -> None:
        self.generate()

    def _on_form_change(self) -> None:
        # After every check: Generate is offered only while every value passes its field's check;
        # what is wrong is under the field itself (the form's message lines).
        problems = list(self.form.problems.values())
        self.generate_button.disabled = bool(problems)
        self.generate_button.tooltip = f"Fix first: {problems[0]}" if problems else "Submit a job"

    def _on_cancel(self, _button: widgets.Button) -> None:
        self.cancel()

    @guarded
    def _on_done(self, _job: Job) -> None:
        # On one of the manager's threads (or the main thread, after a cancel): set traits only.
        self._refresh()

    def _tick(self) -> None:
        # While a job runs, and once more after the last has ended (Cancel still on means the line
        # drawn last had one in flight): so an end is drawn even before, or without, its callback.
        if not self.cancel_button.disabled or self._running():
            self._refresh()

    def _show_error(self, exc: BaseException) -> None:
        with self._lock:
            self._error = exc
        self._refresh()

    def _refresh(self) -> None:
        with self._lock:
            latest = self.jobs[-1] if self.jobs else None
            others = sum(1 for job in self._running() if job is not latest)
            lines = []
            if self._error is not None:
                lines.append(error_html(self._error))
            if latest is not None:
                lines.append(job_status_html(latest, more=others))
            self.status.value = "<br>".join(lines) or note_html("ready")
            # The latest job's `ended` is read after its line is drawn, and follows its status, not
            # the done-callbacks that run a moment later (the ticker may refresh in between): the
            # button and the line agree.
            self.cancel_button.disabled = not others and (latest is None or latest.ended)

    def _running(self) -> list[Job]:
        with self._lock:
            return [job for job in self.jobs if not job.ended]

    def __repr__(self) -> str:
        # Short and stable: nbval compares a cell's text/plain, and widget reprs list every trait.
        shown = f"endpoint={self.endpoint!r}" if self.endpoint else ""
        return f"{type(self).__name__}({shown})"
