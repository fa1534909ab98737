"""Re-measure the bundled models on their held-out data and print the table of issue 5.

Each row predicts held-out slices with the installed default models of one object, in fast
mode (one model, no augmentation) and accurate mode (the ensemble with 16x test-time
augmentation), and scores the masks: mean per-image F1 / IoU, as `emviewer evaluate` does.

    python benchmarks/accuracy.py [--modes fast,accurate] [--objects mito] [--each-model] [--max-slices N]
        [--runtime keras|openvino|onnx] [--json FILE]

``--each-model`` adds a table of every installed model alone (fast: no augmentation,
accurate: 16x), e.g. the DeepEM3D model against the MultiResUNet family.

To measure candidate models before bundling them, point ``EMVIEWER_MODELS_DIR`` at a folder
laid out like ``models/`` (and ``EMVIEWER_USER_DIR`` at an empty one).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from emviewer import config
from emviewer.core.dataset import LabelledStack, load_labelled
from emviewer.core.io.common import numbers_in
from emviewer.core.metrics import mean_scores, pooled_scores, score
from emviewer.core.models.registry import models_for
from emviewer.core.models.runtime import RUNTIME_ENV
from emviewer.core.predict import predictor_for
from emviewer.core.robustness import corrupt
from emviewer.core.volume import from_array

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@dataclass
class Task:
    """One row: an object, its held-out slices, the measure and the issue's targets."""

    object: str
    data: str
    images: str
    labels: str
    measure: str  # "f1" or "iou"
    targets: tuple[float, float]  # fast, accurate
    numbers: range | None = None  # keep only slices whose slice number is in here
    number_at: int = -1  # which number in the file name is the slice number
    foreground: list | None = None
    invert: bool = False
    noise: float = 0.0  # salt-and-pepper fraction; the row then reports F1 / clean F1
    pooled: bool = False  # score all pixels together (HeLa: 64 px patches are fragments of slices)


TASKS = [
    Task(
        "mito",
        "cdeep3m validation 050-059",
        "cdeep3m_mito/validation/images",
        "cdeep3m_mito/validation/labels",
        "f1",
        (0.85, 0.88),
    ),
    Task(
        "mito",
        "Lucchi++ 140-164",
        "lucchi_pp_train/images",
        "lucchi_pp_train/labels",
        "iou",
        (0.82, 0.85),
        numbers=range(140, 165),
    ),
    Task(
        "membrane",
        "ISBI 2012 25-29",
        "isbi2012_membrane/image",
        "isbi2012_membrane/label",
        "f1",
        (0.82, 0.85),
        numbers=range(25, 30),
        invert=True,
    ),
    # HeLa: 41 slices (100-180, even); the last 7 (168-180, 17 %) are held out, all their patches
    Task(
        "nuclei",
        "HeLa slices 168-180 (pooled)",
        "hela_nuclei_patches/images",
        "hela_nuclei_patches/labels",
        "iou",
        (0.85, 0.88),
        range(168, 181),
        0,
        foreground=[2],
        pooled=True,
    ),
    Task(
        "mito",
        "cdeep3m validation, 10 % salt-and-pepper",
        "cdeep3m_mito/validation/images",
        "cdeep3m_mito/validation/labels",
        "f1",
        (0.90, 0.90),
        noise=0.10,
    ),
]


def held_out(task: Task, max_slices: int | None) -> LabelledStack:
    stack = load_labelled(str(DATA / task.images), str(DATA / task.labels), task.foreground, task.invert)
    keep = list(range(len(stack)))
    if task.numbers is not None:
        keep = [i for i, name in enumerate(stack.names) if numbers_in(name)[task.number_at] in task.numbers]
    return stack.split(keep[: max_slices or None])


def measure(task: Task, stack: LabelledStack, mode: str, paths) -> dict:
    """The task's measure for these model files in this mode (fast: no TTA; accurate: 16x)."""
    predictor = predictor_for({task.object: paths}, mode)
    volume = from_array(stack.images, stack.source, slice_names=stack.names)
    started = time.perf_counter()

    def mean_of(vol) -> float:
        results = predictor.iter_predict(vol)
        per_image = [score(r.masks()[task.object], stack.masks[r.index]) for r in results]
        return getattr((pooled_scores if task.pooled else mean_scores)(per_image), task.measure)

    value = mean_of(volume)
    if task.noise:
        value = mean_of(corrupt(volume, "salt_and_pepper", task.noise)) / value
    names = [m.name for m in predictor.models[task.object]]
    return {
        "value": round(float(value), 4),
        "seconds": round(time.perf_counter() - started, 1),
        "models": names,
        "tta": predictor.tta,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="fast,accurate")
    parser.add_argument("--objects", default="mito,membrane,nuclei", help="which objects' rows to measure")
    parser.add_argument("--max-slices", type=int, help="score only the first N held-out slices (quick check)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--runtime", help="keras, openvino or onnx (default: auto, as emviewer predict)")
    parser.add_argument(
        "--each-model",
        action="store_true",
        help="then measure every installed model alone (e.g. DeepEM3D against MultiResUNet)",
    )
    args = parser.parse_args()
    if args.runtime:
        os.environ[RUNTIME_ENV] = args.runtime  # predictor_for reads it
    entries = config.installed_models()
    modes = args.modes.split(",")
    rows = []
    print(f"{'object':<9} {'held-out data':<42} {'measure':<10}" + "".join(f"{m:>10} {'target':>7}" for m in modes))
    for task in [t for t in TASKS if t.object in args.objects.split(",")]:
        if not any(e.card.object == task.object for e in entries):
            print(f"{task.object:<9} {task.data:<42} no bundled model")
            continue
        stack = held_out(task, args.max_slices)
        row = {
            "object": task.object,
            "data": task.data,
            "measure": "F1 / clean F1" if task.noise else task.measure,
            "slices": len(stack),
        }
        for mode, target in zip(
            modes,
            task.targets if modes == ["fast", "accurate"] else [task.targets[0 if m == "fast" else 1] for m in modes],
            strict=True,
        ):
            row[mode] = {**measure(task, stack, mode, models_for(task.object, mode, entries)), "target": target}
        rows.append(row)
        print(
            f"{task.object:<9} {task.data:<42} {row['measure']:<10}"
            + "".join(f"{row[m]['value']:>10.4f} {row[m]['target']:>7.2f}" for m in modes),
            flush=True,
        )
    for row in rows:
        for mode in modes:
            print(
                f"  {row['object']} / {row['data']} / {mode}: {row[mode]['models']} (TTA {row[mode]['tta']}), "
                f"{row['slices']} slices, {row[mode]['seconds']} s"
            )
    if args.each_model:
        rows += each_model(entries, modes, args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def each_model(entries, modes: list[str], args) -> list[dict]:
    """Every installed model alone on its object's clean held-out rows."""
    print(f"\n{'model':<24} {'held-out data':<42} {'measure':<10}" + "".join(f"{m:>10}" for m in modes))
    rows = []
    for task in [t for t in TASKS if t.object in args.objects.split(",") and not t.noise]:
        stack = held_out(task, args.max_slices)
        for entry in [e for e in entries if e.card.object == task.object]:
            row = {"model": entry.name, "data": task.data, "measure": task.measure, "slices": len(stack)}
            row.update({mode: measure(task, stack, mode, [entry.path]) for mode in modes})
            rows.append(row)
            print(
                f"{entry.name:<24} {task.data:<42} {task.measure:<10}"
                + "".join(f"{row[m]['value']:>10.4f}" for m in modes),
                flush=True,
            )
    return rows


if __name__ == "__main__":
    main()
