"""A slider and spin box that pick the session's current slice."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QKeySequence, QShortcut, QValidator
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QSpinBox, QWidget

from ..session import Session

#: Keys that step through the slices: step -> key names (QKeySequence text).
SLICE_KEYS = {-1: (",", "Left"), +1: (".", "Right")}
#: After the slice count when a mask of the slice was changed by hand.
EDITED_MARK = " (edited)"


def add_slice_keys(widget: QWidget, session: Session) -> list[QShortcut]:
    """Let :data:`SLICE_KEYS` step the session's slice while ``widget`` or a child of it has focus.

    A text field inside keeps its own use of the keys (Qt asks the focused widget first).

    Returns
    -------
    The shortcuts, parented to ``widget``.
    """
    shortcuts = []
    for step, keys in SLICE_KEYS.items():
        for key in keys:
            shortcut = QShortcut(QKeySequence(key), widget)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(lambda step=step: session.set_slice(session.z + step))
            shortcuts.append(shortcut)
    return shortcuts


class OneBasedSpinBox(QSpinBox):
    """A spin box whose value is the 0-based slice index but which shows and reads it 1-based."""

    def textFromValue(self, value: int) -> str:  # noqa: N802 (Qt override)
        return str(value + 1)

    def valueFromText(self, text: str) -> int:  # noqa: N802 (Qt override)
        return int(self._number(text)) - 1

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        number = self._number(text)
        if not number:
            return QValidator.State.Intermediate, text, pos
        if not number.isdigit():
            return QValidator.State.Invalid, text, pos
        ok = self.minimum() <= int(number) - 1 <= self.maximum()
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate), text, pos

    def _number(self, text: str) -> str:
        return text.removesuffix(self.suffix()).strip()


class SliceSlider(QWidget):
    """Horizontal slider + spin box + the slice's name.

    The controls' values are 0-based slice indices; the spin box shows them 1-based, as
    "1 / 5" for the first of five slices, and "1 / 5 (edited)" when a mask of that slice
    was changed by hand (``session.edited``).

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
        self._last = 0  # index of the last slice
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.spin_box = OneBasedSpinBox()
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
        session.masksChanged.connect(self._on_masks_changed)
        self._on_volume_changed()

    def _on_value_picked(self, z: int) -> None:
        self._session.set_slice(z)

    def _on_volume_changed(self) -> None:
        volume = self._session.volume
        last = 0 if volume is None else max(len(volume) - 1, 0)
        for control in (self.slider, self.spin_box):
            with QSignalBlocker(control):
                control.setRange(0, last)
        self._last = last
        # wide enough for the edited mark, so the slider does not jump when it appears
        self.spin_box.setSuffix(f" / {last + 1}{EDITED_MARK}")
        self.spin_box.setMinimumWidth(self.spin_box.sizeHint().width())
        self.setEnabled(last > 0)
        self._on_slice_changed(self._session.z)

    def _on_slice_changed(self, z: int) -> None:
        for control in (self.slider, self.spin_box):
            with QSignalBlocker(control):
                control.setValue(z)
        self._show_count()
        volume = self._session.volume
        names = () if volume is None else volume.slice_names
        self.label.setText(names[z] if 0 <= z < len(names) else "")

    def _on_masks_changed(self, _z: int) -> None:
        self._show_count()

    def is_edited(self) -> bool:
        """Whether any object's mask of the current slice was changed by hand."""
        z = self._session.z
        return any(z in slices for slices in self._session.edited.values())

    def _show_count(self) -> None:
        """The counter says "3 / 5", and "3 / 5 (edited)" on a slice changed by hand."""
        mark = EDITED_MARK if self._session.volume is not None and self.is_edited() else ""
        suffix = f" / {self._last + 1}{mark}"
        if suffix != self.spin_box.suffix():
            with QSignalBlocker(self.spin_box):
                self.spin_box.setSuffix(suffix)
