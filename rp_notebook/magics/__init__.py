"""IPython integration: `%load_ext rp_notebook` registers %runpod and %%runpod."""

from __future__ import annotations

from typing import Any

from ._runpod import RunpodMagics

__all__ = ["RunpodMagics", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(RunpodMagics)


def unload_ipython_extension(ipython: Any) -> None:
    # IPython has no unregister; the magics stay until the kernel restarts, which is harmless.
    return None
