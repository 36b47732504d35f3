"""Ticker: one daemon thread that refreshes every live view once a second.

Why a ticker of its own: a job's changes arrive through its subscribers, but elapsed time
("running · 12 s") changes without any event. One thread refreshes every live view and panel
once a second and exits when there are none, so the job manager needs no knowledge of views. It
only sets widget traits or replaces a display by id, which ipykernel sends from any thread.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any, Protocol

__all__ = ["TICKER", "Tickable", "Ticker"]

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0


class Tickable(Protocol):
    def _tick(self) -> None: ...


class Ticker:
    """One daemon thread calling `_tick()` on every subscribed panel once a second."""

    def __init__(self, interval: float = TICK_SECONDS) -> None:
        self.interval = interval
        # Weak, so a panel that is dropped (and closed) does not keep the thread alive.
        self._panels: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, panel: Tickable) -> None:
        with self._lock:
            self._panels.add(panel)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="rp-notebook-panels", daemon=True)
                self._thread.start()

    def discard(self, panel: Tickable) -> None:
        with self._lock:
            self._panels.discard(panel)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            with self._lock:
                panels = list(self._panels)
                if not panels:
                    self._thread = None
                    return
            for panel in panels:
                try:
                    panel._tick()
                except Exception:
                    # One broken panel must not stop the others' updates. It is dropped rather than
                    # retried: a failing tick would log the same error every second.
                    log.warning("rp_notebook: %r stopped refreshing", panel, exc_info=True)
                    self.discard(panel)


TICKER = Ticker()
