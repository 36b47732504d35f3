"""How soon the local endpoint's long-polls wake, counted in turns of its event loop.

Below HTTP on purpose: over a socket the wake-up is milliseconds that depend on the machine (the
bench measures those, bench/README.md); here it is a count. Under load one turn of the server's
loop lasts milliseconds, so a waiter that needs three turns where one would do answers tens of
milliseconds late: with 500 instant jobs in flight the clients' completion latency p50 went from
54 to 33 ms when the waits stopped running in tasks of their own (`asyncio.wait_for` on 3.11).
The worker's side is played by the test's own calls: no process is started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from rp_notebook.local import EndpointConfig
from rp_notebook.local._records import WorkerRecord
from rp_notebook.local._state import EndpointState

pytestmark = pytest.mark.timeout(30)


class _NoProcesses:
    """A launcher whose workers are the test's calls to the worker side of the state."""

    def spawn(
        self, config: EndpointConfig, worker: WorkerRecord, on_exit: Callable[[str, int], None]
    ) -> None:
        worker.pid = None

    def terminate(self, worker: WorkerRecord) -> None:
        pass


def _endpoint(worker_dir: Path, workers_max: int = 1) -> EndpointState:
    """An endpoint's state on the running loop, as the server keeps it (no HTTP, no processes)."""
    return EndpointState(
        EndpointConfig(id="ep", worker_dir=worker_dir, workers_max=workers_max), _NoProcesses()
    )


async def _one_turn() -> None:
    """Let the loop run once: what was made ready before this call has run when it returns."""
    await asyncio.sleep(0)


def test_a_status_sync_waiting_on_a_job_wakes_on_the_loop_turn_after_its_end(tmp_path: Path) -> None:
    async def scenario() -> tuple[bool, bool]:
        state = _endpoint(tmp_path)
        job = state.submit({"input": {"n": 1}})
        [worker_id] = state.workers
        assert [taken.id for taken in await state.take_jobs(worker_id) or []] == [job.id]
        waiting = asyncio.create_task(state.wait_terminal(job, timeout=60))
        await _one_turn()
        waited = not waiting.done()
        assert state.job_result(worker_id, job.id, {"output": {"n": 1}}, is_stream=False)
        await _one_turn()
        woke = waiting.done()
        await waiting
        state.close()
        return waited, woke

    waited, woke = asyncio.run(scenario())
    assert waited, "wait_terminal returned before the job ended"
    assert woke, "the job ended, but its status-sync waiter needs more than one loop turn to see it"


def test_a_workers_job_take_wakes_on_the_loop_turn_after_a_job_comes_in(tmp_path: Path) -> None:
    async def scenario() -> tuple[bool, list[str], str]:
        state = _endpoint(tmp_path)
        first = state.submit({"input": {"n": 1}})  # starts the worker the test plays
        [worker_id] = state.workers
        assert [taken.id for taken in await state.take_jobs(worker_id) or []] == [first.id]
        taking = asyncio.create_task(state.take_jobs(worker_id, hold_s=60))
        await _one_turn()
        waited = not taking.done()
        second = state.submit({"input": {"n": 2}})
        await _one_turn()
        taken = [job.id for job in taking.result() or []] if taking.done() else []
        taking.cancel()
        state.close()
        return waited, taken, second.id

    waited, taken, second_id = asyncio.run(scenario())
    assert waited, "job-take returned with nothing in the queue"
    assert taken == [second_id], "a job came in, but the waiting job-take needs more than one loop turn"


def test_a_status_sync_with_nothing_ending_returns_quietly_when_its_wait_is_over(tmp_path: Path) -> None:
    async def scenario() -> tuple[bool, str]:
        state = _endpoint(tmp_path, workers_max=0)
        job = state.submit({"input": {"n": 1}})  # workers_max 0: it stays in the queue
        waiting = asyncio.create_task(state.wait_terminal(job, timeout=0.05))
        await _one_turn()
        waited = not waiting.done()
        await waiting  # no TimeoutError escapes: the route answers with the job as it is
        state.close()
        return waited, job.status.value

    waited, status = asyncio.run(scenario())
    assert waited
    assert status == "IN_QUEUE"
