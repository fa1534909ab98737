"""How fast training batches are cut and augmented, on 1 thread against several.

On a GPU the crops, not the model, can set the pace of training (the 5fm mito model on an
H200 waited for one thread's crops); this prints batches per second for each thread count
and the ratio to one thread, on real SBEM slices.

    python benchmarks/batch_speed.py [--images DIR --labels DIR] [--batches 40] [--threads 1,2,4]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from emviewer.core.dataset import load_labelled
from emviewer.core.pipeline import default_workers, parallel_map
from emviewer.core.train import TrainConfig, training_batch

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cdeep3m_mito" / "training"


def batches_per_second(config: TrainConfig, stacks, batches: int, threads: int) -> float:
    start = time.perf_counter()
    for _ in parallel_map(lambda step: training_batch(stacks, config, 0, step), batches, workers=threads):
        pass
    return batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(DATA / "images"))
    parser.add_argument("--labels", default=str(DATA / "labels"))
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--threads", default=f"1,2,{default_workers()}")
    args = parser.parse_args()
    config = TrainConfig(context=5, batch_size=16, tile=256)  # the bundled 5fm's training batches
    stacks = [load_labelled(args.images, args.labels)]
    threads = sorted({int(t) for t in args.threads.split(",")})
    print(f"{args.batches} batches of {config.batch_size} x {config.tile}² crops, {config.context} slices each")
    base = None
    for count in threads:
        rate = batches_per_second(config, stacks, args.batches, count)
        base = base or rate
        print(f"{count:2d} thread(s): {rate:6.2f} batches/s  ({rate / base:.2f}x one thread)")


if __name__ == "__main__":
    main()
