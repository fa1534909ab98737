"""Adaptation: fine-tune a trained model on a few labelled slices of the user's own data.

A model fits the microscope it was trained on. Here the user's labelled (or corrected)
slices teach it theirs within a time limit, in two phases, as Cellpose 2's human-in-the-loop
retraining and empanada-napari's fine-tuning do from a few images:

1. *check*: the last quarter of the slices (at least one) is held back; the model trains on
   the rest, then the held-back slices are scored before (the source model) and after;
2. *final*: when the adapted model is better, training goes on over all slices for the rest
   of the time, and the result is written as a new model with a card. The source model is
   never written to.

After each phase the batch-normalisation statistics are re-measured on the whole training
slices (:func:`~.fine_tune.recalibrate_normalisation`): those of the last few crops made
adapted models paint false objects and results vary from run to run.

Adapted models read one slice (context 1): labelled slices are often not neighbours, and a
3- or 5-slice source model is first reduced to one slice (:mod:`.models.transfer`), which is
also the model the "before" figures describe.

Scale first: when the source's card records the width of the objects it learnt and the user's
labelled objects are much wider or narrower in pixels (finer or coarser pixels), the adapted
model takes the user's slices at the zoom that matches the two (:mod:`.zoom`): it trains on the
zoomed slices, predicts at that zoom and gives masks at the slices' own size. Scores before
and after are both taken at the user's own pixels.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .dataset import LabelledStack, holdout_split
from .domain_measure import data_name, measured_domain
from .errors import InputError
from .fine_tune import FineTuneSettings, compile_for_fine_tuning, fine_tune, recalibrate_normalisation, tile_for
from .io.atomic import atomic_path
from .length_filter import length_limit, long_objects
from .metrics import Scores, mean_scores, score
from .models.card import ModelCard
from .models.loading import LoadedModel, load_model, sha256_of
from .models.saving import save_model_atomically
from .objects import is_compact
from .predict import labelled_predictions
from .preprocess import input_levels
from .progress import CancelToken, Progress, check, report
from .provenance import provenance
from .volume import from_array
from .zoom import MAX_ZOOM, MIN_ZOOM, matched_zoom, object_width, zoomed, zoomed_masks

#: Default time for an adaptation, seconds (10 minutes on a CPU).
DEFAULT_TIME_LIMIT_S = 600.0
#: Share of the slices held back to score before and after (at least one slice).
HELD_OUT_SHARE = 0.25
#: Share of the training time spent on the check phase (the rest trains on every slice).
CHECK_SHARE = 0.5
#: Seconds kept free at the end for saving the model and its card.
SAVE_S = 5.0


@dataclass(frozen=True)
class AdaptResult:
    """What an adaptation did: mean per-slice scores on the held-back slices before (the source
    model, at its card's ``threshold``) and after the check phase (at ``adapted_threshold``,
    chosen on the slices it trained on: fine-tuning moves a model's probabilities, so the
    source's threshold would judge it unfairly); ``model_path`` is the new model, ``None`` when
    it was not better (nothing is written then)."""

    before: Scores
    after: Scores
    held_out: list[str]
    trained_on: list[str]
    threshold: float
    adapted_threshold: float
    seconds: float
    steps: tuple[int, int]
    model_path: Path | None = None
    card: ModelCard | None = None
    settings: FineTuneSettings = field(default_factory=FineTuneSettings)
    zoom: float = 1.0
    widths: tuple[float | None, float | None] = (None, None)  # the source's objects (its px), the user's (px)

    def zoom_line(self) -> str:
        """``at zoom 0.56: your objects are 48 px wide, the model's 27 px`` (empty at zoom 1
        with no widths known)."""
        source, user = self.widths
        if source and user:
            return f"at zoom {self.zoom:g}: your objects are {user:g} px wide, the model's {source:g} px"
        return f"at zoom {self.zoom:g}" if self.zoom != 1.0 else ""

    @property
    def better(self) -> bool:
        """The adapted model scores a higher F1 on the held-back slices than the source."""
        return self.after.f1 > self.before.f1


def labelled_from_arrays(
    images: np.ndarray,
    masks: np.ndarray,
    names: Sequence[str],
    source: str,
    reference: tuple[float, float],
    pixel_size: tuple | None = None,
) -> LabelledStack:
    """Labelled slices held in memory (e.g. the app's corrected slices) as a :class:`LabelledStack`.

    ``images`` ``(Z, Y, X)`` in the stack's dtype, ``masks`` ``(Z, Y, X)`` bool (True = object);
    ``reference`` is the model's input levels (its card's ``input_reference``), so the slices
    reach the model at the contrast it knows. ``pixel_size`` (z, y, x) in nm when known.
    """
    images, masks = np.asarray(images), np.asarray(masks, bool)
    if images.ndim != 3 or images.shape != masks.shape or len(names) != len(images):
        raise InputError(source, f"images {images.shape}, masks {masks.shape} and {len(names)} names do not match")
    levels = input_levels(from_array(images), reference)
    return LabelledStack(images, masks, list(names), levels, source, reference=reference, pixel_size=pixel_size)


def split_held_out(stack: LabelledStack) -> tuple[LabelledStack, LabelledStack]:
    """Training and held-back slices: the last quarter, at least one (of two: one and one).

    Raises :class:`InputError` for fewer than two labelled slices."""
    if len(stack) < 2:
        raise InputError(
            stack.source,
            f"adaptation needs at least two labelled slices (one to train on, one to score before and after); "
            f"found {len(stack)}",
        )
    return holdout_split(stack, HELD_OUT_SHARE)


def zoomed_stack(stack: LabelledStack, zoom: float) -> LabelledStack:
    """``stack`` resized by ``zoom`` (images smoothed and interpolated, kept in their dtype;
    masks by the share each pixel covers), its pixel size scaled to match."""
    if zoom == 1.0:
        return stack
    images = zoomed(stack.images, zoom)
    if stack.images.dtype.kind in "iu":
        info = np.iinfo(stack.images.dtype)
        images = np.clip(np.rint(images), info.min, info.max)
    pixel = tuple(stack.pixel_size[:-2]) + tuple(p / zoom for p in stack.pixel_size[-2:]) if stack.pixel_size else None
    masks = zoomed_masks(stack.masks, zoom)
    return replace(stack, images=images.astype(stack.images.dtype), masks=masks, pixel_size=pixel)


def chosen_zoom(source: ModelCard, stack: LabelledStack, zoom: float | None) -> tuple[float, float | None]:
    """The zoom of the adapted model and the user's object width (px): ``zoom`` when given
    (:class:`InputError` outside [0.25, 2]), else the one matching the source's objects."""
    user = object_width(stack.masks)
    if zoom is None:
        return matched_zoom(source.object_width_px, user), user
    if not MIN_ZOOM <= zoom <= MAX_ZOOM:
        raise InputError(stack.source, f"zoom {zoom:g} is outside {MIN_ZOOM:g}-{MAX_ZOOM:g}")
    return float(zoom), user


