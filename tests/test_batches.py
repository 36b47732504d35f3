"""Batches: many jobs validated together, submitted together, followed as one, against the local endpoint."""

from __future__ import annotations

import asyncio
import base64

import pytest
from helpers import eventually

import rp_notebook
from rp_notebook import AudioResult, Batch
from rp_notebook.errors import InputError, JobCancelledError, JobFailedError, WaitTimeoutError
from rp_notebook.jobs import BatchInputError, get_manager
from rp_notebook.magics._runpod import split_batch
from rp_notebook.views import BatchProgress

pytestmark = pytest.mark.timeout(180)


def echo_batch(inputs: list[dict]) -> Batch:
    """A batch on the echo endpoint, whose jobs do what their input says."""
    manager = get_manager()
    return Batch(None, "echo", manager.submit_many("echo", inputs), manager=manager)


def test_results_come_back_in_input_order(use_local):
    formats = ["flac", "wav", "ogg", "flac", "wav"]
    batch = rp_notebook.tts_many(
        [{"text": f"Sentence number {i}.", "format": fmt} for i, fmt in enumerate(formats)]
    )
    results = batch.results(timeout=150)
    assert [type(r) for r in results] == [AudioResult] * 5
    assert [r.format for r in results] == formats  # each result sits at its input's index
    assert [r.job_id for r in results] == [job.id for job in batch.jobs]
    assert batch.failures == [] and batch.done()


def test_a_failing_input_is_listed_while_the_others_complete(use_local):
    # Starts like a WAV file, so only the worker, decoding it, finds it is not one.
    not_audio = base64.b64encode(b"RIFF\0\0\0\0WAVE" + b"definitely not an audio file").decode()
    batch = rp_notebook.tts_many(["First.", {"text": "Second.", "voice": not_audio}, "Third."], format="wav")
    results = batch.results(timeout=150)
    assert isinstance(results[0], AudioResult) and isinstance(results[2], AudioResult)
    assert results[1] is None
    [(index, error)] = batch.failures
    assert index == 1 and isinstance(error, JobFailedError) and "voice" in str(error)
    assert batch.counts() == {"total": 3, "done": 2, "failed": 1, "running": 0}


def test_every_invalid_input_is_reported_by_index_before_any_request(use_local):
    before = len(get_manager().jobs())
    with pytest.raises(BatchInputError) as caught:
        rp_notebook.tts_many(["Fine.", "  ", "Also fine.", "x" * 5001], temperature=0.7)
    assert [index for index, _ in caught.value.errors] == [1, 3]
    message = str(caught.value)
    assert "2 of 4 inputs are invalid; nothing was submitted" in message
    assert "input 1: text: is empty" in message and "input 3: text: is 5,001 characters" in message
    assert isinstance(caught.value, InputError)
    with pytest.raises(BatchInputError, match="input 0: temperature"):
        rp_notebook.tts_many(["One.", "Two."], temperature=9)  # a shared bad value fails every input
    assert len(get_manager().jobs()) == before


def test_a_single_string_is_refused_rather_than_spoken_letter_by_letter(use_local):
    with pytest.raises(InputError, match="for a single text use tts"):
        rp_notebook.tts_many("Hello")


def test_progress_bar_and_counts_follow_the_jobs_as_they_end(use_local, release, tmp_path):
    never = tmp_path / "never"
    batch = echo_batch(
        [
            {"wait_for_file": str(release)},
            {"wait_for_file": str(release)},
            {"fail_unless_file": str(never)},
        ]
    )
    view = BatchProgress(batch)  # what the notebook shows for a Batch (rp_notebook.views)
    progress, counts = view.progress, view.counts
    assert progress.max == 3 and "rp-batch-progress" in progress._dom_classes
    # Both waiters are still blocked; the failing one may already have ended (queue order is free).
    assert batch.counts()["done"] == 0 and progress.value in (0, 1)
    release.touch()
    eventually(batch.done)
    eventually(lambda: progress.value == 3)  # set by the last job's done-callback
    assert counts.value == "2 of 3 done, 1 failed" and progress.bar_style == "danger"
    assert repr(batch) == "<Batch of 3 jobs on echo: 2 of 3 done, 1 failed>"


def test_await_gives_the_results_in_order(use_local):
    batch = echo_batch([{"n": 1}, {"n": 2}, {"n": 3}])

    async def wait():
        return await batch

    assert [r["echo"]["n"] for r in asyncio.run(wait())] == [1, 2, 3]


def test_cancel_ends_every_pending_job_and_lists_them_as_failures(use_local, release):
    batch = echo_batch([{"wait_for_file": str(release)}, {"wait_for_file": str(release)}])
    with pytest.raises(WaitTimeoutError, match="2 of 2 jobs are still running"):
        batch.results(timeout=0.2)
    assert batch.cancel() == 2
    assert batch.results(timeout=30) == [None, None]
    assert [index for index, _ in batch.failures] == [0, 1]
    assert all(isinstance(error, JobCancelledError) for _, error in batch.failures)


def test_split_batch_cuts_paragraphs_at_blank_lines_and_lines_at_newlines():
    text = "First paragraph,\nstill the first.\n\nSecond.\n   \n\nThird.\n"
    assert split_batch(text, "paragraphs") == ["First paragraph,\nstill the first.", "Second.", "Third."]
    assert split_batch(text, "lines") == ["First paragraph,", "still the first.", "Second.", "Third."]


def test_cell_magic_batch_makes_one_job_per_paragraph(ip, use_local):
    batch = ip.run_cell_magic(
        "runpod", "tts --batch --format flac", "One here.\nStill one.\n\nTwo.\n\n\nThree.\n"
    )
    assert isinstance(batch, Batch) and len(batch) == 3
    results = batch.results(timeout=150)
    assert all(isinstance(r, AudioResult) and r.format == "flac" for r in results)
    lines = ip.run_cell_magic("runpod", "tts --batch lines", "Alpha.\nBeta.\n\nGamma.")
    assert len(lines) == 3 and lines.results(timeout=150)[2] is not None


def test_cell_magic_batch_with_an_empty_body_is_a_usage_error(ip, use_local):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="--batch needs the texts"):
        ip.run_cell_magic("runpod", "tts --batch", "\n\n   \n")
