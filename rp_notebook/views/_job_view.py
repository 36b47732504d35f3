"""JobView: a job in a notebook output, live while it runs, static HTML once saved.

In a kernel with a front end, the output is the job's `JobCard` (a widget) and beside it the card's
static HTML, marked as a live view: the notebook file keeps the HTML and drops the widget
(rp_notebook.saved_notebooks), so a reopened notebook shows the result, not "model not found".
The output is replaced (`update_display`, safe from any thread) when the job's status changes, so
the HTML a save would keep is the current one; the card itself updates its widgets in between.

Outside a kernel (a plain IPython terminal) the output is the static HTML and text, replaced as
the job moves on.

One view per job (`view_of`): showing a job in two cells gives two outputs of the same view.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from typing import Any

from .. import display
from ..jobs import Job, JobUpdate
from ..saved_notebooks import live_output
from ._output import in_kernel, replace_output, show_bundle
from ._ticker import TICKER

__all__ = ["JobView", "refresh_job_outputs", "view_of"]

_views: weakref.WeakKeyDictionary[Job, JobView] = weakref.WeakKeyDictionary()
_views_lock = threading.Lock()


def view_of(job: Job) -> JobView:
    """The view of `job` (made on first use)."""
    with _views_lock:
        view = _views.get(job)
        if view is None:
            view = _views[job] = JobView(job)
        return view


class JobView:
    """The output of one job; see the module docstring."""

    def __init__(self, job: Job) -> None:
        # Weak: the job holds its view (a subscriber), and `view_of` keys views by job weakly; a view
        # holding its job strongly would keep every job that was ever shown alive.
        self._job = weakref.ref(job)
        self.display_ids: list[str] = []
        self.card: Any = None
        self._following = False

    @property
    def job(self) -> Job:
        job = self._job()
        if job is None:  # cannot happen while the job notifies its view, which is when this is used
            raise ReferenceError("the job of this view is gone")
        return job

    def show(self) -> None:
        """Display the job here, and keep this output current."""
        if self.card is None and in_kernel():
            from ._job_card import JobCard

            self.card = JobCard(self.job)
        if not self._following:
            self._following = True
            if self.card is not None:  # the card's job: a rerun may replace the first one
                self.card.observe(lambda _: self.render(), names="state")
            else:
                self.job.subscribe(self._on_update)
        data, metadata = self.output()
        display_id = show_bundle(data, live=True, metadata=metadata)
        if display_id is not None:
            self.display_ids.append(display_id)
        if not self.job.done():
            self.job.watch()  # on screen: followed in short rounds, so the card stays live
            if self.card is None:
                TICKER.add(self)

    def bundle(self) -> dict[str, Any]:
        """The output's data: the card's widget view (in a kernel) beside its static HTML and text."""
        return self.output()[0]

    def output(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(data, metadata) of the output."""
        from ._job_card import card_static_html

        job = self.card.job if self.card is not None else self.job  # a card follows a rerun's new job
        text = display.job_bundle(job)["text/plain"]
        html = card_static_html(job)
        if self.card is None:
            return {"text/plain": text, "text/html": html}, {}
        return live_output(self.card._repr_mimebundle_(), html=html, text=text)

    def render(self) -> None:
        if not self.display_ids:
            return
        data, metadata = self.output()
        for display_id in self.display_ids:
            replace_output(data, display_id, metadata=metadata)

    # -- from the job manager's thread and the ticker --------------------------------------------

    def _on_update(self, update: JobUpdate) -> None:
        if update.ended:
            TICKER.discard(self)
        if update.status_changed or update.ended or update.priced_late:
            self.render()

    def _tick(self) -> None:
        if self._job() is None or self.job.done():
            TICKER.discard(self)
            return
        self.render()


def refresh_job_outputs(wait: float = 0.0) -> None:
    """Send every shown job's output again as it is now, after waiting up to `wait` seconds for the
    jobs to end. For notebooks run headless (nbclient, nbconvert --execute): they keep only the
    output updates that arrive while a cell runs, so this, run in a last cell, records the ends."""
    with _views_lock:
        views = list(_views.values())
    deadline = time.monotonic() + wait
    for view in views:
        job = view.card.job if view.card is not None else view._job()
        if job is not None and not job.done():
            with contextlib.suppress(Exception):  # still running: shown as it is
                job.exception(timeout=max(0.0, deadline - time.monotonic()))
        view.render()
