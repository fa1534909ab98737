"""Training: random augmented crops, validation F1 every epoch, checkpoints and exact resume.

Everything needed to continue after a kill is in ``<out>.checkpoints/``: the newest epoch's
model (with optimizer state), the best model so far, and ``state.json`` (epoch counter,
history, best score). Batches are drawn from a generator seeded by (seed, epoch, step),
so a resumed run sees exactly the crops an uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np

from .dataset import Augmentation, LabelledStack, holdout_split, load_labelled, random_batch
from .domain_measure import measured_domain, trained_on
from .errors import InputError, TrainingError
from .intensity import DEFAULT_REFERENCE
from .io import ReadOptions
from .io.atomic import atomic_path
from .length_filter import length_limit, long_objects
from .metrics import best_threshold, default_thresholds, mean_scores, score
from .mining import ErrorMaps, error_maps
from .models.card import ModelCard
from .models.loading import LoadedModel, load_model, sha256_of
from .models.registry import read_card
from .models.saving import save_model_atomically
from .models.transfer import copy_weights
from .objects import is_compact
from .pipeline import parallel_map
from .predict import labelled_predictions
from .progress import CancelToken, Progress, check, report
from .provenance import provenance
from .zoom import object_width


@dataclass
class TrainConfig:
    """Settings of a training run; saved in the checkpoint state and the model card."""

    object: str = "mito"
    arch: str = "multiresunet"
    context: int = 1
    width: int = 16
    depth: int = 4
    tile: int = 256
    batch_size: int = 8
    epochs: int = 20
    steps_per_epoch: int = 100
    learning_rate: float = 1e-3
    seed: int = 0
    precision: str = "auto"  # auto, float32, mixed_bfloat16, mixed_float16
    hard_mining: float = 0.0  # fraction of crops centred where the model errs (0: all uniform)
    length_filter: bool | None = None  # reject objects far longer than any labelled one; None: the object's default
    augmentation: Augmentation = field(default_factory=Augmentation)


@dataclass
class DataSpec:
    """Where the labelled slices are, which label value is the object, and how images and
    labels pair (``"number"`` or ``"order"``, for every set; see :func:`.validate.pair_slices`)."""

    images: list[str]
    labels: list[str]
    val_images: list[str] = field(default_factory=list)
    val_labels: list[str] = field(default_factory=list)
    foreground: list[float] | None = None
    invert: bool = False
    pair_by: str = "number"
    reference: tuple[float, float] | None = None  # model-input levels; None: the default (core.intensity)
    read_options: ReadOptions | None = None  # --channel, --axes, --pixel-size for the images


def checkpoint_dir(out: Path) -> Path:
    """``model.keras`` -> ``model.checkpoints/``."""
    return out.with_name(out.stem + ".checkpoints")


def load_state(out: str | Path) -> dict | None:
    """The checkpoint state of ``out`` (epoch, history, best, config), or ``None`` if there is none."""
    try:
        return json.loads((checkpoint_dir(Path(out)) / "state.json").read_text())
    except (OSError, ValueError):
        return None


def load_checkpoint(out: str | Path, state: dict):
    """The model of ``state``'s newest checkpoint of ``out``, compiled, with its optimizer state."""
    import keras

    from .models.losses import bce_dice_loss

    return keras.saving.load_model(
        checkpoint_dir(Path(out)) / state["checkpoint"], custom_objects={"bce_dice_loss": bce_dice_loss}
    )


def config_from_state(state: dict, epochs: int) -> TrainConfig:
    """The settings a checkpointed run was started with; only the number of epochs may change."""
    saved = dict(state["config"])
    saved["augmentation"] = Augmentation(**saved.get("augmentation", {}))
    saved["epochs"] = epochs
    return TrainConfig(**saved)


def choose_precision(requested: str) -> str:
    """``auto``: float32 on a GPU, bfloat16 on a CPU with bfloat16 instructions, else float32.

    On a GPU float32 is fast enough (tensor cores) and safe: MultiResUNets trained with
    ``mixed_bfloat16`` on JAX/H100 diverged to NaN losses within 200 steps, float32 did not.
    """
    if requested != "auto":
        return requested
    from .backend import cpu_has_fast_bfloat16, device_summary

    if device_summary()["accelerator"]:
        return "float32"
    return "mixed_bfloat16" if cpu_has_fast_bfloat16() else "float32"


