"""Notebook display, in one place: the live job line, the audio player, the static layer gallery, tables.

Everything renders to `text/html` plus a `text/plain` twin, so a saved notebook (nbviewer,
GitHub) still shows the last state and plays the audio without a kernel: the player embeds the
file as a data: URL rather than pointing at a widget model that only lives in the kernel.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from .costs import current_prices
from .results._audio import AUDIO_MIME
from .results._html import BOX

if TYPE_CHECKING:
    from .jobs import Job
    from .provisioning import EndpointHealth, GpuPool

#: What a table shows where there is no price (never a guessed number).
NO_PRICE = "—"

__all__ = [
    "AUDIO_MIME",
    "Rendered",
    "health_cells",
    "job_bundle",
    "price_text",
    "prices_note",
    "result_bundle",
    "setup_bundle",
    "status_style",
    "table_bundle",
    "vram_text",
]


_STATUS_STYLE = {
    "IN_QUEUE": ("#6b7280", "queued"),
    "IN_PROGRESS": ("#2563eb", "running"),
    "RUNNING": ("#2563eb", "running"),
    "COMPLETED": ("#16a34a", "done"),
    "FAILED": ("#dc2626", "failed"),
    "CANCELLED": ("#6b7280", "cancelled"),
    "TIMED_OUT": ("#dc2626", "timed out"),
    "SUBMITTING": ("#6b7280", "submitting"),
    "SUBMIT_FAILED": ("#dc2626", "not submitted"),
    "UNKNOWN": ("#6b7280", "status unknown"),
}
_BOX = BOX


def job_bundle(job: Job, *, widget: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The display of a job: a status line while it runs, its result (or error) once it ends.

    `widget`: the mimebundle of a widget that stands for the job in a live front end (a streaming
    player, a layer gallery); the bundle keeps the HTML beside it, which a saved notebook shows.
    """
    bundle = _job_bundle(job)
    if widget:
        bundle.update({k: v for k, v in widget.items() if k != "text/plain"})
    return bundle


def _job_bundle(job: Job) -> dict[str, Any]:
    head_text, head_html = _job_line(job)
    if job.status == "COMPLETED":
        try:
            result = job.result(timeout=0)
        except Exception as exc:  # noqa: BLE001 - a display never raises; show what went wrong instead
            return _with_error(head_text, head_html, exc)
        bundle = result_bundle(result)
        return {
            **bundle,  # e.g. a widget view: a live front end shows the widget, a saved notebook the HTML
            "text/plain": f"{head_text}\n{bundle.get('text/plain', '')}",
            "text/html": f"<div style='{_BOX}'>{head_html}{bundle.get('text/html', escape(str(result)))}</div>",
        }
    if job.done():
        return _with_error(head_text, head_html, job.exception(timeout=0))
    return {"text/plain": head_text, "text/html": f"<div style='{_BOX}'>{head_html}</div>"}


def status_style(status: str) -> tuple[str, str]:
    """(colour, word) of a job status: the words every view of a job uses ("queued", "running")."""
    return _STATUS_STYLE.get(str(status), ("#6b7280", str(status).lower()))


def _job_line(job: Job) -> tuple[str, str]:
    color, word = status_style(job.status)
    timing = job.timing_summary()
    progress = job.progress_summary()
    parts = [
        p
        for p in (job.model or job.endpoint_id, f"job {job.id}" if job.id else "", word, timing, progress)
        if p
    ]
    text = " · ".join(parts)
    html = (
        f"<div class='rp-notebook-job' data-status='{escape(str(job.status))}'>"
        f"<span style='color:{color}'>●</span> <b>{escape(job.model or job.endpoint_id)}</b> "
        f"<code>{escape(job.id)}</code> <span style='color:{color}'>{escape(word)}</span>"
        + "".join(f" · {escape(p)}" for p in (timing, progress) if p)
        + "</div>"
    )
    return text, html


def _with_error(head_text: str, head_html: str, exc: BaseException | None) -> dict[str, str]:
    message = f"{type(exc).__name__}: {exc}" if exc else "no result"
    return {
        "text/plain": f"{head_text}\n{message}",
        "text/html": f"<div style='{_BOX}'>{head_html}<div style='color:#dc2626'>{escape(message)}</div></div>",
    }


def result_bundle(result: Any) -> dict[str, Any]:
    render = getattr(result, "_repr_mimebundle_", None)
    if callable(render):
        return dict(render())
    return {"text/plain": repr(result), "text/html": f"<pre>{escape(repr(result))}</pre>"}


