"""The image viewer: side-by-side raw | overlay panes with linked pan/zoom, a slice slider and
contrast limits."""

from .contrast_panel import ContrastPanel
from .panes import SideBySideView
from .slice_slider import SliceSlider

__all__ = ["ContrastPanel", "SideBySideView", "SliceSlider"]
