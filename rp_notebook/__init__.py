"""rp_notebook: run GPU models on Runpod serverless from a notebook.

Importing this package is cheap on purpose: the runpod SDK, aiohttp and the local endpoint's
server are never imported here (the runpod SDK alone takes over a second).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython):  # type: ignore[no-untyped-def]
    """`%load_ext rp_notebook`: register the %runpod / %%runpod magics."""
    from .magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython):  # type: ignore[no-untyped-def]
    from .magics import unload_ipython_extension as _unload

    _unload(ipython)
