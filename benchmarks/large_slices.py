"""Does prediction into OME-Zarr keep flat memory and linear time as slices grow? (issue 22)

Writes uncompressed TIFF stacks of 1024 x 1024 (16 slices), 4096 x 4096, 8192 x 8192 and
16000 x 10000 (2 slices) pixels, tiled from the five CDeep3M test images (each copy flipped
differently), and runs ``emviewer predict STACK.tif -o OUT.zarr --object mito`` (the bundled
fast model) on each in a fresh process. Prints the CPU and, per size: wall time, the time net
of start-up (a run on one 64 x 64 slice: imports, model loading, contrast), megapixels per
second net, that rate relative to the first size, and the process's peak resident memory
(``ru_maxrss`` of the child). The reference has 16 slices because the start-up varies by
seconds from run to run, and runs again after each other size: a size's time per pixel is
compared with the mean of the reference runs around it. The machine should be otherwise idle.

    python benchmarks/large_slices.py [--sizes 1024x1024x16,4096x4096x1,8192x8192x1,16000x10000x2]
        [--work DIR] [--json FILE]

Targets (issue 22): peak RSS <= 1.5 GB at every size; time per pixel within 1.25x of 1024 x 1024.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

TEST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cdeep3m_mito" / "testset"
SIZES = "1024x1024x16,4096x4096x1,8192x8192x1,16000x10000x2"


def cpu_name() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def make_stack(path: Path, height: int, width: int, slices: int, filled: Sequence[int] | None = None) -> None:
    """An uncompressed TIFF of real EM tiles, written a band at a time through a memory map.
    ``filled``: only these slices get pixels; the others stay holes of the (sparse) file, zeros."""
    import tifffile

    images = [np.asarray(Image.open(f).convert("L")) for f in sorted(TEST.glob("*.png"))]
    side = min(min(i.shape) for i in images)
    stack = tifffile.memmap(
        path,
        shape=(slices, height, width),
        dtype=np.uint8,
        photometric="minisblack",
        bigtiff=height * width * slices >= 2**32,
    )
    for z in range(slices) if filled is None else filled:
        for ty, y0 in enumerate(range(0, height, side)):
            for tx, x0 in enumerate(range(0, width, side)):
                n = z + ty * 7 + tx * 3
                tile = images[n % len(images)][:side, :side]
                tile = tile[::-1] if n % 2 else tile
                tile = tile[:, ::-1] if (n // 2) % 2 else tile
                stack[z, y0 : y0 + side, x0 : x0 + side] = tile[: height - y0, : width - x0]
        stack.flush()
    del stack


def predict(stack: Path, out: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``emviewer predict STACK -o OUT.zarr --object mito``."""
    command = [sys.executable, "-m", "emviewer", "predict", str(stack), "-o", str(out), "--object", "mito"]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    output = child.stdout.read() if child.stdout else ""
    if status != 0:
        raise SystemExit(f"{stack.name}: emviewer predict failed:\n{output[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=SIZES, help="HEIGHTxWIDTHxSLICES, comma-separated")
    parser.add_argument("--work", type=Path, help="folder for the stacks and stores (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    sizes = [tuple(int(n) for n in s.split("x")) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        folder = Path(work)
        make_stack(folder / "start.tif", 64, 64, 1)
        startup, startup_rss = predict(folder / "start.tif", folder / "start.zarr")
        print(f"CPU: {cpu_name()}; start-up (one 64 x 64 slice): {startup:.1f} s, peak RSS {startup_rss:.0f} MB")
        print("| slices | megapixels | wall s | net s | Mpx/s net | vs first (runs before and after) | peak RSS MB |")
        print("|---|---|---|---|---|---|---|")
        rows: list[dict] = []

        def run(height: int, width: int, slices: int, keep: bool = False) -> dict:
            stack = folder / f"{height}x{width}x{slices}.tif"
            if not stack.exists():
                make_stack(stack, height, width, slices)
            wall, rss = predict(stack, folder / f"{height}x{width}.zarr")
            if not keep:
                stack.unlink()
            mpx = height * width * slices / 1e6
            row = {"height": height, "width": width, "slices": slices, "wall_s": wall, "net_s": wall - startup,
                   "mpx_per_s": mpx / max(wall - startup, 1e-9), "peak_rss_mb": rss}  # fmt: skip
            rows.append(row)
            return row

        def show(row: dict, reference: float) -> None:
            mpx = row["height"] * row["width"] * row["slices"] / 1e6
            print(f"| {row['slices']} x {row['height']} x {row['width']} | {mpx:.1f} | {row['wall_s']:.1f} "
                  f"| {row['net_s']:.1f} | {row['mpx_per_s']:.3f} | {reference / row['mpx_per_s']:.2f}x time/px "
                  f"| {row['peak_rss_mb']:.0f} |", flush=True)  # fmt: skip

        # The machine's speed drifts by several per cent within minutes: each size is compared
        # with the mean of the first size's runs just before and just after it.
        before = run(*sizes[0], keep=True)
        show(before, before["mpx_per_s"])
        for size in sizes[1:]:
            row = run(*size)
            after = run(*sizes[0], keep=True)
            row["reference_mpx_per_s"] = (before["mpx_per_s"] + after["mpx_per_s"]) / 2
            show(row, row["reference_mpx_per_s"])
            show(after, after["mpx_per_s"])
            before = after
    if args.json:
        record = {"cpu": cpu_name(), "startup_s": startup, "startup_rss_mb": startup_rss, "rows": rows}
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
