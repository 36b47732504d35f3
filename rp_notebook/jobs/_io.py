"""IOLoop: the job manager's one background thread, an asyncio event loop.

Why one event loop in a thread of its own, and not the kernel's loop or a pool of threads:

- The kernel's own asyncio loop only runs between cells under ipykernel 7 (tasks created in a cell
  can stall until the next cell runs, shared/docs/jupyter-ecosystem.md §3.2), and scripts and the
  CLI have none at all. A thread of our own runs everywhere.
- One loop follows any number of jobs with one long-poll each, on kept-alive connections, and costs
  the notebook one thread instead of dozens: with threads, 500 jobs in flight slowed the user's own
  code more than the runpod SDK's 32 threads did (the interpreter switches between every thread
  that holds work).

Code running on the loop must never block it: blocking work (decoding a result that downloads
files, writing the ledger) goes to a thread (`asyncio.to_thread`, or the ledger's own writer).
Callers in other threads use `run` (a concurrent.futures.Future) or `call_soon`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["IOLoop", "refuse_waits_in_this_thread"]

T = TypeVar("T")

_thread_marks = threading.local()


def refuse_waits_in_this_thread() -> None:
    """Mark the calling thread as one where jobs change state besides the loop's own (the ledger's
    writer resolves ended jobs): `run_and_wait` is refused there too, as a subscriber that waited
    for the loop could wait for this very thread."""
    _thread_marks.refuses_waits = True


class IOLoop:
    """An asyncio event loop in a daemon thread, started on first use."""

    def __init__(self, name: str = "rp-notebook-io") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                ready = threading.Event()
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._main, args=(loop, ready), name=self._name, daemon=True
                )
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def run(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        """Run `coroutine` on the loop; its result (or exception) arrives in the returned Future."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run_and_wait(self, coroutine: Coroutine[Any, Any, T], what: str) -> T:
        """`run(coroutine).result()`, refused on the loop's own thread, where it would wait forever."""
        if self.in_loop_thread() or getattr(_thread_marks, "refuses_waits", False):
            coroutine.close()
            raise RuntimeError(
                f"{what} waits for the job manager's thread and was called on it (from a job's "
                "subscriber or done-callback); call it from another thread"
            )
        return self.run(coroutine).result()

    def call_soon(self, fn: Callable[..., object], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    @staticmethod
    def _main(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
