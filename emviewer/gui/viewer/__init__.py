"""The image viewer: side-by-side raw | overlay panes with linked pan/zoom, and a slice slider."""

from .panes import SideBySideView
from .slice_slider import SliceSlider

__all__ = ["SideBySideView", "SliceSlider"]
