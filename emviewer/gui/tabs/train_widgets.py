"""Small widgets of the Train tab (field makers, the duration format, the live curves) and the
pairing choices the Evaluate tab shares."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QSpinBox, QVBoxLayout, QWidget

from ...core.objects import colour_of

#: How image (or stack) slices meet label files, as the Train and Evaluate tabs offer it.
PAIR_CHOICES = (("number in the name", "number"), ("order", "order"))


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def combo_box(items, default) -> QComboBox:
    """A combo box of ``(text, data)`` items with ``default`` (a data value) chosen."""
    combo = QComboBox()
    for text, data in items:
        combo.addItem(text, data)
    combo.setCurrentIndex(combo.findData(default))
    return combo


def spin_box(low, high, value, step=1, decimals=0):
    spin: QDoubleSpinBox | QSpinBox
    if decimals:
        spin = QDoubleSpinBox()
        spin.setDecimals(decimals)
    else:
        spin = QSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setValue(value)
    return spin


class TrainingCurvesView(QWidget):
    """Training loss and validation F1 per epoch, one pyqtgraph plot each."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        curves = []
        for title, label, colour in (
            ("Training loss", "loss", (60, 60, 60)),
            ("Validation F1", "F1", colour_of("mito")),
        ):
            plot = pg.PlotWidget(background="w", title=title)
            plot.setLabel("bottom", "epoch")
            plot.setLabel("left", label)
            plot.showGrid(x=True, y=True, alpha=0.3)
            curves.append(
                plot.plot([], [], pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=6, symbolBrush=colour)
            )
            layout.addWidget(plot)
        self.loss_curve, self.f1_curve = curves
        self.f1_curve.getViewBox().setYRange(0, 1.05)
