"""The one tile layout of prediction: cut a slice into overlapping tiles, blend them back.

Large slices do not fit a model in one piece, and a model's output is least reliable near
a tile's border (it sees no context there). So tiles overlap, each tile's prediction is
weighted by a smooth window that is high in the middle and low (but not zero) at the
border, and the output is the weighted mean. Memory stays bounded: only the output sum,
the weight sum and one batch of tiles exist at a time.

:class:`TileLayout` says, for one slice size, where the tiles lie and what pixels each one
holds. Tiles never hang over the image edge: the last tile in a row or column is shifted
back to end at the edge. A slice smaller than a tile is centred in a tile-sized canvas whose
margin mirrors the slice (as ``numpy.pad(mode="reflect")``), and the result is cropped back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .preprocess import reflect_indices

__all__ = [
    "Region",
    "TILE_MULTIPLE",
    "TileLayout",
    "tile_starts",
    "tile_grid",
    "blend_window",
    "Stitcher",
]

#: A tile's place in the slice: ``(rows, columns)``, usable as ``image[region]``.
Region = tuple[slice, slice]
Size = int | Sequence[int]
#: Tile sides are multiples of this unless the models say less (``2 ** depth``): every model
#: depth up to 5 down-samplings fits.
TILE_MULTIPLE = 32


def _pair(value: Size, what: str) -> tuple[int, int]:
    """Accept ``n`` or ``(ny, nx)`` and return ``(ny, nx)``."""
    pair = (value, value) if isinstance(value, int | np.integer) else tuple(value)
    if len(pair) != 2:
        raise ValueError(f"{what} must be an int or a (y, x) pair, not {value!r}")
    return int(pair[0]), int(pair[1])


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``range(length)`` along one axis.

    Tiles step by ``tile - overlap``; the last one is moved back so it ends at ``length``,
    which makes its overlap with the previous tile at least ``overlap``.

    Parameters
    ----------
    length : int
        Size of the axis, at least ``tile`` (pad smaller images first).
    tile : int
        Tile size along the axis, > 0.
    overlap : int
        Minimum overlap between neighbouring tiles, ``0 <= overlap < tile``.

    Returns
    -------
    list of int
        Increasing offsets, each in ``[0, length - tile]``.
    """
    if tile <= 0:
        raise ValueError(f"tile size must be positive, not {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, {tile - 1}] for tile size {tile}, not {overlap}")
    if length < tile:
        raise ValueError(f"axis of length {length} is smaller than the tile ({tile}): pad it first")
    starts = list(range(0, length - tile + 1, tile - overlap))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def tile_grid(shape: Sequence[int], tile: Size, overlap: Size) -> list[Region]:
    """Regions of overlapping tiles that together cover a ``(Y, X)`` slice.

    Parameters
    ----------
    shape : (int, int)
        ``(Y, X)`` size of the slice; each side at least the tile size.
    tile : int or (int, int)
        Tile size ``(ty, tx)``.
    overlap : int or (int, int)
        Minimum overlap between neighbouring tiles ``(oy, ox)``.

    Returns
    -------
    list of Region
        Row-major ``(slice(y0, y0 + ty), slice(x0, x0 + tx))`` pairs, all inside the slice.
    """
    (ty, tx), (oy, ox) = _pair(tile, "tile"), _pair(overlap, "overlap")
    height, width = int(shape[0]), int(shape[1])
    return [
        (slice(y0, y0 + ty), slice(x0, x0 + tx))
        for y0 in tile_starts(height, ty, oy)
        for x0 in tile_starts(width, tx, ox)
    ]


