"""Prediction: the ``Predictor`` protocol and the local, tiled, test-time-augmented predictor.

The pipeline streams slice by slice and tile by tile: a reader thread cuts normalised
context tiles for the next batches while the model computes the current one, and finished
rows leave in bands (:mod:`.bands`), so memory is bounded by a few slices (or, for huge
slices, tile rows) of the input plus a band of output, whatever the stack size.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from . import augment
from .bands import BAND_ROWS, BandAssembler, BandResult, TileSource
from .domain import prediction_warnings
from .errors import InputWarning
from .intensity import model_input, tissue_units
from .intensity_stats import TissueStats, stack_stats
from .length_filter import BandedLengthFilter, drop_long_objects
from .models.cache import ModelCache
from .models.card import ModelCard
from .models.loading import LoadedModel
from .pipeline import prefetch
from .preprocess import context_indices
from .progress import ESTIMATING, CancelToken, Estimate, Progress, check, report, wait_for
from .tiling import TILE_MULTIPLE, Region, Stitcher, TileLayout
from .validate import check_volume_image
from .volume import Volume, crop_yx
from .zoom import MULTIPLE as ZOOM_MULTIPLE
from .zoom import resize, zoomed_shape

#: Decision threshold after :func:`calibrate`: every model's own threshold maps to it.
DECISION = 0.5
#: Slices wider than this get tiles of at most :data:`WIDE_SPLIT_TILE`: the rows being
#: stitched span the whole width, so there the tiles' working memory must give way.
WIDE_SLICE = 16384
WIDE_SPLIT_TILE = 768
#: Test-time variants per model call where Keras computes on a GPU: fewer, larger calls keep it
#: busy; 4 variants of a 1024² tile are a batch of 4 Mpx. Not measured yet (no GPU here).
GPU_VARIANT_BATCH = 4


def calibrate(probability: np.ndarray, threshold: float) -> np.ndarray:
    """Rescale probabilities piecewise-linearly so that ``threshold`` becomes 0.5.

    Models tuned to different thresholds can then be averaged in an ensemble and cut at
    0.5, which honours each model's own threshold. 0 and 1 are kept.
    """
    t = float(np.clip(threshold, 1e-6, 1 - 1e-6))
    p = np.asarray(probability, np.float32)
    return np.where(p < t, p * (0.5 / t), 0.5 + (p - t) * (0.5 / (1 - t))).astype(np.float32)


@dataclass
class SliceResult:
    """Probabilities of each object for one slice, ``(Y, X)`` float32 in [0, 1]."""

    index: int
    name: str
    probabilities: dict[str, np.ndarray]

    def masks(self) -> dict[str, np.ndarray]:
        """``(Y, X)`` boolean masks: probability >= 0.5 (each model's threshold, calibrated)."""
        return {k: p >= DECISION for k, p in self.probabilities.items()}


class Predictor(Protocol):
    """Anything that turns a Volume into per-slice probabilities: local models or a server."""

    objects: Sequence[str]

    def iter_predict(
        self,
        volume: Volume,
        slices: Sequence[int] | None = None,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[SliceResult]:
        """Yield one :class:`SliceResult` per requested slice, in order, as each finishes."""
        ...


def predict_all(predictor: Predictor, volume: Volume, **kwargs) -> dict[str, np.ndarray]:
    """Collect a predictor's slices into ``{object: (Z, Y, X) float32}`` (for small stacks)."""
    results = list(predictor.iter_predict(volume, **kwargs))
    return {obj: np.stack([r.probabilities[obj] for r in results]) for obj in predictor.objects}


@dataclass
class _Batch:
    z: int
    regions: list
    inputs: np.ndarray  # (N, tile, tile, context) float32
    next_row: int  # the first padded row a later tile of this slice touches (the padded height after the last)


@dataclass
class _Meter:
    """Progress in tile passes (one tile through one model in one test-time variant) and
    cancel for every model call, so both act within a slice.

    With a cancel token, model calls run on a thread of their own: one call of a wide model on
    a 1024-pixel tile takes seconds on a CPU, and a cancel must not wait for it to end."""

    total: int
    slices: int
    progress: Progress | None
    cancel: CancelToken | None
    done: int = 0
    finished: int = 0  # slices
    estimate: Estimate = field(default_factory=Estimate)
    _pool: ThreadPoolExecutor | None = None

    def call(self, model: LoadedModel, x: np.ndarray) -> np.ndarray:
        """``model.predict(x)``; raises :class:`~.progress.Cancelled` before it, or while it runs."""
        check(self.cancel)
        self.estimate.start()
        if self.cancel is None:
            return model.predict(x)
        if self._pool is None:  # a new thread per run: TensorFlow must not meet a reused one
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="emviewer-model")
        return wait_for(self._pool.submit(model.predict, x), self.cancel)

    def close(self) -> None:
        """Free the model thread; a call still running (after a cancel) ends on its own."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def after_call(self, tiles: int) -> None:
        self.done += tiles
        where = f"slice {self.finished + 1} of {self.slices}"
        report(self.progress, self.done, self.total, f"{where}, {self.estimate.text(self.done, self.total)}")


@dataclass
class LocalPredictor:
    """Predicts with the models on this machine: Keras (GPU when the backend sees one, else CPU)
    or a copy converted for a faster CPU runtime (see :mod:`.models.runtime`).

    Parameters
    ----------
    models
        Object key -> one model, or several for an ensemble (mean of calibrated probabilities).
    tta
        Test-time variants: 1, 8 (rotations and flips) or 16 (also z-flip of the context).
    tile, overlap
        Largest tile side and tile overlap in pixels. Slices up to ``tile`` are predicted in
        one piece, each side mirrored out to a multiple of the models' down-sampling factor
        (``2 ** depth`` from their cards, 32 when a card does not say); larger ones in
        overlapping tiles of at most ``split_tile``, sized per axis by
        :meth:`~.tiling.TileLayout.for_slice` (rectangles where that saves work; square
        with test-time variants, whose turned copies keep the shape then).
    split_tile
        Largest tile side for slices larger than ``tile``: larger tiles put less work into
        overlaps, but the runtime's working memory grows with them (OpenVINO with shapes
        fixed per tile, bundled 5-slice MultiResUNet: about 0.24 GB for 736 x 768, 0.38-0.42 GB
        for 1024²). ``benchmarks/large_slices.py`` (OpenVINO, AMD EPYC Zen 4, 2 cores): two
        16000 x 10000 slices 1.19x the time per pixel of 1024² slices at 1049 MB peak; one
        4096 x 32768 slice (tiles up to :data:`WIDE_SPLIT_TILE`, as every slice wider than
        :data:`WIDE_SLICE`) 1.20x at 1231 MB.
    batch_size
        Tiles per model call (each test-time variant of each model is one call). On a 2-core
        CPU one call on one 1024-pixel tile takes about 1.2 s (MultiResUNet of width 16) to
        3.6 s (width 32); cancel does not wait for a running call (see :meth:`iter_predict`).
    variant_batch
        Test-time variants of a tile per model call (square tiles keep one shape for all). On a
        2-core CPU batching gained nothing (AMD EPYC Zen 4, 1024² slices, 16 variants,
        ``benchmarks/variant_batch.py``: OpenVINO 2 per call 0.94x, Keras 4 per call 0.93x of
        one per call), so :func:`predictor_for` batches only on a GPU.
    keep_long_objects
        Keep objects longer than the models' cards allow (``max_object_length_px``, see
        :mod:`.length_filter`), e.g. for images with much finer pixels than the training data.
    """

    models: Mapping[str, Sequence[LoadedModel]]
    tta: int = 1
    tile: int = 1024
    overlap: int = 64
    split_tile: int = 1024
    batch_size: int = 1
    variant_batch: int = 1
    keep_long_objects: bool = False
    objects: Sequence[str] = field(init=False)

    def __post_init__(self) -> None:
        self.objects = list(self.models)
        self._context = max(m.context for ms in self.models.values() for m in ms)
        # Tiles only need the models' down-sampling factor; a card without a depth gets the safe default.
        depths = [m.card.depth or 99 for ms in self.models.values() for m in ms]
        self._multiple = min(2 ** max(depths), TILE_MULTIPLE)
        self.length_limits = {
            obj: None if self.keep_long_objects else length_limit_of(ms) for obj, ms in self.models.items()
        }

    def _layout(self, height: int, width: int) -> TileLayout:
        split = self.split_tile if width <= WIDE_SLICE else min(self.split_tile, WIDE_SPLIT_TILE)
        largest = self.tile if max(height, width) <= self.tile else min(self.tile, split)
        # Turned test-time variants of a rectangular tile would be a second shape for the
        # runtime to compile and hold: with them, tiles stay square.
        return TileLayout.for_slice(height, width, largest, self.overlap, self._multiple, square=self.tta > 1)

    # ------------------------------------------------------------------ reading side

    def _tile_input(
        self, source: TileSource, zs: list[int], layout: TileLayout, region: Region, stats: TissueStats
    ) -> np.ndarray:
        return np.stack([tissue_units(source.cut(z, layout, region), stats) for z in zs], axis=-1)

    def _batches(
        self, volume: Volume, slices: Sequence[int], stats: TissueStats, layout: TileLayout
    ) -> Iterator[_Batch]:
        source = TileSource(volume, self._context)
        grid = layout.regions
        for z in slices:
            zs = context_indices(z, len(volume), self._context)
            for first in range(0, len(grid), self.batch_size):
                regions = grid[first : first + self.batch_size]
                inputs = np.stack([self._tile_input(source, zs, layout, r, stats) for r in regions])
                after = first + self.batch_size
                next_row = grid[after][0].start if after < len(grid) else layout.padded_shape[0]
                yield _Batch(z, regions, inputs, next_row)

    # ------------------------------------------------------------------ model side

    def _variants(self, model: LoadedModel) -> list[augment.Variant]:
        chosen = augment.variants(self.tta)
        if model.context == 1:  # a z-flip changes nothing for a single slice
            chosen = [v for v in chosen if not v.zflip]
        return chosen

    def _passes_per_tile(self) -> int:
        """Model calls each tile goes through: every variant of every model of every object."""
        return sum(len(self._variants(m)) for models in self.models.values() for m in models)

    def _predict_model(self, model: LoadedModel, inputs: np.ndarray, meter: _Meter) -> np.ndarray:
        """Mean over test-time variants of one model's probabilities, ``(N, T, T)``.

        ``inputs`` are in tissue units (see :func:`~.intensity.tissue_units`); each model
        gets them at the contrast of its own training data (its card's reference levels).
        Raises :class:`~.progress.Cancelled` as soon as ``meter``'s token is cancelled."""
        centre = self._context // 2
        x = model_input(inputs[..., centre - model.context // 2 : centre + model.context // 2 + 1], model.reference)
        zoom = model.card.input_zoom
        if zoom != 1.0:  # the model's own scale (core.zoom); probabilities come back at the tile's
            x = resize(x, zoomed_shape(x.shape[1:3], zoom, ZOOM_MULTIPLE))
        chosen = self._variants(model)
        total = np.zeros(x.shape[:3], np.float32)
        for first in range(0, len(chosen), self.variant_batch):
            group = chosen[first : first + self.variant_batch]
            turned = [augment.apply(x, v) for v in group]
            outs = meter.call(model, turned[0] if len(turned) == 1 else np.concatenate(turned))
            for variant, out in zip(group, np.split(outs, len(group)), strict=True):
                total += augment.invert(out, variant)[..., 0]
            meter.after_call(len(x) * len(group))
        mean = resize(total / len(chosen), inputs.shape[1:3]) if zoom != 1.0 else total / len(chosen)
        return calibrate(mean, model.threshold_for(self.tta))

    def iter_predict(
        self,
        volume: Volume,
        slices: Sequence[int] | None = None,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
        on_warning: Callable[[str], None] | None = None,
        stats: TissueStats | None = None,
    ) -> Iterator[SliceResult]:
        """Yield one :class:`SliceResult` per slice, in order.

        ``progress`` counts tile passes (a tile through one model in one test-time variant)
        and its message gives the slice, the elapsed and the estimated remaining time.
        Raises :class:`~.errors.ImageContentError` when the sampled slices are all binary (a mask
        or label stack, not EM images). On ``cancel`` :class:`~.progress.Cancelled` is raised
        within a fraction of a second, without waiting for a running model call; no model call
        starts after it, and no further slice is yielded.

        After the first slice, each object whose models' cards keep a ``training_domain`` and
        whose slice looks unlike it gets one line (see :mod:`.domain`): passed to ``on_warning``
        when given, else issued as an :class:`~.errors.InputWarning`.

        ``stats``: the stack's intensities (:func:`~.intensity_stats.stack_stats`) when already
        measured, e.g. once for every worker of a cluster, so all see the same contrast.
        """
        parts: list[BandResult] = []
        for band in self.iter_bands(volume, slices, progress, cancel, on_warning, stats):
            parts.append(band)
            if band.last:
                probabilities = {
                    obj: np.concatenate([b.probabilities[obj] for b in parts]) if len(parts) > 1
                    else parts[0].probabilities[obj]
                    for obj in self.objects
                }  # fmt: skip
                parts = []
                yield SliceResult(band.index, band.name, probabilities)

    def iter_bands(
        self,
        volume: Volume,
        slices: Sequence[int] | None = None,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
        on_warning: Callable[[str], None] | None = None,
        stats: TissueStats | None = None,
        band_rows: int = BAND_ROWS,
    ) -> Iterator[BandResult]:
        """As :meth:`iter_predict`, but each slice in bands of ``band_rows`` rows (see :mod:`.bands`),
        top to bottom, so memory stays flat for any slice size; the probabilities equal
        :meth:`iter_predict`'s. Long objects (:mod:`.length_filter`) of a slice taller than a
        band are found over the whole slice: its bands wait in a temporary file until the
        slice is done. The domain check measures the band holding the middle of the first slice.
        """
        slices = list(range(len(volume))) if slices is None else list(slices)
        if stats is None:
            stats = measured_stack(volume, progress, len(slices))
        # Only the data are predicted, as if the constant border (alignment, padding) were not
        # there: the model never sees a black frame it was not trained on.
        full_box = (0, volume.shape[1], 0, volume.shape[2])
        box = stats.box if stats.box and stats.box != full_box else full_box
        data = crop_yx(volume, box) if box != full_box else volume
        layout = self._layout(*data.shape[1:])
        meter = _Meter(len(layout.regions) * len(slices) * self._passes_per_tile(), len(slices), progress, cancel)
        stitchers: dict[str, Stitcher] = {}
        batches = prefetch(self._batches(data, slices, stats, layout), depth=2)
        finish = _SliceFinish(self, volume, data, box, stats, band_rows, on_warning)
        try:
            for batch in batches:
                check(cancel)
                if not stitchers:
                    stitchers = {obj: layout.stitcher() for obj in self.objects}
                    assembler = BandAssembler(self.objects, layout, box, volume.shape[1:], band_rows)
                    finish.start(batch.z)
                for obj, models in self.models.items():
                    probability = np.mean([self._predict_model(m, batch.inputs, meter) for m in models], axis=0)
                    for region, tile in zip(batch.regions, probability, strict=True):
                        stitchers[obj].add(region, tile)
                top = next(iter(stitchers.values())).top
                assembler.add(top, {obj: s.take(batch.next_row) for obj, s in stitchers.items()})
                last = batch.next_row >= layout.padded_shape[0]
                if last:  # freed before the slice's last bands are finished (the length filter's peak)
                    stitchers = {}
                for start, band in assembler.bands():
                    check(cancel)  # the length filter of a large band takes a while: not after a cancel
                    yield from finish.band(start, band)
                if last:
                    meter.finished += 1
        finally:
            batches.close()  # stops the reader thread at once on cancel or error
            meter.close()
            finish.close()


class _SliceFinish:
    """The last steps of each band before it is yielded: long objects removed (over the whole
    slice), NaN pixels cleared, and the domain check on the first slice."""

    def __init__(self, predictor: LocalPredictor, volume: Volume, data: Volume, box, stats, band_rows, on_warning):
        self._predictor, self._volume, self._data, self._box = predictor, volume, data, box
        self._stats, self._band_rows, self._on_warning = stats, band_rows, on_warning
        self._checked_domain = False
        self._filters: dict[str, BandedLengthFilter] = {}
        self.z = 0

    def start(self, z: int) -> None:
        self.z = z
        limits = self._predictor.length_limits
        if self._volume.shape[1] > self._band_rows and any(v is not None for v in limits.values()):
            self._filters = {obj: BandedLengthFilter(limits[obj] or np.inf, DECISION) for obj in limits}

    def band(self, start: int, probabilities: dict[str, np.ndarray]) -> Iterator[BandResult]:
        height = self._volume.shape[1]
        stop = start + len(next(iter(probabilities.values())))
        if not self._filters:
            limits = self._predictor.length_limits
            probabilities = {obj: drop_long_objects(p, limits[obj], DECISION) for obj, p in probabilities.items()}
            yield self._finished(start, probabilities)
            return
        for obj, p in probabilities.items():
            self._filters[obj].add(p)
        if stop < height:
            return
        filtered = [f.bands() for f in self._filters.values()]
        self._filters = {}
        first = 0
        for parts in zip(*filtered, strict=True):
            yield self._finished(first, dict(zip(self._predictor.objects, parts, strict=True)))
            first += len(parts[0])

    def _finished(self, start: int, probabilities: dict[str, np.ndarray]) -> BandResult:
        stop = start + len(next(iter(probabilities.values())))
        if self._volume.dtype.kind == "f":  # NaN and infinite pixels hold no tissue: background
            holes = ~np.isfinite(self._volume.rows(self.z, start, stop))
            if holes.any():
                for p in probabilities.values():
                    p[holes] = 0.0
        y0, y1, x0, x1 = self._box
        middle = (y0 + y1 - 1) // 2
        if not self._checked_domain and start <= middle < stop:  # the first slice only: no model call
            self._checked_domain = True
            lo, hi = max(start, y0), min(stop, y1)
            rows = crop_yx(self._data, (lo - y0, hi - y0, 0, x1 - x0))
            seen = {obj: p[lo - start : hi - start, x0:x1] for obj, p in probabilities.items()}
            for line in prediction_warnings(self._predictor.models, rows, self.z, self._stats, seen):
                pass_warning(line, self._on_warning)
        name = self._volume.slice_names[self.z]
        return BandResult(self.z, name, start, probabilities, self._volume.shape[1])

    def close(self) -> None:
        for f in self._filters.values():
            f.close()
        self._filters = {}


def measured_stack(volume: Volume, progress: Progress | None = None, slices: int = 0) -> TissueStats:
    """Check that ``volume`` holds EM images and measure its intensities, once per run.

    Raises :class:`~.errors.ImageContentError` when the sampled slices are all binary (a mask
    stack opened as the image: refused on every path, CLI, app, server, cluster). Warns
    (:class:`~.errors.InputWarning`) when some sampled pixels are NaN or infinite.
    ``progress`` gets ``(0, slices, message)``: the time is estimated from the first model call.
    """
    check_volume_image(volume)
    report(progress, 0, slices, f"measuring the stack's intensities; {ESTIMATING}")
    stats = stack_stats(volume)
    if stats.nonfinite_fraction:
        warnings.warn(
            InputWarning(
                f"{volume.source}: {stats.nonfinite_fraction:.2%} of the sampled pixels are NaN or infinite; "
                "they are left out of the contrast and predicted as background"
            ),
            stacklevel=3,
        )
    return stats


def pass_warning(line: str, on_warning: Callable[[str], None] | None) -> None:
    """A line to ``on_warning``, or an :class:`~.errors.InputWarning` without one."""
    if on_warning is not None:
        on_warning(line)
    else:
        warnings.warn(InputWarning(line), stacklevel=3)


def length_limit_of(models: Sequence[LoadedModel]) -> float | None:
    """The longest object an ensemble keeps: the largest of its cards' limits, or no limit
    when any of its models has none."""
    limits = [limit / m.card.input_zoom for m in models if (limit := m.card.max_object_length_px) is not None]
    return float(max(limits)) if limits and len(limits) == len(models) else None


def mode_tta(mode: str, tta: int | None = None) -> int:
    """Test-time variants: ``tta`` when given, else 1 for ``fast`` and 16 for ``accurate``."""
    return tta or (16 if mode == "accurate" else 1)


def labelled_predictions(
    model, context: int, stacks: Sequence, tta: int = 1, cancel: CancelToken | None = None, zoom: float = 1.0
):
    """Yield ``(stack, slice index, probabilities)`` for every slice of labelled stacks,
    predicted by a bare Keras model during training (validation, hard-example mining), each
    tile taken at ``zoom`` (see :mod:`.zoom`) and the probabilities at the slices' own size.

    Tiles are those a user's prediction has, so the card's figures are what users get (with
    the length filter, tiling can join or split an object that is near the limit)."""
    from .volume import from_array

    reference = tuple(stacks[0].reference) if stacks else None  # the contrast the model trains on
    card = ModelCard(object="object", context=context, input_reference=reference, input_zoom=zoom)
    loaded = LoadedModel("training", model, card)
    predictor = LocalPredictor({"object": [loaded]}, tta=tta)
    for stack in stacks:
        volume = from_array(stack.images, stack.source, slice_names=stack.names)
        for result in predictor.iter_predict(volume, cancel=cancel):
            yield stack, result.index, result.probabilities["object"]


def predictor_for(
    files: Mapping[str, Sequence],
    mode: str = "fast",
    tta: int | None = None,
    keep_long_objects: bool = False,
    cache: ModelCache | None = None,
    runtime: str | None = None,
    progress: Progress | None = None,
) -> LocalPredictor:
    """Each object's model files in a predictor for the mode: taken from ``cache`` (each file
    loaded and warmed up once per cache, on the cache's runtime) or, without one, loaded now on
    ``runtime`` (see :func:`~.models.runtime.choose_runtime`; ``progress`` hears a first-use
    conversion).

    Raises :class:`~emviewer.core.errors.InputError` for a file or card that does not load, or
    an unknown or missing runtime.
    """
    from .models.loading import load_model
    from .models.runtime import choose_runtime

    if cache is not None:
        models = {obj: [cache.get(f) for f in paths] for obj, paths in files.items()}
    else:
        chosen = choose_runtime(runtime)[0]
        models = {
            obj: [load_model(f, runtime=chosen, progress=progress) for f in paths] for obj, paths in files.items()
        }
    chosen_tta = mode_tta(mode, tta)
    return LocalPredictor(
        models,
        tta=chosen_tta,
        variant_batch=variants_per_call(models) if chosen_tta > 1 else 1,
        keep_long_objects=keep_long_objects,
    )


def variants_per_call(models: Mapping[str, Sequence[LoadedModel]]) -> int:
    """:data:`GPU_VARIANT_BATCH` where the models are Keras's and Keras sees a GPU, else 1 (on
    CPUs batching gained nothing, see :class:`LocalPredictor`)."""
    if any(m.runtime != "keras" for ms in models.values() for m in ms):
        return 1
    from .backend import device_summary

    return GPU_VARIANT_BATCH if device_summary()["accelerator"] else 1


def models_record(models: Mapping[str, Sequence[LoadedModel]]) -> dict:
    """Which models (name, weight hash, thresholds, length limit) predicted each object, for provenance."""

    def record(m: LoadedModel) -> dict:
        card = m.card
        return {
            "name": m.name,
            "threshold": m.threshold,
            "sha256": card.sha256,
            "thresholds": dict(card.thresholds) or None,  # None, as before, for a card without them
            "max_object_length_px": card.max_object_length_px,
            "runtime": m.runtime,
            "precision": m.precision,
            **({"input_zoom": card.input_zoom} if card.input_zoom != 1.0 else {}),
        }

    return {obj: [record(m) for m in ms] for obj, ms in models.items()}
