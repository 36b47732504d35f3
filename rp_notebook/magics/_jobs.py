"""The job subcommands of %runpod: the job ledger listed, and jobs of earlier sessions followed again.

%runpod jobs [--limit N]                     recent jobs of every session, newest first
%runpod attach JOB_ID [--endpoint ID] [--model tts|layers]
                                             one job: its saved result, or followed again on Runpod
%runpod attach --all                         every job the ledger has in flight on this API

The ledger (jobs/_ledger.py) is what makes these work across kernel restarts: `jobs` reads it,
and `attach` asks the JobManager to `resume` a job from it (or `recover` them all). A job that is
not in the ledger (submitted by another tool) needs its endpoint.
"""

from __future__ import annotations

import argparse
import time

from .. import display
from ..costs import JobCost
from ..display import Rendered
from ..errors import InputError
from ..jobs import Job, get_manager
from ..jobs._ledger import LedgerEntry
from ..models import MODELS
from ..views._output import show_object
from ._parsing import MagicArgumentParser

__all__ = ["AttachedJobs", "attach_command", "help_texts", "jobs_command"]

DEFAULT_LIMIT = 20


def _jobs_parser() -> argparse.ArgumentParser:
    parser = MagicArgumentParser(
        prog="%runpod jobs", description="Recent jobs of this and earlier sessions (the job ledger)."
    )
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N", help="How many to list.")
    return parser


def _attach_parser() -> argparse.ArgumentParser:
    parser = MagicArgumentParser(
        prog="%runpod attach",
        description="Follow a job again (e.g. after a kernel restart), or show its saved result.",
    )
    parser.add_argument("job_id", nargs="?", help="The job id (see %%runpod jobs).")
    parser.add_argument(
        "--all", action="store_true", help="Every job still in flight on this API, from the job ledger."
    )
    parser.add_argument("--endpoint", help="The endpoint of a job that is not in the ledger.")
    parser.add_argument("--model", choices=MODELS, help="How to show its result (tts: a player, ...).")
    return parser


def help_texts() -> list[str]:
    return [_jobs_parser().format_help(), _attach_parser().format_help()]


class AttachedJobs(list[Job]):
    """What `%runpod attach --all` returns: the jobs, each shown as its own live output."""

    def _ipython_display_(self) -> None:
        if not self:
            print("no jobs in flight in the job ledger for this API")
        for job in self:
            show_object(job)


def attach_command(args: list[str]) -> Job | AttachedJobs:
    options = _attach_parser().parse_args(args)
    manager = get_manager()
    if options.all:
        if options.job_id or options.endpoint:
            _attach_parser().error("--all takes no job id and no --endpoint")
        return AttachedJobs(manager.recover())
    if not options.job_id:
        _attach_parser().error("give a JOB_ID, or --all")
    if options.endpoint:
        return manager.attach(options.endpoint, options.job_id, model=options.model)
    return manager.resume(options.job_id)


def jobs_command(args: list[str]) -> Rendered:
    options = _jobs_parser().parse_args(args)
    if options.limit < 1:
        raise InputError("limit", f"must be at least 1, got {options.limit}")
    manager = get_manager()
    live = {job.id: job for job in manager.jobs()}
    ledger = manager.ledger
    if ledger is not None:
        rows = [_entry_row(entry, live.get(entry.job_id)) for entry in ledger.recent(options.limit)]
    else:  # no ledger (it could not be opened): this kernel's jobs are all there is
        newest = sorted(live.values(), key=lambda job: -job.submitted_at)[: options.limit]
        rows = [_live_row(job) for job in newest]
    notes = []
    if not rows:
        notes.append("no jobs yet")
    waiting = manager.earlier_in_flight()
    if waiting:
        notes.append(
            f"{len(waiting)} job(s) of earlier sessions have no recorded end: %runpod attach --all follows them"
        )
    if ledger is not None:
        notes.append(f"ledger and saved results: {ledger.root}")
    columns = ["job", "model", "status", "submitted", "time", "cost", "result"]
    return Rendered(display.table_bundle(columns, rows, notes=notes, css_class="rp-notebook-jobs"))


def _live_row(job: Job) -> list[str]:
    return [
        job.id,
        job.model or job.endpoint_id,
        display.status_style(job.status)[1],  # the words of the job card and the panels
        _when(job.submitted_at),
        job.timing_summary(),
        _cost_text(job.cost),
        "",
    ]


def _entry_row(entry: LedgerEntry, job: Job | None) -> list[str]:
    if job is not None:  # followed by this kernel: its live state is newer than the ledger's
        status, timing = display.status_style(job.status)[1], job.timing_summary()
    else:
        word = display.status_style(entry.status)[1]
        status = word if entry.ended else f"{word} (not followed)"
        timing = f"{entry.ended_at - entry.submitted_at:.1f} s" if entry.ended_at else ""
    if entry.result_path:
        result = entry.result_path
    elif entry.output is not None:
        result = "JSON output, in the ledger"
    else:
        result = f"error: {entry.error}" if entry.error else ""
    cost = _cost_text(job.cost if job is not None and job.cost is not None else entry.cost)
    return [
        entry.job_id,
        entry.model or entry.endpoint_id,
        status,
        _when(entry.submitted_at),
        timing,
        cost,
        result,
    ]


def _cost_text(cost: JobCost | None) -> str:
    return "" if cost is None or cost.usd is None else cost.short()


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
