"""A slider and spin box that pick the session's current slice."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QSpinBox, QWidget

from ..session import Session


class SliceSlider(QWidget):
    """Horizontal slider + spin box (0-based slice index) + the slice's name.

    Both controls call :meth:`Session.set_slice`; the session's ``sliceChanged`` moves them
    back with their signals blocked, so there is no feedback loop. The widget is disabled
    when no stack is open or the stack has a single slice.

    Parameters
    ----------
    session
        The app state whose current slice this widget shows and sets.
    parent
        Optional parent widget.
    """

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.spin_box = QSpinBox()
        self.spin_box.setKeyboardTracking(False)
        self.label = QLabel()
        self.label.setMinimumWidth(120)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, stretch=1)
        layout.addWidget(self.spin_box)
        layout.addWidget(self.label)

        self.slider.valueChanged.connect(self._on_value_picked)
        self.spin_box.valueChanged.connect(self._on_value_picked)
        session.volumeChanged.connect(self._on_volume_changed)
        session.sliceChanged.connect(self._on_slice_changed)
        self._on_volume_changed()

    def _on_value_picked(self, z: int) -> None:
        self._session.set_slice(z)

    def _on_volume_changed(self) -> None:
        volume = self._session.volume
        last = 0 if volume is None else max(len(volume) - 1, 0)
        for control in (self.slider, self.spin_box):
            with QSignalBlocker(control):
                control.setRange(0, last)
        self.spin_box.setSuffix(f" / {last}")
        self.setEnabled(last > 0)
        self._on_slice_changed(self._session.z)

    def _on_slice_changed(self, z: int) -> None:
        for control in (self.slider, self.spin_box):
            with QSignalBlocker(control):
                control.setValue(z)
        volume = self._session.volume
        names = () if volume is None else volume.slice_names
        self.label.setText(names[z] if 0 <= z < len(names) else "")
