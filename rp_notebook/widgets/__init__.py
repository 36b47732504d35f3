"""ipywidgets views: the layer gallery (and, later, the model panels and the jobs view)."""

from ._gallery import LayersGallery

__all__ = ["LayersGallery"]
