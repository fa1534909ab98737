"""How fast stacks open and slices arrive, per format: the figures behind "opens at once".

Writes a synthetic stack (default 1 GiB, uint8) in each format to a temporary folder, then
prints the time to open it, to read one slice (median of 10, files in the page cache) and
the resident memory growth, with the ratio of one slice's time to a whole-stack read.

    python benchmarks/io_speed.py [--gib 1.0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import tifffile

from emviewer.core.io import open_volume


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def make_files(folder: Path, shape: tuple[int, int, int]) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    plane = rng.integers(0, 255, shape[1:], dtype=np.uint8)
    tif = folder / "stack.tif"
    mapped = tifffile.memmap(tif, shape=shape, dtype=np.uint8, imagej=True)
    for z in range(shape[0]):
        mapped[z] = plane
    mapped.flush()
    del mapped
    h5 = folder / "stack.h5"
    with h5py.File(h5, "w") as f:
        ds = f.create_dataset("raw", shape=shape, dtype=np.uint8, chunks=(1, 512, 512))
        for z in range(shape[0]):
            ds[z] = plane
    return {"tiff (memory-mapped)": tif, "hdf5 (chunked)": h5}


def measure(path: Path) -> dict[str, float]:
    before = resident_mb()
    start = time.perf_counter()
    volume = open_volume(path)
    opened = time.perf_counter() - start
    times = []
    for z in np.random.default_rng(1).integers(0, len(volume), 10):
        start = time.perf_counter()
        np.array(volume.slice(int(z)), copy=True)  # a memory map reads only when touched
        times.append(time.perf_counter() - start)
    grown = resident_mb() - before
    volume.close()
    return {"open_s": opened, "slice_ms": 1000 * float(np.median(times)), "memory_mb": grown}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="stack size in GiB")
    args = parser.parse_args()
    side = 4096
    depth = max(1, int(args.gib * 2**30 / side**2))
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp), (depth, side, side))
        print(f"stack: {depth} x {side} x {side} uint8 = {depth * side * side / 2**30:.2f} GiB")
        print(f"{'format':<22} {'open (s)':>9} {'slice (ms)':>11} {'RSS growth (MB)':>16} {'slice / full read':>18}")
        for name, path in files.items():
            m = measure(path)
            start = time.perf_counter()
            with open_volume(path) as volume:
                volume.read()
            full = time.perf_counter() - start
            ratio = m["slice_ms"] / 1000 / full
            print(f"{name:<22} {m['open_s']:>9.4f} {m['slice_ms']:>11.1f} {m['memory_mb']:>16.1f} {ratio:>18.4f}")


if __name__ == "__main__":
    main()
