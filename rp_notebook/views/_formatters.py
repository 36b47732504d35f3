"""install_formatters: how IPython shows a Job, a Batch and a LayersResult in a live kernel.

Registered by type *name* with IPython's `ipython_display_formatter`, so registering imports
nothing: `%load_ext rp_notebook` and `import rp_notebook` inside IPython stay light, and the job
core and the results never import a view. Outside IPython (scripts, the CLI) these objects show
as their own text and HTML.
"""

from __future__ import annotations

from html import escape
from typing import Any

from ..saved_notebooks import live_output
from ._output import in_kernel, show_bundle

__all__ = ["install_formatters"]

_PRINTERS = {
    ("rp_notebook.jobs._job", "Job"): "_show_job",
    ("rp_notebook.jobs._batch", "Batch"): "_show_batch",
    ("rp_notebook.results._layers", "LayersResult"): "_show_layers",
}


def install_formatters(shell: Any) -> None:
    """Register the views with `shell` (an IPython InteractiveShell); doing it twice is harmless."""
    formatter = shell.display_formatter.ipython_display_formatter
    for (module, name), printer in _PRINTERS.items():
        formatter.for_type_by_name(module, name, globals()[printer])


def _show_job(job: Any) -> None:
    from ._job_view import view_of

    view_of(job).show()


def _show_batch(batch: Any) -> None:
    if not in_kernel():
        show_bundle({"text/plain": repr(batch)})
        return
    from ._batch_view import BatchProgress

    html = f"<pre class='rp-notebook-batch'>{escape(repr(batch))}</pre>"  # as it stood when saved
    data, metadata = live_output(BatchProgress(batch)._repr_mimebundle_(), html=html, text=repr(batch))
    show_bundle(data, metadata=metadata)


def _show_layers(result: Any) -> None:
    if not in_kernel():
        show_bundle(result._repr_mimebundle_())  # the static gallery
        return
    from ._gallery import gallery_of

    data, metadata = gallery_of(result)._repr_mimebundle_()
    show_bundle(data, metadata=metadata)
