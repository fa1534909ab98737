"""Write each bundled model's ``"training_domain"`` and ``"trained_on"`` into its card.

The statistics (:func:`emviewer.core.domain.training_domain`) are measured on the model's own
training and validation slices, read with emviewer's loaders at the model's reference levels
and predicted by the model itself, so they are what the model saw. Only those two keys are
added to each card; the rest of the file stays as it was.

    python benchmarks/card_domains.py [--models mito-mru-1fm,...] [--check] [--dry-run]

``--check`` also prints, for each model, the largest distance (in spreads of its own slices) of
each statistic on its own validation slices and on slices of the other data sets.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emviewer import config
from emviewer.core.dataset import LabelledStack, load_labelled
from emviewer.core.domain import nearest_source, slice_statistics, training_domain
from emviewer.core.io.common import numbers_in
from emviewer.core.models.loading import LoadedModel, load_model
from emviewer.core.predict import calibrate, labelled_predictions

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MOSAIC_COLUMNS = 8  # HeLa patches of one slice are measured together, 8 patches a row


@dataclass(frozen=True)
class Part:
    """Slices of one labelled data set: folders under ``DATA``, slice numbers kept, label rule."""

    images: str
    labels: str
    numbers: range | None = None  # slice numbers kept (the first number in the name); None: all
    foreground: tuple | None = None
    invert: bool = False
    chunks: int = 0  # keep this many evenly spaced runs of 5 consecutive slices (0: all kept slices)


CDEEP3M_TRAIN = Part("cdeep3m_mito/training/images", "cdeep3m_mito/training/labels", chunks=2)
CDEEP3M_VAL = Part("cdeep3m_mito/validation/images", "cdeep3m_mito/validation/labels")
CDEEP3M_VAL5 = Part("cdeep3m_mito/validation/images", "cdeep3m_mito/validation/labels", chunks=1)
LUCCHI_TRAIN = Part("lucchi_pp_train/images", "lucchi_pp_train/labels", range(0, 140), chunks=2)
LUCCHI_HELD = Part("lucchi_pp_train/images", "lucchi_pp_train/labels", range(140, 165), chunks=1)
HELA = ("hela_nuclei_patches/images", "hela_nuclei_patches/labels")
HELA_TRAIN = Part(*HELA, range(100, 167, 8), (2,))
HELA_VAL = Part(*HELA, range(168, 181, 4), (2,))
ISBI = ("isbi2012_membrane/image", "isbi2012_membrane/label")
ISBI_TRAIN = Part(*ISBI, range(0, 25), invert=True)
ISBI_VAL = Part(*ISBI, range(25, 30), invert=True)

#: object -> (training parts, validation parts, pixel size in nm, one-line "trained_on").
TRAINING = {
    "mito": (
        [CDEEP3M_TRAIN, LUCCHI_TRAIN],
        [CDEEP3M_VAL],
        None,
        "SBEM mouse brain (CDeep3M) + FIB-SEM mouse hippocampus CA1 (Lucchi++), 5-10 nm",
    ),
    "nuclei": ([HELA_TRAIN], [HELA_VAL], 10.0, "HeLa cells, SBF-SEM, 10 nm"),
    "membrane": ([ISBI_TRAIN], [ISBI_VAL], 4.0, "ssTEM Drosophila larva VNC (ISBI 2012), 4x4x50 nm"),
}
#: object -> other data sets a warning must flag (``--check``).
FOREIGN = {
    "mito": {"ISBI 2012": Part(*ISBI, range(0, 30, 6), invert=True)},
    "nuclei": {"cdeep3m": CDEEP3M_VAL5, "Lucchi++": LUCCHI_HELD, "ISBI 2012": ISBI_VAL},
    "membrane": {"cdeep3m": CDEEP3M_VAL5, "Lucchi++": LUCCHI_HELD},
}
#: Held-out slices a mito model did not train on (``--check``): Lucchi++ 140-164.
HELD_OUT = {"mito": {"Lucchi++ 140-164": LUCCHI_HELD}}


def uses_lucchi(model: LoadedModel) -> bool:
    """Whether the card's training data name the Lucchi++ set."""
    data = model.card.training_data
    return data is not None and any("lucchi" in path for path in data.images)


def load_part(part: Part, reference: tuple[float, float]) -> LabelledStack:
    """The part's slices at the model's reference levels, as the model gets them."""
    stack = load_labelled(
        str(DATA / part.images), str(DATA / part.labels), part.foreground, part.invert, reference=reference
    )
    keep = list(range(len(stack)))
    if part.numbers is not None:
        keep = [i for i, name in enumerate(stack.names) if numbers_in(name)[0] in part.numbers]
    if part.chunks:
        starts = np.linspace(0, len(keep) - 5, part.chunks).astype(int)
        keep = [keep[s + k] for s in starts for k in range(5)]
    return stack.split(keep)


