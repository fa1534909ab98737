"""Side-by-side raw | overlay panes of the current slice, panning and zooming together.

The left pane shows the raw slice with the session's contrast; the right pane shows the
same slice with the visible objects' masks, rendered by
:func:`emviewer.core.overlay.render_overlay`, the function every export uses, so the
colours on screen and in saved files agree.

Slices larger than :data:`~emviewer.core.display_levels.OVERVIEW_SIDE` pixels are shown at a
level of detail (:mod:`emviewer.core.display_levels`): each pane shows the slice's overview
and, zoomed in past it, the region in view (with a margin) at the resolution the screen
needs, read when the view settles. A 16000 x 10000 slice thus never sits in memory whole.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QTimer, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ...core.display_levels import Box, SliceLevels, Window, power_of_two_at_most
from ...core.overlay import render_overlay, to_uint8
from ..session import Session
from .scale_bar import ViewerScaleBar

#: Scale factor of one zoom step.
ZOOM_STEP = 1.25
#: Milliseconds the view must rest before the region in view is read at a finer level.
DETAIL_DELAY_MS = 40
#: The region read around the view, as a fraction of the view's size on each side (small pans
#: stay inside it and need no read).
DETAIL_MARGIN = 0.5


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
        The left and right panes (x and y linked, aspect locked, y pointing down). View
        coordinates are full-resolution image pixels at every level of detail.
    raw_item, overlay_item : pyqtgraph.ImageItem
        The left pane's ``(Y', X')`` raw overview of the slice and the right pane's
        ``(Y', X', 3)`` uint8 RGB (or raw ``(Y', X')`` when no mask is shown); the whole slice
        at full resolution for slices up to ``OVERVIEW_SIDE`` pixels.
    raw_detail, overlay_detail : pyqtgraph.ImageItem
        The region in view at a finer level, over the overviews; hidden when not needed.
    """

    cursorMoved = Signal(int, int, float)  # x, y (image pixel), raw value there

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._levels: SliceLevels | None = None
        self._overview: Window | None = None  # the current slice as the overview items show it
        self._detail: Window | None = None  # the region the detail items show, or None
        self._overview_z = -1  # the slice the items show
        # Set by the mask editor just before it stores a hand edit: the next masksChanged of the
        # current slice redraws only this (y0, y1, x0, x1) box of the overlay.
        self.changed_box: tuple[int, int, int, int] | None = None

        self.graphics = pg.GraphicsLayoutWidget()
        self.raw_view = self._add_pane(0)
        self.overlay_view = self._add_pane(1)
        self.overlay_view.setXLink(self.raw_view)
        self.overlay_view.setYLink(self.raw_view)
        self.raw_item, self.raw_detail = self._add_items(self.raw_view)
        self.overlay_item, self.overlay_detail = self._add_items(self.overlay_view)
        self.scale_bars = [ViewerScaleBar(view, session) for view in (self.raw_view, self.overlay_view)]
        self._detail_timer = QTimer(self)
        self._detail_timer.setSingleShot(True)
        self._detail_timer.setInterval(DETAIL_DELAY_MS)
        self._detail_timer.timeout.connect(self.update_detail)
        self.raw_view.sigRangeChanged.connect(self._on_range_changed)

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

    @staticmethod
    def _add_items(view: pg.ViewBox) -> tuple[pg.ImageItem, pg.ImageItem]:
        overview, detail = pg.ImageItem(axisOrder="row-major"), pg.ImageItem(axisOrder="row-major")
        detail.setZValue(1)
        detail.setVisible(False)
        view.addItem(overview)
        view.addItem(detail)
        return overview, detail

    # ------------------------------------------------------------------ public

    def zoom_in(self) -> None:
        """Magnify by :data:`ZOOM_STEP` about the centre of the view."""
        self.raw_view.scaleBy(s=(1 / ZOOM_STEP, 1 / ZOOM_STEP))

    def zoom_out(self) -> None:
        """Shrink by :data:`ZOOM_STEP` about the centre of the view."""
        self.raw_view.scaleBy(s=(ZOOM_STEP, ZOOM_STEP))

    def fit(self) -> None:
        """Show the whole slice, as large as the panes allow."""
        if self._levels is not None:
            height, width = self._levels.shape
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

    def box_in_view(self) -> Box | None:
        """The part of the slice in view as ``(y0, y1, x0, x1)`` full-resolution pixels, or None."""
        if self._levels is None:
            return None
        height, width = self._levels.shape
        (x0, x1), (y0, y1) = self.view_range()
        top, bottom = max(0, int(np.floor(y0))), min(height, int(np.ceil(y1)))
        left, right = max(0, int(np.floor(x0))), min(width, int(np.ceil(x1)))
        return (top, bottom, left, right) if top < bottom and left < right else None

    def edit_canvas(self) -> tuple[pg.ImageItem, Box] | None:
        """Where a hand stroke is previewed as it is drawn: the right pane's item that shows
        full-resolution pixels and the box ``(y0, y1, x0, x1)`` it covers. None when the zoom
        shows none (a large slice zoomed out: the stroke shows once released)."""
        for item, window in ((self.overlay_detail, self._detail), (self.overlay_item, self._overview)):
            if window is not None and window.step == 1 and item.isVisible():
                return item, window.box
        return None

    def raw_pixels(self, box: Box) -> np.ndarray:
        """Full-resolution raw pixels of ``box``, which lies inside :meth:`edit_canvas`'s box."""
        canvas = self.edit_canvas()
        if canvas is None:
            raise RuntimeError("no full-resolution pixels are shown")
        window = self._detail if canvas[0] is self.overlay_detail else self._overview
        assert window is not None
        y0, y1, x0, x1 = box
        wy0, _, wx0, _ = window.box
        return window.image[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]

    # ------------------------------------------------------------------ slots

    def _on_volume_changed(self) -> None:
        volume = self._session.volume
        self._levels = SliceLevels(volume) if volume is not None else None
        self._overview = None
        self._redraw()
        self.fit()

    def _on_slice_changed(self, z: int) -> None:
        if self._overview is None or self._overview_z != z:
            self._redraw()

    def _on_masks_changed(self, z: int) -> None:
        box, self.changed_box = self.changed_box, None
        if z in (-1, self._session.z) and not (box is not None and z != -1 and self._draw_box(box)):
            self._draw_overlay()

    def _on_display_changed(self) -> None:
        self._redraw()

    def _on_range_changed(self, *_args) -> None:
        if self._levels is not None and self._levels.overview_step > 1:
            self._detail_timer.start()

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if self._overview is None:
            return
        for view in (self.raw_view, self.overlay_view):
            if view.sceneBoundingRect().contains(scene_pos):
                point = view.mapSceneToView(scene_pos)
                x, y = int(np.floor(point.x())), int(np.floor(point.y()))
                shown = [w for w in (self._detail, self._overview) if w is not None]
                value = next((v for w in shown if (v := w.value_at(y, x)) is not None), None)
                if value is not None:
                    self.cursorMoved.emit(x, y, value)
                return

    # ------------------------------------------------------------------ drawing

    def _redraw(self) -> None:
        levels, session = self._levels, self._session
        if levels is None:
            self._overview = self._detail = None
            for item in (self.raw_item, self.overlay_item, self.raw_detail, self.overlay_detail):
                item.clear()
            return
        self._overview_z = session.z
        self._overview = _displayable(levels.overview(session.z))
        self._show(self.raw_item, self._overview, self._overview.image, session.levels)
        self._detail = None
        self._draw_overlay()
        self.update_detail()

    def update_detail(self) -> None:
        """Show the region in view at the level the zoom needs over the overview (or hide it
        when the overview serves). Called when the view rests after a pan or zoom."""
        levels, overview = self._levels, self._overview
        box = self.box_in_view()
        width = max(self.raw_view.width(), 1.0)
        step = power_of_two_at_most(((box[3] - box[2]) if box else 0) / width)
        if levels is None or overview is None or box is None or step >= overview.step:
            self._detail = None
            self.raw_detail.setVisible(False)
            self.overlay_detail.setVisible(False)
            return
        shown = self._detail
        if shown is not None and shown.step == step and _inside(box, shown.box):
            return  # a small pan: the region read already covers it
        y0, y1, x0, x1 = box
        margin_y, margin_x = int((y1 - y0) * DETAIL_MARGIN), int((x1 - x0) * DETAIL_MARGIN)
        wanted = (y0 - margin_y, y1 + margin_y, x0 - margin_x, x1 + margin_x)
        self._detail = _displayable(levels.window(self._overview_z, wanted, step))
        self._show(self.raw_detail, self._detail, self._detail.image, self._session.levels)
        self._draw_detail_overlay()
        self.raw_detail.setVisible(True)
        self.overlay_detail.setVisible(True)

    @staticmethod
    def _show(item: pg.ImageItem, window: Window, image: np.ndarray, levels) -> None:
        """Put ``image`` (the pixels of ``window``, grey with ``levels`` or RGB without) on ``item``,
        placed over the full-resolution pixels it covers."""
        item.setImage(image, autoLevels=False, levels=levels)
        y0, _, x0, _ = window.box
        height, width = window.image.shape[:2]
        item.setRect(QRectF(x0, y0, width * window.step, height * window.step))

    def _overlay_image(self, window: Window) -> tuple[np.ndarray, tuple | None]:
        """The right pane's image of ``window`` and its levels (None for RGB)."""
        session = self._session
        masks = session.mask_windows(window.box, window.step)
        if not masks:  # nothing to blend: show the raw slice as it is (half the work of a slice change)
            return window.image, session.levels
        # no levels: pyqtgraph shows uint8 RGB as it is, instead of rescaling every pixel by (0, 255)
        return render_overlay(to_uint8(window.image, *session.levels), masks, session.opacity, session.colours), None

    def _draw_box(self, box: tuple[int, int, int, int]) -> bool:
        """Render only ``box`` of the shown RGB overlay, in place; False when it shows none
        (or shows an overview: a redraw of the overview and the detail is as cheap)."""
        window, shown, session = self._overview, self.overlay_item.image, self._session
        if window is None or window.step != 1 or shown is None or shown.ndim != 3:
            return False
        if shown.shape[:2] != window.image.shape:
            return False
        y0, y1, x0, x1 = box
        masks = {key: mask[y0:y1, x0:x1] for key, mask in session.slice_masks().items()}
        grey = to_uint8(window.image[y0:y1, x0:x1], *session.levels)
        shown[y0:y1, x0:x1] = render_overlay(grey, masks, session.opacity, session.colours)
        self.overlay_item.updateImage()  # pyqtgraph wraps the same buffer: no copy of the slice
        return True

    def _draw_overlay(self) -> None:
        if self._overview is None:
            return
        self._show(self.overlay_item, self._overview, *self._overlay_image(self._overview))
        self._draw_detail_overlay()

    def _draw_detail_overlay(self) -> None:
        if self._detail is not None:
            self._show(self.overlay_detail, self._detail, *self._overlay_image(self._detail))


def _displayable(window: Window) -> Window:
    """Boolean slices shown as 0/1 (pyqtgraph takes no bool images)."""
    if window.image.dtype != bool:
        return window
    return Window(window.image.astype(np.uint8), window.box, window.step)


def _inside(inner: Box, outer: Box) -> bool:
    return outer[0] <= inner[0] and inner[1] <= outer[1] and outer[2] <= inner[2] and inner[3] <= outer[3]
