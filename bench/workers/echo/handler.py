"""An instant echo worker for bench/jobs_bench.py: no work, so the benchmark measures the clients.

It runs under the unmodified runpod SDK worker, like every local-endpoint worker. The SDK worker takes
jobs in batches of up to its concurrency (`job-take-batch`) and, whenever it holds that many, sleeps
1 s before asking again (runpod/serverless/modules/rp_scale.py, `JobScaler.get_jobs`): at the
default concurrency of 1 that is about one job per second, and the worker would be the bottleneck.
A concurrency of 1000 lets it take everything that is queued at once.
"""

import runpod

CONCURRENCY = 1000


async def handler(job):
    return {"echo": job["input"]}


if __name__ == "__main__":
    runpod.serverless.start({"handler": handler, "concurrency_modifier": lambda current: CONCURRENCY})
