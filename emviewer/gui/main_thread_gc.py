"""Python's cycle collector, run on the GUI thread only.

Python collects reference cycles in whichever thread happens to be allocating. When such a
collection frees a Qt object (a closed dialog caught in a cycle) on a worker thread, Qt can
crash the app. So automatic collection is switched off while the app runs, and a timer on
the GUI thread collects instead, by Python's own thresholds.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer


class MainThreadCollector(QObject):
    """Collects cycles on the thread it lives on (the GUI thread) every ``interval_ms``."""

    def __init__(self, parent: QObject, interval_ms: int = 500) -> None:
        super().__init__(parent)
        gc.disable()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.collect)
        self._timer.start(interval_ms)

    @staticmethod
    def collect() -> int:
        """Collect the oldest generation whose count passed its threshold; returns what was freed."""
        due = [
            generation
            # three of each in CPython; should that change, compare what both give rather than fail in a timer
            for generation, (count, limit) in enumerate(zip(gc.get_count(), gc.get_threshold(), strict=False))
            if limit and count > limit
        ]
        return gc.collect(max(due)) if due else 0

    def stop(self) -> None:
        """Hand collection back to Python, after a last collection here."""
        self._timer.stop()
        gc.enable()
        gc.collect()
