"""Typed doors to IPython's display functions (IPython ships them without annotations)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["in_kernel", "replace_output", "show_bundle", "show_object"]


def show_bundle(
    bundle: Mapping[str, Any], *, live: bool = False, metadata: Mapping[str, Any] | None = None
) -> str | None:
    """Display a ready mimebundle; with `live`, return the display id that `replace_output` takes."""
    from IPython.display import display

    handle = display(  # type: ignore[no-untyped-call]
        dict(bundle), raw=True, metadata=dict(metadata or {}), display_id=True if live else None
    )
    return str(handle.display_id) if handle is not None else None


def show_object(value: Any) -> None:
    """Display an object through IPython's formatters (its views, its own HTML)."""
    from IPython.display import display

    display(value)  # type: ignore[no-untyped-call]


def replace_output(
    bundle: Mapping[str, Any], display_id: str, *, metadata: Mapping[str, Any] | None = None
) -> None:
    """Replace the output shown under `display_id`; safe from any thread of the kernel."""
    from IPython.display import update_display

    update_display(  # type: ignore[no-untyped-call]
        dict(bundle), raw=True, metadata=dict(metadata or {}), display_id=display_id
    )


def in_kernel() -> bool:
    """Whether a Jupyter kernel (which can show widgets) runs this code, not a plain IPython shell."""
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
