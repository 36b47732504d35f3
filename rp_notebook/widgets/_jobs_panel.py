"""JobsPanel: every job of this kernel, live, with cancel, retry and open buttons.

The rows follow `get_manager().jobs()` (magics, `submit()`, other panels, batches alike), newest
first. A row is built once per job and then only its traits change, so a refresh sends just
the values that moved. Two things drive refreshes:

- `Job.add_done_callback`: a job's end (or a cancel) shows at once, from the poller thread;
- the shared ticker, once a second: new jobs, queued -> running, elapsed time and progress.

Listed jobs that are still running are `watch()`ed, so the manager polls them in short rounds as
it does displayed ones. Buttons send one request each (cancel, retry) and return; "open" shows the
job's `JobCard` below the table (the card a magic's output and the panels show: live while it
runs, then the player, the gallery or the error). Retry runs a failed or timed-out job again
through Runpod's retry, and a cancelled one as a new job (`Job.rerun`), which gets its own row.

Jobs of earlier sessions (a kernel restarted with jobs in flight) are in the job ledger: the panel
says how many, and "Resume" follows those again and lists the recent saved results beside them.
"""

from __future__ import annotations

import threading
import time
from html import escape

import ipywidgets as widgets

from ..client import JobStatus
from ..jobs import Job, JobManager, get_manager
from ..saved_notebooks import KeptAsOneLine
from ..views import JobCard
from ._common import TICKER, error_html, guarded, note_html, progress_text, status_word

__all__ = ["JobsPanel"]

#: Newest jobs shown; older ones are counted, not drawn (each row is a handful of widgets).
MAX_ROWS = 50
_CELL = {"job": "300px", "status": "220px", "time": "220px"}


class _JobRow:
    """The widgets of one job's row; `update()` copies the job's state into them."""

    def __init__(self, job: Job, panel: JobsPanel) -> None:
        self.job = job
        self.label = widgets.HTML(
            f"<b>{escape(job.model or job.endpoint_id)}</b> <code>{escape(job.id[:18])}</code>",
            layout=widgets.Layout(width=_CELL["job"]),
        )
        self.status = widgets.HTML(layout=widgets.Layout(width=_CELL["status"]))
        self.time = widgets.HTML(layout=widgets.Layout(width=_CELL["time"]))
        self.cancel_button = _small_button("Cancel", "stop", "rp-jobs-cancel")
        self.retry_button = _small_button("Retry", "repeat", "rp-jobs-retry")
        self.open_button = _small_button("Open", "eye", "rp-jobs-open")
        self.cancel_button.on_click(lambda _: panel.cancel(job))
        self.retry_button.on_click(lambda _: panel.retry(job))
        self.open_button.on_click(lambda _: panel.show_result(job))
        self.status.add_class("rp-jobs-status")
        self.time.add_class("rp-jobs-time")
        self.box = widgets.HBox(
            [self.label, self.status, self.time, self.cancel_button, self.retry_button, self.open_button]
        )
        self.box.add_class("rp-jobs-row")
        self.update()

    def update(self) -> None:
        job = self.job
        status = str(job.status)
        color, word = status_word(status)
        progress = progress_text(job)
        self.status.value = (
            f"<span class='rp-status' data-status='{escape(status)}' style='color:{color}'>● {escape(word)}</span>"
            + (f" · {escape(progress)}" if progress else "")
        )
        self.time.value = escape(_times(job))
        self.cancel_button.disabled = job.ended  # read after the status, so the two agree
        self.retry_button.disabled = not job.can_rerun


