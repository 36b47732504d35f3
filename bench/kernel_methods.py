"""The three ways of running N jobs that jobs_bench.py compares, as they run inside a Jupyter kernel.

jobs_bench.py imports this module in a fresh kernel, calls `setup_*` (imports, clients, and one
warm-up job, as in a notebook that has run a job before: not timed, not counted), then runs one `run_*` cell while it times trivial cells in the same kernel. Each `run_*` submits
jobs `{"i": 0..N-1}`, notes the wall-clock time at which the client saw each job end, and writes
`{"t0", "seen": {job_id: time}, "errors"}` to `out` once all have ended.

- run_rp_notebook: `JobManager.submit_many` returns the jobs at once and its event loop sends the
  runs and follows the jobs (status-sync long-polls). The cell returns at once; a waiting thread
  writes the file. "Seen" is `Job.ended_at`, set when the manager resolved the job.
- run_runpod_sdk: as the runpod SDK's docs show it: `Endpoint.run(input)` for each job, then
  `job.output(timeout=...)` for each. The cell blocks the kernel until every job is seen.
- run_runpod_sdk_threads: the SDK the way a notebook user keeps the kernel free: 32 threads, each
  `run` then `output` of one job at a time. The cell returns at once.
- sleep_probe: the main thread's own responsiveness while a non-blocking method's jobs are in
  flight: `time.sleep(0.01)` in a loop, each overshoot recorded, until the method's file appears.
- run_plain_requests: a `requests` loop: post every job, then poll each pending job's `/status`
  once a second until it ends. Blocks the kernel too.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}
#: The warm-up job of every setup: an input both bench workers (echo, reverse) take.
WARM_INPUT = {"i": 0, "n": 1, "step_ms": 0}

_state: dict[str, Any] = {}


def _inputs(n: int, shape: str = "plain") -> list[dict[str, Any]]:
    if shape == "reverse":  # bench/workers/reverse: job i ends after (n - i) x 10 ms
        return [{"i": i, "n": n, "step_ms": 10} for i in range(n)]
    return [{"i": i} for i in range(n)]


def _write(out: str, t0: float, seen: dict[str, float], errors: int) -> None:
    with open(out + ".tmp", "w") as fh:
        json.dump({"t0": t0, "seen": seen, "errors": errors}, fh)
    os.replace(out + ".tmp", out)  # the bench polls for the file: it must appear whole


# -- rp_notebook -----------------------------------------------------------------------------------


def setup_rp_notebook(base_url: str, api_key: str, endpoint_id: str) -> None:
    from rp_notebook.config import configure
    from rp_notebook.jobs import JobManager

    configure(api_key=api_key, endpoint_base_url=base_url)
    manager = JobManager()
    # One job first, as in a notebook that has run one: aiohttp is imported and its session open.
    manager.submit(endpoint_id, WARM_INPUT).result(timeout=60)
    _state["manager"] = manager


def run_rp_notebook(
    endpoint_id: str,
    n: int,
    out: str,
    max_parallel: int = 32,
    max_polls: int | None = None,
    shape: str = "plain",
) -> None:
    manager = _state["manager"]
    if max_polls is not None:
        manager.max_concurrent_polls = max_polls
    t0 = time.time()
    jobs = manager.submit_many(endpoint_id, _inputs(n, shape), max_parallel=max_parallel)
    _state["returned_s"] = time.time() - t0  # how long the kernel waited for submit_many

    def collect() -> None:
        seen: dict[str, float] = {}
        errors = 0
        for job in jobs:
            if job.exception() is not None:  # blocks until the job has ended
                errors += 1
            if job.id and job.ended_at is not None:
                seen[job.id] = job.ended_at
        _write(out, t0, seen, errors)

    threading.Thread(target=collect, name="bench-collect", daemon=True).start()


# -- runpod SDK ------------------------------------------------------------------------------------


def setup_runpod_sdk(base_url: str, api_key: str, endpoint_id: str) -> None:
    import runpod  # ~1.4 s to import: done here, outside the timed cell

    runpod.api_key = api_key
    runpod.endpoint_url_base = base_url  # read when the client is created (platform notes §4.4)
    endpoint = runpod.Endpoint(endpoint_id)
    endpoint.run(WARM_INPUT).output(timeout=60)  # one job first, as in a warm notebook
    _state["endpoint"] = endpoint


def run_runpod_sdk(endpoint_id: str, n: int, out: str, shape: str = "plain") -> None:
    endpoint = _state["endpoint"]
    t0 = time.time()
    jobs = [endpoint.run(payload) for payload in _inputs(n, shape)]
    seen: dict[str, float] = {}
    errors = 0
    for job in jobs:
        try:
            job.output(timeout=120)
        except Exception:  # noqa: BLE001 - counted, the benchmark goes on
            errors += 1
            continue
        seen[job.job_id] = time.time()
        errors += job.job_status != "COMPLETED"
    _write(out, t0, seen, errors)


def run_runpod_sdk_threads(
    endpoint_id: str, n: int, out: str, shape: str = "plain", threads: int = 32
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    endpoint = _state["endpoint"]
    t0 = time.time()
    seen: dict[str, float] = {}
    errors = [0]
    lock = threading.Lock()

    def one(payload: dict[str, Any]) -> None:
        job = endpoint.run(payload)
        try:
            job.output(timeout=120)
        except Exception:  # noqa: BLE001 - counted, the benchmark goes on
            with lock:
                errors[0] += 1
            return
        with lock:
            seen[job.job_id] = time.time()
            errors[0] += job.job_status != "COMPLETED"

    def drive() -> None:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, _inputs(n, shape)))
        _write(out, t0, seen, errors[0])

    threading.Thread(target=drive, name="bench-sdk-threads", daemon=True).start()


def sleep_probe(out: str, step: float = 0.01) -> None:
    """Sleep `step` in a loop on the main thread until `out` exists; write each overshoot (s)."""
    overshoots = []
    deadline = time.monotonic() + 300
    while not os.path.exists(out) and time.monotonic() < deadline:
        started = time.perf_counter()
        time.sleep(step)
        overshoots.append(time.perf_counter() - started - step)
    with open(out + ".sleep.json", "w") as fh:
        json.dump(overshoots, fh)


# -- plain requests --------------------------------------------------------------------------------


def setup_plain_requests(base_url: str, api_key: str, endpoint_id: str) -> None:
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api_key}"
    _state["session"] = session
    _state["base_url"] = base_url
    # One job first, as in a warm notebook (its connection open).
    job = session.post(f"{base_url}/{endpoint_id}/run", json={"input": WARM_INPUT}, timeout=30).json()
    while (
        session.get(f"{base_url}/{endpoint_id}/status/{job['id']}", timeout=30).json()["status"]
        not in TERMINAL
    ):
        time.sleep(0.05)


def run_plain_requests(endpoint_id: str, n: int, out: str, shape: str = "plain") -> None:
    session, base = _state["session"], _state["base_url"]
    t0 = time.time()
    ids = []
    for payload in _inputs(n, shape):
        while True:
            response = session.post(f"{base}/{endpoint_id}/run", json={"input": payload}, timeout=30)
            if response.status_code == 429:  # what a careful plain loop does; counted by the server
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            response.raise_for_status()
            ids.append(response.json()["id"])
            break
    seen: dict[str, float] = {}
    errors = 0
    pending = ids
    while pending:
        round_started = time.time()
        still = []
        for job_id in pending:
            response = session.get(f"{base}/{endpoint_id}/status/{job_id}", timeout=30)
            status = response.json().get("status") if response.status_code == 200 else None
            if status in TERMINAL:
                seen[job_id] = time.time()
                errors += status != "COMPLETED"
            else:
                still.append(job_id)
        pending = still
        if pending:
            time.sleep(max(0.0, 1.0 - (time.time() - round_started)))
    _write(out, t0, seen, errors)
