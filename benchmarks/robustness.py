"""F1 against salt-and-pepper noise (0, 1, 2, 5, 10, 20 % of pixels) for one model.

Prints the curve and the ratio to the clean F1, and saves it as a PNG chart.

    python benchmarks/robustness.py --model MODEL.keras [--images DIR --labels DIR] [--out curve.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from emviewer.core.charts import line_chart
from emviewer.core.dataset import load_labelled
from emviewer.core.models.loading import load_model
from emviewer.core.predict import LocalPredictor
from emviewer.core.robustness import DEFAULT_LEVELS, robustness_curve
from emviewer.core.volume import from_array

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cdeep3m_mito" / "validation"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", default=str(DATA / "images"))
    parser.add_argument("--labels", default=str(DATA / "labels"))
    parser.add_argument("--foreground", type=float, nargs="*")
    parser.add_argument("--invert", action="store_true")
    parser.add_argument("--kind", choices=("salt_and_pepper", "gaussian"), default="salt_and_pepper")
    parser.add_argument("--tta", type=int, default=1, choices=(1, 8, 16))
    parser.add_argument("--out", default="robustness.png")
    args = parser.parse_args()

    data = load_labelled(args.images, args.labels, args.foreground, args.invert)
    model = load_model(args.model)
    predictor = LocalPredictor({"object": [model]}, tta=args.tta)
    volume = from_array(data.images, args.images, slice_names=data.names)
    curve = robustness_curve(predictor, volume, list(data.masks), DEFAULT_LEVELS, args.kind)
    print(f"model {model.name} on {args.images} ({len(data)} slices), {args.kind}, TTA {args.tta}")
    print(f"{'noise %':>8} {'mean F1':>8} {'F1 / clean':>11}")
    for point in curve:
        print(f"{100 * point.level:>8g} {point.f1:>8.4f} {point.relative:>11.3f}")
    chart = line_chart(
        [100 * p.level for p in curve],
        {model.name: [p.f1 for p in curve]},
        f"F1 vs {args.kind.replace('_', '-')} noise",
        "noise (% of pixels)",
        "mean F1",
    )
    chart.save(args.out)
    at_10 = float(np.interp(0.10, [p.level for p in curve], [p.relative for p in curve]))
    print(f"saved {args.out}; F1 at 10 % noise / clean F1 = {at_10:.3f}")


if __name__ == "__main__":
    main()
