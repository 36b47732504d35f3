"""The Job handle and the background manager, with real jobs on the local endpoint."""

from __future__ import annotations

import asyncio

import pytest
from helpers import eventually

from rp_notebook import display
from rp_notebook.errors import JobCancelledError, JobFailedError, WaitTimeoutError
from rp_notebook.jobs import JobManager


@pytest.fixture
def manager(use_local):
    manager = JobManager()
    yield manager
    manager.close()


def test_result_arrives_without_anyone_polling_by_hand(manager):
    job = manager.submit("echo", {"hello": "world"})
    eventually(job.done)  # the manager's thread followed it to the end on its own
    assert job.result()["echo"] == {"hello": "world"}
    assert job.status == "COMPLETED" and job.ended_at is not None


def test_await_gives_the_same_result(manager):
    job = manager.submit("echo", {"n": 7})

    async def wait():
        return await job

    assert asyncio.run(wait())["echo"] == {"n": 7}


def test_a_worker_exception_becomes_job_failed_error_with_its_traceback(manager):
    job = manager.submit("echo", {"raise": "boom"})
    with pytest.raises(JobFailedError) as caught:
        job.result(timeout=60)
    assert str(caught.value) == f"job {job.id} failed: RuntimeError: boom"
    assert "Traceback" in caught.value.worker_traceback
    bundle = display.job_bundle(job)
    assert "RuntimeError: boom" in bundle["text/plain"] and "failed" in bundle["text/plain"]


def test_an_error_returned_by_the_handler_is_shown_verbatim(manager):
    job = manager.submit("echo", {"error": "text: is required"})
    with pytest.raises(JobFailedError, match=r"failed: text: is required$"):
        job.result(timeout=60)


def test_waiting_can_time_out_while_the_job_goes_on(manager, release):
    job = manager.submit("echo", {"wait_for_file": str(release)})
    with pytest.raises(WaitTimeoutError, match="keeps running"):
        job.result(timeout=0.2)
    assert not job.done()
    release.touch()
    assert job.result(timeout=60)["echo"]["wait_for_file"] == str(release)


def test_cancel_of_a_running_job_ends_it_as_cancelled(manager, release):
    job = manager.submit("echo", {"wait_for_file": str(release)})
    eventually(lambda: job.refresh() == "IN_PROGRESS")
    assert job.cancel() == "CANCELLED"
    with pytest.raises(JobCancelledError):
        job.result(timeout=5)


def test_progress_reported_by_the_worker_shows_in_the_handle(manager, release):
    job = manager.submit("echo", {"progress": [{"chunk": 1, "chunks": 3}], "wait_for_file": str(release)})
    job.watch()  # as a view does when it shows the job: the manager polls in short rounds
    eventually(lambda: job.progress == {"chunk": 1, "chunks": 3})
    assert "part 1 of 3" in display.job_bundle(job)["text/plain"]
    release.touch()
    job.result(timeout=60)


def test_attach_follows_a_job_submitted_elsewhere(manager, use_local):
    from rp_notebook.client import JobsClient

    other = JobsClient()
    job_id = other.run("echo", {"from": "elsewhere"})["id"]
    job = manager.attach("echo", job_id)
    assert job.result(timeout=60)["echo"] == {"from": "elsewhere"}
    assert manager.attach("echo", job_id) is job