def setup_bundle(rows: list[tuple[str, str, str]]) -> dict[str, str]:
    """The `%runpod` setup table: (setting, value, where it came from). Values are never secrets."""
    width = max(len(name) for name, _, _ in rows)
    text = "\n".join(
        f"{name:<{width}}  {value}" + (f"  ({source})" if source else "") for name, value, source in rows
    )
    cells = "".join(
        f"<tr><td style='text-align:left'><b>{escape(name)}</b></td><td style='text-align:left'>{escape(value)}</td>"
        f"<td style='text-align:left;color:#6b7280'>{escape(source)}</td></tr>"
        for name, value, source in rows
    )
    return {
        "text/plain": text,
        "text/html": f"<table class='rp-notebook-setup' style='{_BOX}'>{cells}</table>",
    }


def table_bundle(
    columns: Sequence[str] | None,
    rows: Iterable[Sequence[str]],
    *,
    notes: Iterable[str] = (),
    css_class: str = "rp-notebook-table",
) -> dict[str, str]:
    """A table as HTML (every cell escaped) and aligned plain text, with notes below it.

    `columns` None gives a listing without a header row (e.g. "name  value" pairs). Cells are text:
    callers format numbers themselves, so the HTML and the text always say the same thing.
    """
    body = [[str(cell) for cell in row] for row in rows]
    notes = list(notes)
    head = list(columns) if columns is not None else None
    widths = [
        max(len(cell) for cell in column) for column in zip(*([head] if head else []), *body, strict=True)
    ]
    lines = []
    for index, row in enumerate([head, *body] if head else body):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if head and index == 0:
            lines.append("  ".join("-" * width for width in widths))
    text = "\n".join(lines + ([""] if notes and lines else []) + notes)
    cell = "style='text-align:left;padding:2px 10px 2px 0'"
    header = "".join(f"<th {cell}>{escape(name)}</th>" for name in head) if head else ""
    cells = "".join(
        "<tr>" + "".join(f"<td {cell}>{escape(value)}</td>" for value in row) + "</tr>" for row in body
    )
    notes_html = "".join(f"<div style='color:#6b7280'>{escape(note)}</div>" for note in notes)
    thead = f"<thead><tr>{header}</tr></thead>" if head else ""
    table = f"<table>{thead}<tbody>{cells}</tbody></table>" if body else ""
    return {
        "text/plain": text,
        "text/html": f"<div class='{css_class}' style='{_BOX}'>{table}{notes_html}</div>",
    }


class Rendered:
    """A ready mimebundle as a magic's return value (so `;` silences it and Out[] keeps it)."""

    def __init__(self, bundle: dict[str, str], summary: str = "") -> None:
        self._bundle = bundle
        self._summary = summary

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return self._bundle

    def __repr__(self) -> str:
        return self._summary or self._bundle.get("text/plain", "")


# -- provisioning: the cells the magics' tables and the deploy panel share ----------------------------


def vram_text(pool: GpuPool) -> str:
    """A pool's memory: "16 GB", or "16-20 GB" for mixed cards (a worker is sure of the smaller)."""
    low, high = pool.vram_gb, pool.max_vram_gb
    return f"{low} GB" if low == high else f"{low}-{high} GB"


def price_text(pool_id: str, *, active: bool = False) -> str:
    """A pool's serverless price per worker-second and per hour from the price table in force
    ("$0.00031/s · $1.12/h"), flex or active; "—" for a pool the table has no price for."""
    price = current_prices().get(pool_id)
    if price is None:
        return NO_PRICE
    per_s = price.active_per_s if active else price.flex_per_s
    return f"${per_s:.5f}/s · ${per_s * 3600:.2f}/h"


def prices_note(pool_ids: Iterable[str] = ()) -> str:
    """Where the prices come from and their date, and why a listed pool has none."""
    table = current_prices()
    missing = [
        f"{pool} ({table.unpriced.get(pool, 'no price in the table')})"
        for pool in pool_ids
        if table.get(pool) is None
    ]
    note = f"prices per GPU: {table.label}"
    return note + (f"; {NO_PRICE}: " + ", ".join(missing) if missing else "")


def health_cells(health: EndpointHealth) -> tuple[str, str]:
    """(workers, jobs) of an endpoint's health, e.g. ("1 idle, 0 running", "0 queued, 1 running, ...")."""
    workers = f"{health.workers_idle} idle, {health.workers_running} running"
    if health.workers_initializing:
        workers += f", {health.workers_initializing} starting"
    if health.error:
        workers += f"; cannot start: {textwrap.shorten(health.error, 160, placeholder=' …')}"
    jobs = (
        f"{health.jobs_in_queue} queued, {health.jobs_in_progress} running, "
        f"{health.jobs_completed} completed, {health.jobs_failed} failed"
    )
    return workers, jobs
