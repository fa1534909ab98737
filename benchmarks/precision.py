"""Precision by machine: each bundled model saved in bfloat16, predicted as saved and in float32.

On the five 1024 x 1024 CDeep3M test slices in fast mode, one process, the two precisions
interleaved ``--repeats`` times (the fastest run of each counts, after a warm-up slice):
megapixels per second, their ratio, and the share of mask pixels that differ. ``emviewer`` picks float32 unless
the CPU computes bfloat16 in hardware (``emviewer info`` says which and why).

    python benchmarks/precision.py [--repeats 2] [--models mito-mru-1fm,nuclei-mru-1fm]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from adapt import cpu_name  # noqa: I001  (a sibling script: benchmarks/ is on the path when run)

from emviewer import config
from emviewer.core.backend import cpu_has_fast_bfloat16
from emviewer.core.io import open_volume
from emviewer.core.models.loading import load_model
from emviewer.core.predict import LocalPredictor

TEST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cdeep3m_mito" / "testset"


def timed_masks(path: Path, obj: str, precision: str) -> tuple[float, list[np.ndarray]]:
    """Seconds to predict every test slice (after a warm-up slice) and the masks."""
    predictor = LocalPredictor({obj: [load_model(path, precision=precision)]})
    with open_volume(str(TEST)) as volume:
        next(iter(predictor.iter_predict(volume)))  # graphs built for the tile shape
        start = time.perf_counter()
        masks = [r.masks()[obj] for r in predictor.iter_predict(volume)]
        return time.perf_counter() - start, masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each precision, interleaved")
    parser.add_argument("--models", help="comma list of bundled model names (default: those saved in bf16)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # out-of-domain lines (nuclei models on mito slices): only speed is compared
    entries = [e for e in config.installed_models() if e.bundled]
    wanted = (
        args.models.split(",") if args.models else [e.name for e in entries if e.card.precision == "mixed_bfloat16"]
    )
    with open_volume(str(TEST)) as volume:
        pixels = int(np.prod(volume.shape))
    print(f"CPU: {cpu_name()}; bfloat16 in hardware: {cpu_has_fast_bfloat16()}; {pixels / 1e6:.1f} Mpx per run")
    print(f"{'model':<20} {'as saved Mpx/s':>15} {'float32 Mpx/s':>14} {'ratio':>6} {'mask px differing':>18}")
    for entry in (e for e in entries if e.name in wanted):
        seconds: dict[str, list[float]] = {"mixed_bfloat16": [], "float32": []}
        masks = {}
        for _ in range(args.repeats):
            for precision in seconds:
                took, masks[precision] = timed_masks(entry.path, entry.card.object, precision)
                seconds[precision].append(took)
        rate = {p: pixels / 1e6 / min(s) for p, s in seconds.items()}
        differ = np.mean([np.mean(a != b) for a, b in zip(masks["mixed_bfloat16"], masks["float32"], strict=True)])
        ratio = rate["float32"] / rate["mixed_bfloat16"]
        print(
            f"{entry.name:<20} {rate['mixed_bfloat16']:>15.3f} {rate['float32']:>14.3f} {ratio:>6.2f} {differ:>17.4%}"
        )


if __name__ == "__main__":
    main()
