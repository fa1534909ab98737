"""Sizes of the connected components of a mask too large to label whole, read a piece at a time.

:func:`~.measure.label_objects` labels a whole stack at once, which needs 4 bytes per voxel and
more (a 20000 x 15000 slice: several GB). Here the mask arrives in pieces along one axis
(slices of a stack, or bands of rows of one huge slice); each piece is labelled by
``scipy.ndimage.label`` on its own, pieces are joined where objects touch across the seam
(full connectivity: a voxel touches the 3 x 3 voxels facing it in 3D, the 3 pixels facing
it in 2D), with a union-find over the pieces' labels. Only one piece's labels and the seam
are in memory, and the sizes equal those of labelling the whole mask.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from scipy import ndimage


class Forest:
    """Union-find over object ids, growing as pieces add ids; each root keeps the sum of its
    objects' values (a size, or a row of moments)."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.values: list = []

    def add(self, values: np.ndarray) -> int:
        """New ids for objects with ``values`` (one entry or row each); returns the first id."""
        first = len(self.parent)
        self.parent += range(first, first + len(values))
        self.values += list(values)
        return first

    def root(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]  # path halving
            i = self.parent[i]
        return i

    def join(self, a: int, b: int) -> None:
        a, b = self.root(a), self.root(b)
        if a != b:
            self.parent[b] = a
            self.values[a] = self.values[a] + self.values[b]

    def roots(self) -> np.ndarray:
        """Each id's root, ``(ids,)`` int64."""
        return np.array([self.root(i) for i in range(len(self.parent))], np.int64)

    def totals(self) -> np.ndarray:
        """The summed values of each object (one per root), in no particular order."""
        return np.array([self.values[i] for i in range(len(self.parent)) if self.parent[i] == i])


def touching_pairs(before: np.ndarray, after: np.ndarray) -> Iterator[tuple[int, int]]:
    """Pairs of ids (> 0) that touch across a seam: ``before`` and ``after`` are the facing
    edges (rows in 2D, slices in 3D); each element touches the ones within 1 along every axis."""
    pairs: set[tuple[int, int]] = set()
    for shift in np.ndindex(*(3,) * after.ndim):
        offset = [s - 1 for s in shift]
        a = np.roll(before, offset, axis=tuple(range(before.ndim)))
        # a rolled edge wraps around: the wrapped row or column faces nothing
        for axis, step in enumerate(offset):
            if step:
                index = [slice(None)] * a.ndim
                index[axis] = slice(0, 1) if step > 0 else slice(-1, None)
                a[tuple(index)] = 0
        both = (a > 0) & (after > 0)
        pairs.update(zip(a[both].tolist(), after[both].tolist(), strict=True))
    return iter(pairs)


def component_sizes(pieces: Iterable[np.ndarray]) -> np.ndarray:
    """Voxel (pixel) counts of the connected components of a mask given in pieces.

    Parameters
    ----------
    pieces
        Consecutive pieces of one mask along its first axis, each ``(N, ...)`` with any
        ``N >= 1`` and the same other axes: ``(1, Y, X)`` slices of a ``(Z, Y, X)`` stack, or
        ``(rows, X)`` bands of one ``(Y, X)`` slice. Non-zero is object.

    Returns
    -------
    numpy.ndarray of int64
        One size per object (26-connected in 3D, 8-connected in 2D), in no particular order.
    """
    forest, seam = Forest(), None
    for piece in pieces:
        mask = np.asarray(piece) != 0
        labels, count = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, bool))
        first = forest.add(np.bincount(labels.ravel(), minlength=count + 1)[1:])
        if seam is not None:
            for a, b in touching_pairs(seam, edge_ids(labels[0], first)):
                forest.join(a - 1, b - 1)
        seam = edge_ids(labels[-1], first)
    return forest.totals().astype(np.int64)


def edge_ids(labels: np.ndarray, first: int) -> np.ndarray:
    """A piece's edge with forest ids + 1 (``first`` is its label 1's id); 0 stays background."""
    return np.where(labels > 0, labels.astype(np.int64) + first, 0)
