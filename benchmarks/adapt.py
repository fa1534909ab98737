"""Leave one domain out: a mito model that knows only SBEM adapts to FIB-SEM from two slices.

The source model is trained on ``cdeep3m_mito/training`` only (SBEM mouse brain); the
command that made it is in ``models/TRAINING.md``. It is adapted with ``emviewer adapt``'s
core on two labelled Lucchi++ slices (000 and 080; FIB-SEM mouse hippocampus, 5 nm), then
both models are scored on Lucchi++ 140-164 in fast mode (mean per-slice F1 and IoU, as
``emviewer evaluate`` does). Prints the CPU, both scores and the wall time of the adaptation.

    python benchmarks/adapt.py --source ~/emv-train/issue21/mito-cdeep3m-only-1fm.keras [--minutes 10]
        [--zoom auto] [--trainable all] [--tile auto] [--lr 1e-3] [--test-slices N] [--tta 8|16]
        [--keep DIR] [--json FILE]

``--zoom auto`` matches the Lucchi++ mitochondria's width to the source's (:mod:`emviewer.core.zoom`);
a source card written before cards recorded ``object_width_px`` gets it measured here from the
card's training labels, as ``emviewer train`` now records it.

Target (issue 21): IoU >= 0.80 after, within 10 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

from emviewer.core.adapt import adapt
from emviewer.core.dataset import load_labelled
from emviewer.core.fine_tune import TRAINABLE, FineTuneSettings
from emviewer.core.metrics import mean_scores, score
from emviewer.core.models.loading import LoadedModel
from emviewer.core.models.registry import read_card
from emviewer.core.predict import LocalPredictor, predictor_for
from emviewer.core.volume import from_array
from emviewer.core.zoom import matched_zoom, object_width

LUCCHI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lucchi_pp_train"
ADAPT_SLICES = (0, 80)
TEST_SLICES = range(140, 165)


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def linked_slices(numbers, folder: Path) -> tuple[str, str]:
    """Image and label folders holding only the Lucchi++ slices ``numbers`` (symbolic links)."""
    for kind in ("images", "labels"):
        (folder / kind).mkdir(parents=True)
        for n in numbers:
            (folder / kind / f"train_{n:03d}.png").symlink_to(LUCCHI / kind / f"train_{n:03d}.png")
    return str(folder / "images"), str(folder / "labels")


def fast_scores(model: Path, images: str, labels: str, zoom: float | None = None, tta: int = 1) -> dict:
    """Mean per-slice F1 and IoU of one model (masks as ``emviewer predict --tta`` makes them; 1:
    fast mode), at its card's input zoom or at ``zoom``."""
    stack = load_labelled(images, labels)
    predictor = predictor_for({"mito": [model]}, "fast", tta=tta)
    if zoom is not None:
        loaded = predictor.models["mito"][0]
        card = loaded.card.model_copy(update={"input_zoom": zoom})
        predictor = LocalPredictor({"mito": [LoadedModel(loaded.name, loaded.model, card)]}, tta=tta)
    volume = from_array(stack.images, stack.source, slice_names=stack.names)
    per_slice = [score(r.masks()["mito"], stack.masks[r.index]) for r in predictor.iter_predict(volume)]
    mean = mean_scores(per_slice)
    return {"f1": round(mean.f1, 4), "iou": round(mean.iou, 4), "slices": len(per_slice)}


def source_width(source: Path) -> float | None:
    """The source card's ``object_width_px``, else measured on its training labels (if readable)."""
    card = read_card(source)
    if card.object_width_px or card.training_data is None:
        return card.object_width_px
    data = card.training_data
    widths = [object_width(load_labelled(i, m).masks) for i, m in zip(data.images, data.labels, strict=True)]
    return max(w for w in widths if w) if any(widths) else None


