"""Benchmark: the same N jobs through rp_notebook, the runpod SDK and a plain `requests` loop.

    .venv/bin/python bench/jobs_bench.py [--jobs 500] [--latency-ms 0,25] [--skip-tts]

The local endpoint runs in a subprocess (as a remote server would), with an instant echo worker
(bench/workers/echo) per method, so each method has its own endpoint and its own rate-limit windows
(Runpod's default limits; the server answers 429 over them). Every method runs in a fresh ipykernel
(bench/kernel_methods.py) while this process times trivial cells (`pass`) in that kernel.

Each scenario of `--latency-ms` starts its own server. 0 is localhost: every process shares the two
CPUs, so it measures CPU per request more than anything. A positive value makes the server add that
round trip to every job-API request (`LocalEndpoint(network_delay_ms=...)`), as the way to
api.runpod.ai would (often 50-150 ms from a laptop); the worker is not delayed.

Reported per method:
- total: from the first request to the moment the client saw the last job end;
- completion-to-client latency p50/p95: the client's time of seeing each job end minus the time the
  server recorded it ended (`JobInfo.finished_at`, wall clock; same machine, so the clocks agree);
- HTTP requests per job and 429 refusals, counted by the server
  (`GET /_local/{endpoint}/rate-limits`);
- cell round trip p50/p99 while the jobs are in flight. rp_notebook's cell returns at once and its
  threads follow the jobs, so this is the kernel's lag. The SDK's and the plain loop block the
  kernel until they finish, so a cell sent meanwhile waits for all of it: there the figure is the
  blocked time.

Then time to first audio on `local-tts` (piper voice, warm worker): submit to the completed job, and
submit to the first part with audio on `/stream` (`JobsClient.stream`), for 1 and for 20 sentences.

A benchmark, not a test: it asserts nothing about timings. `--serve` is the subprocess's own mode.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

BENCH = Path(__file__).resolve().parent
WORKERS = {name: BENCH / "workers" / name for name in ("echo", "reverse", "audio")}


@dataclass(frozen=True)
class Method:
    """One way of running the jobs: calls of kernel_methods, formatted into kernel cells."""

    key: str  # the endpoint is echo-<key>: every method has its own rate-limit windows
    label: str
    setup: str  # formatted with base (job API URL), key (API key), ep (endpoint id)
    run: str
    options: str = ""  # more keyword arguments of the run call
    #: The run cell returns at once and the jobs go on in the background (the main thread is free).
    background: bool = False

    @property
    def endpoint_id(self) -> str:
        return f"echo-{self.key}"


def methods(rp_parallel: list[int], max_polls: int | None) -> list[Method]:
    rp = [
        Method(
            f"rp{parallel}",
            f"rp_notebook, {parallel} parallel",
            "setup_rp_notebook({base!r}, {key!r}, {ep!r})",
            "run_rp_notebook",
            f", max_parallel={parallel}, max_polls={max_polls}",
            background=True,
        )
        for parallel in rp_parallel
    ]
    return [
        *rp,
        Method("sdk", "runpod SDK Endpoint", "setup_runpod_sdk({base!r}, {key!r}, {ep!r})", "run_runpod_sdk"),
        Method(
            "sdk32",
            "runpod SDK, 32 threads",
            "setup_runpod_sdk({base!r}, {key!r}, {ep!r})",
            "run_runpod_sdk_threads",
            background=True,
        ),
        Method(
            "requests",
            "plain requests loop",
            "setup_plain_requests({base!r}, {key!r}, {ep!r})",
            "run_plain_requests",
        ),
    ]


PROBE_GAP_S = 0.02  # between trivial cells: a busy user, not a flood that slows the kernel itself
METHOD_TIMEOUT_S = 300
TTS_ENDPOINT = "local-tts"
SENTENCES = [f"This is sentence number {i + 1}, and it is spoken by the piper voice." for i in range(20)]


# -- the server subprocess -------------------------------------------------------------------------


def serve(latency_ms: float, endpoints: list[str]) -> None:
    """`--serve`: run the local endpoint; print its address; answer finished-time queries on stdin.

    endpoints: "id:worker" pairs (worker: echo, reverse or audio, from bench/workers)."""
    from rp_notebook.local import EndpointConfig, LocalEndpoint

    quiet = {"RUNPOD_LOG_LEVEL": "ERROR"}  # the SDK logs every job at INFO: CPU the clients would lose
    configs = [
        EndpointConfig(id=endpoint_id, worker_dir=WORKERS[worker], env=quiet)
        for endpoint_id, worker in (pair.split(":") for pair in endpoints)
    ]
    # Plus the default local-tts (piper).
    with LocalEndpoint(port=0, endpoints=configs, network_delay_ms=latency_ms) as server:
        print(json.dumps({"url": server.url, "job_api_url": server.job_api_url, "key": server.api_key}))
        sys.stdout.flush()
        for line in sys.stdin:  # {"endpoint", "ids"} -> {job_id: finished_at or null}
            query = json.loads(line)
            infos = {job_id: server.job(query["endpoint"], job_id) for job_id in query["ids"]}
            answer = {job_id: info.finished_at if info else None for job_id, info in infos.items()}
            print(json.dumps(answer))
            sys.stdout.flush()


class BenchServer:
    """The `--serve` subprocess, seen from the benchmark."""

    def __init__(self, latency_ms: float = 0.0, endpoints: list[str] | None = None) -> None:
        """endpoints: "id:worker" pairs, as `serve` takes them."""
        self._process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                "--latency-ms",
                str(latency_ms),
                "--endpoints",
                ",".join(endpoints or []),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            # A session of its own, as `rp-notebook local up` in a terminal of its own is: this
            # process stands for the Jupyter server between the browser and the kernel, and with
            # Linux's autogroup scheduling a busy server in its session delays each probe's reply
            # (and the probes take from the server's share); see bench/README.md. It still ends with
            # this process: it stops when its stdin closes.
            start_new_session=True,
        )
        assert self._process.stdout is not None and self._process.stdin is not None
        self._in, self._out = self._process.stdin, self._process.stdout
        info = json.loads(self._out.readline())
        self.url, self.job_api_url, self.key = info["url"], info["job_api_url"], info["key"]
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.key}"

    def finished_at(self, endpoint_id: str, job_ids: list[str]) -> dict[str, float | None]:
        self._in.write(json.dumps({"endpoint": endpoint_id, "ids": job_ids}) + "\n")
        self._in.flush()
        return json.loads(self._out.readline())

    def request_counts(self, endpoint_id: str) -> dict[str, Any]:
        """The server's count of job-API requests (local-only route, readable from any process)."""
        return self.session.get(f"{self.url}/_local/{endpoint_id}/rate-limits", timeout=10).json()

    def warm(self, endpoint_id: str, job_input: dict[str, Any]) -> None:
        """One job first, so no method pays for the worker's cold start."""
        response = self.session.post(
            f"{self.job_api_url}/{endpoint_id}/runsync", json={"input": job_input}, timeout=300
        )
        if response.json().get("status") != "COMPLETED":
            raise RuntimeError(f"warm-up of {endpoint_id} failed: {response.text[:500]}")

    def close(self) -> None:
        self._in.close()  # the subprocess stops the server when stdin ends
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()