def held_out_scores(
    model, stack: LabelledStack, threshold: float, max_length: float | None, zoom: float = 1.0
) -> Scores:
    """Mean per-slice scores of a one-slice Keras model on ``stack`` at ``threshold``, the
    slices taken at ``zoom`` and scored at their own size, objects longer than ``max_length``
    (px of the slices) removed as prediction removes them."""
    per_slice = []
    for labelled, index, probability in labelled_predictions(model, 1, [stack], zoom=zoom):
        mask = probability >= threshold
        if max_length is not None:
            mask &= ~long_objects(mask, max_length)
        per_slice.append(score(mask, labelled.masks[index]))
    return mean_scores(per_slice)


def tuned_threshold(model, stack: LabelledStack, max_length: float | None, zoom: float = 1.0) -> float:
    """The threshold with the best mean per-slice F1 of a one-slice model on ``stack`` taken
    at ``zoom`` (objects longer than ``max_length`` px removed), as training chooses a card's."""
    from .train import validate

    return float(validate(model, 1, [stack], max_length=max_length, zoom=zoom)["threshold"])


def adapted_length_limit(source: ModelCard, stack: LabelledStack, zoom: float = 1.0) -> float | None:
    """The adapted model's longest object in the user's pixels: the larger of the source's
    limit (seen at ``zoom``) and the one the user's labels give; no limit when the source has
    none or the object's size is not bounded."""
    if source.max_object_length_px is None or not is_compact(source.object):
        return None
    own = length_limit(stack.masks)
    return round(max(source.max_object_length_px / zoom, own or 0.0), 1)


def _one_slice_copy(source: LoadedModel):
    """A float32 one-slice network with the source's weights (its input kernels reduced)."""
    import keras

    from .models import build_model
    from .models.transfer import copy_weights

    card = source.card
    if card.architecture is None or card.width is None:
        raise InputError(source.name, "its card lacks architecture or width, so it cannot be fine-tuned")
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("float32")  # the file's saved precision does not decide
    try:
        model = build_model(card.architecture, 1, card.width, card.depth or 4)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    copy_weights(source.model, model)
    return model


