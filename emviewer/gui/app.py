"""Starting the app, and the screenshot mode used for docs and bug reports."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path


def run(
    path: str | None = None, objects: Sequence[str] = (), predict: bool = False, screenshot: str | None = None
) -> int:
    """Open the main window on ``path`` (the sample stack when none); returns the exit code.

    With ``screenshot`` the window is rendered (after predicting when ``predict``), saved
    as a PNG and the app exits: 0 on success, 2 when opening or predicting failed.
    """
    if not _has_screen() and screenshot is None:
        print(
            "emviewer: error: no screen to show the app on (no DISPLAY or WAYLAND_DISPLAY); "
            "the commands work without one: see 'emviewer --help'",
            file=sys.stderr,
        )
        return 2
    if screenshot is not None and not _has_screen():
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # a screenshot needs no screen
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from .. import config
    from .main_thread_gc import MainThreadCollector
    from .main_window import MainWindow

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    MainThreadCollector(app)  # no Qt object may be freed on a worker thread
    app.setWindowIcon(QIcon(str(config.resources_dir() / "icons" / "emviewer.png")))
    window = MainWindow()
    window.show()
    opened = window.open_path(path or config.sample_stack())
    if objects:
        window.panel.select_only(list(objects))
    if screenshot is None:
        if predict and opened:
            window.panel.predict_button.click()
        return app.exec()
    if not opened:
        print(f"emviewer: error: {window.last_error}", file=sys.stderr)
        return 2
    outcome: dict[str, str | None] = {"error": None}
    if predict:
        window.predictionStopped.connect(lambda message: outcome.update(error=message))
        # exit, not quit: since Qt 6 quit() asks the window to close, which asks about unsaved results
        window.predictionFinished.connect(lambda: app.exit(0))
        window.predictionStopped.connect(lambda _m: app.exit(0))
        window.panel.predict_button.click()
        if window.job is not None:
            app.exec()
        else:
            outcome["error"] = window.last_error
    window.viewer.fit()
    app.processEvents()
    window.grab().save(str(Path(screenshot)))
    if outcome["error"]:
        print(f"emviewer: error: {outcome['error']}", file=sys.stderr)
        return 2
    return 0


def _has_screen() -> bool:
    """True where Qt can open a window: a display server, another OS, or a chosen Qt platform."""
    if os.environ.get("QT_QPA_PLATFORM") or not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