# -- one method in one kernel ----------------------------------------------------------------------


@dataclass
class MethodResult:
    label: str
    jobs: int
    total_s: float
    latency_s: list[float]
    requests: int
    refused: int
    by_operation: dict[str, int]
    cell_rtt_s: list[float]
    idle_cell_rtt_s: list[float]
    errors: int
    #: Overshoots of a 10 ms sleep loop on the kernel's main thread while the jobs were in flight
    #: (background methods, measured in a run of their own); empty when not measured.
    sleep_extra_s: list[float] = field(default_factory=list)
    #: How long the run cell took to return (rp_notebook: submit_many's own time).
    returned_s: float | None = None


def run_method(
    server: BenchServer,
    method: Method,
    n: int,
    workdir: Path,
    *,
    endpoint_id: str | None = None,
    shape: str = "plain",
    probe: str = "cell",
) -> MethodResult:
    """One method in a fresh kernel. probe: "cell" times `pass` cells sent from here; "sleep" runs a
    10 ms sleep loop on the kernel's main thread instead (background methods only)."""
    from jupyter_client.manager import start_new_kernel

    label, endpoint_id = method.label, endpoint_id or method.endpoint_id
    out = str(workdir / f"{method.key}-{endpoint_id}-{n}-{probe}.json")
    # The kernel's own start-up warnings (no encryption on localhost) would clutter the table.
    km, kc = start_new_kernel(kernel_name="python3", stderr=subprocess.DEVNULL)
    try:
        replies: dict[str, dict[str, Any]] = {}
        _execute(
            kc, f"import sys; sys.path.insert(0, {str(BENCH)!r}); import kernel_methods as bench", replies
        )
        setup = method.setup.format(base=server.job_api_url, key=server.key, ep=endpoint_id)
        _execute(kc, "bench." + setup, replies)  # with one warm-up job: counted before `before`
        # A notebook's next cell comes later than a warm-up ends: what a method starts in the
        # background after its first job (rp_notebook: its HTTP helper process, ~0.3 s) is running.
        _execute(kc, "import time; time.sleep(1.0)", replies)
        before = server.request_counts(endpoint_id)
        idle = [_probe(kc, replies) for _ in range(25)]  # the same cell with nothing in flight
        method_id = kc.execute(
            f"bench.{method.run}({endpoint_id!r}, {n}, {out!r}{method.options}, shape={shape!r})"
        )
        rtts = []
        returned_s = None
        if probe == "sleep":
            _check(_wait_reply(kc, method_id, replies), label)
            _execute(kc, f"bench.sleep_probe({out!r})", replies)
        else:
            deadline = time.monotonic() + METHOD_TIMEOUT_S
            while not rtts or not os.path.exists(
                out
            ):  # at least one probe: for a blocking loop, the only one
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{label}: the jobs did not all end within {METHOD_TIMEOUT_S} s")
                rtts.append(_probe(kc, replies))
            _check(_wait_reply(kc, method_id, replies), label)
        if method.key.startswith("rp"):
            asked = kc.execute("", user_expressions={"r": "bench._state.get('returned_s')"})
            answer = _wait_reply(kc, asked, replies)["content"]["user_expressions"]["r"]
            returned_s = float(answer["data"]["text/plain"])
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    deadline = time.monotonic() + METHOD_TIMEOUT_S
    while not os.path.exists(out) and time.monotonic() < deadline:  # a sleep probe may see it first
        time.sleep(0.05)
    with open(out) as fh:
        seen = json.load(fh)
    sleep_extra: list[float] = []
    if probe == "sleep":
        with open(out + ".sleep.json") as fh:
            sleep_extra = json.load(fh)
    after = server.request_counts(endpoint_id)
    finished = server.finished_at(endpoint_id, list(seen["seen"]))
    latencies = [t - finished[job_id] for job_id, t in seen["seen"].items() if finished.get(job_id)]
    by_operation = {
        op: after["accepted"].get(op, 0) - before["accepted"].get(op, 0)
        for op in sorted(after["accepted"])
        if after["accepted"].get(op, 0) != before["accepted"].get(op, 0)
    }
    refused = after["total_refused"] - before["total_refused"]
    return MethodResult(
        label=label,
        jobs=n,
        total_s=max(seen["seen"].values(), default=seen["t0"]) - seen["t0"],
        latency_s=latencies,
        requests=sum(by_operation.values()) + refused,
        refused=refused,
        by_operation=by_operation,
        cell_rtt_s=rtts,
        idle_cell_rtt_s=idle,
        errors=seen["errors"] + (n - len(seen["seen"])),
        sleep_extra_s=sleep_extra,
        returned_s=returned_s,
    )