def default_output(source: Path, folder: Path, name: str | None = None) -> Path:
    """Where the adapted model goes: ``folder/<name>.keras`` (``name`` may itself be a path
    ending in ``.keras``), by default ``<source>-adapted-N``; never an existing file."""
    if name:
        out = Path(name) if name.endswith(".keras") else folder / f"{name}.keras"
    else:
        n = 1
        while (out := folder / f"{source.stem}-adapted-{n}.keras").exists():
            n += 1
    if out.resolve() == source.resolve() or out.exists() or out.with_suffix(".json").exists():
        raise InputError(out, "a model of this name exists; choose another name (adaptation never overwrites)")
    return out


def adapt(
    stack: LabelledStack,
    source_path: str | Path,
    out: str | Path,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    settings: FineTuneSettings | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    zoom: float | None = None,
) -> AdaptResult:
    """Fine-tune the model at ``source_path`` on ``stack`` (two phases, see the module) within
    ``time_limit_s`` seconds, and write ``out`` (.keras) with its card when it is better.

    ``zoom``: the scale at which the adapted model takes the user's slices (0.25-2; 0.5 =
    half the pixels per side); ``None`` matches the user's labelled objects to the width the
    source's card records (:func:`~.zoom.matched_zoom`; 1 when it records none).

    ``stack`` must have been read with the source's ``input_reference`` (see
    :func:`~.dataset.load_labelled` or :func:`labelled_from_arrays`). ``progress`` counts
    seconds of the time limit. Raises :class:`InputError` for fewer than two slices or a source
    that cannot be fine-tuned, :class:`~.errors.TrainingError` when the loss diverges and
    :class:`~.progress.Cancelled` on ``cancel`` (nothing is written then).
    """
    settings, out, start = settings or FineTuneSettings(), Path(out), time.perf_counter()
    train_part, held = split_held_out(stack)
    report(progress, 0, int(time_limit_s), "loading the model")
    source = load_model(source_path)  # checks its hash: the source is read, never written
    threshold = source.card.threshold
    zoom, user_width = chosen_zoom(source.card, stack, zoom)
    widths = (source.card.object_width_px, user_width)
    if settings.tile is None:  # crops of a few objects' widths, as the model sees them
        settings = replace(settings, tile=tile_for(user_width * zoom if user_width else None))
    model = _one_slice_copy(source)
    check(cancel)
    report(progress, 0, int(time_limit_s), f"scoring the source model on {', '.join(held.names)}")
    scoring = time.perf_counter()
    # before and after are cleaned with the same length limit, so they compare the weights alone
    max_length = adapted_length_limit(source.card, stack, zoom)
    before = held_out_scores(model, held, threshold, max_length, source.card.input_zoom)  # the source as it is
    per_slice = (time.perf_counter() - scoring) / len(held)  # each later prediction of a slice: kept free
    per_slice *= max(1.0, (zoom / source.card.input_zoom) ** 2)  # a finer zoom predicts more pixels
    compile_for_fine_tuning(model, settings)
    seen = zoomed_stack(stack, zoom)  # the slices as the model sees them: trained on, and its card's domain
    seen_train, _ = split_held_out(seen)

    def ticker(phase: str, offset: float, slices: int):
        def on_step(step: int, used: float, loss: float) -> None:
            done = min(time_limit_s, offset + used)
            left = max(0.0, time_limit_s - done)
            message = f"{phase}: {slices} slice(s), step {step}, loss {loss:.3f}, about {left / 60:.0f} min left"
            report(progress, int(done), int(time_limit_s), message)

        return on_step

    spent = time.perf_counter() - start
    # kept free: re-measuring the normalisation and scoring (about one prediction of the slices each)
    check_time = max(1.0, (time_limit_s - spent - 2 * per_slice * len(stack) - SAVE_S) * CHECK_SHARE)
    first = fine_tune(
        model,
        [seen_train],
        settings,
        check_time,
        phase=1,
        cancel=cancel,
        on_step=ticker("check", spent, len(train_part)),
    )
    report(
        progress,
        min(int(time.perf_counter() - start), int(time_limit_s)),
        int(time_limit_s),
        "scoring the adapted model",
    )
    recalibrate_normalisation(model, [seen_train])  # the statistics of its training slices, not of its last crops
    tuned = tuned_threshold(model, train_part, max_length, zoom)  # the held-back slices are not looked at
    after = held_out_scores(model, held, tuned, max_length, zoom)
    result = AdaptResult(
        before,
        after,
        held.names,
        train_part.names,
        threshold,
        tuned,
        0.0,
        (first, 0),
        settings=settings,
        zoom=zoom,
        widths=widths,
    )
    if not result.better:
        seconds = time.perf_counter() - start
        report(progress, int(time_limit_s), int(time_limit_s), "not better than the source: no model written")
        return _finished(result, seconds, (first, 0))
    spent = time.perf_counter() - start
    second = fine_tune(
        model,
        [seen],
        settings,
        max(1.0, time_limit_s - spent - SAVE_S - 3 * per_slice * len(stack)),  # normalisation, threshold, domain
        phase=2,
        peak=settings.learning_rate / 2,  # a second, gentler cycle from the checked weights
        cancel=cancel,
        on_step=ticker("final", spent, len(stack)),
    )
    check(cancel)
    recalibrate_normalisation(model, [seen])
    final_threshold = tuned_threshold(model, stack, max_length, zoom)  # on every slice, as the model now knows them
    seconds = time.perf_counter() - start
    result = _finished(result, seconds, (first, second))
    card = _write(model, out, source, Path(source_path), stack, seen, result, max_length, final_threshold)
    report(progress, int(time_limit_s), int(time_limit_s), f"wrote {out.name}")
    return _finished(result, seconds, (first, second), out, card)


