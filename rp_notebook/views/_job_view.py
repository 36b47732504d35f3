"""JobView: a job in a notebook output, live while it runs.

A view is shown with a display id and subscribes to its Job (rp_notebook.jobs knows nothing of
it). On each change, which arrives on the job manager's thread, it replaces its outputs in place
(`update_display`, safe from any thread); the ticker refreshes it once a second for the elapsed
time. A streaming TTS job gets a StreamingAudioPlayer, fed with parts as they arrive and with the
whole file at the end; a job that ends with layers shows their interactive gallery. Every output
also carries the static HTML, which is what a saved notebook shows.

One view per job (`view_of`): showing a job in two cells gives two outputs of the same view.
"""

from __future__ import annotations

import base64
import threading
import weakref
from typing import Any

from .. import display
from ..jobs import Job, JobUpdate
from ..results import LayersResult
from ..results._audio import AUDIO_MIME
from ._output import replace_output, show_bundle
from ._ticker import TICKER

__all__ = ["JobView", "view_of"]

_views: weakref.WeakKeyDictionary[Job, JobView] = weakref.WeakKeyDictionary()
_views_lock = threading.Lock()


def view_of(job: Job) -> JobView:
    """The view of `job` (made on first use)."""
    with _views_lock:
        view = _views.get(job)
        if view is None:
            view = _views[job] = JobView(job)
        return view


class JobView:
    """The live output of one job; see the module docstring."""

    def __init__(self, job: Job) -> None:
        # Weak: the job holds its view (a subscriber), and `view_of` keys views by job weakly; a view
        # holding its job strongly would keep every job that was ever shown alive.
        self._job = weakref.ref(job)
        self.display_ids: list[str] = []
        self.player: Any = None
        if job.streams and not job.done():
            from ._stream_player import StreamingAudioPlayer

            self.player = StreamingAudioPlayer(mime=AUDIO_MIME.get(job.format, "audio/wav"))
            for part in list(job.parts):
                self._play(part)
        job.subscribe(self._on_update)

    @property
    def job(self) -> Job:
        job = self._job()
        if job is None:  # cannot happen while the job notifies its view, which is when this is used
            raise ReferenceError("the job of this view is gone")
        return job

    def show(self) -> None:
        """Display the job here, and keep this output current."""
        display_id = show_bundle(self.bundle(), live=True)
        if display_id is not None:
            self.display_ids.append(display_id)
        if not self.job.done():
            self.job.watch()  # on screen: followed in short rounds, so the line stays live
            TICKER.add(self)

    def bundle(self) -> dict[str, Any]:
        widget: dict[str, Any] | None = None
        if self.player is not None:
            widget = _data_of(self.player._repr_mimebundle_())
        elif self.job.done() and self.job.exception(timeout=0) is None:
            result = self.job.result(timeout=0)
            if isinstance(result, LayersResult):
                from ._gallery import gallery_of

                widget = _data_of(gallery_of(result)._repr_mimebundle_())
        return display.job_bundle(self.job, widget=widget)

    def render(self) -> None:
        if self.player is not None:
            self.player.status = display.job_bundle(self.job)["text/plain"].splitlines()[0]
            if not self.job.done():
                return  # the player shows the status and the parts itself; re-rendering would flicker
        if not self.display_ids:
            return
        bundle = self.bundle()
        for display_id in self.display_ids:
            replace_output(bundle, display_id)

    # -- from the job manager's thread and the ticker --------------------------------------------

    def _on_update(self, update: JobUpdate) -> None:
        for part in update.new_parts:
            self._play(part)
        if update.ended:
            TICKER.discard(self)
            if self.player is not None and not self.player.done:
                result = self.job.result(timeout=0) if self.job.exception(timeout=0) is None else None
                if result is not None and hasattr(result, "data"):
                    self.player.whole = result.data
                self.player.done = True
        self.render()

    def _tick(self) -> None:
        if self._job() is None:
            TICKER.discard(self)
            return
        if self.job.done():
            TICKER.discard(self)
        self.render()

    def _play(self, part: Any) -> None:
        if self.player is not None and isinstance(part, dict) and isinstance(part.get("audio"), str):
            self.player.add_part(base64.b64decode(part["audio"]), int(part.get("chunks") or 0))


def _data_of(bundle: Any) -> dict[str, Any]:
    """A widget's mimebundle data (anywidget returns (data, metadata), ipywidgets the data)."""
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    return dict(data or {})