def _load_sets(
    images: Sequence[str], labels: Sequence[str], spec: DataSpec, on_warning: Callable[[str], None] | None
) -> list[LabelledStack]:
    if len(images) != len(labels):
        raise InputError(None, f"give one labels folder per images folder ({len(images)} images, {len(labels)} labels)")
    sets = []
    for image_path, label_path in zip(images, labels, strict=True):
        sets.append(
            load_labelled(
                image_path, label_path, spec.foreground, spec.invert, spec.pair_by, spec.reference, spec.read_options
            )
        )
        for message in sets[-1].warnings():
            if on_warning is not None:
                on_warning(message)  # at once: a later set may still be refused
    return sets


def load_data(
    spec: DataSpec, on_warning: Callable[[str], None] | None = None
) -> tuple[list[LabelledStack], list[LabelledStack]]:
    """Training and validation stacks; without validation data the last 15 % of each set is held out.

    ``on_warning`` gets one line per set with slices that found no partner (they are skipped).
    Raises :class:`~emviewer.core.errors.PairingError` when a set's images and labels do not
    pair (see :func:`~emviewer.core.dataset.load_labelled`).
    """
    train_sets = _load_sets(spec.images, spec.labels, spec, on_warning)
    if spec.val_images:
        return train_sets, _load_sets(spec.val_images, spec.val_labels, spec, on_warning)
    pairs = [holdout_split(s) for s in train_sets]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def object_length_limit(config: TrainConfig, train_sets: Sequence[LabelledStack]) -> float | None:
    """The card's ``max_object_length_px`` (see :mod:`.length_filter`), when the run uses one."""
    wanted = is_compact(config.object) if config.length_filter is None else config.length_filter
    return length_limit(m for s in train_sets for m in s.masks) if wanted else None


def validate(
    model,
    context: int,
    val_sets: Sequence[LabelledStack],
    tta: int = 1,
    max_length: float | None = None,
    zoom: float = 1.0,
) -> dict:
    """Mean per-slice F1 of the model on whole validation slices (taken at ``zoom``, see
    :mod:`.zoom`), at its best threshold.

    With ``max_length`` the masks are those a user gets, without longer objects, and the
    threshold is the best one for them.
    """
    probabilities, truths = [], []
    for stack, index, probability in labelled_predictions(model, context, val_sets, tta, zoom=zoom):
        probabilities.append(probability)
        truths.append(stack.masks[index])
    if max_length is None:
        threshold, _ = best_threshold(probabilities, truths)
    else:
        threshold = best_threshold_without_long_objects(probabilities, truths, max_length)
    mean = mean_scores([score(m, t) for m, t in zip(_masks(probabilities, threshold, max_length), truths, strict=True)])
    return {"f1": mean.f1, "threshold": threshold, "precision": mean.precision, "recall": mean.recall, "iou": mean.iou}


def _masks(probabilities: Sequence[np.ndarray], threshold: float, max_length: float | None):
    masks = (p >= threshold for p in probabilities)
    return masks if max_length is None else (m & ~long_objects(m, max_length) for m in masks)


def best_threshold_without_long_objects(
    probabilities: Sequence[np.ndarray], truths: Sequence[np.ndarray], max_length: float
) -> float:
    """The threshold with the best mean F1 once objects longer than ``max_length`` are removed
    (each threshold labels every slice, so the grid is coarser than :func:`best_threshold`'s)."""
    grid = default_thresholds(0.02)
    f1 = [
        mean_scores([score(m, t) for m, t in zip(_masks(probabilities, c, max_length), truths, strict=True)]).f1
        for c in grid
    ]
    return float(grid[int(np.argmax(f1))])


def training_batch(train_sets, config: TrainConfig, epoch: int, step: int, hard: ErrorMaps | None = None):
    """The epoch's batch ``step``, from its own seeded generator (resume-exact, and the same
    whichever thread makes it)."""
    rng = np.random.default_rng([config.seed, epoch, step])
    return random_batch(
        train_sets, config.batch_size, config.tile, config.context, rng, config.augmentation, hard, config.hard_mining
    )


