"""Slices read at the resolution a screen needs: the level of detail of the viewer (issue 22).

A 16000 x 10000 slice holds 160 Mpx; a pane on screen shows about 1 Mpx. The viewer shows each
slice as an *overview* (every ``step``-th pixel, at most :data:`OVERVIEW_SIDE` pixels on its
longer side) and, once zoomed in past it, a *window*: the region in view, read every
``step``-th pixel for the zoom (a power of two; 1 = full resolution). Reads go to the coarsest
stored level that serves the step: an OME-Zarr's pyramid levels (:attr:`Volume.overviews`),
else the full-resolution data, where memory-mapped and chunked files read only the rows and
chunks asked for. Slices of files that decode whole (compressed TIFF pages, folders of PNGs)
are decoded once and kept while shown. Pixels are taken, not averaged (nearest neighbour): a
step-8 overview of a memory-mapped slice reads an eighth of its rows.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from .volume import Volume, decodes_whole_slices

#: Longest side, in pixels, of a slice's overview; slices up to this size are shown whole.
OVERVIEW_SIDE = 2048

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 in full-resolution pixels, ends exclusive


@dataclass(frozen=True)
class Window:
    """Pixels ``[y0:y1:step, x0:x1:step]`` of one slice.

    ``image`` is ``(ceil((y1 - y0) / step), ceil((x1 - x0) / step))`` in the volume's dtype;
    ``box`` the full-resolution region it covers, ``(y0, y1, x0, x1)``, corners on multiples of
    ``step`` except at the slice's far edges."""

    image: np.ndarray
    box: Box
    step: int

    def value_at(self, y: int, x: int) -> float | None:
        """The shown value at full-resolution pixel ``(y, x)``; ``None`` outside the box."""
        y0, y1, x0, x1 = self.box
        if not (y0 <= y < y1 and x0 <= x < x1):
            return None
        return float(self.image[(y - y0) // self.step, (x - x0) // self.step])


def power_of_two_at_most(ratio: float) -> int:
    """The largest power of two not above ``ratio`` (image pixels per screen pixel), at least 1."""
    return 1 << max(0, int(np.floor(np.log2(max(ratio, 1.0)))))


def overview_step(shape: tuple[int, int]) -> int:
    """Step of the overview of a ``(Y, X)`` slice: the smallest power of two that brings its
    longer side to :data:`OVERVIEW_SIDE` or less (1 for slices that size or smaller)."""
    step = 1
    while max(shape) > OVERVIEW_SIDE * step:
        step *= 2
    return step


def snap_box(box: Box, step: int, shape: tuple[int, int]) -> Box:
    """``box`` widened to corners on multiples of ``step`` and clipped to the ``(Y, X)`` slice."""
    y0, y1, x0, x1 = box
    height, width = shape
    y0, x0 = max(0, y0 // step * step), max(0, x0 // step * step)
    y1, x1 = min(height, -(-y1 // step) * step), min(width, -(-x1 // step) * step)
    return y0, max(y0, y1), x0, max(x0, x1)


class SliceLevels:
    """Reads slices of ``volume`` at the steps the viewer asks for.

    Parameters
    ----------
    volume
        The ``(Z, Y, X)`` stack; its ``overviews`` (lower-resolution copies such as OME-Zarr
        pyramid levels, each ``(Z, Y', X')`` with ``Y / Y'`` and ``X / X'`` a power of two) are
        used where they serve a step.
    keep
        How many overviews to keep (slices flipped back and forth are not read again).
    """

    def __init__(self, volume: Volume, keep: int = 4) -> None:
        self.volume = volume
        self.shape: tuple[int, int] = volume.shape[1:]
        self.overview_step = overview_step(self.shape)
        self._keep = keep
        self._overviews: OrderedDict[int, Window] = OrderedDict()
        self._levels = sorted(self._usable_levels(), key=lambda level: -level[0])  # coarsest first
        self._decodes_whole = decodes_whole_slices(volume)
        self._whole: tuple[int, np.ndarray] | None = None  # a whole-decoding file's last slice

    def _usable_levels(self) -> list[tuple[int, Any]]:
        """``(factor, data)`` of each overview whose size is the slice's over a power of two
        (rounded either way, as pyramid writers do); others are left unused."""
        levels = []
        for data in self.volume.overviews:
            z, height, width = (int(n) for n in data.shape)
            factor = 1 << max(0, round(np.log2(self.shape[0] / max(height, 1))))
            sizes = zip(self.shape, (height, width), strict=True)
            sizes_fit = all(n // factor <= m <= -(-n // factor) for n, m in sizes)
            if z == len(self.volume) and factor > 1 and sizes_fit:
                levels.append((factor, data))
        return levels

    def overview(self, z: int) -> Window:
        """Slice ``z`` whole, every :attr:`overview_step`-th pixel (kept for the last ``keep`` slices)."""
        if z in self._overviews:
            self._overviews.move_to_end(z)
            return self._overviews[z]
        window = self.window(z, (0, self.shape[0], 0, self.shape[1]), self.overview_step)
        self._overviews[z] = window
        while len(self._overviews) > self._keep:
            self._overviews.popitem(last=False)
        return window

    def window(self, z: int, box: Box, step: int) -> Window:
        """Region ``box`` of slice ``z`` (snapped with :func:`snap_box`) every ``step``-th pixel."""
        box = snap_box(box, step, self.shape)
        y0, y1, x0, x1 = box
        if self._decodes_whole:
            return Window(np.ascontiguousarray(self._whole_slice(z)[y0:y1:step, x0:x1:step]), box, step)
        factor, data = next(((f, d) for f, d in self._levels if step % f == 0), (1, self.volume.data))
        rows = slice(y0 // factor, -(-y1 // factor), step // factor)
        columns = slice(x0 // factor, -(-x1 // factor), step // factor)
        image = np.asarray(data[z, rows, columns])
        return Window(image.astype(image.dtype.newbyteorder("="), copy=False), box, step)

    def _whole_slice(self, z: int) -> np.ndarray:
        if self._whole is None or self._whole[0] != z:
            self._whole = None  # the previous slice goes before the next is decoded
            self._whole = (z, self.volume.slice(z))
        return self._whole[1]