def measured_slices(model: LoadedModel, parts: list[Part]) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Model inputs ``(Y, X)``, calibrated probabilities (threshold at 0.5) and data set (the
    folder's name) of the parts' slices; HeLa patches become one mosaic per slice number."""
    inputs, probabilities, groups = [], [], []
    for part in parts:
        stack = load_part(part, model.reference)
        centre = model.context // 2
        images, probs, names = [], [], []
        for _, z, probability in labelled_predictions(model.model, model.context, [stack]):
            images.append(stack.model_input(z, model.context)[..., centre])
            probs.append(calibrate(probability, model.threshold))
            names.append(stack.names[z])
        if images[0].shape[0] <= 64:  # patches: a mosaic per slice number
            images, probs = _mosaics(images, names), _mosaics(probs, names)
        inputs += images
        probabilities += probs
        groups += [part.images.split("/")[0]] * len(images)
    return inputs, probabilities, groups


def _mosaics(patches: list[np.ndarray], names: list[str]) -> list[np.ndarray]:
    """The patches of each slice number laid out in rows of ``MOSAIC_COLUMNS`` (whole rows only)."""
    groups = defaultdict(list)
    for patch, name in zip(patches, names, strict=True):
        groups[numbers_in(name)[0]].append(patch)
    mosaics = []
    for group in groups.values():
        rows = len(group) // MOSAIC_COLUMNS
        if rows:
            grid = [np.hstack(group[r * MOSAIC_COLUMNS : (r + 1) * MOSAIC_COLUMNS]) for r in range(rows)]
            mosaics.append(np.vstack(grid))
    return mosaics


def distances(domain: dict, inputs: list[np.ndarray], probabilities: list[np.ndarray]) -> str:
    """Per statistic the largest absolute distance over the slices (to each slice's nearest
    source), and the range over slices of each slice's largest distance."""
    worst: dict[str, float] = defaultdict(float)
    per_slice = []
    for image, probability in zip(inputs, probabilities, strict=True):
        _, nearest = nearest_source(domain, slice_statistics(image, probability))
        for name, signed in nearest.items():
            worst[name] = max(worst[name], max(abs(d) for d in signed))
        per_slice.append(max(abs(d) for signed in nearest.values() for d in signed))
    each = ", ".join(f"{name} {value:.1f}" for name, value in worst.items())
    return f"{len(per_slice)} slices, largest distance per slice {min(per_slice):.1f}-{max(per_slice):.1f} ({each})"


def check(model: LoadedModel, domain: dict, validation: tuple) -> None:
    """Print the distances of the model's own validation slices and of other data sets' slices."""
    print(f"  own validation: {distances(domain, *validation)}", flush=True)
    others = {**HELD_OUT.get(model.card.object, {}), **FOREIGN[model.card.object]}
    if model.card.object == "mito" and not uses_lucchi(model):
        others["Lucchi++"] = LUCCHI_HELD
    for name, part in others.items():
        inputs, probabilities, _ = measured_slices(model, [part])
        print(f"  {name}: {distances(domain, inputs, probabilities)}", flush=True)


def write_card(model_path: Path, domain: dict, trained_on: str) -> None:
    """Add the two keys to the card file, written as the cards are (``indent=2``, final newline)."""
    card_path = model_path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["training_domain"] = domain
    card["trained_on"] = trained_on
    card_path.write_text(json.dumps(card, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated model names (default: every bundled model)")
    parser.add_argument("--check", action="store_true", help="print distances on own and other data sets")
    parser.add_argument("--dry-run", action="store_true", help="do not write the cards")
    args = parser.parse_args()
    wanted = {name for name in args.models.split(",") if name}
    for entry in config.installed_models():
        if not entry.bundled or (wanted and entry.name not in wanted):
            continue
        started = time.perf_counter()
        model = load_model(entry.path)
        train_parts, val_parts, pixel_size, trained_on = TRAINING[model.card.object]
        if model.card.object == "mito" and not uses_lucchi(model):
            train_parts, trained_on = [CDEEP3M_TRAIN], "SBEM mouse brain (CDeep3M), 5-10 nm"
        training = measured_slices(model, train_parts)
        validation = measured_slices(model, val_parts)
        inputs, probabilities, groups = (
            training[0] + validation[0],
            training[1] + validation[1],
            training[2] + validation[2],
        )
        domain = training_domain(inputs, probabilities, pixel_size, trained_on, groups)
        print(f"{entry.name}: {domain['slices']} slices, {time.perf_counter() - started:.0f} s", flush=True)
        if not args.dry_run:
            write_card(entry.path, domain, trained_on)
        if args.check:
            check(model, domain, validation[:2])


if __name__ == "__main__":
    main()
