"""Test-time variants one per model call against several per call (``LocalPredictor.variant_batch``).

The default mito model in accurate mode's 16 variants on the CDeep3M test slices (1024²), each
batch size in turn, interleaved ``--rounds`` times in one process after a warm-up slice (the
runtime compiles or traces each batch shape once): seconds, Mpx/s, the ratio to one variant
per call, and the largest probability difference from it (batched convolutions may sum in
another order). On a GPU run it with ``KERAS_BACKEND=jax`` (no TensorFlow there) and
``--runtime keras``; on a CPU both runtimes can be compared.

    python benchmarks/variant_batch.py [--runtime keras] [--batches 1,4,8] [--slices 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from emviewer import config
from emviewer.core.backend import device_summary
from emviewer.core.io import open_volume
from emviewer.core.models.loading import load_model
from emviewer.core.predict import LocalPredictor
from emviewer.core.volume import from_array

TEST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cdeep3m_mito" / "testset"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", default="keras", help="keras, openvino or onnx")
    parser.add_argument("--batches", default="1,4,8", help="variants per model call, comma list")
    parser.add_argument("--slices", type=int, default=2, help="test slices predicted per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--test", default=str(TEST), help="a stack of 1024² EM slices")
    args = parser.parse_args()

    model = load_model(config.bundled_models_dir() / "mito" / "mito-mru-5fm.keras", runtime=args.runtime)
    model.warm_up()
    stack = open_volume(args.test)
    volume = from_array(np.stack([stack.slice(z) for z in range(min(args.slices, len(stack)))]))
    where = device_summary()["devices"] if args.runtime == "keras" else ["CPU"]
    print(f"{model.name} on {args.runtime} ({', '.join(where)}), 16 variants, {volume.shape} voxels")
    batches = [int(b) for b in args.batches.split(",")]
    predictors = {b: LocalPredictor({"mito": [model]}, tta=16, variant_batch=b) for b in batches}
    for predictor in predictors.values():  # each batch shape compiled or traced before any timing
        list(predictor.iter_predict(from_array(volume.slice(0)[None])))
    seconds: dict[int, list[float]] = {b: [] for b in batches}
    answers: dict[int, list[np.ndarray]] = {}
    for _ in range(args.rounds):
        for b, predictor in predictors.items():
            start = time.perf_counter()
            answers[b] = [r.probabilities["mito"] for r in predictor.iter_predict(volume)]
            seconds[b].append(time.perf_counter() - start)
    pixels = int(np.prod(volume.shape))
    base = min(seconds[batches[0]])
    print(f"{'variants per call':>18}{'best s':>9}{'Mpx/s':>8}{'ratio':>7}{'max |diff|':>12}")
    for b in batches:
        diff = max(float(np.abs(a - r).max()) for a, r in zip(answers[b], answers[batches[0]], strict=True))
        best = min(seconds[b])
        print(f"{b:>18}{best:>9.1f}{pixels / best / 1e6:>8.3f}{base / best:>7.2f}{diff:>12.2e}")


if __name__ == "__main__":
    main()