def chosen_zoom(text: str, source_objects: float | None, adapt_stack) -> float:
    if text != "auto":
        return float(text)
    return matched_zoom(source_objects, object_width(adapt_stack.masks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="the cdeep3m-only mito model (.keras with card)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--zoom", default="auto", help="auto (matched object widths) or a zoom, e.g. 1 or 0.5")
    parser.add_argument("--trainable", choices=TRAINABLE, default="all")
    defaults = FineTuneSettings()
    parser.add_argument("--tile", type=int, default=defaults.tile, help="crop side, px (multiple of 16; default auto)")
    parser.add_argument("--lr", type=float, default=defaults.learning_rate, help="peak learning rate")
    parser.add_argument("--test-slices", type=int, default=len(TEST_SLICES), help="score only the first N of 140-164")
    parser.add_argument("--tta", type=int, choices=(8, 16), help="also score the adapted model with N variants")
    parser.add_argument("--keep", type=Path, help="copy the adapted model and its card into this folder")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        adapt_images, adapt_labels = linked_slices(ADAPT_SLICES, root / "adapt")
        test_images, test_labels = linked_slices(list(TEST_SLICES)[: args.test_slices], root / "test")
        settings = FineTuneSettings(trainable=args.trainable, tile=args.tile, learning_rate=args.lr)
        stack = load_labelled(adapt_images, adapt_labels, reference=read_card(args.source).reference)
        source_objects = source_width(args.source)
        zoom = chosen_zoom(args.zoom, source_objects, stack)
        started = time.perf_counter()
        result = adapt(stack, args.source, root / "adapted.keras", args.minutes * 60, settings, zoom=zoom)
        wall = time.perf_counter() - started
        before = fast_scores(args.source, test_images, test_labels)
        zoomed = fast_scores(args.source, test_images, test_labels, zoom) if zoom != 1.0 else None
        after = fast_scores(result.model_path, test_images, test_labels) if result.model_path else None
        after_tta = None
        if result.model_path and args.tta:
            after_tta = fast_scores(result.model_path, test_images, test_labels, tta=args.tta)
        if result.model_path and args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in (result.model_path, result.model_path.with_suffix(".json")):
                shutil.copy2(path, args.keep / path.name)
    figures = {
        "cpu": cpu_name(),
        "source": args.source.name,
        "time_limit_min": args.minutes,
        "zoom": result.zoom,
        "object_widths_px": [source_objects, result.widths[1]],
        "trainable": args.trainable,
        "tile": result.settings.tile,
        "learning_rate": args.lr,
        "adapt_wall_s": round(wall, 1),
        "steps": list(result.steps),
        "held_out_080": {
            "f1": [result.before.f1, result.after.f1],
            "thresholds": [result.threshold, result.adapted_threshold],
        },
        "lucchi_140_164_before": before,
        "lucchi_140_164_source_at_zoom": zoomed,
        "lucchi_140_164_after": after,
        "lucchi_140_164_after_tta": after_tta,
        "tta": args.tta,
    }
    tile = result.settings.tile
    print(f"CPU: {figures['cpu']}; trainable {args.trainable}, tile {tile}, peak lr {args.lr:g}, zoom {zoom:g}")
    print(f"adaptation {wall / 60:.1f} min ({result.steps[0]} + {result.steps[1]} steps)")
    print(
        f"held-back slice 080: F1 {result.before.f1:.3f} -> {result.after.f1:.3f}"
        f" (threshold {result.threshold:.2f} -> {result.adapted_threshold:.2f})"
    )
    where = f"Lucchi++ {TEST_SLICES.start}-{TEST_SLICES.stop - 1}"
    print(f"{where} before: F1 {before['f1']:.3f}, IoU {before['iou']:.3f}")
    if zoomed:
        print(f"{where} source at zoom {zoom:g}, not adapted: F1 {zoomed['f1']:.3f}, IoU {zoomed['iou']:.3f}")
    if not after:
        print("the adapted model was not better on the held-back slice: nothing written, nothing to score")
    else:
        print(f"{where} after:  F1 {after['f1']:.3f}, IoU {after['iou']:.3f}")
    if after_tta:
        print(f"{where} after, {args.tta} test-time variants: F1 {after_tta['f1']:.3f}, IoU {after_tta['iou']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
