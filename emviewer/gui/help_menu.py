"""Help > Keyboard shortcuts: every shortcut of the window's actions, listed in one box."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMessageBox, QWidget

from .viewer.slice_slider import SLICE_KEYS


def shortcut_list(window: QWidget) -> list[tuple[str, str]]:
    """``(keys, what they do)`` for every action with a shortcut under ``window``, and the slice keys."""
    rows = [
        (action.shortcut().toString(QKeySequence.SequenceFormat.NativeText), action.text().replace("&", ""))
        for action in window.findChildren(QAction)
        if not action.shortcut().isEmpty()
    ]
    for step, keys in SLICE_KEYS.items():
        rows.append((" or ".join(keys), "previous slice" if step < 0 else "next slice"))
    return rows


def show_shortcuts(window: QWidget) -> QMessageBox:
    """A non-blocking message box listing :func:`shortcut_list`."""
    text = "\n".join(f"{keys}\t{what}" for keys, what in shortcut_list(window))
    box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts", text, QMessageBox.StandardButton.Ok, window)
    box.open()
    return box
