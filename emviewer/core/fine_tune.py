"""Fine-tuning against the clock: a few hundred steps on a handful of labelled slices.

Adaptation (:mod:`.adapt`) gives training a time, not a number of epochs, so the learning
rate follows the time used: a short linear warm-up over the first steps (Adam's moment
estimates are poor at first and the pretrained weights must not be thrown around), then a
cosine decay that reaches its floor when the time is up. Which layers learn is a choice
(:data:`TRAINABLE`), measured in ``models/TRAINING.md``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .dataset import Augmentation, LabelledStack, crop, random_batch
from .errors import TrainingError
from .progress import CancelToken, check

#: What learns: every layer; the decoder (everything from the first up-sampling on: the encoder
#: keeps what it learnt about EM texture); or only the normalisation layers (their scales,
#: offsets and running statistics, a few thousand numbers that follow the new contrast).
TRAINABLE = ("all", "decoder", "normalisation")
#: Momentum of the normalisation layers' running statistics while adapting. Training from scratch
#: keeps 0.99 (the statistics of about the last 100 steps); in a run of a few hundred steps they
#: would stay half the old microscope's, and the model, which predicts with them, would see the
#: new images at the wrong contrast (measured: F1 on a held-back slice fell to 0).
ADAPT_MOMENTUM = 0.9
#: Crop side (px, at most) and pixels (at most) of the whole-slice pass that re-measures the
#: normalisation statistics after adapting (:func:`recalibrate_normalisation`).
RECALIBRATION_SIDE = 512
RECALIBRATION_PIXELS = 16 * 2**20


@dataclass(frozen=True)
class FineTuneSettings:
    """How adaptation trains; defaults measured on 2 CPU cores (``models/TRAINING.md``).

    ``tile`` (px; ``None``: :func:`tile_for` the objects' width) and ``batch_size`` set the
    crops of one step, ``learning_rate`` the peak of
    Adam's learning rate, reached after ``warmup_steps``; ``floor`` is the decay's end as a
    share of the peak. ``max_steps`` ends a phase early (the schedule then follows the steps).
    """

    trainable: str = "all"
    tile: int | None = None
    batch_size: int = 4
    learning_rate: float = 1e-3  # of 5e-4, 1e-3 and 2e-3 the best in models/TRAINING.md (session 16)
    warmup_steps: int = 8
    floor: float = 0.05
    max_steps: int | None = None  # per phase, besides the time (repeatable runs, e.g. tests)
    seed: int = 0
    augmentation: Augmentation = field(default_factory=Augmentation)

    def __post_init__(self) -> None:
        if self.trainable not in TRAINABLE:
            raise ValueError(f"trainable must be one of {', '.join(TRAINABLE)}, not {self.trainable!r}")


def tile_for(width: float | None) -> int:
    """Crop side (px) for objects ``width`` px wide as the model sees them: about four widths,
    a multiple of 32 from 128 to 256; 256 when the width is unknown. Measured for mitochondria
    27 px wide (``models/TRAINING.md``, session 16): 128-px crops give four times the steps of
    256-px ones in the same time, and the adapted model scored higher."""
    if not width:
        return 256
    return int(np.clip(32 * math.ceil(4 * width / 32), 128, 256))


def learning_rate(settings: FineTuneSettings, step: int, time_share: float, peak: float | None = None) -> float:
    """Learning rate for ``step`` (0-based) once ``time_share`` (0..1) of the time is used."""
    top = settings.learning_rate if peak is None else peak
    if step < settings.warmup_steps:
        return top * (step + 1) / settings.warmup_steps
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, time_share)))
    return top * (settings.floor + (1 - settings.floor) * cosine)


def set_trainable(model, which: str) -> int:
    """Freeze all but ``which`` (one of :data:`TRAINABLE`) layers of a U-shaped Keras model;
    returns the number of trainable weights (numbers, not arrays)."""
    import keras

    decoder = False
    for layer in model.layers:
        decoder = decoder or isinstance(layer, keras.layers.UpSampling2D | keras.layers.Conv2DTranspose)
        if which == "all":
            layer.trainable = True
        elif which == "decoder":
            layer.trainable = decoder
        else:
            layer.trainable = isinstance(layer, keras.layers.BatchNormalization)
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def compile_for_fine_tuning(model, settings: FineTuneSettings) -> int:
    """Freeze what does not learn and compile with Adam (the learning rate is set each step);
    returns the number of trainable weights."""
    import keras

    from .models.losses import bce_dice_loss

    trainable = set_trainable(model, settings.trainable)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = ADAPT_MOMENTUM
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), loss=bce_dice_loss)
    return trainable


def fine_tune(
    model,
    stacks: Sequence[LabelledStack],
    settings: FineTuneSettings,
    seconds: float,
    *,
    phase: int = 0,
    peak: float | None = None,
    on_step: Callable[[int, float, float], None] | None = None,
    cancel: CancelToken | None = None,
) -> int:
    """Train a compiled model (see :func:`compile_for_fine_tuning`) on random augmented crops of
    ``stacks`` for about ``seconds``: no step starts that would end past the time, but at least
    one step runs. Returns the number of steps.

    ``on_step(step, seconds used, mean loss)`` follows each step. Crops come from a generator
    seeded by ``(seed, phase, step)``, so a run is repeatable. Raises
    :class:`~.errors.TrainingError` when the loss is not a number, and
    :class:`~.progress.Cancelled` on ``cancel``.
    """
    context = int(model.inputs[0].shape[-1])
    start, losses, step = time.perf_counter(), [], 0
    while True:
        used = time.perf_counter() - start
        if step and (used + used / step > seconds or step == settings.max_steps):
            return step
        check(cancel)
        share = max(used / max(seconds, 1e-9), step / settings.max_steps if settings.max_steps else 0.0)
        model.optimizer.learning_rate.assign(learning_rate(settings, step, share, peak))
        rng = np.random.default_rng([settings.seed, phase, step])
        tile = settings.tile or tile_for(None)
        x, y = random_batch(stacks, settings.batch_size, tile, context, rng, settings.augmentation)
        losses.append(float(model.train_on_batch(x, y)))
        if not np.isfinite(losses[-1]):
            raise TrainingError(None, f"adaptation diverged (the loss is not a number) at step {step + 1}")
        step += 1
        if on_step is not None:
            on_step(step, time.perf_counter() - start, float(np.mean(losses[-10:])))


def _covering_starts(size: int, side: int) -> list[int]:
    """Starts of crops ``side`` long that cover ``0..size`` (evenly spread, overlapping at most)."""
    count = max(1, math.ceil(size / side))
    return sorted({int(round(v)) for v in np.linspace(0, max(0, size - side), count)})


def _crop_places(stack: LabelledStack) -> tuple[int, list[tuple[int, int, int]]]:
    """Side and ``(z, y0, x0)`` of square crops covering every slice of ``stack`` (at most
    :data:`RECALIBRATION_SIDE` px, reflected where a slice is smaller than 32 px)."""
    _, height, width = stack.images.shape
    side = max(32, min(RECALIBRATION_SIDE, 32 * (min(height, width) // 32)))
    places = [
        (z, y0, x0)
        for z in range(len(stack))
        for y0 in _covering_starts(height, side)
        for x0 in _covering_starts(width, side)
    ]
    return side, places


def recalibrate_normalisation(model, stacks: Sequence[LabelledStack], batch_size: int = 4, seed: int = 0) -> int:
    """Set the running mean and variance of the model's learning batch-normalisation layers to
    their averages over whole slices of ``stacks`` (as the model sees them: at its zoom, with its
    context); returns the number of crops used (at most :data:`RECALIBRATION_PIXELS` pixels, a
    seeded choice when the slices hold more).

    Why: while adapting, the running statistics follow the last ten or so steps' small crops
    (:data:`ADAPT_MOMENTUM`), and prediction uses them as the whole microscope's. Those few
    crops' noise made an adapted model paint large false objects in plain cytoplasm (Lucchi++
    100-112: IoU 0.469, and 0.767 once re-measured; ``models/TRAINING.md``, session 17). The same
    step ends stochastic weight averaging (Izmailov et al. 2018, "Averaging weights leads to
    wider optima", its batch-norm update): one pass in training mode, each batch averaged in.
    Layers frozen by :func:`set_trainable` keep their statistics (Keras runs them in inference mode).
    """
    import keras

    context = int(model.inputs[0].shape[-1])
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    batches: list[tuple[LabelledStack, int, list[tuple[int, int, int]]]] = []  # crops cut only when kept
    for stack in stacks:
        side, places = _crop_places(stack)
        batches += [(stack, side, places[i : i + batch_size]) for i in range(0, len(places), batch_size)]
    kept: list[tuple[LabelledStack, int, list[tuple[int, int, int]]]] = []
    pixels = 0
    for index in np.random.default_rng(seed).permutation(len(batches)):
        stack, side, places = batches[index]
        if kept and pixels + side * side * len(places) > RECALIBRATION_PIXELS:
            break
        kept.append(batches[index])
        pixels += side * side * len(places)
    momenta = [layer.momentum for layer in layers]
    try:
        for count, (stack, side, places) in enumerate(kept, start=1):
            for layer in layers:
                layer.momentum = (count - 1) / count  # the running mean of the batches' statistics
            model(np.stack([crop(stack, z, y0, x0, side, context) for z, y0, x0 in places]), training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    return sum(len(places) for _, _, places in kept)
