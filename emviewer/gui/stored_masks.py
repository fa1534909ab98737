"""A mask stack on disk shown as the session's ``{z: (Y, X) bool}`` masks, read a slice at a time."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, MutableMapping

import numpy as np

from ..core.display_levels import Box, SliceLevels
from ..core.volume import Volume

#: Slices kept after reading: the one shown, its neighbours, and one being painted on.
KEPT = 4


class StoredMasks(MutableMapping[int, np.ndarray]):
    """``{z: (Y, X) bool}`` over a ``(Z, Y, X)`` mask stack (non-zero is object), e.g. an OME-Zarr
    prediction store of a volume too large to hold: each slice is read when asked for, the last
    :data:`KEPT` are kept (the same array each time while kept), and hand edits stay in memory.
    The viewer asks only for what it shows (:meth:`window`), from the store's pyramid when zoomed out.

    Parameters
    ----------
    volume
        The mask stack, the shape of the open image stack.
    slices
        The slices (0-based) that hold masks; the others have none.
    """

    def __init__(self, volume: Volume, slices: Iterable[int]) -> None:
        self._volume, self._slices = volume, set(slices)
        self._changed: dict[int, np.ndarray] = {}
        self._read: OrderedDict[int, np.ndarray] = OrderedDict()
        self._levels = SliceLevels(volume)

    def __getitem__(self, z: int) -> np.ndarray:
        if z in self._changed:
            return self._changed[z]
        if z not in self._slices:
            raise KeyError(z)
        if z not in self._read:
            self._read[z] = self._volume.slice(z) > 0
            while len(self._read) > KEPT:
                self._read.popitem(last=False)
        self._read.move_to_end(z)
        return self._read[z]

    def __contains__(self, z: object) -> bool:
        return z in self._slices

    def window(self, z: int, box: Box, step: int) -> np.ndarray:
        """Rows ``y0:y1:step`` and columns ``x0:x1:step`` of slice ``z``'s mask (``box`` is
        ``(y0, y1, x0, x1)``, snapped as :meth:`~emviewer.core.display_levels.SliceLevels.window`
        snaps it), bool; only that part is read from the stack (a coarser pyramid level where
        one serves ``step``). Raises ``KeyError`` for a slice without masks."""
        if z not in self._slices:
            raise KeyError(z)
        if z in self._changed:  # edited by hand: the store's pyramid no longer shows it
            y0, y1, x0, x1 = box
            return self._changed[z][y0:y1:step, x0:x1:step]
        return self._levels.window(z, box, step).image > 0

    def __setitem__(self, z: int, mask: np.ndarray) -> None:
        self._changed[z] = mask
        self._slices.add(z)

    def __delitem__(self, z: int) -> None:
        if z not in self._slices:
            raise KeyError(z)
        self._slices.discard(z)
        self._changed.pop(z, None)
        self._read.pop(z, None)

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._slices))

    def __len__(self) -> int:
        return len(self._slices)
