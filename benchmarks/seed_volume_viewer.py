"""Does the app open and pan a volume of the seed's size? (issue 22, part 5)

Writes a BigTIFF of 400 x 10000 x 16000 uint8 voxels (64 GB, the seed's SBEM volume) as a
sparse file: the slices the app samples for its contrast and a few around the middle get real
EM tiles (as ``large_slices.py`` makes them), the others stay holes (zeros), so it takes about
2 GB of disk. Then, in this process, the app's main window (``QT_QPA_PLATFORM`` as set; under
Xvfb a real window) opens it and times: open with the first slice drawn, moving to the middle
slice, zoom to one image pixel per screen pixel with the full-resolution region read, pans by
0.6 of the view (each leaves the region read before), and fit; then the process's peak
resident memory (``VmHWM``). Screenshots of the window with ``--shots DIR``.

    python benchmarks/seed_volume_viewer.py [--shape 400x10000x16000] [--work DIR] [--shots DIR] [--json FILE]

Targets (issue 22): opens in under 2 s, pan and zoom redraw in under 100 ms, the app under 2 GB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from large_slices import cpu_name, make_stack

PANS = 10


def peak_rss_mb() -> float:
    """This process's peak resident memory (``VmHWM``), MB."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def filled_slices(depth: int) -> list[int]:
    """The slices given pixels: the app's contrast sample (8 evenly spread) and the middle three."""
    sample = np.linspace(0, depth - 1, min(depth, 8)).astype(int)
    return sorted({int(z) for z in sample} | {depth // 2 - 1, depth // 2, depth // 2 + 1} - {-1})


def measure(path: Path, shots: Path | None) -> dict:
    """Open ``path`` in the main window and time what a person does first (see the module)."""
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    from emviewer.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    window = MainWindow()
    window.resize(1500, 950)
    window.show()
    loaded = QEventLoop()
    window.backendLoaded.connect(lambda _text: loaded.quit())
    loaded.exec()  # the default model loads in the background at start-up: not part of the figures
    viewer = window.viewer

    def timed(action) -> float:
        start = time.perf_counter()
        action()
        app.processEvents()
        viewer.update_detail()  # what the view does when it rests after a pan or zoom
        app.processEvents()
        return time.perf_counter() - start

    def shot(name: str) -> None:
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            window.grab().save(str(shots / f"{name}.png"))

    opened = timed(lambda: window.open_path(path))
    if window.session.volume is None:
        raise SystemExit(f"{path}: the app did not open it (see its error dialog)")
    shape = window.session.volume.shape
    shot("open")
    middle = timed(lambda: window.session.set_slice(shape[0] // 2))
    viewer.centre_on(shape[2] / 2, shape[1] / 2)
    zoom = timed(viewer.one_to_one)
    shot("one_to_one")
    pans = []
    for n in range(PANS):
        (x0, x1), (y0, y1) = viewer.view_range()
        step = 0.6 * (x1 - x0) * (1 if n % 4 < 2 else -1)
        pans.append(
            timed(lambda step=step, x0=x0, x1=x1, y0=y0, y1=y1: viewer.centre_on((x0 + x1) / 2 + step, (y0 + y1) / 2))
        )
    shot("panned")
    fit = timed(viewer.fit)
    window.close()
    return {
        "shape": list(shape),
        "open_s": opened,
        "middle_slice_s": middle,
        "zoom_one_to_one_s": zoom,
        "pan_s": pans,
        "fit_s": fit,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="400x10000x16000", help="SLICESxHEIGHTxWIDTH")
    parser.add_argument("--work", type=Path, help="folder for the stack (kept there; default: a temporary one)")
    parser.add_argument("--shots", type=Path, help="save screenshots of the window here")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--make", type=Path, help=argparse.SUPPRESS)  # child process: write the stack only
    args = parser.parse_args()
    depth, height, width = (int(n) for n in args.shape.split("x"))
    if args.make:
        make_stack(args.make, height, width, depth, filled=filled_slices(depth))
        return
    with tempfile.TemporaryDirectory() as work:
        path = (args.work or Path(work)) / f"seed-{args.shape}.tif"
        if not path.exists():  # written in a child, so its memory map is not counted here
            subprocess.run([sys.executable, __file__, "--shape", args.shape, "--make", str(path)], check=True)
        figures = measure(path, args.shots)
    pans = np.asarray(figures["pan_s"]) * 1000
    print(f"CPU: {cpu_name()}; stack {depth} x {height} x {width} uint8 ({depth * height * width / 1e9:.0f} GB)")
    print(f"open with the first slice drawn: {figures['open_s']:.2f} s (target < 2 s)")
    middle, zoom = 1000 * figures["middle_slice_s"], 1000 * figures["zoom_one_to_one_s"]
    print(f"middle slice: {middle:.0f} ms; zoom to 1:1 with the region read: {zoom:.0f} ms")
    print(
        f"{PANS} pans: median {np.median(pans):.0f} ms, max {pans.max():.0f} ms; fit: {1000 * figures['fit_s']:.0f} ms"
    )
    print(f"peak RSS {figures['peak_rss_mb']:.0f} MB (target < 2 GB)")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_name(), **figures}, indent=2))


if __name__ == "__main__":
    main()
