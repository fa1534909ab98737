"""Does the same tissue predict the same from any microscope? (issue 17, item 3)

Predicts the CDeep3M validation slices (050-059, mitochondria) with the default fast-mode
model, as they are and as three copies that other microscopes or exports would give, and
prints the mean per-image F1 of each against the expert labels:

- ``squeezed 8-bit``: grey values squeezed into 100-150 (``100 + v * 50 / 255``, rounded);
- ``16-bit + border``: ``30000 + 16 v`` (a 4096-wide band of uint16) inside a zero border
  that covers 60 % of a larger canvas (the prediction is cropped back to the tissue);
- ``float + NaN``: float32 ``v / 255 * 3.7 - 1.2`` with 1 % of the pixels NaN.

    python benchmarks/intensity_variants.py [--max-slices N] [--variants "float + NaN"] [--json FILE]

Target: every copy within F1 0.02 of the original.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from emviewer import config
from emviewer.core.dataset import load_labelled
from emviewer.core.metrics import mean_scores, score
from emviewer.core.models.registry import models_for
from emviewer.core.predict import predictor_for
from emviewer.core.volume import from_array

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BORDER_FRACTION = 0.6


def squeezed(images: np.ndarray) -> tuple[np.ndarray, tuple]:
    return np.rint(100 + images.astype(np.float32) * (50 / 255)).astype(np.uint8), np.s_[:, :, :]


def banded_with_border(images: np.ndarray) -> tuple[np.ndarray, tuple]:
    _, height, width = images.shape
    scale = 1 / np.sqrt(1 - BORDER_FRACTION)  # canvas side so that the border is 60 % of it
    pad_y, pad_x = int(round(height * (scale - 1) / 2)), int(round(width * (scale - 1) / 2))
    canvas = np.zeros((len(images), height + 2 * pad_y, width + 2 * pad_x), np.uint16)
    canvas[:, pad_y : pad_y + height, pad_x : pad_x + width] = 30000 + images.astype(np.uint16) * 16
    return canvas, np.s_[:, pad_y : pad_y + height, pad_x : pad_x + width]


def float_with_nan(images: np.ndarray) -> tuple[np.ndarray, tuple]:
    values = images.astype(np.float32) / 255 * 3.7 - 1.2
    holes = np.random.default_rng(17).random(values.shape) < 0.01
    values[holes] = np.nan
    return values, np.s_[:, :, :]


VARIANTS = {
    "original": lambda a: (a, np.s_[:, :, :]),
    "squeezed 8-bit": squeezed,
    "16-bit + border": banded_with_border,
    "float + NaN": float_with_nan,
}


def cpu_name() -> str:
    """The CPU model as ``lscpu`` shows it (figures depend on it)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-slices", type=int, help="only the first N validation slices (quick check)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma list of the variants to run (the original always runs first)",
    )
    args = parser.parse_args()
    chosen = ["original"] + [v for v in args.variants.split(",") if v in VARIANTS and v != "original"]
    stack = load_labelled(str(DATA / "cdeep3m_mito/validation/images"), str(DATA / "cdeep3m_mito/validation/labels"))
    stack = stack.split(range(min(len(stack), args.max_slices or len(stack))))
    paths = models_for("mito", "fast", config.installed_models())
    predictor = predictor_for({"mito": paths}, "fast")
    print(f"CPU: {cpu_name()}; model {[Path(p).stem for p in paths]}; {len(stack)} slices")
    rows = []
    for name in chosen:
        make = VARIANTS[name]
        data, crop = make(stack.images)
        started = time.perf_counter()
        volume = from_array(data, name, slice_names=stack.names)
        per_image = [score(r.masks()["mito"][crop[1:]], stack.masks[r.index]) for r in predictor.iter_predict(volume)]
        f1 = mean_scores(per_image).f1
        rows.append(
            {
                "variant": name,
                "dtype": str(data.dtype),
                "f1": round(float(f1), 4),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        delta = f1 - rows[0]["f1"]
        print(
            f"{name:<16} {str(data.dtype):<8} {tuple(data.shape[1:])!s:<14} F1 {f1:.4f}  "
            f"(original {delta:+.4f})  {rows[-1]['seconds']} s",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
