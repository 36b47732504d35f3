"""What every panel shares: the once-a-second ticker, status lines, label widths, safe callbacks.

Threads. Widget callbacks (button clicks, uploads) run on the kernel's main thread and must return
at once: they send at most one short HTTP request (a submit, a cancel) and never wait for a result.
Job done-callbacks run on the job manager's poller threads, and the ticker below runs on its own
daemon thread. Those threads only set widget traits (`value`, `children`, `disabled`), which
ipykernel sends from any thread; none of them prints or enters an `Output` context, whose
routing breaks from threads (shared/docs/jupyter-ecosystem.md §3.2).

Panels refresh once a second on the views' ticker (`rp_notebook.views.TICKER`): elapsed time
changes without any job event, and the job manager needs no knowledge of panels.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from html import escape
from typing import Any, TypeVar

import ipywidgets as widgets

from .. import display
from ..client import JobStatus
from ..jobs import Job
from ..views import TICKER, Ticker

__all__ = [
    "TICKER",
    "Ticker",
    "align_labels",
    "error_html",
    "field_message_html",
    "guarded",
    "job_status_html",
    "label_width",
    "labelled_widgets",
    "progress_text",
]

log = logging.getLogger(__name__)


ERROR_COLOR = "#dc2626"
MUTED_COLOR = "#6b7280"


F = TypeVar("F", bound=Callable[..., Any])


def guarded(method: F) -> F:
    """Run a widget or job callback so that an error lands in the panel's status line.

    An exception raised in an ipywidgets callback goes nowhere visible in JupyterLab, and one raised
    in a job done-callback would stop the job's later callbacks: both are shown instead.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - shown to the user; never raised into a callback
            self._show_error(exc)
            return None

    return wrapper  # type: ignore[return-value]


def status_word(status: str) -> tuple[str, str]:
    return display.status_style(status)


def job_status_html(job: Job, *, more: int = 0) -> str:
    """One line about a job: status, id, elapsed or queue/run time, progress or error.

    The status is also in `data-status` (IN_QUEUE, COMPLETED, ...) for browser tests.
    """
    status = str(job.status)
    color, word = status_word(status)
    parts = [job.timing_summary(), progress_text(job)]
    if job.done():
        error = job.exception(timeout=0)
        if error is not None and status != JobStatus.CANCELLED:  # "cancelled" says it all
            parts.append(f"<span style='color:{ERROR_COLOR}'>{escape(str(error))}</span>")
    if more:
        parts.append(f"{more} more in flight")
    details = "".join(f" · {part if part.startswith('<') else escape(part)}" for part in parts if part)
    return (
        f"<span class='rp-status' data-status='{escape(status)}'>"
        f"<b style='color:{color}'>● {escape(word)}</b> · <code>{escape(job.id)}</code>{details}</span>"
    )


def progress_text(job: Job) -> str:
    """The worker's progress ("part 2 of 5"), also for a streaming job, whose parts carry it."""
    text = job.progress_summary()
    parts = getattr(job, "parts", None)
    if text or job.done() or not parts:
        return text
    last = parts[-1]
    if isinstance(last, dict) and {"chunk", "chunks"} <= last.keys():
        return f"part {last['chunk']} of {last['chunks']}"
    return ""


def error_html(exc: BaseException) -> str:
    """An error for a status line: its message (which names the field, for bad input)."""
    return (
        f"<span class='rp-error' style='color:{ERROR_COLOR}'>{escape(str(exc) or type(exc).__name__)}</span>"
    )


def note_html(text: str) -> str:
    return f"<span style='color:{MUTED_COLOR}'>{escape(text)}</span>"


# -- one label width per panel ----------------------------------------------------------------------------

#: Room per character of a label, in `ch` (the width of "0"): lower-case text is narrower than "0" on
#: average, but "m" and "w" are wider, so a little over one keeps the longest label whole.
LABEL_CH_PER_CHAR = 1.1
#: What a slider, dropdown or box gets next to the label column (its readout included).
CONTROL_PX = 320


def label_width(labels: Iterable[str]) -> str:
    """A CSS width for a label column that holds every one of `labels` whole, e.g. "22ch"."""
    longest = max((len(label) for label in labels), default=0)
    return f"{math.ceil(longest * LABEL_CH_PER_CHAR) + 1}ch"


def labelled_widgets(roots: Iterable[widgets.Widget]) -> Iterator[widgets.Widget]:
    """Every widget under `roots` (boxes and accordions opened) with a description in a label column."""
    for widget in roots:
        if isinstance(widget, widgets.Box):
            yield from labelled_widgets(widget.children)
        elif (
            getattr(widget, "description", "")
            and hasattr(getattr(widget, "style", None), "description_width")
            and not isinstance(widget, widgets.Button | widgets.FileUpload)
        ):
            yield widget


def align_labels(roots: Iterable[widgets.Widget]) -> str:
    """Give every labelled widget under `roots` one label width (the longest label's), so their
    sliders, boxes and checkboxes start at the same x. Returns that width (CSS).

    A control's own width becomes the label column plus CONTROL_PX (capped at the output's width),
    unless it was given one (a full-width text box keeps its 100%).
    """
    found = list(labelled_widgets(roots))
    width = label_width(str(widget.description) for widget in found)
    for widget in found:
        widget.style.description_width = width
        if not widget.layout.width:
            widget.layout.width = f"calc({width} + {CONTROL_PX}px)"
            widget.layout.max_width = "100%"
    return width


def field_message_html(exc: BaseException | None) -> str:
    """The small red line under a field that holds a bad value (empty when it is fine)."""
    if exc is None:
        return ""
    return (
        f"<div class='rp-error' style='color:{ERROR_COLOR};font-size:12px;line-height:1.3;"
        f"white-space:normal'>{escape(str(exc))}</div>"
    )
