"""Robust intensity statistics of the tissue in EM slices, for display contrast and model input.

The same tissue looks different from one microscope (or export) to the next: 8-bit grey
squeezed into 100-150, 16-bit in a narrow band above 30000, floats with NaN holes, and
constant alignment borders or padding around the data. Statistics of the *tissue* only hold
across all of them, so percentiles here leave out

- NaN and infinite pixels,
- constant regions touching the slice edge (alignment borders, padding), and
- spikes at the slice's extreme values (saturated or clipped runs),

and are taken over a sample of slices of the whole stack (never per tile, so tiles agree).
:mod:`.intensity` maps them onto a model's input levels, :mod:`.overlay` onto display grey.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from .volume import decodes_whole_slices

#: Default percentiles of the tissue: those :mod:`.intensity` maps onto a model's reference levels.
TISSUE_PERCENTILES = (1.0, 99.0)
#: Pixels kept per slice for the statistics (evenly strided), so huge slices stay cheap.
SAMPLE_PIXELS = 1_000_000
#: Lines read at once when a data rectangle is trimmed to full-size pixels.
TRIM_BLOCK = 64
#: A constant edge-connected region this large (fraction of the slice) is border, not tissue.
MIN_BORDER_FRACTION = 0.002
#: A single extreme value holding more than this fraction of the tissue is a saturated run.
MAX_SPIKE_FRACTION = 0.005


@dataclass(frozen=True)
class TissueStats:
    """Robust intensity statistics of a stack's tissue.

    Attributes
    ----------
    low, high
        Percentiles of the tissue pixels (by default :data:`TISSUE_PERCENTILES`), in the
        image's own units; ``high > low``.
    nonfinite_fraction
        Share of the sampled pixels that are NaN or infinite (0 for integer images).
    excluded_fraction
        Share of the sampled pixels left out as border, padding, saturation or non-finite.
    box
        ``(y0, y1, x0, x1)``: the rectangle holding every sampled slice's data, without the
        constant or non-finite borders around it; ``None`` when the slices had none.
    """

    low: float
    high: float
    nonfinite_fraction: float = 0.0
    excluded_fraction: float = 0.0
    box: tuple[int, int, int, int] | None = None


def _stride(image) -> int:
    return max(1, int(np.ceil(np.sqrt(image.size / SAMPLE_PIXELS))))


def _data_box(data: np.ndarray, step: int, shape: tuple) -> tuple[int, int, int, int] | None:
    """Bounding rectangle of ``data`` (a strided mask) in full-size pixels, widened by the
    stride so no data pixel is cut; ``None`` when the mask is empty."""
    rows, cols = np.flatnonzero(data.any(axis=1)), np.flatnonzero(data.any(axis=0))
    if rows.size == 0:
        return None
    slack = step - 1  # a strided pixel stands for up to step - 1 unseen ones on either side
    y0, x0 = max(0, rows[0] * step - slack), max(0, cols[0] * step - slack)
    return y0, min(shape[0], (rows[-1] + 1) * step + slack), x0, min(shape[1], (cols[-1] + 1) * step + slack)


def _edge_border(image: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, list]:
    """Pixels of constant-valued regions that touch the edge and cover a sizeable area, and
    the values of those regions."""
    edges = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    edges = edges[np.isfinite(edges)] if edges.dtype.kind == "f" else edges
    border, border_values = np.zeros(image.shape, bool), list[Any]()
    if edges.size == 0:
        return border, border_values
    values, counts = np.unique(edges, return_counts=True)
    min_size = max(64, MIN_BORDER_FRACTION * image.size)
    for value in values[counts >= 0.05 * edges.size]:  # a border value fills a good part of the edge
        labels, _ = ndimage.label((image == value) & valid)
        on_edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        sizes = np.bincount(labels.ravel())
        wide = [label for label in on_edge if label and sizes[label] >= min_size]
        if wide:
            border |= np.isin(labels, wide)
            border_values.append(value)
    return border, border_values


def _trim_box(image, box: tuple, border_values: list) -> tuple[int, int, int, int]:
    """Shrink a rectangle found on a strided slice to the full-size rows and columns that hold
    data (anything but border values and NaN), so the data are predicted at their true size.
    Lines are read :data:`TRIM_BLOCK` at a time from each side (a column of a memory-mapped
    slice costs as much to read as 64 of them)."""
    y0, y1, x0, x1 = box

    def data_lines(block: np.ndarray, axis: int) -> np.ndarray:
        data = ~np.isin(block, border_values)
        return np.any(data & np.isfinite(block) if block.dtype.kind == "f" else data, axis=axis)

    while y1 - y0 > 1:  # top: rows y0 .. y1 - 2 may go
        hit = np.flatnonzero(lines := data_lines(image[y0 : min(y1 - 1, y0 + TRIM_BLOCK), x0:x1], 1))
        y0 += int(hit[0]) if hit.size else lines.size
        if hit.size:
            break
    while y1 - y0 > 1:  # bottom: rows y1 - 1 .. y0 + 1 may go
        start = max(y0 + 1, y1 - TRIM_BLOCK)
        hit = np.flatnonzero(data_lines(image[start:y1, x0:x1], 1))
        y1 = start + int(hit[-1]) + 1 if hit.size else start
        if hit.size:
            break
    while x1 - x0 > 1:
        hit = np.flatnonzero(lines := data_lines(image[y0:y1, x0 : min(x1 - 1, x0 + TRIM_BLOCK)], 0))
        x0 += int(hit[0]) if hit.size else lines.size
        if hit.size:
            break
    while x1 - x0 > 1:
        start = max(x0 + 1, x1 - TRIM_BLOCK)
        hit = np.flatnonzero(data_lines(image[y0:y1, start:x1], 0))
        x1 = start + int(hit[-1]) + 1 if hit.size else start
        if hit.size:
            break
    return y0, y1, x0, x1


def _drop_spikes(values: np.ndarray) -> np.ndarray:
    for extreme in (values.min(), values.max()):
        if np.count_nonzero(values == extreme) > MAX_SPIKE_FRACTION * values.size:
            values = values[values != extreme]
            if values.size == 0:
                break
    return values


def tissue_values(image: np.ndarray, trim: bool = True) -> tuple[np.ndarray, int, int, tuple | None]:
    """Sampled tissue pixels of one ``(Y, X)`` slice as float32, with the counts of sampled
    and of non-finite pixels, and the rectangle holding the data (see :class:`TissueStats`).
    See the module docstring for what is left out."""
    full = image if isinstance(image, LazySlice) else np.asarray(image)  # a lazy slice: read strided
    step = _stride(full)
    image = full[::step, ::step]
    valid = np.isfinite(image) if image.dtype.kind == "f" else np.ones(image.shape, bool)
    n_nonfinite = int(image.size - np.count_nonzero(valid))
    border, border_values = _edge_border(image, valid)
    keep = valid & ~border
    values = image[keep].astype(np.float32)
    box = _data_box(keep, step, full.shape)
    if box and step > 1 and trim:
        box = _trim_box(full, box, border_values)
    return (_drop_spikes(values) if values.size else values), int(image.size), n_nonfinite, box


def tissue_stats(
    slices: Sequence[np.ndarray], percentiles: tuple[float, float] = TISSUE_PERCENTILES, trim: bool = True
) -> TissueStats:
    """Percentiles of the tissue over several slices.

    Parameters
    ----------
    slices : sequence of numpy.ndarray
        ``(Y, X)`` slices of any supported dtype, NaN and infinity allowed.
    percentiles : (float, float)
        Low and high percentiles, in [0, 100].
    trim : bool
        Shrink the data rectangle (``box``) of large slices to full-size pixels (prediction
        needs it); without, it is the sampled grid's, up to the sampling step too wide, which is
        enough for display and skips reading columns of huge slices.

    Returns
    -------
    TissueStats
        When no tissue is left (a blank or all-NaN stack) ``low, high`` is the range of the
        finite pixels, and ``(0, 1)`` when there are none; ``high`` is raised to ``low + 1``
        when they are equal.
    """
    parts, boxes, total, nonfinite = [], [], 0, 0
    for image in slices:
        values, n, bad, box = tissue_values(image, trim)
        parts.append(values)
        boxes += [box] if box else []
        total, nonfinite = total + n, nonfinite + bad
    values = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if values.size:
        low, high = (float(v) for v in np.percentile(values, percentiles))
    else:
        finite_parts = [np.asarray(s, np.float32)[np.isfinite(s)] for s in slices]
        finite = np.concatenate(finite_parts) if finite_parts else np.zeros(0, np.float32)
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if high <= low:
        high = low + 1.0
    excluded = 1 - values.size / total if total else 0.0
    box = tuple(int(f(b[i] for b in boxes)) for i, f in enumerate((min, max, min, max))) if boxes else None
    return TissueStats(low, high, nonfinite / total if total else 0.0, float(excluded), box)


class SampledSlices(Sequence):
    """Evenly spaced ``(Y, X)`` slices of a stack, each read when asked for (not held), so a
    sample of huge slices takes one slice of memory at a time."""

    def __init__(self, volume, picks: Sequence[int]) -> None:
        self._volume, self.picks = volume, [int(z) for z in picks]

    def __len__(self) -> int:
        return len(self.picks)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [LazySlice(self._volume, z) for z in self.picks[i]]
        return LazySlice(self._volume, self.picks[i])


class LazySlice:
    """Slice ``z`` of a stack, read when indexed: ``view[::8, ::8]`` reads every 8th row and
    column only from memory-mapped and chunked files (opening a 16000 x 10000 stack in the app
    took 3 s reading its sampled slices whole); ``np.asarray(view)`` reads the whole slice."""

    def __init__(self, volume, z: int) -> None:
        self._volume, self._z = volume, int(z)
        self.shape: tuple[int, int] = tuple(volume.shape[1:])
        self.dtype, self.ndim, self.size = volume.dtype, 2, self.shape[0] * self.shape[1]
        # a file decoded a slice at a time (a PNG of a folder) would be decoded at every index
        self._whole = volume.slice(z) if decodes_whole_slices(volume) else None

    def __getitem__(self, key) -> np.ndarray:
        if self._whole is not None:
            return self._whole[key]
        return self._volume[(self._z,) + (key if isinstance(key, tuple) else (key,))]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self._volume.slice(self._z) if self._whole is None else self._whole
        return whole if dtype is None else whole.astype(dtype)


def sample_slices(volume, count: int = 8) -> SampledSlices:
    """Up to ``count`` evenly spaced ``(Y, X)`` slices of a ``(Z, Y, X)`` stack (a :class:`~.volume.Volume`),
    in their own dtype, read one at a time as used: enough for intensity statistics without
    reading the whole stack."""
    picks = np.unique(np.linspace(0, len(volume) - 1, min(len(volume), count)).astype(int))
    return SampledSlices(volume, picks.tolist())


def stack_stats(volume, sample: int = 8) -> TissueStats:
    """:func:`tissue_stats` of evenly spaced slices of a ``(Z, Y, X)`` stack: ``sample`` of
    them, or more when slices are small (a stack of 64 x 64 patches), up to
    :data:`SAMPLE_PIXELS` x ``sample`` pixels in all."""
    _, height, width = volume.shape
    count = max(sample, -(-SAMPLE_PIXELS * sample // max(1, height * width)))
    return tissue_stats(sample_slices(volume, count))
