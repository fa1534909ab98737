"""Cut a slice into overlapping tiles, predict them, and blend the tiles back together.

Large slices do not fit a model in one piece, and a model's output is least reliable near
a tile's border (it sees no context there). So tiles overlap, each tile's prediction is
weighted by a smooth window that is high in the middle and low (but not zero) at the
border, and the output is the weighted mean. Memory stays bounded: only the output sum,
the weight sum and one batch of tiles exist at a time.

Tiles never hang over the image edge: the last tile in a row or column is shifted back to
end at the edge. An image smaller than a tile is first enlarged by reflection
(:func:`pad_to_at_least`) and the result cropped back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Union

import numpy as np

from emviewer.core.progress import CancelToken, Progress, check, report

__all__ = [
    "Region",
    "tile_starts",
    "tile_grid",
    "pad_to_at_least",
    "blend_window",
    "Stitcher",
    "predict_tiled",
]

#: A tile's place in the slice: ``(rows, columns)``, usable as ``image[region]``.
Region = tuple[slice, slice]
Size = Union[int, Sequence[int]]


def _pair(value: Size, what: str) -> tuple[int, int]:
    """Accept ``n`` or ``(ny, nx)`` and return ``(ny, nx)``."""
    pair = (value, value) if np.isscalar(value) else tuple(value)
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


def pad_to_at_least(image: np.ndarray, size: Size) -> tuple[np.ndarray, Region]:
    """Enlarge a slice by reflection until it is at least ``size`` along Y and X.

    The image is centred, so both borders get mirrored context. Reflection works for any
    image size (numpy reflects repeatedly, and a 1-pixel axis is simply repeated).

    Parameters
    ----------
    image : numpy.ndarray
        ``(Y, X)`` or ``(Y, X, C)``, any dtype; channel axes are not padded.
    size : int or (int, int)
        Minimum ``(Y, X)`` size of the result.

    Returns
    -------
    padded : numpy.ndarray
        Same dtype, shape ``(max(Y, sy), max(X, sx), ...)``; ``image`` itself if no
        padding is needed.
    crop : Region
        ``padded[crop]`` (or ``result[crop]`` of any array with the padded (Y, X)) is the
        original area.
    """
    sy, sx = _pair(size, "size")
    height, width = image.shape[:2]
    pad_y, pad_x = max(sy - height, 0), max(sx - width, 0)
    before_y, before_x = pad_y // 2, pad_x // 2
    crop = (slice(before_y, before_y + height), slice(before_x, before_x + width))
    if pad_y == 0 and pad_x == 0:
        return image, crop
    widths = [(before_y, pad_y - before_y), (before_x, pad_x - before_x)]
    widths += [(0, 0)] * (image.ndim - 2)
    return np.pad(image, widths, mode="reflect"), crop


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
    """Accumulate weighted tile predictions into one ``(Y, X)`` float32 map.

    Parameters
    ----------
    shape : (int, int)
        ``(Y, X)`` size of the (padded) slice.
    window : numpy.ndarray
        ``(ty, tx)`` blending weights > 0, e.g. from :func:`blend_window`.
    """

    def __init__(self, shape: Sequence[int], window: np.ndarray):
        self._window = np.asarray(window, dtype=np.float32)
        self._sum = np.zeros(tuple(shape[:2]), dtype=np.float32)
        self._weight = np.zeros(tuple(shape[:2]), dtype=np.float32)

    def add(self, region: Region, prediction: np.ndarray) -> None:
        """Add one tile's prediction, ``(ty, tx)`` or ``(ty, tx, 1)``, at ``region``."""
        tile = np.asarray(prediction, dtype=np.float32)
        if tile.ndim == 3 and tile.shape[-1] == 1:
            tile = tile[..., 0]
        if tile.shape != self._window.shape:
            raise ValueError(f"tile prediction has shape {tile.shape}, expected {self._window.shape}")
        self._sum[region] += self._window * tile
        self._weight[region] += self._window

    def result(self) -> np.ndarray:
        """The weighted mean, ``(Y, X)`` float32; raises if a pixel got no tile."""
        if not np.all(self._weight > 0):
            raise ValueError("some pixels are not covered by any tile")
        return self._sum / self._weight


def predict_tiled(
    image: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    tile: Size,
    overlap: Size,
    batch_size: int = 4,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Predict a whole slice tile by tile and blend the tiles.

    Parameters
    ----------
    image : numpy.ndarray
        ``(Y, X)`` or ``(Y, X, C)`` model input (typically float32 in [0, 1], ``C``
        context slices), any size.
    predict : callable
        Maps a batch ``(N, ty, tx, C)`` (``C = 1`` for a ``(Y, X)`` image) to predictions
        ``(N, ty, tx)`` or ``(N, ty, tx, 1)``.
    tile, overlap : int or (int, int)
        Tile size and minimum overlap, see :func:`tile_grid`.
    batch_size : int
        Tiles per call of ``predict``.
    progress, cancel
        Called with ``(tiles done, tiles total, message)``; checked between batches.

    Returns
    -------
    numpy.ndarray
        ``(Y, X)`` float32 blended prediction, same (Y, X) as ``image``.
    """
    padded, crop = pad_to_at_least(image, tile)
    if padded.ndim == 2:
        padded = padded[..., np.newaxis]
    grid = tile_grid(padded.shape[:2], tile, overlap)
    stitcher = Stitcher(padded.shape[:2], blend_window(tile))
    for first in range(0, len(grid), batch_size):
        check(cancel)
        regions = grid[first : first + batch_size]
        predictions = predict(np.stack([padded[region] for region in regions]))
        for region, prediction in zip(regions, predictions):
            stitcher.add(region, prediction)
        report(progress, first + len(regions), len(grid), "predicting tiles")
    return stitcher.result()[crop]