def _probe(kc: Any, replies: dict[str, dict[str, Any]]) -> float:
    """The round trip of one trivial cell, then a pause (a busy user, not a flood)."""
    started = time.perf_counter()
    _wait_reply(kc, kc.execute("pass", silent=True, store_history=False), replies)
    elapsed = time.perf_counter() - started
    time.sleep(PROBE_GAP_S)
    return elapsed


def _execute(kc: Any, code: str, replies: dict[str, dict[str, Any]]) -> None:
    _check(_wait_reply(kc, kc.execute(code), replies), code)


def _wait_reply(kc: Any, msg_id: str, replies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    while msg_id not in replies:
        msg = kc.get_shell_msg(timeout=METHOD_TIMEOUT_S)
        replies[msg["parent_header"].get("msg_id", "")] = msg
    return replies.pop(msg_id)


def _check(reply: dict[str, Any], what: str) -> None:
    content = reply["content"]
    if content["status"] != "ok":
        raise RuntimeError(f"{what}: {content.get('ename')}: {content.get('evalue')}")


# -- time to first audio ---------------------------------------------------------------------------


def time_to_first_audio(server: BenchServer, text: str, *, stream: bool) -> float:
    """Seconds from submit to the first audio the client has: the completed job, or (stream) the
    first `/stream` part with audio."""
    from rp_notebook._api import prepare_input
    from rp_notebook.client import JobsClient
    from rp_notebook.config import configure
    from rp_notebook.models import TTS

    client = JobsClient(configure(api_key=server.key, endpoint_base_url=server.job_api_url))
    job_input = prepare_input(TTS, {"text": text, "stream": stream})
    started = time.perf_counter()
    job_id = client.run(TTS_ENDPOINT, job_input)["id"]
    try:
        if stream:
            return _first_streamed_audio(client, job_id, started)
        while (body := client.status_sync(TTS_ENDPOINT, job_id, wait_ms=60_000))["status"] not in (
            "COMPLETED",
            "FAILED",
            "CANCELLED",
            "TIMED_OUT",
        ):
            pass
        if body["status"] != "COMPLETED":
            raise RuntimeError(f"TTS job ended {body['status']}: {body.get('error')}")
        return time.perf_counter() - started
    finally:
        client.status_sync(TTS_ENDPOINT, job_id, wait_ms=90_000)  # leave the worker idle for the next one
        client.close()


def _first_streamed_audio(client: Any, job_id: str, started: float) -> float:
    while True:
        body = client.stream(TTS_ENDPOINT, job_id)
        if any(isinstance(c.get("output"), dict) and "audio" in c["output"] for c in body.get("stream", [])):
            return time.perf_counter() - started
        if body.get("status") in ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"):
            raise RuntimeError(f"the job ended {body.get('status')} without a streamed part")
        time.sleep(0.02)


# -- report ----------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def print_report(results: list[MethodResult]) -> None:
    header = (
        f"{'method':<26}{'total s':>9}{'lat p50 ms':>12}{'lat p95 ms':>12}{'req/job':>9}"
        f"{'429s':>6}{'cell p50 ms':>13}{'cell p99 ms':>13}{'sleep p99 +ms':>15}{'errors':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        sleep = f"{percentile(r.sleep_extra_s, 99) * 1000:.1f}" if r.sleep_extra_s else "-"
        print(
            f"{r.label:<26}{r.total_s:>9.2f}{percentile(r.latency_s, 50) * 1000:>12.1f}"
            f"{percentile(r.latency_s, 95) * 1000:>12.1f}{r.requests / r.jobs:>9.2f}{r.refused:>6}"
            f"{percentile(r.cell_rtt_s, 50) * 1000:>13.1f}{percentile(r.cell_rtt_s, 99) * 1000:>13.1f}"
            f"{sleep:>15}{r.errors:>8}"
        )
    print()
    for r in results:
        counts = ", ".join(f"{op} {count}" for op, count in r.by_operation.items())
        returned = (
            f"; submit_many returned in {r.returned_s * 1000:.1f} ms" if r.returned_s is not None else ""
        )
        print(f"  {r.label}: requests by operation: {counts}{returned}")
    idle = [t for r in results for t in r.idle_cell_rtt_s]
    print(
        "  cell = round trip of a `pass` cell sent every 20 ms while the jobs were in flight (the same cell\n"
        f"  with nothing in flight: p50 {percentile(idle, 50) * 1000:.1f} ms, p99 {percentile(idle, 99) * 1000:.1f} ms). "
        "The SDK's and the plain\n  loop block the kernel: their one cell waited for the whole loop (blocked time).\n"
        "  sleep = how much later than asked a 10 ms sleep on the kernel's main thread woke up while the jobs\n"
        "  were in flight (methods that leave the main thread free; measured in a run of their own)."
    )
    sdk = next((r for r in results if r.label == "runpod SDK Endpoint"), None)
    threads = next((r for r in results if r.label == "runpod SDK, 32 threads"), None)
    if sdk is None:
        return
    print()
    print("vs the runpod SDK:")
    for ours in results:
        if not ours.label.startswith("rp_notebook"):
            continue
        lat = percentile(sdk.latency_s, 50) / percentile(ours.latency_s, 50)
        line = (
            f"  {ours.label}: latency p50 {lat:.1f}x lower; total time {ours.total_s / sdk.total_s:.2f} of "
            f"the SDK's; {ours.requests / ours.jobs:.2f} vs {sdk.requests / sdk.jobs:.2f} requests per job"
        )
        if threads is not None and threads.sleep_extra_s and ours.sleep_extra_s:
            line += (
                f"; main-thread sleep p99 +{percentile(ours.sleep_extra_s, 99) * 1000:.1f} ms vs "
                f"+{percentile(threads.sleep_extra_s, 99) * 1000:.1f} ms with the SDK's 32 threads; cell p99 "
                f"{percentile(ours.cell_rtt_s, 99) * 1000:.0f} ms vs {percentile(threads.cell_rtt_s, 99) * 1000:.0f} ms"
            )
        print(line)


def run_scenario(
    server: BenchServer,
    runs: list[Method],
    n: int,
    workdir: Path,
    *,
    endpoint_of: Any = None,
    shape: str = "plain",
) -> list[MethodResult]:
    """Every method on its own endpoint; a background method also once more with the sleep probe."""
    results = []
    for method in runs:
        endpoint_id = endpoint_of(method) if endpoint_of else method.endpoint_id
        result = run_method(server, method, n, workdir, endpoint_id=endpoint_id, shape=shape)
        if method.background:
            slept = run_method(
                server, method, n, workdir, endpoint_id=endpoint_id, shape=shape, probe="sleep"
            )
            result.sleep_extra_s = slept.sleep_extra_s
        results.append(result)
    return results


def print_reverse_order(runs: list[Method], n: int, workdir: Path) -> None:
    """n jobs that all run at once and end in reverse order: how late each end is noticed."""
    chosen = [m for m in runs if m.background]
    server = BenchServer(0.0, [f"reverse-{m.key}:reverse" for m in chosen])
    try:
        for method in chosen:
            server.warm(f"reverse-{method.key}", {"i": 0, "n": 0})
        results = [
            run_method(server, m, n, workdir, endpoint_id=f"reverse-{m.key}", shape="reverse") for m in chosen
        ]
    finally:
        server.close()
    print(f"{n} jobs running at once, ending in reverse order (job i after (n - i) x 10 ms), localhost:")
    for r in results:
        print(
            f"  {r.label:<26} latency p50 {percentile(r.latency_s, 50) * 1000:6.1f} ms, "
            f"p99 {percentile(r.latency_s, 99) * 1000:6.1f} ms, max {max(r.latency_s, default=0) * 1000:6.1f} ms; "
            f"{r.requests / r.jobs:.2f} requests per job, {r.errors} errors"
        )


def print_batch_and_memory(batch_jobs: int, held_jobs: int) -> None:
    """tts_many's return time, and the memory that finished jobs with audio results hold (in this process)."""
    import gc

    import psutil

    import rp_notebook
    from rp_notebook.config import configure
    from rp_notebook.jobs import JobManager

    server = BenchServer(0.0, ["audio:audio"])
    process = psutil.Process()
    try:
        server.warm("audio", {"warm": True})
        configure(api_key=server.key, endpoint_base_url=server.job_api_url)
        with tempfile.TemporaryDirectory(prefix="jobs-bench-ledger-") as data_dir:
            os.environ["RP_NOTEBOOK_DATA_DIR"] = data_dir
            texts = [f"Sentence number {i}." for i in range(batch_jobs)]
            rp_notebook.tts_many(texts[:2], endpoint="audio").results(timeout=60)  # warm: imports, session
            started = time.perf_counter()
            batch = rp_notebook.tts_many(texts, endpoint="audio")
            returned = time.perf_counter() - started
            batch.results(timeout=300)
            print(
                f"tts_many of {batch_jobs} texts returned its Batch in {returned * 1000:.1f} ms (the runs went out after)"
            )

            manager = JobManager()
            gc.collect()
            before = process.memory_info().rss
            jobs = manager.submit_many("audio", [{"text": f"n{i}"} for i in range(held_jobs)], model="tts")
            results = [job.result(timeout=600) for job in jobs]
            manager.recorder.flush(60)
            gc.collect()
            grown = process.memory_info().rss - before
            audio = sum(len(r.data) for r in results)
            print(
                f"{held_jobs} finished jobs held, each with a 1 s audio result ({audio / held_jobs / 1000:.0f} KB of WAV): "
                f"RSS grew {grown / 1e6:.0f} MB, {grown / held_jobs / 1000:.1f} KB per job "
                f"({grown / audio:.2f}x the audio itself)"
            )
            manager.close()
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", default="30,500", help="jobs per method, comma-separated (default 30,500)")
    parser.add_argument(
        "--latency-ms",
        default="0,25",
        help="scenarios: simulated round trip to the API per request, comma-separated (default 0,25)",
    )
    parser.add_argument(
        "--rp-parallel",
        default="64",
        help="rp_notebook runs, each with this many `run` requests in flight (submit_many's max_parallel)",
    )
    parser.add_argument("--max-polls", type=int, default=None, help="rp_notebook: long-polls per endpoint")
    parser.add_argument("--skip-tts", action="store_true", help="leave out the time-to-first-audio part")
    parser.add_argument(
        "--reverse-jobs", type=int, default=200, help="jobs of the reverse-order row (0: skip)"
    )
    parser.add_argument("--held-jobs", type=int, default=5000, help="jobs of the memory row (0: skip)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoints", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(float(args.latency_ms), [key for key in args.endpoints.split(",") if key])
        return
    import runpod

    print(
        f"jobs_bench: {args.jobs} jobs per method, instant echo worker; {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, runpod {runpod.__version__}"
    )
    runs = methods([int(value) for value in args.rp_parallel.split(",")], args.max_polls)
    for latency_ms in (float(value) for value in args.latency_ms.split(",")):
        where = "localhost" if latency_ms == 0 else f"{latency_ms:g} ms simulated round trip per request"
        server = BenchServer(latency_ms, [f"{method.endpoint_id}:echo" for method in runs])
        try:
            for method in runs:
                server.warm(method.endpoint_id, {"warm": True})
            for n in (int(value) for value in args.jobs.split(",")):
                print()
                print(f"== {where}, {n} jobs")
                with tempfile.TemporaryDirectory(prefix="jobs-bench-") as workdir:
                    print_report(run_scenario(server, runs, n, Path(workdir)))
        finally:
            server.close()
    if args.reverse_jobs:
        print()
        with tempfile.TemporaryDirectory(prefix="jobs-bench-") as workdir:
            print_reverse_order(runs, args.reverse_jobs, Path(workdir))
    if args.held_jobs:
        print()
        print_batch_and_memory(500, args.held_jobs)
    if not args.skip_tts:
        print()
        print_time_to_first_audio()


def _median_of_runs(server: BenchServer, text: str, *, stream: bool, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        # After a job, the SDK worker sleeps up to 1 s before it takes the next one (rp_scale's loop);
        # starting each run on a worker that is back in its job-take long-poll keeps that out of it.
        time.sleep(1.5)
        times.append(time_to_first_audio(server, text, stream=stream))
    return statistics.median(times)


def print_time_to_first_audio() -> None:
    print("time to first audio, local-tts (piper voice, warm worker, localhost), median of 3, seconds:")
    server = BenchServer()
    try:
        server.warm(TTS_ENDPOINT, {"text": "Warm up.", "stream": False})
        texts = {"1 sentence": SENTENCES[0], "20 sentences": " ".join(SENTENCES)}
        print(f"  {'':<38}" + "".join(f"{name:>14}" for name in texts))
        for stream, what in ((False, "submit -> completed job"), (True, "submit -> first /stream part")):
            row = [_median_of_runs(server, text, stream=stream) for text in texts.values()]
            print(f"  {what:<38}" + "".join(f"{value:>14.2f}" for value in row))
    finally:
        server.close()


if __name__ == "__main__":
    main()
