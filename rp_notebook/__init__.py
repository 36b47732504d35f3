"""rp_notebook: run GPU models on Runpod serverless from a notebook, and see and hear the results inline.

    %load_ext rp_notebook
    %runpod local start              # optional: a local endpoint with CPU engines, no account needed
    %runpod tts "Hello from Runpod"  # returns at once; turns into an audio player when done

From Python: `rp_notebook.tts("Hello")` and `rp_notebook.layers("photo.png")` return a Job;
`job.result()` or `await job` gives the audio or the layers. `tts_many(texts)` and
`layers_many(images)` return a Batch; `panel("tts" | "layers" | "jobs")` an interactive panel.

Importing this package is cheap on purpose: public names load on first use, and the runpod SDK,
aiohttp and the local endpoint's server are never imported on this path.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it (loaded on first attribute access)
_EXPORTS = {
    "AudioResult": ".results",
    "Batch": ".jobs",
    "Job": ".jobs",
    "JobManager": ".jobs",
    "JobsClient": ".client",
    "LayersResult": ".results",
    "JobStatus": ".client",
    "MODELS": ".models",
    "budget": "._spend",
    "configure": ".config",
    "cost_report": "._spend",
    "current_settings": ".config",
    "errors": ".errors",
    "gallery_of": ".views",
    "get_manager": ".jobs",
    "layers": "._api",
    "layers_many": "._api",
    "panel": ".widgets",
    "spent": "._spend",
    "start_local": "._api",
    "stop_local": "._api",
    "submit": "._api",
    "tts": "._api",
    "tts_many": "._api",
}

__all__ = [
    "MODELS",
    "AudioResult",
    "Batch",
    "Job",
    "JobManager",
    "JobStatus",
    "JobsClient",
    "LayersResult",
    "__version__",
    "budget",
    "configure",
    "cost_report",
    "current_settings",
    "errors",
    "gallery_of",
    "get_manager",
    "layers",
    "layers_many",
    "load_ipython_extension",
    "panel",
    "spent",
    "start_local",
    "stop_local",
    "submit",
    "tts",
    "tts_many",
    "unload_ipython_extension",
]

if TYPE_CHECKING:
    from . import errors
    from ._api import layers, layers_many, start_local, stop_local, submit, tts, tts_many
    from ._spend import budget, cost_report, spent
    from .client import JobsClient, JobStatus
    from .config import configure, current_settings
    from .jobs import Batch, Job, JobManager, get_manager
    from .models import MODELS
    from .results import AudioResult, LayersResult
    from .views import gallery_of
    from .widgets import panel


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rp_notebook' has no attribute {name!r}")
    if name == "errors":
        return import_module(module, __name__)
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def _install_views_in_ipython() -> None:
    """Inside IPython, show Jobs, Batches and layer results live even without %load_ext (the
    views register by type name: nothing is imported until one is shown)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        from .views import install_formatters

        install_formatters(shell)


_install_views_in_ipython()


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext rp_notebook`: register the %runpod / %%runpod magics."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload_ipython_extension as unload

    unload(ipython)
