"""BatchProgress: a Batch in a notebook: one progress bar over its inputs and the done/failed counts.

It subscribes to the Batch (each job's end), and sets traits only: safe from the job manager's
thread. Without a kernel (a script, a terminal) a Batch shows as its one-line repr instead.
"""

from __future__ import annotations

import ipywidgets as widgets

from ..jobs import Batch

__all__ = ["BatchProgress"]


class BatchProgress(widgets.VBox):  # type: ignore[misc]
    """The progress display of a Batch: an IntProgress over every input and the counts."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.progress = widgets.IntProgress(
            min=0, max=max(1, len(batch)), description=batch.model or batch.endpoint_id
        )
        self.counts = widgets.HTML()
        self.progress.add_class("rp-batch-progress")
        self.counts.add_class("rp-batch-counts")
        super().__init__([widgets.HBox([self.progress, self.counts])])
        self.add_class("rp-batch")
        batch.subscribe(lambda _: self.update())
        self.update()

    def update(self) -> None:
        counts = self.batch.counts()
        self.progress.value = counts["done"] + counts["failed"]
        self.progress.bar_style = (
            "danger" if counts["failed"] else "success" if counts["running"] == 0 else "info"
        )
        self.counts.value = self.batch.summary(counts)
