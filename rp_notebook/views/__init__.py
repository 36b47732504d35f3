"""Views: how jobs, batches and results look in a notebook, kept live from outside the job core.

- `JobCard`: one job, the same wherever it is shown (a magic's output, a panel's history, the jobs
  panel): status chip, progress, Cancel/Retry and one player or gallery; it subscribes to the Job.
  A streaming TTS job plays its parts in a `StreamingAudioPlayer` until the clip is whole.
- `JobView` (`view_of(job)`): a job's notebook output, the card beside its static HTML, replaced in
  place as the job moves on so that a saved notebook keeps the current result.
- `BatchProgress`: one progress bar and counts for a Batch.
- `LayersGallery` (`gallery_of(result)`): the interactive layer gallery of a LayersResult.
- `install_formatters(shell)`: registers these with IPython for the Job, Batch and LayersResult
  types, by name, so nothing here is imported until one is displayed; results and jobs
  themselves render only static text and HTML, which is what a saved notebook keeps.

Each module is a leaf of its own: the streaming player imports anywidget and traitlets only, the
gallery ipywidgets and Pillow. Names load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = [
    "TICKER",
    "BatchProgress",
    "JobCard",
    "JobView",
    "LayersGallery",
    "StreamingAudioPlayer",
    "Ticker",
    "gallery_of",
    "install_formatters",
    "view_of",
]

_EXPORTS = {
    "TICKER": "._ticker",
    "Ticker": "._ticker",
    "BatchProgress": "._batch_view",
    "JobCard": "._job_card",
    "JobView": "._job_view",
    "view_of": "._job_view",
    "LayersGallery": "._gallery",
    "gallery_of": "._gallery",
    "StreamingAudioPlayer": "._stream_player",
    "install_formatters": "._formatters",
}

if TYPE_CHECKING:
    from ._batch_view import BatchProgress
    from ._formatters import install_formatters
    from ._gallery import LayersGallery, gallery_of
    from ._job_card import JobCard
    from ._job_view import JobView, view_of
    from ._stream_player import StreamingAudioPlayer
    from ._ticker import TICKER, Ticker


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rp_notebook.views' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
