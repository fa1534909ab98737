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

from collections.abc import Iterable

import numpy as np

__all__ = ["MARGIN", "object_lengths", "length_limit", "long_objects", "drop_long_objects"]

#: The limit is this many times the longest labelled object, so that a slightly longer
#: mitochondrion than any in the training data still passes.
MARGIN = 1.5


def object_lengths(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label the objects of a ``(Y, X)`` mask and measure them.

    Returns ``(labels, lengths)``: ``labels`` numbers the objects 1..n (0 = background) and
    ``lengths[i - 1]`` is the major-axis length of object ``i`` in pixels.
    """
    from scipy import ndimage

    labels, n = ndimage.label(np.asarray(mask, bool), structure=np.ones((3, 3), bool))
    if n == 0:
        return labels, np.zeros(0)
    ys, xs = np.nonzero(labels)
    ids = labels[ys, xs]
    ys, xs = ys.astype(np.float64), xs.astype(np.float64)
    count = np.bincount(ids, minlength=n + 1)[1:]

    def mean(values: np.ndarray) -> np.ndarray:
        return np.bincount(ids, values, minlength=n + 1)[1:] / count

    my, mx = mean(ys), mean(xs)
    vyy, vxx, vxy = mean(ys * ys) - my**2, mean(xs * xs) - mx**2, mean(ys * xs) - my * mx
    largest = (vyy + vxx) / 2 + np.sqrt(((vyy - vxx) / 2) ** 2 + vxy**2)  # of the 2x2 covariance
    return labels, 4 * np.sqrt(np.maximum(largest, 0))


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
