"""IPython integration: `%load_ext rp_notebook` registers %runpod and %%runpod, and the views that
show jobs, batches and layer results live (`rp_notebook.views.install_formatters`)."""

from __future__ import annotations

from typing import Any

from ._runpod import RunpodMagics

__all__ = ["RunpodMagics", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    from ..config import use_local_hint
    from ..views import install_formatters

    ipython.register_magics(RunpodMagics)
    install_formatters(ipython)
    # Messages ("No Runpod API key. ...") name the way to start the local endpoint as a magic user would.
    use_local_hint("%runpod local start")


def unload_ipython_extension(ipython: Any) -> None:
    # IPython has no unregister; the magics stay until the kernel restarts, which is harmless.
    return None
