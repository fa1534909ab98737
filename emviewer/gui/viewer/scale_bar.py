"""A scale bar in the lower-left corner of a viewer pane, of a round length at the current zoom.

The bar is a child of the pane's :class:`pyqtgraph.ViewBox` itself, not of the view's
contents, so it keeps its place and thickness on screen while the image is zoomed and panned;
its length is re-chosen (1, 2 or 5 x 10^k nm near a fifth of the pane, as in the exported
figures: :mod:`emviewer.core.scale_bar`) whenever the view or the pixel size changes.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen

from ...core.scale_bar import format_length, scale_bar_length
from ..session import Session

#: Distance of the bar from the pane's left and bottom edges, in screen pixels.
MARGIN = 12
BAR_HEIGHT = 6


class ViewerScaleBar(pg.GraphicsObject):
    """White bar with a dark outline and its length (nm or µm) over a viewer pane.

    Parameters
    ----------
    view
        The pane; the bar sits in its lower-left corner.
    session
        Its open volume's ``pixel_size`` ``(z, y, x)`` in nm sets the length; the bar hides
        when there is no volume or no pixel size. Follows ``pixelSizeChanged`` and ``volumeChanged``.

    Attributes
    ----------
    length_nm : float
        The length shown (0 when hidden).
    label : str
        Its text, e.g. ``"500 nm"`` or ``"2 µm"``.
    """

    def __init__(self, view: pg.ViewBox, session: Session) -> None:
        super().__init__()
        self._view, self._session = view, session
        self.length_nm, self.label, self._length_px = 0.0, "", 0.0
        self._font = QFont()
        self._font.setPointSize(10)
        self._font.setBold(True)
        self.setParentItem(view)  # the view box's own coordinates are screen pixels: no zoom
        self.setZValue(1_000)
        view.sigRangeChanged.connect(self.refresh)
        view.sigResized.connect(self.refresh)
        session.pixelSizeChanged.connect(self.refresh)
        session.volumeChanged.connect(self.refresh)
        self.refresh()

    def pixel_nm(self) -> float | None:
        """Width of an image pixel in nm, or ``None`` when unknown."""
        volume = self._session.volume
        if volume is None or not volume.pixel_size or not volume.pixel_size[-1]:
            return None
        return float(volume.pixel_size[-1])

    def refresh(self, *_args) -> None:
        """Choose the length for the current zoom and pane size, and move to the lower-left corner."""
        pixel = self.pixel_nm()
        (x0, x1), _ = self._view.viewRange()
        width = self._view.width()
        if pixel is None or width <= 2 * MARGIN or x1 <= x0:
            self.length_nm, self.label = 0.0, ""
            self.hide()
            return
        nm_per_screen_pixel = (x1 - x0) * pixel / width
        self.prepareGeometryChange()
        self.length_nm = scale_bar_length(width * nm_per_screen_pixel)
        self.label = format_length(self.length_nm)
        self._length_px = self.length_nm / nm_per_screen_pixel
        self.setPos(MARGIN, self._view.height() - MARGIN - self.boundingRect().height())
        self.show()
        self.update()

    def _text_height(self) -> float:
        return float(QFontMetricsF(self._font).height())

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt's name)
        text_width = QFontMetricsF(self._font).horizontalAdvance(self.label or " ")
        return QRectF(-2, -2, max(self._length_px, text_width) + 4, self._text_height() + BAR_HEIGHT + 6)

    def paint(self, painter: QPainter, *_args) -> None:
        if not self.label:
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        dark, light = QColor(0, 0, 0), QColor(255, 255, 255)
        text = QPainterPath()
        text.addText(QPointF(0, QFontMetricsF(self._font).ascent()), self._font, self.label)
        painter.strokePath(
            text, QPen(dark, 3, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin)
        )
        painter.fillPath(text, QBrush(light))
        painter.setPen(QPen(dark, 1.5))
        painter.setBrush(QBrush(light))
        painter.drawRect(QRectF(0, self._text_height() + 2, self._length_px, BAR_HEIGHT))
