"""A worker for jobs_bench.py's reverse-order row: every job it holds runs at once, and job i of n
ends after (n - i) x step_ms, so the last one submitted ends first and the first one last.

A client that follows only the oldest jobs (a few poll slots) notices the young ones late; one that
long-polls every running job notices each the moment it ends. Concurrency 1000, as bench/workers/echo.
"""

import asyncio

import runpod

CONCURRENCY = 1000


async def handler(job):
    params = job["input"]
    await asyncio.sleep((params["n"] - params["i"]) * params.get("step_ms", 10) / 1000)
    return {"echo": params}


if __name__ == "__main__":
    runpod.serverless.start({"handler": handler, "concurrency_modifier": lambda current: CONCURRENCY})
