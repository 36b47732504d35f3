"""Cold start of a worker folder that pins its own runpod (1.7.9) on the local endpoint.

Three rows, each the time from `/run` to the job's end on a fresh server (so every row includes
the worker's cold start: a new process importing the runpod SDK):

1. baseline: the same handler on the server's own Python (the folder has no requirements.txt);
2. first start: its requirements.txt pins runpod==1.7.9 and no environment exists yet (an empty
   cache folder): pip builds one (pip's own download cache is left as it is; say so);
3. cached start: a new server, the environment from row 2 reused.

Prints seconds and the ratio to the baseline, measured side by side in one run. Nothing asserts.

    .venv/bin/python bench/worker_start_bench.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import requests

from rp_notebook.local import LocalEndpoint
from rp_notebook.local._environments import CACHE_DIR_ENV

ROOT = Path(__file__).resolve().parents[1]
PINNED_FOLDER = ROOT / "tests" / "fixtures" / "workers" / "image_argv"
START = "python -u main.py --bench"


def one_job(template_image: str) -> float:
    """Seconds from /run to the job's end, on a new server with one endpoint for `template_image`."""
    with LocalEndpoint(port=0, default_endpoints=False) as server:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {server.api_key}"
        body = {"name": f"bench-{time.monotonic_ns()}", "image": template_image, "args": START}
        template = session.post(f"{server.management_url}/v2/templates", json=body, timeout=30).json()
        endpoint = session.post(
            f"{server.management_url}/v2/serverless",
            json={
                "name": "bench",
                "type": "QUEUE",
                "templateId": template["id"],
                "gpu": {"pools": ["AMPERE_16"]},
                "workers": {"min": 0, "max": 1},
                "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
            },
            timeout=30,
        ).json()
        started = time.monotonic()
        job = session.post(
            f"{server.job_api_url}/{endpoint['id']}/run", json={"input": {}}, timeout=30
        ).json()
        while True:
            status = session.get(
                f"{server.job_api_url}/{endpoint['id']}/status-sync/{job['id']}?wait=60000", timeout=120
            ).json()
            if status["status"] not in ("IN_QUEUE", "IN_PROGRESS"):
                break
        elapsed = time.monotonic() - started
        assert status["status"] == "COMPLETED", status
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[float]] = {
        "baseline (server's Python)": [],
        "first start (builds)": [],
        "cached start": [],
    }
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as scratch:
            plain = Path(scratch) / "plain"
            plain.mkdir()
            shutil.copy(PINNED_FOLDER / "main.py", plain / "main.py")  # no requirements.txt
            os.environ[CACHE_DIR_ENV] = str(Path(scratch) / "cache")
            rows["baseline (server's Python)"].append(one_job(f"local:{plain}"))
            rows["first start (builds)"].append(one_job(f"local:{PINNED_FOLDER}"))
            rows["cached start"].append(one_job(f"local:{PINNED_FOLDER}"))
    baseline = statistics.median(rows["baseline (server's Python)"])
    print(f"worker folder {PINNED_FOLDER.name}: runpod==1.7.9, {args.runs} runs, median seconds /run -> end")
    for name, values in rows.items():
        median = statistics.median(values)
        runs = ", ".join(f"{value:.2f}" for value in values)
        print(f"  {name:28s} {median:6.2f} s  {median / baseline:5.2f}x baseline   runs: {runs}")
    print("(pip's download cache is the machine's own: the first start downloads nothing it already has)")


if __name__ == "__main__":
    main()