def _new_model(config: TrainConfig):
    import keras

    from .models import build_model
    from .models.losses import bce_dice_loss

    keras.utils.set_random_seed(config.seed)
    model = build_model(config.arch, config.context, config.width, config.depth)
    total_steps = max(1, config.epochs * config.steps_per_epoch)
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=total_steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=bce_dice_loss)
    return model


def _save_checkpoint(model, folder: Path, epoch: int, state: dict) -> None:
    """Newest epoch's model (with optimizer state), then ``state.json``; older epochs removed."""
    path = folder / f"epoch_{epoch:04d}.keras"
    save_model_atomically(model, path)
    state["checkpoint"] = path.name
    with atomic_path(folder / "state.json") as tmp:
        tmp.write_text(json.dumps(state, indent=2))
    for old in folder.glob("epoch_*.keras"):
        if old != path:
            old.unlink()


def _write_history(out: Path, history: list[dict]) -> None:
    if not history:
        return
    with atomic_path(out.with_suffix(".history.json")) as tmp:
        tmp.write_text(json.dumps(history, indent=2))
    keys = list(history[0])
    lines = [",".join(keys)] + [",".join(str(row[k]) for k in keys) for row in history]
    with atomic_path(out.with_suffix(".history.csv")) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def hardware_description() -> str:
    """Compute devices and the CPU model, for the model card."""
    from .backend import device_summary

    cpu = platform.processor() or platform.machine()
    try:
        names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{', '.join(device_summary()['devices'])}; {cpu}"


def _card(
    config: TrainConfig,
    spec: DataSpec,
    state: dict,
    out: Path,
    precision: str,
    accurate: dict,
    max_length: float | None,
    pixel_size: tuple | None,
    domain: dict,
    width: float | None = None,
) -> ModelCard:
    """The card of a trained model, validated (so the card written is one that reads back);
    ``domain`` is its :func:`~.domain_measure.measured_domain`, ``width`` its objects' (px, see
    :func:`~.zoom.object_width`)."""
    best = state["best"]
    card = {
        "name": out.stem,
        "object": config.object,
        "architecture": config.arch,
        "context": config.context,
        "width": config.width,
        "depth": config.depth,
        "tile": config.tile,
        "threshold": best["threshold"],
        "normalisation": (
            "tissue percentiles 1-99 of the stack (NaN, constant borders and saturated runs left out)"
            " mapped onto input_reference"
        ),
        "input_reference": list(spec.reference or DEFAULT_REFERENCE),
        "training_data": {
            "images": spec.images,
            "labels": spec.labels,
            "foreground": spec.foreground,
            "invert": spec.invert,
            "pair_by": spec.pair_by,
        },
        "validation_data": {"images": spec.val_images or "last 15 % of each training set", "labels": spec.val_labels},
        "epochs": state["epoch"],
        "best_epoch": best["epoch"],
        "steps_per_epoch": config.steps_per_epoch,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "hard_mining": config.hard_mining,
        "validation": {k: best[k] for k in ("f1", "precision", "recall", "iou", "threshold")},
        # 16x test-time augmentation averages the model's answers; its best threshold differs
        "thresholds": {"1": best["threshold"], "16": accurate["threshold"]},
        "validation_tta16": {k: accurate[k] for k in ("f1", "precision", "recall", "iou", "threshold")},
        # prediction removes longer objects (None: keeps all); the validation figures are without them
        "max_object_length_px": max_length,
        "object_width_px": width,  # adaptation matches a new microscope's objects to it (core.zoom)
        "initialised_from": state.get("initialised_from"),
        "pixel_size_nm": list(pixel_size) if pixel_size else None,  # of the first training images
        "trained_on": domain["description"],
        "training_domain": domain,  # for the out-of-domain line at Predict
        "precision": precision,
        "training_time_s": round(state["seconds"], 1),
        "hardware": hardware_description(),
        "sha256": sha256_of(out),
        **provenance(),
    }
    return ModelCard.model_validate(json.loads(json.dumps(card, default=str)))  # as the JSON file holds it