class JobsPanel(KeptAsOneLine, widgets.VBox):  # type: ignore[misc]  # ipywidgets has no types
    """The jobs of this kernel. manager: whose jobs (default: the process-wide one)."""

    saved_as = "Jobs panel (%runpod panel jobs)"

    def __init__(self, *, manager: JobManager | None = None, max_rows: int = MAX_ROWS) -> None:
        self._jobs_manager = manager or get_manager()
        self.max_rows = max_rows
        #: job id -> its row, for every job seen so far.
        self.rows: dict[str, _JobRow] = {}
        self._lock = threading.RLock()
        self.summary = widgets.HTML()
        self.table = widgets.VBox()
        self.message = widgets.HTML()
        self.result_area = widgets.VBox()
        self.earlier = widgets.HTML()
        self.resume_button = _small_button("Resume", "history", "rp-jobs-resume")
        self.resume_button.layout.width = "110px"
        self.resume_button.tooltip = "Follow jobs of earlier sessions again and list their saved results"
        self.resume_button.on_click(lambda _: self.resume_earlier())
        self.earlier_bar = widgets.HBox([self.earlier, self.resume_button])
        self.earlier_bar.add_class("rp-jobs-earlier")
        self.summary.add_class("rp-jobs-summary")
        self.table.add_class("rp-jobs-table")
        self.message.add_class("rp-jobs-message")
        self.result_area.add_class("rp-jobs-result")
        self._header = widgets.HBox(
            [
                widgets.HTML(f"<b>{name}</b>", layout=widgets.Layout(width=width))
                for name, width in (
                    ("job", _CELL["job"]),
                    ("status", _CELL["status"]),
                    ("time", _CELL["time"]),
                )
            ]
        )
        super().__init__([self.summary, self.earlier_bar, self.table, self.message, self.result_area])
        self.add_class("rp-jobs-panel")
        self._show_earlier()
        self.refresh()
        TICKER.add(self)

    # -- actions (the row buttons call these; usable from Python too) ---------------------------------

    @guarded
    def cancel(self, job: Job) -> str:
        """Cancel `job` on the server; returns the status it ended in."""
        status = job.cancel()
        self.message.value = note_html(f"job {job.id}: {status.lower()}")
        self.refresh()
        return status

    @guarded
    def retry(self, job: Job) -> Job:
        """Run a failed, timed-out or cancelled job's input again and follow it here; returns the job
        that runs it (the same one through Runpod's retry, a new one for a cancelled job)."""
        rerun = job.rerun()
        again = "retried" if rerun is job else f"sent again as job {rerun.id}"
        self.message.value = note_html(f"job {job.id}: {again}")
        self._follow(rerun)
        self.refresh()
        return rerun

    @guarded
    def show_result(self, job: Job) -> None:
        """Show the job's card below the table: live while it runs, then its result or error."""
        card = JobCard(job)
        card.add_class("rp-jobs-card")
        shown, self.result_area.children = self.result_area.children, (card,)
        for old in shown:
            old.close()

    @guarded
    def resume_earlier(self) -> list[Job]:
        """Follow again the jobs of earlier sessions still in flight, and list recent saved results."""
        manager = self._jobs_manager
        jobs = manager.recover()
        ledger = manager.ledger
        if ledger is not None:
            known = {job.id for job in manager.jobs()}
            for entry in ledger.recent(self.max_rows):
                if entry.job_id not in known and entry.has_result:
                    jobs.append(manager.resume(entry.job_id))
        self.message.value = note_html(f"{len(jobs)} job(s) of earlier sessions listed")
        self._show_earlier()
        self.refresh()
        return jobs

    def _show_earlier(self) -> None:
        ledger = self._jobs_manager.ledger
        known = {job.id for job in self._jobs_manager.jobs()}
        recent = [e for e in ledger.recent(self.max_rows) if e.job_id not in known] if ledger else []
        waiting = self._jobs_manager.earlier_in_flight()
        text = f"{len(recent)} recent job(s) of earlier sessions"
        if waiting:
            text += f", {len(waiting)} of them with no recorded end"
        self.earlier.value = note_html(text) if recent or waiting else ""
        self.earlier_bar.layout.display = None if recent or waiting else "none"

    def refresh(self) -> None:
        """Bring the table up to date with the manager's jobs (the ticker calls this every second)."""
        jobs = self._jobs_manager.jobs()
        with self._lock:
            listed: list[str] = []
            for job in jobs:
                # Read once: the manager's thread names a job while this runs. One still on its
                # way has no row until Runpod names it.
                key = job.id
                if not key:
                    continue
                listed.append(key)
                row = self.rows.get(key)
                if row is None:
                    self.rows[key] = _JobRow(job, self)
                    self._follow(job)
                else:
                    row.update()
            shown = list(reversed(listed))[: self.max_rows]
            children: list[widgets.Widget] = [self._header, *(self.rows[key].box for key in shown)]
            if len(listed) > len(shown):
                children.append(widgets.HTML(note_html(f"and {len(listed) - len(shown)} older jobs")))
            if tuple(children) != self.table.children:
                self.table.children = tuple(children)
            self.summary.value = _summary(jobs)

    def close(self) -> None:
        TICKER.discard(self)
        shown, self.result_area.children = self.result_area.children, ()
        for card in shown:
            card.close()
        super().close()

    # -- internals --------------------------------------------------------------------------------------

    def _follow(self, job: Job) -> None:
        if not job.done():
            job.watch()
            job.add_done_callback(self._on_done)

    @guarded
    def _on_done(self, job: Job) -> None:
        with self._lock:
            row = self.rows.get(job.id)
            if row is not None:
                row.update()
            self.summary.value = _summary(self._jobs_manager.jobs())

    def _tick(self) -> None:
        self.refresh()

    def _show_error(self, exc: BaseException) -> None:
        self.message.value = error_html(exc)

    def __repr__(self) -> str:
        return "JobsPanel()"


def _small_button(description: str, icon: str, css_class: str) -> widgets.Button:
    button = widgets.Button(description=description, icon=icon, layout=widgets.Layout(width="90px"))
    button.add_class(css_class)
    return button


def _times(job: Job) -> str:
    if job.done():
        return job.timing_summary()
    elapsed = time.time() - job.submitted_at
    if job.status == JobStatus.IN_QUEUE:
        return f"queued {elapsed:.0f} s"
    delay = job.delay_time
    if delay is not None:
        return f"queued {delay:.1f} s · running {max(0.0, elapsed - delay):.0f} s"
    return f"{elapsed:.0f} s"


def _summary(jobs: list[Job]) -> str:
    if not jobs:
        return note_html("no jobs in this kernel yet")
    counts: dict[str, int] = {}
    for job in jobs:
        word = status_word(str(job.status))[1]
        counts[word] = counts.get(word, 0) + 1
    listed = ", ".join(f"{n} {word}" for word, n in counts.items())
    return note_html(f"{len(jobs)} job{'s' if len(jobs) != 1 else ''}: {listed}")
