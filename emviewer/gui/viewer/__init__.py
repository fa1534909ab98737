"""The image viewer: side-by-side raw | overlay panes with linked pan/zoom, a slice slider,
contrast limits, and the mask editor (brush, eraser, fill, undo) with its toolbar."""

from .contrast_panel import ContrastPanel
from .edit_toolbar import EditToolbar
from .mask_editor import MaskEditor
from .panes import SideBySideView
from .slice_slider import SliceSlider

__all__ = ["ContrastPanel", "EditToolbar", "MaskEditor", "SideBySideView", "SliceSlider"]
