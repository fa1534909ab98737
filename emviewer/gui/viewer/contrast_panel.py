"""Contrast limits: the grey values shown as black and white, with auto-levels from the stack."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QWidget

from ..session import Session


class ContrastPanel(QWidget):
    """Low / high spin boxes and an Auto button, bound to :attr:`Session.levels`.

    The spin boxes span the stack's dtype (0-255, 0-65535, or any value for float stacks);
    Auto sets them from the stack's percentiles, as when the stack was opened.
    """

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self.low = QDoubleSpinBox()
        self.high = QDoubleSpinBox()
        for box, tip in ((self.low, "grey value shown as black"), (self.high, "grey value shown as white")):
            box.setKeyboardTracking(False)
            box.setToolTip(tip)
        self.auto_button = QPushButton("Auto")
        self.auto_button.setToolTip("contrast from the stack's 0.5-99.5 percentiles")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Contrast"))
        layout.addWidget(self.low)
        layout.addWidget(QLabel("to"))
        layout.addWidget(self.high)
        layout.addWidget(self.auto_button)
        layout.addStretch(1)
        self.low.valueChanged.connect(self._on_limits_edited)
        self.high.valueChanged.connect(self._on_limits_edited)
        self.auto_button.clicked.connect(session.auto_levels)
        session.volumeChanged.connect(self._on_volume_changed)
        session.displayChanged.connect(self._show_levels)
        self._on_volume_changed()

    def _on_volume_changed(self) -> None:
        volume = self._session.volume
        self.setEnabled(volume is not None)
        if volume is None:
            return
        if np.issubdtype(volume.dtype, np.integer):
            info = np.iinfo(volume.dtype)
            bounds, decimals = (float(info.min), float(info.max)), 0
        else:
            bounds, decimals = (-1e12, 1e12), 4
        for box in (self.low, self.high):
            with QSignalBlocker(box):
                box.setDecimals(decimals)
                box.setRange(*bounds)
        self._show_levels()

    def _show_levels(self) -> None:
        for box, value in zip((self.low, self.high), self._session.levels, strict=True):
            with QSignalBlocker(box):
                box.setValue(value)

    def _on_limits_edited(self, _value: float) -> None:
        self._session.set_levels(self.low.value(), self.high.value())