def train(
    spec: DataSpec,
    config: TrainConfig,
    out: str | Path,
    resume: bool = False,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    time_limit_s: float | None = None,
    init_from: str | Path | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> ModelCard:
    """Train a model and write ``out`` (.keras), its card ``out.json`` and the history.

    Parameters
    ----------
    resume
        Continue from the newest checkpoint in ``<out>.checkpoints/`` (epoch counter,
        optimizer state, history and best model included).
    progress
        ``(steps done, total steps, message)``; the message carries loss and validation F1.
    on_epoch
        Called with each epoch's history row (epoch, loss, val_f1, val_threshold, ...),
        e.g. to draw live curves.
    time_limit_s
        Stop after the epoch when another one would end past this many seconds (counted
        from the start of this call), then save the best model as usual; ``--resume``
        continues to the planned number of epochs.
    init_from
        A trained ``.keras`` model (with its card) to start from instead of random weights,
        to fine-tune it on new data; its card's architecture, width and depth replace those
        of ``config``. ``config.context`` may differ from the card's: the kernels that read
        the input are then adapted (see :mod:`.models.transfer`).
    on_warning
        Called with a line for each data set with slices that found no partner, before
        training starts (the data is read and paired before any model is loaded or built).

    Returns the model card, as written. On cancel the newest checkpoint stays for ``--resume``.
    Raises :class:`~emviewer.core.errors.PairingError` before training when images and
    labels do not pair (see :func:`load_data`).
    """
    out = Path(out)
    if out.suffix != ".keras":
        raise InputError(out, "the model file must end in .keras")
    folder = checkpoint_dir(out)
    state = load_state(out) if resume else None
    if resume and state is None:
        raise InputError(folder, "nothing to resume: no checkpoint state found")
    if state is not None:
        config = config_from_state(state, config.epochs)  # the card must describe the run as it was
    if init_from is not None and spec.reference is None:  # a fine-tuned model sees its parent's contrast
        spec = replace(spec, reference=read_card(Path(init_from)).input_reference)
    train_sets, val_sets = load_data(spec, on_warning)  # refused data stops here, before Keras loads
    check(cancel)
    import keras

    start_model = None
    if init_from is not None and state is None:
        start_model = load_model(init_from)  # checks the file against its card's hash
        config = _config_like(config, start_model, init_from)
    max_length = object_length_limit(config, train_sets)
    check(cancel)
    precision = choose_precision(config.precision)
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(precision)
    try:
        if state is not None:
            model = load_checkpoint(out, state)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            state = {"epoch": 0, "history": [], "best": {"f1": -1.0}, "seconds": 0.0, "config": asdict(config)}
            model = _new_model(config)
            if start_model is not None:
                copy_weights(start_model.model, model)
                state["initialised_from"] = {"name": start_model.name, "sha256": start_model.card.sha256}
        check(cancel)
        deadline = None if time_limit_s is None else time.perf_counter() + time_limit_s
        _run_epochs(
            model,
            config,
            out,
            state,
            train_sets=train_sets,
            val_sets=val_sets,
            max_length=max_length,
            progress=progress,
            cancel=cancel,
            on_epoch=on_epoch,
            deadline=deadline,
        )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    best = _save_for_prediction(folder / "best.keras", out)
    check(cancel)
    total = config.epochs * config.steps_per_epoch
    report(progress, total, total, "tuning the accurate-mode threshold (16x augmentation)")
    accurate = validate(best, config.context, val_sets, tta=16, max_length=max_length)
    report(progress, total, total, "measuring the training data for the out-of-domain check")
    threshold = state["best"]["threshold"]
    domain = measured_domain(best, config.context, [*train_sets, *val_sets], threshold, trained_on(train_sets))
    width = object_width(m for s in train_sets for m in s.masks) if is_compact(config.object) else None
    card = _card(config, spec, state, out, precision, accurate, max_length, train_sets[0].pixel_size, domain, width)
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(card.to_json(), indent=2))
    return card


#: TrainConfig names of the network's shape, and the card keys that record them.
NETWORK_CARD_KEYS = {"arch": "architecture", "context": "context", "width": "width", "depth": "depth"}


def network_settings(card: ModelCard) -> dict:
    """The :class:`TrainConfig` network settings (arch, context, width, depth) a card records."""
    recorded = card.to_json()  # what the card says, without defaults
    return {key: recorded[name] for key, name in NETWORK_CARD_KEYS.items() if recorded.get(name) is not None}