def _finished(result: AdaptResult, seconds: float, steps, path: Path | None = None, card=None) -> AdaptResult:
    return replace(result, seconds=round(seconds, 1), steps=tuple(steps), model_path=path, card=card)


def _figures(scores: Scores) -> dict:
    return {k: round(v, 4) for k, v in scores.as_dict().items() if k in ("f1", "iou", "precision", "recall")}


def _write(
    model,
    out: Path,
    source: LoadedModel,
    source_path: Path,
    stack: LabelledStack,
    seen: LabelledStack,
    result: AdaptResult,
    max_length: float | None,
    threshold: float,
) -> ModelCard:
    """Save the adapted network (without optimizer state) and its card (``threshold``: the
    model's, chosen on all the slices; ``max_length`` in the user's pixels; ``seen``: the
    slices at the model's zoom), model first."""
    from .models import build_model
    from .train import hardware_description

    parent = source.card
    bare = build_model(parent.architecture or "multiresunet", 1, parent.width or 16, parent.depth or 4)
    bare.set_weights(model.get_weights())
    save_model_atomically(bare, out)
    settings, zoom = result.settings, result.zoom
    trained_on = f"{parent.trained_on or parent.name}, adapted to {data_name(stack)}"
    card = {
        "name": out.stem,
        "object": parent.object,
        "architecture": parent.architecture,
        "context": 1,
        "width": parent.width,
        "depth": parent.depth,
        "tile": settings.tile,
        "threshold": threshold,
        "input_reference": list(parent.reference),
        "normalisation": getattr(parent, "normalisation", None),
        "max_object_length_px": round(max_length * zoom, 1) if max_length is not None else None,
        "input_zoom": zoom,
        "object_width_px": object_width(seen.masks),
        "trained_on": trained_on,
        "training_domain": measured_domain(model, 1, [seen], threshold, trained_on),
        "training_data": {"images": [f"{stack.source} ({', '.join(stack.names)})"], "labels": [stack.label_source]},
        "initialised_from": {"name": source.name, "sha256": parent.sha256 or sha256_of(source_path)},
        "adaptation": {
            "source_model": source.name,
            "source_sha256": parent.sha256 or sha256_of(source_path),
            "slices": list(stack.names),
            "held_out": result.held_out,
            "trained_first_on": result.trained_on,
            "before": _figures(result.before),
            "after": _figures(result.after),
            "scored_at_thresholds": {"before": result.threshold, "after": result.adapted_threshold},
            "steps": list(result.steps),
            "trainable": settings.trainable,
            "tile": settings.tile,
            "batch_size": settings.batch_size,
            "learning_rate": settings.learning_rate,
            "zoom": zoom,
            "object_width_px": {"source": result.widths[0], "user": result.widths[1]},
        },
        "pixel_size_nm": list(seen.pixel_size) if seen.pixel_size else None,
        "precision": "float32",
        "training_time_s": result.seconds,
        "hardware": hardware_description(),
        "sha256": sha256_of(out),
        **provenance(),
    }
    validated = ModelCard.model_validate(json.loads(json.dumps(card, default=str)))
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(validated.to_json(), indent=2))
    return validated
