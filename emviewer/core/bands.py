"""Slices predicted a band of rows at a time, so memory does not grow with the slice size.

A 16000 x 10000 slice is 160 million pixels: its float32 probabilities alone take 640 MB per
object, and the tiler's sum and weight maps as much again. Prediction therefore reads the
input a tile row at a time (:class:`TileSource`), stitches a rolling window of rows
(:class:`~.tiling.Stitcher`) and hands out the finished rows in bands of :data:`BAND_ROWS`
rows (:class:`BandAssembler`), at the slice's full size (with the constant border cropped for
prediction pasted back as background). Slices of up to :data:`BAND_ROWS` rows are one band.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from .tiling import Region, TileLayout
from .volume import Volume

#: Rows per band: a multiple of the OME-Zarr chunk side and of every pyramid factor up to 2^10,
#: so bands fill whole chunks and downsample exactly as whole slices do.
BAND_ROWS = 1024
#: Slices whose context planes fit in this many bytes are read whole (once per slice); larger
#: ones a tile row at a time.
WHOLE_SLICE_BYTES = 256 * 2**20


@dataclass
class BandResult:
    """Probabilities of each object for rows ``start`` to ``start + rows`` of slice ``index``.

    Attributes
    ----------
    index, name
        The slice's index in the volume and its name.
    start
        The band's first row in the slice, a multiple of :data:`BAND_ROWS`.
    probabilities
        Object -> ``(rows, X)`` float32 in [0, 1] (each model's threshold calibrated to 0.5).
    height
        Rows of the whole slice.
    """

    index: int
    name: str
    start: int
    probabilities: dict[str, np.ndarray]
    height: int

    @classmethod
    def whole(cls, index: int, name: str, probabilities: dict[str, np.ndarray]) -> BandResult:
        """A whole ``(Y, X)`` slice as its one band."""
        return cls(index, name, 0, probabilities, len(next(iter(probabilities.values()))))

    @classmethod
    def of(cls, result) -> BandResult:
        """``result`` as a band: a :class:`BandResult` as it is, a whole-slice result
        (:class:`~.predict.SliceResult`) as its one band."""
        return result if isinstance(result, BandResult) else cls.whole(result.index, result.name, result.probabilities)

    @property
    def rows(self) -> int:
        return len(next(iter(self.probabilities.values())))

    @property
    def last(self) -> bool:
        """Whether this is the slice's last band."""
        return self.start + self.rows >= self.height

    def masks(self) -> dict[str, np.ndarray]:
        """``(rows, X)`` boolean masks: probability >= 0.5."""
        return {k: p >= 0.5 for k, p in self.probabilities.items()}


class TileSource:
    """Cuts tiles of one stack for a :class:`~.tiling.TileLayout`, keeping the last few slices
    (or, for slices above :data:`WHOLE_SLICE_BYTES` per context, only the rows of the current
    tile row of each) so that context neighbours are read once per slice or tile row."""

    def __init__(self, volume: Volume, context: int) -> None:
        self._volume, self._size = volume, context + 1
        _, height, width = volume.shape
        self.whole = height * width * volume.dtype.itemsize * self._size <= WHOLE_SLICE_BYTES
        self._held: OrderedDict[int, tuple[int, np.ndarray]] = OrderedDict()  # z -> (first row, rows)

    def _rows(self, z: int, start: int, stop: int) -> tuple[int, np.ndarray]:
        held = self._held.get(z)
        if held is None or held[0] > start or held[0] + len(held[1]) < stop:
            first, stop = (0, self._volume.shape[1]) if self.whole else (start, stop)
            held = (first, self._volume.slice(z) if self.whole else self._volume.rows(z, first, stop))
            self._held[z] = held
            while len(self._held) > self._size:
                self._held.popitem(last=False)
        self._held.move_to_end(z)
        return held

    def cut(self, z: int, layout: TileLayout, region: Region) -> np.ndarray:
        """The pixels of ``region`` of slice ``z``, as :meth:`~.tiling.TileLayout.cut` cuts them."""
        rows, cols = layout.source_indices(region)
        first, held = self._rows(z, int(rows.min()), int(rows.max()) + 1)
        return held[np.ix_(rows - first, cols)]


class BandAssembler:
    """Turns the finished rows of one slice's stitched, padded prediction into full-size bands.

    Parameters
    ----------
    objects
        The object keys of the rows added.
    layout
        The tile layout of the predicted (cropped) slice.
    box
        ``(y0, y1, x0, x1)``: where the predicted rectangle lies in the full slice.
    shape
        The full slice's ``(Y, X)``.
    band_rows
        Rows per band.
    """

    def __init__(
        self, objects, layout: TileLayout, box: tuple[int, int, int, int], shape: tuple[int, int], band_rows: int
    ) -> None:
        self._objects, self._layout, self._box, self._shape, self._band = list(objects), layout, box, shape, band_rows
        self._pieces: list[tuple[int, dict[str, np.ndarray]]] = []  # (first full row, object -> rows)
        self._done = box[0]  # full rows before this are final
        self._next = 0  # first row of the next band to hand out

    def add(self, padded_start: int, rows: Mapping[str, np.ndarray]) -> None:
        """Rows ``padded_start`` on of the padded slice (object -> ``(n, padded X)``), all final."""
        crop_rows, crop_cols = self._layout.crop
        n = len(next(iter(rows.values())))
        first, stop = max(padded_start, crop_rows.start), min(padded_start + n, crop_rows.stop)
        if stop > first:
            kept = {obj: r[first - padded_start : stop - padded_start, crop_cols] for obj, r in rows.items()}
            start = first - crop_rows.start + self._box[0]
            self._pieces.append((start, kept))
            self._done = start + stop - first
        if padded_start + n >= crop_rows.stop:  # the whole rectangle is in: the rows below are background
            self._done = self._shape[0]

    def bands(self) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """``(first row, object -> (rows, X) float32)`` for each band whose rows are all final."""
        height, width = self._shape
        while self._next < height and min(self._next + self._band, height) <= self._done:
            start, stop = self._next, min(self._next + self._band, height)
            band = {obj: np.zeros((stop - start, width), np.float32) for obj in self._objects}
            for first, rows in self._pieces:
                lo, hi = max(first, start), min(first + len(next(iter(rows.values()))), stop)
                for obj, r in rows.items():
                    if hi > lo:
                        band[obj][lo - start : hi - start, self._box[2] : self._box[3]] = r[lo - first : hi - first]
            self._pieces = [(f, r) for f, r in self._pieces if f + len(next(iter(r.values()))) > stop]
            self._next = stop
            yield start, band
