"""Dialogs for what a file does not say: which channel to read, and the voxel size."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout, QLabel, QSpinBox, QWidget


def _buttons(dialog: QDialog) -> QDialogButtonBox:
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return buttons


class ChannelDialog(QDialog):
    """Asks which of a file's channels to open (the app's ``--channel N``)."""

    channelChosen = Signal(int)

    def __init__(self, message: str, channels: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a channel")
        self.channel = QSpinBox()
        self.channel.setRange(0, channels - 1)
        form = QFormLayout(self)
        text = QLabel(message)
        text.setWordWrap(True)
        form.addRow(text)
        form.addRow(f"Channel (0-{channels - 1}):", self.channel)
        form.addRow(_buttons(self))
        self.accepted.connect(lambda: self.channelChosen.emit(self.channel.value()))


def _nm_box(value: float | None, unknown_text: str = "") -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(0.0, 1e7)
    box.setDecimals(3)
    box.setSuffix(" nm")
    if unknown_text:
        box.setSpecialValueText(unknown_text)  # 0 shows as "unknown"
    box.setValue(value or 0.0)
    return box


class PixelSizeDialog(QDialog):
    """Sets the stack's voxel size ``(z, y, x)`` in nm (the app's ``--pixel-size``).

    ``pixelSizeChosen`` carries the tuple, with ``z`` None when left at 0 (unknown); Y and X
    must be positive for OK to count (a zero keeps the stack uncalibrated: ``None``).
    """

    pixelSizeChosen = Signal(object)

    def __init__(self, pixel_size: tuple | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Voxel size")
        z, y, x = pixel_size or (None, None, None)
        # not self.x / self.y: those are QWidget's position methods
        self.z_nm, self.y_nm, self.x_nm = _nm_box(z, "unknown"), _nm_box(y), _nm_box(x)
        form = QFormLayout(self)
        form.addRow("Between slices (z):", self.z_nm)
        form.addRow("Pixel height (y):", self.y_nm)
        form.addRow("Pixel width (x):", self.x_nm)
        form.addRow(_buttons(self))
        self.accepted.connect(lambda: self.pixelSizeChosen.emit(self.value()))

    def value(self) -> tuple | None:
        y, x = self.y_nm.value(), self.x_nm.value()
        if y <= 0 or x <= 0:
            return None
        return (self.z_nm.value() or None, y, x)
