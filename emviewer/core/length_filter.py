"""Rejecting predicted objects far longer than any labelled one.

Mitochondria have a bounded size, but some dark structures a network mistakes for them run
across a whole image: the myelin sheaths of an axon bundle, for instance, in a region the
training slices barely show. Such a false object is much longer than any mitochondrion the
model was trained on, so training records a limit in the model card (``MARGIN`` times the
longest labelled object) and prediction removes longer objects, slice by slice.

Length is the major axis of the ellipse with the object's second moments (an object of
``L`` one-pixel steps in a straight line measures about ``1.15 L``); training and prediction
measure the same way, so only the ratio matters. Objects are 8-connected within a slice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

__all__ = ["MARGIN", "object_lengths", "length_limit", "long_objects", "drop_long_objects", "BandedLengthFilter"]

#: The limit is this many times the longest labelled object, so that a slightly longer
#: mitochondrion than any in the training data still passes.
MARGIN = 1.5


def _label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    from scipy import ndimage

    return ndimage.label(np.asarray(mask, bool), structure=np.ones((3, 3), bool))


def _moments(labels: np.ndarray, n: int, row_offset: int = 0) -> np.ndarray:
    """Per object ``1..n`` of ``labels``: pixel count and sums of y, x, y², x², yx (rows shifted
    by ``row_offset``), ``(n, 6)`` float64: what a length needs, and additive over pieces."""
    rows, cols = np.nonzero(labels)
    ids = labels[rows, cols]
    ys, xs = rows.astype(np.float64) + row_offset, cols.astype(np.float64)
    del rows, cols
    sums = np.empty((n, 6))
    sums[:, 0] = np.bincount(ids, minlength=n + 1)[1:]
    for i, (a, b) in enumerate([(ys, None), (xs, None), (ys, ys), (xs, xs), (ys, xs)], start=1):
        sums[:, i] = np.bincount(ids, a if b is None else a * b, minlength=n + 1)[1:]  # one product at a time
    return sums


def _lengths(moments: np.ndarray) -> np.ndarray:
    """Major-axis lengths from :func:`_moments` rows (see the module docstring)."""
    count = moments[:, 0]
    my, mx = moments[:, 1] / count, moments[:, 2] / count
    vyy, vxx = moments[:, 3] / count - my**2, moments[:, 4] / count - mx**2
    vxy = moments[:, 5] / count - my * mx
    largest = (vyy + vxx) / 2 + np.sqrt(((vyy - vxx) / 2) ** 2 + vxy**2)  # of the 2x2 covariance
    return 4 * np.sqrt(np.maximum(largest, 0))


def object_lengths(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label the objects of a ``(Y, X)`` mask and measure them.

    Returns ``(labels, lengths)``: ``labels`` numbers the objects 1..n (0 = background) and
    ``lengths[i - 1]`` is the major-axis length of object ``i`` in pixels.
    """
    labels, n = _label(mask)
    return labels, _lengths(_moments(labels, n)) if n else np.zeros(0)


def length_limit(masks: Iterable[np.ndarray]) -> float | None:
    """``MARGIN`` times the longest object in labelled ``(Y, X)`` masks; ``None`` if there is none."""
    longest = max((float(object_lengths(m)[1].max(initial=0)) for m in masks), default=0.0)
    return round(MARGIN * longest, 1) if longest > 0 else None


def long_objects(mask: np.ndarray, max_length: float) -> np.ndarray:
    """The pixels of ``mask`` that belong to objects longer than ``max_length``."""
    labels, lengths = object_lengths(mask)
    too_long = np.flatnonzero(lengths > max_length) + 1
    return np.isin(labels, too_long) if len(too_long) else np.zeros(labels.shape, bool)


def drop_long_objects(probability: np.ndarray, max_length: float | None, cut: float = 0.5) -> np.ndarray:
    """Set to 0 the probability of every object (pixels >= ``cut``) longer than ``max_length``.

    Works on probabilities, not masks, so that everything downstream (masks, saved
    probabilities, the viewer, a server's answer) agrees. ``None`` keeps every object.
    """
    if max_length is None:
        return probability
    reject = long_objects(probability >= cut, max_length)
    return (
        np.where(reject, np.float32(0), probability).astype(probability.dtype, copy=False)
        if reject.any()
        else probability
    )


class BandedLengthFilter:
    """:func:`drop_long_objects` for a slice too large to hold, given as bands of rows.

    :meth:`add` takes the bands top to bottom: each is kept in a temporary file (not in
    memory), labelled on its own and joined to the band above where objects touch (as
    :mod:`.component_sizes` does), and its objects' moments are summed per joined object.
    :meth:`bands` then reads them back with every object longer than ``max_length`` at
    probability 0: the same pixels as filtering the whole slice.

    Parameters
    ----------
    max_length
        Longest object kept, in pixels (see :func:`object_lengths`).
    cut
        Probabilities at or above this are object.
    """

    def __init__(self, max_length: float, cut: float = 0.5) -> None:
        import tempfile

        from .component_sizes import Forest

        self._limit, self._cut = max_length, cut
        self._file = tempfile.TemporaryFile(prefix="emviewer-band-")  # noqa: SIM115 (closed by bands() or close())
        self._forest = Forest()
        self._bands: list[tuple[tuple[int, int], int]] = []  # (shape, first forest id)
        self._seam: np.ndarray | None = None
        self._rows = 0

    def add(self, probability: np.ndarray) -> None:
        """The next band of rows, ``(rows, X)`` float32 probabilities."""
        from .component_sizes import edge_ids, touching_pairs

        band = np.ascontiguousarray(probability, np.float32)
        self._file.write(band.tobytes())
        labels, n = _label(band >= self._cut)
        first = self._forest.add(_moments(labels, n, self._rows))
        if self._seam is not None:
            for a, b in touching_pairs(self._seam, edge_ids(labels[0], first)):
                self._forest.join(a - 1, b - 1)
        self._seam = edge_ids(labels[-1], first)
        self._bands.append((band.shape, first))
        self._rows += len(band)

    def bands(self) -> Iterator[np.ndarray]:
        """The bands as added, long objects removed; closes the temporary file at the end."""
        forest = self._forest
        roots = forest.roots() if forest.parent else np.zeros(0, np.int64)
        lengths = _lengths(np.array(forest.values)[roots]) if len(roots) else np.zeros(0)
        too_long = lengths > self._limit  # per id, through its root's summed moments
        self._file.seek(0)
        try:
            for shape, first in self._bands:
                band = np.empty(shape, np.float32)
                self._file.readinto(band.data)  # straight into the array: no second copy of the band
                if too_long.any():
                    labels, _ = _label(band >= self._cut)
                    reject = np.concatenate([[False], too_long[first:]])
                    band[reject[labels]] = 0.0
                yield band
        finally:
            self._file.close()

    def close(self) -> None:
        """Drop the bands (e.g. on cancel)."""
        self._file.close()