def _config_like(config: TrainConfig, start: LoadedModel, path) -> TrainConfig:
    """``config`` with the network settings of the model it starts from (so its weights fit),
    except the context, which the weights can be adapted to."""
    settings = network_settings(start.card)
    missing = [card_key for key, card_key in NETWORK_CARD_KEYS.items() if key not in settings]
    if missing:
        raise InputError(path, f"its card lacks {', '.join(missing)}, so the network to fine-tune cannot be rebuilt")
    settings.pop("context")
    return replace(config, **settings)


def _save_for_prediction(best: Path, target: Path):
    """Save the best model without its optimizer state (a third of the size), what users
    predict with, and return it."""
    import keras

    model = keras.saving.load_model(best, compile=False)
    save_model_atomically(model, target)
    return model


def _run_epochs(
    model,
    config: TrainConfig,
    out: Path,
    state: dict,
    *,
    train_sets,
    val_sets,
    max_length: float | None,
    progress,
    cancel,
    on_epoch,
    deadline: float | None,
) -> None:
    """Epochs ``state["epoch"] + 1`` to ``config.epochs``: train, validate, keep the best model and a
    checkpoint in ``checkpoint_dir(out)``, and the history beside ``out``, after each epoch."""
    folder = checkpoint_dir(out)
    total = config.epochs * config.steps_per_epoch
    # No per-epoch keras.utils.set_random_seed: the batches have their own seeded generators,
    # and with TensorFlow a new global seed retraces the train step (seconds every epoch).
    for epoch in range(state["epoch"], config.epochs):
        start, losses = time.perf_counter(), []
        hard = None
        if config.hard_mining > 0:
            report(
                progress,
                epoch * config.steps_per_epoch,
                total,
                f"epoch {epoch + 1}/{config.epochs}: finding where the model errs",
            )
            hard = error_maps(model, config.context, train_sets, cancel=cancel)
        mined = first_step_done = time.perf_counter()
        # closed at once on cancel or error, so no thread goes on cutting crops
        with closing(
            parallel_map(partial(training_batch, train_sets, config, epoch, hard=hard), config.steps_per_epoch)
        ) as batches:
            for step, (x, y) in enumerate(batches):
                check(cancel)
                losses.append(float(model.train_on_batch(x, y)))
                if not np.isfinite(losses[-1]):
                    raise TrainingError(
                        folder,
                        f"training diverged (the loss is not a number) at epoch {epoch + 1}, step {step + 1}; "
                        f"the checkpoint of epoch {epoch} stays. Try --precision float32 or a smaller --lr",
                    )
                if step == 0:
                    first_step_done = time.perf_counter()  # the first step also compiles the model
                done = epoch * config.steps_per_epoch + step + 1
                report(progress, done, total, f"epoch {epoch + 1}/{config.epochs} loss {np.mean(losses):.4f}")
        metrics = validate(model, config.context, val_sets, max_length=max_length)
        row = {
            "epoch": epoch + 1,
            "loss": round(float(np.mean(losses)), 5),
            **{f"val_{k}": round(v, 5) for k, v in metrics.items()},
        }
        now = time.perf_counter()
        row["seconds"] = round(now - start, 1)
        state["history"].append(row)
        state["seconds"] += row["seconds"]
        state["epoch"] = epoch + 1
        if metrics["f1"] > state["best"]["f1"]:
            state["best"] = {"epoch": epoch + 1, **metrics}
            save_model_atomically(model, folder / "best.keras")
        _save_checkpoint(model, folder, epoch + 1, state)
        _write_history(out, state["history"])
        if on_epoch is not None:
            on_epoch(row)
        report(
            progress,
            (epoch + 1) * config.steps_per_epoch,
            total,
            f"epoch {epoch + 1}: loss {row['loss']:.4f}, validation F1 {metrics['f1']:.3f}",
        )
        next_epoch = (mined - start) + (now - first_step_done) * config.steps_per_epoch / max(
            1, config.steps_per_epoch - 1
        )
        if deadline is not None and epoch + 1 < config.epochs and time.perf_counter() + next_epoch > deadline:
            report(
                progress,
                (epoch + 1) * config.steps_per_epoch,
                total,
                f"time limit: stopping after epoch {epoch + 1} of {config.epochs}",
            )
            return
