"""The cost subcommands of %runpod: what was spent, and a budget that refuses what would pass it.

%runpod cost [--jobs N]             spend per job, per endpoint, per day and this notebook's total,
                                    from the job ledger (so it survives a kernel restart)
%runpod budget [USD] [--per session|day] | off
                                    set, show or remove the budget (rp_notebook.budget)
"""

from __future__ import annotations

import argparse
import time
from html import escape

from .. import _spend, display
from ..costs import current_budget, current_prices, usd_text
from ..display import Rendered
from ..errors import InputError
from ._parsing import MagicArgumentParser

__all__ = ["budget_command", "cost_command", "help_texts"]

DEFAULT_JOBS = 10


def cost_parser() -> argparse.ArgumentParser:
    parser = MagicArgumentParser(
        prog="%runpod cost",
        description="Estimated spend per job, per endpoint, per day and for this notebook (the job ledger).",
    )
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, metavar="N", help="How many jobs to list.")
    return parser


def _budget_parser() -> argparse.ArgumentParser:
    parser = MagicArgumentParser(
        prog="%runpod budget",
        description="A spending limit: submissions that would pass it are refused before any request.",
    )
    parser.add_argument("usd", nargs="?", help="The budget in USD, or 'off' to remove it; none: show it.")
    parser.add_argument("--per", choices=("session", "day"), default="session", help="The period it covers.")
    return parser


def help_texts() -> list[str]:
    return [cost_parser().format_help(), _budget_parser().format_help()]


def cost_command(args: list[str]) -> Rendered:
    options = cost_parser().parse_args(args)
    if options.jobs < 0:
        raise InputError("jobs", f"must be 0 or more, got {options.jobs}")
    report = _spend.cost_report()
    sections = [
        _section(
            "Jobs (newest first)",
            ["job", "model", "endpoint", "ended", "cost", "counted"],
            _job_rows(report, options.jobs),
        ),
        _section(
            "Endpoints",
            ["endpoint", "jobs", "job time", "idle after jobs", "active workers", "total", "running now"],
            [
                [
                    spend.endpoint_id,
                    str(spend.jobs),
                    usd_text(spend.jobs_usd),
                    usd_text(spend.idle_usd),
                    usd_text(spend.active_usd),
                    usd_text(spend.total_usd),
                    f"{usd_text(spend.running_per_hour)}/h" if spend.running_per_hour else "",
                ]
                for spend in sorted(report.endpoints.values(), key=lambda s: -s.total_usd)
            ],
        ),
        _section(
            "Days",
            ["day", "jobs' cost"],
            [[day, usd_text(usd)] for day, usd in sorted(report.days.items(), reverse=True)],
        ),
    ]
    where = f"notebook {report.notebook}" if report.notebook else "every notebook and script"
    notes = [
        f"{where}: {usd_text(report.notebook_usd)}; all endpoints: {usd_text(report.total_usd)} "
        f"(last {_spend.REPORT_WINDOW_DAYS} days)",
        "Estimates: a job is its run time (and the cold start it waited for) at its endpoint's flex "
        "price; an endpoint adds the idle timeout after its workers' jobs and, when deployed from "
        "here, its active workers since then. Runpod's bill is the reference.",
        f"prices per GPU: {current_prices().label}",
    ]
    if report.unpriced_jobs:
        notes.append(f"{report.unpriced_jobs} job(s) have no price (CPU endpoints, or pools not known)")
    limit = current_budget()
    if limit is not None:
        notes.append(f"budget {limit}: {usd_text(_spend.spent(limit.per))} spent {limit.period_words}")
    html = "".join(section["text/html"] for section in sections)
    text = "\n\n".join(section["text/plain"] for section in sections)
    notes_html = "".join(f"<div style='color:#6b7280'>{escape(note)}</div>" for note in notes)
    return Rendered(
        {
            "text/html": f"<div class='rp-notebook-cost'>{html}{notes_html}</div>",
            "text/plain": text + "\n" + "\n".join(notes),
        },
        summary=f"spent {usd_text(report.total_usd)}",
    )


def _job_rows(report: _spend.CostReport, limit: int) -> list[list[str]]:
    rows = []
    for entry in report.jobs[:limit]:
        assert entry.cost is not None
        ended = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.ended_at or 0))
        rows.append(
            [entry.job_id, entry.model or "", entry.endpoint_id, ended, entry.cost.short(), entry.cost.parts]
        )
    return rows


def _section(title: str, columns: list[str], rows: list[list[str]]) -> dict[str, str]:
    bundle = display.table_bundle(
        columns, rows, notes=[] if rows else ["none yet"], css_class="rp-notebook-cost-table"
    )
    return {
        "text/html": f"<h4 style='margin:8px 0 2px'>{escape(title)}</h4>{bundle['text/html']}",
        "text/plain": f"{title}\n{bundle['text/plain']}",
    }


def budget_command(args: list[str]) -> Rendered:
    options = _budget_parser().parse_args(args)
    if options.usd is None:
        limit = current_budget()
        if limit is None:
            return _said("no budget: every submission is sent (set one: %runpod budget USD [--per day])")
        return _said(f"budget {limit}: {usd_text(_spend.spent(limit.per))} spent {limit.period_words}")
    if options.usd.lower() == "off":
        _spend.budget(off=True)
        return _said("budget removed: every submission is sent")
    try:
        usd = float(options.usd.lstrip("$"))
    except ValueError:
        raise InputError("usd", f"a number of dollars above 0, or 'off'; got {options.usd!r}") from None
    limit = _spend.budget(usd=usd, per=options.per)
    assert limit is not None
    return _said(
        f"budget {limit}: {usd_text(_spend.spent(limit.per))} spent {limit.period_words}; submissions that "
        "would pass it are refused before they are sent, with a warning past 80 %"
    )


def _said(text: str) -> Rendered:
    return Rendered({"text/plain": text, "text/html": f"<span>{escape(text)}</span>"}, text)
