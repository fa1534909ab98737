"""Side-by-side raw | overlay panes of the current slice, panning and zooming together.

The left pane shows the raw slice with the session's contrast; the right pane shows the
same slice with the visible objects' masks, rendered by
:func:`emviewer.core.overlay.render_overlay`, the function every export uses, so the
colours on screen and in saved files agree.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ...core.overlay import render_overlay, to_uint8
from ..session import Session
from .scale_bar import ViewerScaleBar

#: Scale factor of one zoom step.
ZOOM_STEP = 1.25


class SideBySideView(QWidget):
    """Two linked image panes: raw slice on the left, slice + coloured masks on the right.

    Parameters
    ----------
    session
        The app state; the view observes its signals and never changes it.
    parent
        Optional parent widget.

    Attributes
    ----------
    raw_view, overlay_view : pyqtgraph.ViewBox
        The left and right panes (x and y linked, aspect locked, y pointing down).
    raw_item, overlay_item : pyqtgraph.ImageItem
        The left pane's ``(Y, X)`` raw slice and the right pane's ``(Y, X, 3)`` uint8 RGB.
    """

    cursorMoved = Signal(int, int, float)  # x, y (image pixel), raw value there

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._z: int | None = None  # slice whose raw pixels are cached in _raw
        self._raw: np.ndarray | None = None
        # Set by the mask editor just before it stores a hand edit: the next masksChanged of the
        # current slice redraws only this (y0, y1, x0, x1) box of the overlay.
        self.changed_box: tuple[int, int, int, int] | None = None

        self.graphics = pg.GraphicsLayoutWidget()
        self.raw_view = self._add_pane(0)
        self.overlay_view = self._add_pane(1)
        self.overlay_view.setXLink(self.raw_view)
        self.overlay_view.setYLink(self.raw_view)
        self.raw_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item = pg.ImageItem(axisOrder="row-major")
        self.raw_view.addItem(self.raw_item)
        self.overlay_view.addItem(self.overlay_item)
        self.scale_bars = [ViewerScaleBar(view, session) for view in (self.raw_view, self.overlay_view)]

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)

        session.volumeChanged.connect(self._on_volume_changed)
        session.sliceChanged.connect(self._on_slice_changed)
        session.masksChanged.connect(self._on_masks_changed)
        session.displayChanged.connect(self._on_display_changed)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        if session.volume is not None:
            self._on_volume_changed()

    def _add_pane(self, column: int) -> pg.ViewBox:
        view = self.graphics.addViewBox(row=0, col=column, lockAspect=True, invertY=True, enableMenu=False)
        view.disableAutoRange()
        return view

    # ------------------------------------------------------------------ public

    def zoom_in(self) -> None:
        """Magnify by :data:`ZOOM_STEP` about the centre of the view."""
        self.raw_view.scaleBy(s=(1 / ZOOM_STEP, 1 / ZOOM_STEP))

    def zoom_out(self) -> None:
        """Shrink by :data:`ZOOM_STEP` about the centre of the view."""
        self.raw_view.scaleBy(s=(ZOOM_STEP, ZOOM_STEP))

    def fit(self) -> None:
        """Show the whole slice, as large as the panes allow."""
        if self._raw is not None:
            height, width = self._raw.shape[:2]
            self.raw_view.setRange(QRectF(0, 0, width, height), padding=0)

    def one_to_one(self) -> None:
        """Show one image pixel per screen (logical) pixel, keeping the view's centre."""
        centre = self.raw_view.viewRect().center()
        half_w, half_h = self.raw_view.width() / 2, self.raw_view.height() / 2
        if half_w > 0 and half_h > 0:
            self.raw_view.setRange(
                xRange=(centre.x() - half_w, centre.x() + half_w),
                yRange=(centre.y() - half_h, centre.y() + half_h),
                padding=0,
            )

    def centre_on(self, x: float, y: float) -> None:
        """Move the view so image pixel ``(x, y)`` is at its centre, keeping the zoom."""
        (x0, x1), (y0, y1) = self.raw_view.viewRange()
        half_w, half_h = (x1 - x0) / 2, (y1 - y0) / 2
        self.raw_view.setRange(xRange=(x - half_w, x + half_w), yRange=(y - half_h, y + half_h), padding=0)

    def redraw_overlay(self) -> None:
        """Draw the right pane again from the session (after the mask editor previewed a stroke on it)."""
        self._draw_overlay()

    def view_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The visible region of the left pane as ``((x0, x1), (y0, y1))`` in image pixels."""
        (x0, x1), (y0, y1) = self.raw_view.viewRange()
        return (float(x0), float(x1)), (float(y0), float(y1))

    # ------------------------------------------------------------------ slots

    def _on_volume_changed(self) -> None:
        self._z, self._raw = None, None
        self._redraw()
        self.fit()

    def _on_slice_changed(self, z: int) -> None:
        if z != self._z:
            self._redraw()

    def _on_masks_changed(self, z: int) -> None:
        box, self.changed_box = self.changed_box, None
        if z in (-1, self._session.z) and not (box is not None and z != -1 and self._draw_box(box)):
            self._draw_overlay()

    def _on_display_changed(self) -> None:
        self._redraw()

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if self._raw is None:
            return
        for view in (self.raw_view, self.overlay_view):
            if view.sceneBoundingRect().contains(scene_pos):
                point = view.mapSceneToView(scene_pos)
                x, y = int(np.floor(point.x())), int(np.floor(point.y()))
                height, width = self._raw.shape[:2]
                if 0 <= x < width and 0 <= y < height:
                    self.cursorMoved.emit(x, y, float(self._raw[y, x]))
                return

    # ------------------------------------------------------------------ drawing

    def _current_raw(self) -> np.ndarray | None:
        """The current slice, read once per slice (a lazy stack decodes it on every read)."""
        volume = self._session.volume
        if volume is None:
            self._z, self._raw = None, None
        elif self._z != self._session.z:
            raw = volume.slice(self._session.z)
            self._raw = raw.astype(np.uint8) if raw.dtype == bool else raw
            self._z = self._session.z
        return self._raw

    def _redraw(self) -> None:
        raw = self._current_raw()
        if raw is None:
            self.raw_item.clear()
            self.overlay_item.clear()
            return
        self.raw_item.setImage(raw, autoLevels=False, levels=self._session.levels)
        self._draw_overlay()

    def _draw_box(self, box: tuple[int, int, int, int]) -> bool:
        """Render only ``box`` of the shown RGB overlay, in place; False when it shows none."""
        raw, shown, session = self._current_raw(), self.overlay_item.image, self._session
        if raw is None or shown is None or shown.ndim != 3 or shown.shape[:2] != raw.shape[:2]:
            return False
        y0, y1, x0, x1 = box
        masks = {key: mask[y0:y1, x0:x1] for key, mask in session.slice_masks().items()}
        grey = to_uint8(raw[y0:y1, x0:x1], *session.levels)
        shown[y0:y1, x0:x1] = render_overlay(grey, masks, session.opacity, session.colours)
        self.overlay_item.updateImage()  # pyqtgraph wraps the same buffer: no copy of the slice
        return True

    def _draw_overlay(self) -> None:
        raw = self._current_raw()
        if raw is None:
            return
        session = self._session
        masks = session.slice_masks()
        if not masks:  # nothing to blend: show the raw slice as it is (half the work of a slice change)
            self.overlay_item.setImage(raw, autoLevels=False, levels=session.levels)
            return
        rgb = render_overlay(to_uint8(raw, *session.levels), masks, session.opacity, session.colours)
        # no levels: pyqtgraph shows uint8 RGB as it is, instead of rescaling every pixel by (0, 255)
        self.overlay_item.setImage(rgb, autoLevels=False, levels=None)
