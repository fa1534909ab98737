"""How fast a brush stroke redraws: a drag on a 2048 x 2048 slice that already shows two objects,
timed per mouse move from the event to the repainted panes (the target is < 30 ms), plus the
press (preparing the preview) and the release (storing the stroke, redrawing its box).

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_brush.py [--side 2048] [--moves 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def cpu_name() -> str:
    """The processor's model name (lscpu on Linux), else what Python's platform module says."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        out = ""
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def blobs(side: int, count: int, radius: int, seed: int) -> np.ndarray:
    """A ``(side, side)`` float32 map with ``count`` discs of 1: a stand-in for predicted objects."""
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    disc = yy**2 + xx**2 <= radius**2
    out = np.zeros((side + 2 * radius, side + 2 * radius), bool)
    for y, x in rng.integers(0, side, (count, 2)):
        out[y : y + 2 * radius + 1, x : x + 2 * radius + 1] |= disc
    return out[radius:-radius, radius:-radius].astype(np.float32)


def stroke(app, window, points, viewport) -> tuple[float, list[float], float]:
    """Drag through ``points`` (viewport positions); seconds for the press, each move and the release,
    each including the repaint it causes."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    start = time.perf_counter()
    QTest.mousePress(viewport, left, none, points[0])
    viewport.repaint()
    pressed = time.perf_counter() - start
    moves = []
    for point in points[1:]:
        start = time.perf_counter()
        QTest.mouseMove(viewport, point)
        viewport.repaint()  # paint now, as the screen would, instead of at the next event-loop turn
        moves.append(time.perf_counter() - start)
    start = time.perf_counter()
    QTest.mouseRelease(viewport, left, none, points[-1])
    app.processEvents()
    viewport.repaint()
    return pressed, moves, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=2048, help="slice width and height in pixels")
    parser.add_argument("--moves", type=int, default=200, help="mouse moves per stroke")
    args = parser.parse_args()

    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication, QMainWindow

    from emviewer.core.predict import SliceResult
    from emviewer.core.volume import from_array
    from emviewer.gui.session import Session
    from emviewer.gui.viewer import EditToolbar, MaskEditor, SideBySideView

    app = QApplication.instance() or QApplication([])
    side = args.side
    rng = np.random.default_rng(0)
    stack = rng.integers(40, 220, (2, side, side), dtype=np.uint8)
    session = Session()
    session.open(from_array(stack))
    probabilities = {"mito": blobs(side, 60, side // 40, 1), "membrane": blobs(side, 300, side // 200, 2)}
    session.set_result(SliceResult(0, "", probabilities))
    window = QMainWindow()
    view = SideBySideView(session)
    window.setCentralWidget(view)
    editor = MaskEditor(session, view, window)
    window.addToolBar(EditToolbar(editor, window))
    window.resize(1400, 800)
    window.show()
    app.processEvents()
    view.fit()
    app.processEvents()
    viewport = view.graphics.viewport()

    def at(x: float, y: float):
        return view.graphics.mapFromScene(view.overlay_view.mapViewToScene(QPointF(x, y)))

    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical cores), Qt platform {QGuiApplication.platformName()}")
    print(f"slice {side} x {side}, mito and membrane shown, whole slice in view ({window.width()} x {window.height()})")
    editor.set_tool("paint")
    for size in (15, 100):
        editor.set_brush_size(size)
        t = np.linspace(0.1, 0.9, args.moves)
        points = [at(side * a, side * (0.3 + 0.4 * a * a)) for a in t]  # a curve across the slice
        pressed, moves, released = stroke(app, window, points, viewport)
        ms = 1000 * np.asarray(moves)
        print(
            f"brush {size:3d} px: move + repaint median {np.median(ms):.1f} ms, 95th percentile "
            f"{np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms over {len(ms)} moves; "
            f"press {1000 * pressed:.1f} ms, release (store + redraw of the stroke box) {1000 * released:.1f} ms"
        )
        editor.undo_stack.undo()


if __name__ == "__main__":
    main()
