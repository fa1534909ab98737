"""File > Recent files: the last opened paths, kept in QSettings across restarts."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSettings
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu

MAX_RECENT = 8


class RecentFiles:
    """The menu of recently opened paths, newest first; choosing one calls ``open_path`` with it."""

    def __init__(self, settings: QSettings, menu: QMenu, open_path: Callable[[str], object]) -> None:
        self._settings, self.menu, self._open_path = settings, menu, open_path
        self.refresh()

    def paths(self) -> list[str]:
        """The remembered paths; QSettings gives back an untyped value."""
        value = self._settings.value("recent", []) or []
        if isinstance(value, str):  # some settings backends give a one-item list back as its item
            return [value]
        return [str(p) for p in value] if isinstance(value, (list, tuple)) else []

    def remember(self, path: str) -> None:
        recent = [p for p in self.paths() if p != path]
        self._settings.setValue("recent", [path] + recent[: MAX_RECENT - 1])
        self.refresh()

    def refresh(self) -> None:
        self.menu.clear()
        for path in self.paths():
            action = QAction(path.replace("&", "&&"), self.menu)  # a literal '&', not a keyboard accelerator
            action.triggered.connect(lambda checked=False, p=path: self._open_path(p))
            self.menu.addAction(action)
