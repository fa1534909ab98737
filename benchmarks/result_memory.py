"""Does the result writer's memory grow with the number of slices? (issue 18, item 1)

Feeds N synthetic predicted slices (two objects, masks and float32 probabilities, as
``emviewer predict --save-probabilities`` and the server write them) through
``PredictionWriter`` in ``h5`` and ``tif``, each run in a fresh Python process, and prints the
process's peak resident memory (VmHWM from /proc/self/status), its resident memory once the
libraries are imported, and the peak growth between the smallest and the largest N.

    python benchmarks/result_memory.py [--slices 10,200] [--side 1024] [--formats h5,tif]

Target: less than 100 MB of growth between 10 and 200 slices of 1024 x 1024.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_MB = 100
OBJECTS = ("mito", "membrane")


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (figures depend on it)."""
    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def memory_mb() -> dict:
    """This process's resident and peak resident memory in MiB (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[name].split()[0]) / 1024 for key, name in (("rss", "VmRSS"), ("peak", "VmHWM"))}


def results(n: int, side: int):
    """``n`` slices made one at a time: smooth probability fields, shifted per slice, so that
    masks and probabilities compress as a prediction's do."""
    import numpy as np

    from emviewer.core.predict import SliceResult

    y, x = np.mgrid[0:side, 0:side].astype(np.float32) * (2 * np.pi / 97)
    field = 0.5 + 0.5 * np.sin(y) * np.cos(x * 0.7)
    for z in range(n):
        shifted = np.roll(field, 3 * z, axis=1)
        yield SliceResult(z, f"slice_{z:04d}", {"mito": shifted, "membrane": 1 - shifted})


def child(fmt: str, n: int, side: int) -> None:
    """One run: write ``n`` slices in ``fmt`` to a temporary folder, print the figures as JSON."""
    from emviewer.core.prediction_output import PredictionWriter, write_predictions

    start = memory_mb()
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        record = {"benchmark": "result_memory"}
        writer = PredictionWriter(Path(folder), OBJECTS, fmt, True, provenance=record, pixel_size=(30.0, 5.0, 5.0))
        written = write_predictions(results(n, side), writer)
        seconds = time.perf_counter() - began
        size = sum(p.stat().st_size for p in written)
    figures = {"start_mb": start["rss"], "peak_mb": memory_mb()["peak"], "seconds": seconds, "file_mb": size / 2**20}
    print(json.dumps(figures))


def run(fmt: str, n: int, side: int) -> dict:
    command = [sys.executable, __file__, "--child", fmt, str(n), str(side)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", default="10,200", help="comma list of slice counts (default 10,200)")
    parser.add_argument("--side", type=int, default=1024, help="slice side in pixels (default 1024)")
    parser.add_argument("--formats", default="h5,tif", help="comma list of h5, tif (default both)")
    parser.add_argument("--child", nargs=3, metavar=("FMT", "N", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        fmt, n, side = args.child
        child(fmt, int(n), int(side))
        return
    counts = sorted(int(n) for n in args.slices.split(","))
    formats = args.formats.split(",")
    print(
        f"CPU: {cpu_name()}; slices of {args.side} x {args.side}; {', '.join(OBJECTS)}: masks + float32 probabilities"
    )
    print(
        f"{'format':<7} {'slices':>7} {'start RSS (MB)':>15} {'peak RSS (MB)':>14} {'written (MB)':>13} {'time (s)':>9}"
    )
    peaks: dict = {}
    for fmt in formats:
        for n in counts:
            r = run(fmt, n, args.side)
            peaks[fmt, n] = r["peak_mb"]
            figures = f"{r['start_mb']:>15.1f} {r['peak_mb']:>14.1f} {r['file_mb']:>13.1f} {r['seconds']:>9.1f}"
            print(f"{fmt:<7} {n:>7} {figures}")
    few, many = counts[0], counts[-1]
    for fmt in formats:
        growth = peaks[fmt, many] - peaks[fmt, few]
        verdict = "within" if growth < TARGET_MB else "OVER"
        print(
            f"{fmt}: peak RSS growth from {few} to {many} slices: {growth:.1f} MB ({verdict} the {TARGET_MB} MB target)"
        )


if __name__ == "__main__":
    main()
