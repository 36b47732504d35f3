"""What a job's end means for its caller: the error a final status body, a lost job or an unsent
run stands for, each carrying the job's and endpoint's ids; and a job that ended in an earlier
session, given back from its ledger entry.

Kept apart from the manager (`_manager`), which decides when a job has ended; this decides what
the ending says.
"""

from __future__ import annotations

from typing import Any

from ..client import JobStatus
from ..errors import JobCancelledError, JobFailedError, JobLostError, JobTimedOutError, RunpodError
from ._job import Job, JobControl
from ._ledger import LedgerEntry
from ._saved import load_saved

__all__ = [
    "end_error",
    "ended_job",
    "known_status",
    "lost_error",
    "not_sent_error",
    "submitted_or_error",
    "without_subject",
]


def lost_error(job: Job, why: str, cause: BaseException | None = None) -> JobLostError:
    """The job can no longer be followed (Runpod forgot it, the key was refused, a bug): `why`, and
    the error that said so as its cause."""
    error = JobLostError(
        f"job {job.id or '(not submitted)'}: {why}",
        job_id=job.id,
        status=str(job.status),
        endpoint_id=job.endpoint_id,
        cause=cause,
    )
    error.__cause__ = cause
    return error


def not_sent_error(job: Job) -> JobCancelledError:
    """A job cancelled while its run was still waiting to go out: nothing was queued."""
    return JobCancelledError(
        "cancelled before its run was sent (no job was queued)",
        job_id="",
        status=JobStatus.CANCELLED,
        endpoint_id=job.endpoint_id,
    )


def end_error(job: Job, body: dict[str, Any]) -> RunpodError:
    """The error of a final body that is not COMPLETED: FAILED, CANCELLED or TIMED_OUT."""
    status = str(body.get("status"))
    if status == JobStatus.FAILED:
        return JobFailedError(job.id, body.get("error"), endpoint_id=job.endpoint_id)
    if status == JobStatus.CANCELLED:
        return JobCancelledError(
            f"job {job.id} was cancelled", job_id=job.id, status=status, endpoint_id=job.endpoint_id
        )
    seconds = body.get("executionTime")
    ran = seconds / 1000 if isinstance(seconds, int | float) else 0
    return JobTimedOutError(
        f"job {job.id} timed out on the endpoint after {ran:.0f} s of execution "
        "(raise the endpoint's or the request's executionTimeout)",
        job_id=job.id,
        status=status,
        endpoint_id=job.endpoint_id,
    )


def without_subject(exc: BaseException, job: Job) -> str:
    """An error's message without its leading "job ID: " (the JobLostError says it once)."""
    return str(exc).removeprefix(f"job {job.id}: ")


def known_status(value: str) -> JobStatus:
    """A status read back from the ledger; UNKNOWN for a word this version does not know."""
    try:
        return JobStatus(value)
    except ValueError:
        return JobStatus.UNKNOWN


def submitted_or_error(job: Job) -> Job | RunpodError:
    """The job once its run was answered, or the error that kept it from being queued."""
    if job.id:
        return job
    error = job.exception(timeout=0)
    return error if isinstance(error, RunpodError) else job


def ended_job(entry: LedgerEntry, control: JobControl) -> Job:
    """The Job of a ledger entry whose end was recorded: its saved result, or the error it ended
    with (a JobLostError where the result was not saved or can no longer be read)."""
    job = Job(
        entry.endpoint_id,
        entry.job_id,
        model=entry.model,
        input=dict(entry.parameters),
        status=known_status(entry.status),
        base_url=entry.base_url,
        submitted_at=entry.submitted_at,
        control=control,
    )
    if entry.has_result:
        try:
            job.finish(result=load_saved(entry.result_path, entry.output))
        except (OSError, ValueError, KeyError) as exc:
            job.finish(error=lost_error(job, f"its saved result cannot be read: {exc}", exc))
    elif entry.status in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT):
        job.finish(error=end_error(job, {"status": entry.status, "error": entry.error}))
    else:
        job.finish(error=lost_error(job, f"it ended {entry.status}: {entry.error or 'no result was saved'}"))
    job.ended_at = entry.ended_at
    return job
