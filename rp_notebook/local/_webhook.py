"""Webhooks: when a job with a `webhook` URL ends, POST its status body there (Runpod's behaviour).

A delivery counts when the receiver answers 200; otherwise it is retried up to 2 more times,
10 s apart. Deliveries run as tasks on the server's loop and are cancelled when the server stops.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from ._records import Job

__all__ = ["WebhookSender"]

log = logging.getLogger("rp_notebook.local")


class WebhookSender:
    def __init__(self, attempts: int = 3, interval_s: float = 10.0, timeout_s: float = 10.0) -> None:
        self.attempts = attempts
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def job_finished(self, job: Job) -> None:
        """The EndpointState `on_terminal` hook (runs on the loop thread)."""
        url = job.request.get("webhook")
        if not url:
            return
        task = asyncio.get_running_loop().create_task(self._deliver(url, job.body()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, body: dict[str, object]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        for attempt in range(1, self.attempts + 1):
            try:
                async with self._session.post(url, json=body) as response:
                    if response.status == 200:
                        return
                    problem = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = type(exc).__name__
            log.warning(
                "webhook for job %s failed (%s), attempt %d/%d",
                body.get("id"),
                problem,
                attempt,
                self.attempts,
            )
            if attempt < self.attempts:
                await asyncio.sleep(self.interval_s)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