@dataclass(frozen=True)
class TileLayout:
    """Where the tiles of one ``(Y, X)`` slice size lie, and which slice pixels each holds.

    Tile regions are in the coordinates of the *padded* slice: the slice centred in a canvas
    of at least one tile per side (:attr:`padded_shape`), whose margin mirrors the slice.
    :meth:`cut` reads a tile from the unpadded slice, so the padding is never built.

    Parameters
    ----------
    shape : (int, int)
        ``(Y, X)`` size of the slice, each at least 1.
    tile : int or (int, int)
        Tile size ``(ty, tx)`` in pixels, each > 0 (an int: square tiles). Stored as a pair.
    overlap : int or (int, int)
        Minimum overlap ``(oy, ox)`` of neighbouring tiles in pixels, ``0 <= overlap < tile``
        along each axis. Stored as a pair.

    Raises
    ------
    ValueError
        For an empty slice, or a tile or overlap outside those ranges.
    """

    shape: tuple[int, int]
    tile: tuple[int, int]
    overlap: tuple[int, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _pair(self.shape, "shape"))
        object.__setattr__(self, "tile", _pair(self.tile, "tile"))
        object.__setattr__(self, "overlap", _pair(self.overlap, "overlap"))
        if min(self.shape) < 1:
            raise ValueError(f"cannot tile an empty slice of shape {self.shape}")
        for tile, overlap in zip(self.tile, self.overlap, strict=True):
            tile_starts(tile, tile, overlap)  # checks the tile and the overlap

    @classmethod
    def for_slice(
        cls,
        height: int,
        width: int,
        max_tile: int = 1024,
        overlap: int = 64,
        multiple: int = TILE_MULTIPLE,
        square: bool = False,
    ) -> TileLayout:
        """The layout prediction uses: a slice up to ``max_tile`` in one square tile of its
        longer side rounded up to ``multiple``; a larger one chosen per axis so that least
        work goes into overlaps: a side up to ``max_tile`` in one tile, a longer side in as few
        tiles as ``max_tile`` allows, each as short as that count allows (rounded up). So
        tiles of large slices may be rectangles: a 16000 x 10000 slice with ``max_tile`` 768
        has 23 x 15 tiles of 736 x 768 (195 megapixels computed; square tiles of 768: 204).
        Overlap along an axis at most half the tile there.

        ``multiple``: the models' down-sampling factor (``2 ** depth``); ``max_tile`` is
        rounded down to a multiple of it. ``square``: square tiles also on large slices (the
        larger of the two sides), e.g. so that turned test-time variants keep the tile's shape.
        """
        largest = max(multiple, max_tile // multiple * multiple)

        def rounded(n: int) -> int:
            return -(-n // multiple) * multiple

        def needed(length: int) -> int:  # the smallest tile that covers ``length`` in as few tiles as max_tile does
            if length <= largest:
                return rounded(length)
            count = -(-(length - overlap) // (largest - overlap))
            return rounded(-(-(length - overlap) // count) + overlap)

        if max(height, width) <= largest or square:
            # One tile: square, as the model saw it trained; the mirrored margin on the short
            # side helps its borders (Lucchi++ 1024 x 768 slices, IoU 0.8596; as 768 x 1024
            # tiles 0.8576, benchmarks/accuracy.py, session 21).
            tile = (min(largest, max(needed(int(height)), needed(int(width)))),) * 2
        else:
            tile = needed(int(height)), needed(int(width))
        return cls((int(height), int(width)), tile, (min(overlap, tile[0] // 2), min(overlap, tile[1] // 2)))

    @property
    def padded_shape(self) -> tuple[int, int]:
        """``(Y, X)`` of the padded slice: at least one tile along each side."""
        return max(self.shape[0], self.tile[0]), max(self.shape[1], self.tile[1])

    @property
    def before(self) -> tuple[int, int]:
        """Mirrored rows above and columns left of the slice in the padded slice."""
        return (self.padded_shape[0] - self.shape[0]) // 2, (self.padded_shape[1] - self.shape[1]) // 2

    @property
    def crop(self) -> Region:
        """Where the slice lies in the padded slice: ``padded_result[crop]`` has the slice's shape."""
        (y0, x0), (height, width) = self.before, self.shape
        return slice(y0, y0 + height), slice(x0, x0 + width)

    @cached_property
    def regions(self) -> list[Region]:
        """The tiles, row-major, in padded coordinates (see :func:`tile_grid`)."""
        return tile_grid(self.padded_shape, self.tile, self.overlap)

    def source_indices(self, region: Region) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns of the unpadded slice that fill ``region`` (mirrored outside it)."""
        rows = reflect_indices(np.arange(region[0].start, region[0].stop) - self.before[0], self.shape[0])
        cols = reflect_indices(np.arange(region[1].start, region[1].stop) - self.before[1], self.shape[1])
        return rows, cols

    def cut(self, image: np.ndarray, region: Region) -> np.ndarray:
        """The pixels of ``region`` from an unpadded ``(Y, X)`` or ``(Y, X, C)`` slice, same dtype."""
        return np.asarray(image)[np.ix_(*self.source_indices(region))]

    def window(self, floor: float = 0.05) -> np.ndarray:
        """The tiles' blending weights, ``(ty, tx)`` float32 (see :func:`blend_window`)."""
        return blend_window(self.tile, floor)

    def stitcher(self) -> Stitcher:
        """An empty :class:`Stitcher` for one slice of this layout."""
        return Stitcher(self.padded_shape, self.window())


def blend_window(tile: Size, floor: float = 0.05) -> np.ndarray:
    """Separable raised-cosine (Hann) weights for blending a tile.

    Parameters
    ----------
    tile : int or (int, int)
        Tile size ``(ty, tx)``.
    floor : float
        Smallest weight, in (0, 1]. Pixels on the image border are covered only by tile
        borders, so the weight there must stay above zero.

    Returns
    -------
    numpy.ndarray
        ``(ty, tx)`` float32 in ``[floor, 1]``, highest in the centre, symmetric.
    """
    if not 0.0 < floor <= 1.0:
        raise ValueError(f"floor must be in (0, 1], not {floor}")

    def hann(n: int) -> np.ndarray:
        # Sample at pixel centres: symmetric, and never exactly zero at the ends.
        return np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2

    ty, tx = _pair(tile, "tile")
    window = floor + (1.0 - floor) * np.outer(hann(ty), hann(tx))
    return window.astype(np.float32)


class Stitcher:
    """Accumulate weighted tile predictions into a ``(Y, X)`` float32 map, a band of rows at a time.

    Tiles arrive row-major (as :func:`tile_grid` orders them), so once no tile still to come
    starts above a row, that row is final: :meth:`take` hands it out and frees it. Only the
    rows the tiles in flight cover are held (about one tile's height), whatever the slice
    height; every pixel's sums are made in the same order as with the whole map, so the
    result is bit for bit the same.

    Parameters
    ----------
    shape : (int, int)
        ``(Y, X)`` size of the (padded) slice.
    window : numpy.ndarray
        ``(ty, tx)`` blending weights > 0, e.g. from :func:`blend_window`.
    """

    def __init__(self, shape: Sequence[int], window: np.ndarray):
        self._window = np.asarray(window, dtype=np.float32)
        self._height, self._width = int(shape[0]), int(shape[1])
        self._top = 0  # the slice row held in row 0 of the buffers
        self._sum = np.zeros((0, self._width), np.float32)
        self._weight = np.zeros((0, self._width), np.float32)

    @property
    def top(self) -> int:
        """The first row not yet taken."""
        return self._top

    def _hold(self, stop: int) -> None:
        """Grow the buffers to hold rows up to ``stop``. They only grow (to the most rows ever
        held, about a tile's height): :meth:`take` moves the rows left to the top in place, so
        no second copy of them exists (on a 32768-px wide slice, 100 MB each)."""
        missing = stop - self._top - len(self._sum)
        if missing > 0:
            more = np.zeros((missing, self._width), np.float32)
            self._sum, self._weight = np.concatenate([self._sum, more]), np.concatenate([self._weight, more])

    def add(self, region: Region, prediction: np.ndarray) -> None:
        """Add one tile's prediction, ``(ty, tx)`` or ``(ty, tx, 1)``, at ``region``.

        Raises ``ValueError`` for a tile of another shape or one above the rows already taken."""
        tile = np.asarray(prediction, dtype=np.float32)
        if tile.ndim == 3 and tile.shape[-1] == 1:
            tile = tile[..., 0]
        if tile.shape != self._window.shape:
            raise ValueError(f"tile prediction has shape {tile.shape}, expected {self._window.shape}")
        rows, cols = region
        if rows.start < self._top:
            raise ValueError(f"tile at row {rows.start} arrives after rows up to {self._top} were taken")
        self._hold(rows.stop)
        held = slice(rows.start - self._top, rows.stop - self._top)
        self._sum[held, cols] += self._window * tile
        self._weight[held, cols] += self._window

    def take(self, stop: int) -> np.ndarray:
        """The weighted mean of rows ``top`` to ``stop`` (``(stop - top, X)`` float32), which no
        later tile may touch; those rows are freed. Raises if a pixel there got no tile."""
        stop = min(max(stop, self._top), self._height)
        self._hold(stop)
        n = stop - self._top
        total, weight = self._sum[:n], self._weight[:n]
        if not np.all(weight > 0):
            raise ValueError("some pixels are not covered by any tile")
        mean = total / weight
        _shift_up(self._sum, n)
        _shift_up(self._weight, n)
        self._top = stop
        return mean

    def result(self) -> np.ndarray:
        """The weighted mean of every row not yet taken, ``(Y - top, X)`` float32 (the whole map
        when nothing was taken); raises if a pixel got no tile."""
        return self.take(self._height)


def _shift_up(buffer: np.ndarray, n: int) -> None:
    """Move the rows of ``buffer`` below row ``n`` to its top and zero the rows freed, in place."""
    rest = len(buffer) - n
    if n <= 0:
        return
    for first in range(0, rest, n):  # blocks of n rows: source and destination never overlap (no temporary)
        stop = min(first + n, rest)
        buffer[first:stop] = buffer[first + n : stop + n]
    buffer[max(rest, 0) :] = 0
