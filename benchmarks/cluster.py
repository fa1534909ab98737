"""Predicting into OME-Zarr on dask workers: 1 vs 2 single-threaded workers, and the seed volume.

Writes a stack of CDeep3M slices (1024 x 1024, the five test images repeated) to a temporary
TIFF, predicts it into an OME-Zarr store with the bundled fast mito model on a local cluster
of 1 and then 2 worker processes with one thread each (models on ``--runtime``, default
``auto``; the run that writes first also warms the file cache), and one slice in accurate
mode on 1 worker. Prints the CPU, the throughput (megapixels per second, timed after every worker loaded its models)
and the 2-worker / 1-worker ratio, then the wall time the seed's volume (16000 x 10000 x 400
pixels) would take on 1, 8 and 64 such workers, assuming each worker keeps the measured
1-worker rate times the measured 2-worker efficiency (an extrapolation, not a measurement).

    python benchmarks/cluster.py [--slices 10] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from emviewer import config
from emviewer.core.distributed import BlockJob, connect, predict_on_cluster, warm
from emviewer.core.io import open_volume
from emviewer.core.models.registry import resolve_models
from emviewer.core.models.runtime import choose_runtime
from emviewer.core.predict import measured_stack, models_record, predictor_for
from emviewer.core.prediction_zarr import PredictionStore

TEST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cdeep3m_mito" / "testset"
SEED_PIXELS = 16000 * 10000 * 400


def cpu_name() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def run(stack: Path, out: Path, mode: str, workers: int, slices: int, runtime: str) -> float:
    """Megapixels per second of ``slices`` slices on ``workers`` single-threaded workers, timed
    once every worker has loaded its models (cluster start-up and loading are left out)."""
    files = resolve_models({"mito": None}, mode, config.installed_models())
    volume = open_volume(stack)
    record = {"models": models_record(predictor_for(files, mode, runtime=runtime).models), "mode": mode, "tta": None}
    PredictionStore(out, ["mito"], volume.shape, False, record)
    paths = {k: [str(f) for f in v] for k, v in files.items()}
    job = BlockJob(str(stack), paths, measured_stack(volume), str(out), mode, runtime=runtime)
    with connect(f"local:{workers}", threads=1) as client:
        client.run(warm, job)
        start = time.perf_counter()
        predict_on_cluster(client, job, range(slices))
        wall = time.perf_counter() - start
    return slices * volume.shape[1] * volume.shape[2] / 1e6 / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--runtime", default="auto", help="what runs the models (as emviewer predict --runtime)")
    args = parser.parse_args()
    runtime = choose_runtime(args.runtime)[0]
    planes = [np.asarray(Image.open(p)) for p in sorted(TEST.glob("*.png"))]
    with tempfile.TemporaryDirectory() as tmp:
        stack = Path(tmp) / "stack.tif"
        import tifffile

        tifffile.imwrite(stack, np.stack([planes[z % len(planes)] for z in range(args.slices)]))
        # blocks: 4 per worker, so 2 workers finish 8 blocks; the first block is the time origin
        one = run(stack, Path(tmp) / "one.zarr", "fast", 1, args.slices, runtime)
        two = run(stack, Path(tmp) / "two.zarr", "fast", 2, args.slices, runtime)
        accurate = run(stack, Path(tmp) / "acc.zarr", "accurate", 1, 2, runtime)
    efficiency = two / (2 * one)
    figures = {
        "cpu": cpu_name(),
        "runtime": runtime,
        "fast_mpx_s": {"1": one, "2": two},
        "ratio_2_to_1": two / one,
        "accurate_mpx_s_1": accurate,
    }
    print(f"CPU: {figures['cpu']}; workers with 1 thread each, models on {runtime}; {args.slices} slices of 1024²")
    print(f"fast, 1 worker:  {one:.3f} Mpx/s")
    print(f"fast, 2 workers: {two:.3f} Mpx/s  (ratio {two / one:.2f}, efficiency {efficiency:.0%})")
    print(f"accurate, 1 worker: {accurate:.4f} Mpx/s")
    print("seed volume 16000 x 10000 x 400, extrapolated (per-worker rate x measured 2-worker efficiency):")
    for n in (1, 8, 64):
        scale = n * (efficiency if n > 1 else 1.0)
        fast_h, acc_h = (SEED_PIXELS / 1e6 / (rate * scale) / 3600 for rate in (one, accurate))
        figures[f"seed_hours_{n}"] = {"fast": fast_h, "accurate": acc_h}
        print(f"  {n:>2} worker(s): fast {fast_h:8.1f} h, accurate {acc_h:9.1f} h")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
