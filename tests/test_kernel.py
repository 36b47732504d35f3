"""In a real kernel, %runpod tts returns while the job is still queued or running, other cells run,
and the handle's output later turns into an audio player (update_display_data on iopub)."""

from __future__ import annotations

import queue
import time
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

LONG_TEXT = " ".join(
    f"This is sentence number {i} of a long text that keeps the worker busy." for i in range(40)
)


@pytest.fixture
def kernel():
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc, code: str, timeout: float = 120) -> list[dict]:
    """Execute `code`; return the iopub messages of that execution up to its idle status."""
    msg_id = kc.execute(code)
    reply = kc.get_shell_msg(timeout=timeout)
    assert reply["parent_header"]["msg_id"] == msg_id
    messages = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            messages.append(msg)  # a background update from the poller thread: keep it too
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
        messages.append(msg)
    assert reply["content"]["status"] == "ok", reply["content"]
    return messages


def stdout_of(messages: list[dict]) -> str:
    return "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")


@pytest.mark.timeout(240)
def test_tts_magic_returns_at_once_other_cells_run_and_the_handle_becomes_a_player(kernel):
    run(kernel, "%load_ext rp_notebook\nimport rp_notebook\nrp_notebook.start_local();")
    shown = run(kernel, f'job = %runpod tts "{LONG_TEXT}"\njob')
    displays = [m for m in shown if m["msg_type"] == "display_data"]
    assert displays, "the handle was not displayed"
    display_id = displays[0]["content"]["transient"]["display_id"]
    first = displays[0]["content"]
    # Live: the job card widget; beside it the HTML a saved notebook keeps (rp_notebook.saved_notebooks).
    assert "rp-job-card" in first["data"]["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in first["data"]
    assert first["metadata"] == {"rp_notebook": {"live_view": True}}

    in_between = stdout_of(run(kernel, "print(job.status, job.done(), 6 * 7)"))
    status, done, answer = in_between.split()
    assert status in ("IN_QUEUE", "IN_PROGRESS") and done == "False" and answer == "42"

    deadline = time.monotonic() + 180
    player = None
    while player is None and time.monotonic() < deadline:
        try:
            msg = kernel.get_iopub_msg(timeout=5)
        except queue.Empty:
            continue
        if (
            msg["msg_type"] == "update_display_data"
            and msg["content"]["transient"]["display_id"] == display_id
        ):
            html = msg["content"]["data"]["text/html"]
            if "<audio" in html:
                player = html
    assert player is not None, "the handle never turned into an audio player"
    assert "data:audio/wav;base64," in player
    final = stdout_of(run(kernel, "print(job.status, job.result().duration > 10)"))
    assert final.split() == ["COMPLETED", "True"]
    run(kernel, "rp_notebook.stop_local()")


TESTS = Path(__file__).resolve().parent
_HELPERS = f"""
import os, sys
sys.path.insert(0, {str(TESTS)!r})
from helpers import http_helpers_of
def helpers():
    return http_helpers_of(os.getpid())
"""


@pytest.mark.timeout(240)
def test_in_a_kernel_the_job_managers_requests_go_through_one_helper_process_that_ends_with_it(kernel):
    run(kernel, "import rp_notebook, time\nrp_notebook.start_local();" + _HELPERS)
    probe = (
        "from rp_notebook.jobs import get_manager\n"
        "jobs = [rp_notebook.tts(f'Helper {i}.') for i in range(6)]\n"
        "print([j.result(timeout=120).__class__.__name__ for j in jobs])\n"
        "print(len(helpers()))\n"
    )
    first = stdout_of(run(kernel, probe)).split("\n")
    assert first[0] == str(["AudioResult"] * 6)
    assert first[1] == "1"  # started with the first request, used once ready
    again = stdout_of(run(kernel, probe)).split("\n")
    assert again[0] == str(["AudioResult"] * 6) and again[1] == "1"  # the same one, not another
    closed = stdout_of(run(kernel, "get_manager().close()\ntime.sleep(0.5)\nprint(helpers())"))
    assert closed.strip() == "[]"


@pytest.mark.timeout(240)
def test_interrupting_the_kernel_leaves_its_http_helper_serving():
    """jupyter_client interrupts a kernel by signalling its whole process group: the helper must not
    be in it, or the runs in flight would lose their answers."""
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        run(kc, "import rp_notebook, time\nrp_notebook.start_local();" + _HELPERS)
        probe = (
            "jobs = [rp_notebook.tts(f'Interrupt {i}.') for i in range(4)]\n"
            "print([j.result(timeout=120).__class__.__name__ for j in jobs], helpers())\n"
        )
        before = stdout_of(run(kc, probe))
        asked = kc.execute("time.sleep(60)")
        time.sleep(1.0)
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=60)
        assert reply["parent_header"]["msg_id"] == asked
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        after = stdout_of(run(kc, probe))
        assert before == after and "AudioResult" in after and "[]" not in after  # the same helper pid
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
