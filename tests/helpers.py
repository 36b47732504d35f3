"""Small helpers shared by the tests (importable as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import io
import os
import time
import wave
from collections.abc import Callable


def eventually(predicate: Callable[[], object], timeout: float = 120) -> None:
    """Wait until predicate() is true; fail after `timeout` seconds. A wait, not a timing assert."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)


def wav_bytes(seconds: float = 0.1) -> bytes:
    """A silent 16-bit mono WAV file at 8 kHz: a voice clip the decoders accept."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * int(8000 * seconds))
    return buffer.getvalue()


def all_widget_state() -> dict:
    """Every open widget's state, as a front end would be sent it (`Widget.get_manager_state`).

    Job updates create widgets on other threads (a card's result when its job ends, a jobs panel's
    new rows on the ticker), so the registry is copied first: iterating it live can fail with
    "dictionary changed size during iteration".
    """
    from ipywidgets.widgets.widget import Widget, _instances

    for _ in range(10):
        try:
            return Widget.get_manager_state(drop_defaults=False, widgets=list(_instances.values()))
        except RuntimeError:  # one of the copied widgets changed its own state while it was read
            time.sleep(0.01)
    return Widget.get_manager_state(drop_defaults=False, widgets=list(_instances.values()))


def http_helpers_of(parent_pid: int) -> list[int]:
    """The live HTTP helper processes (`rp_notebook.client._exchange`) that `parent_pid` started."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                state, parent = stat.read().rsplit(")", 1)[1].split()[:2]
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                is_helper = b"rp_notebook.client._exchange" in cmdline.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if is_helper and int(parent) == parent_pid and state != "Z":
            found.append(int(pid))
    return found
