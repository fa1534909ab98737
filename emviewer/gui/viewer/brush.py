"""Brush geometry for the mask editor: the pixels a stroke segment covers and flood-fill regions."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 (half-open)


def capsule(
    shape: tuple[int, int], start: tuple[int, int], end: tuple[int, int], diameter: float
) -> tuple[Box, np.ndarray] | None:
    """Pixels whose centre lies within ``diameter / 2`` of the segment ``start``-``end``.

    Parameters
    ----------
    shape
        ``(Y, X)`` of the slice; the result is clipped to it.
    start, end
        ``(x, y)`` pixel indices (the brush is centred on pixel centres).
    diameter
        Brush diameter in pixels.

    Returns
    -------
    ``(box, inside)``: the box ``(y0, y1, x0, x1)`` and a ``(y1 - y0, x1 - x0)`` bool array, or
    None when the segment's brush misses the slice.
    """
    radius = diameter / 2
    (xa, ya), (xb, yb) = start, end
    y0, x0 = max(int(np.ceil(min(ya, yb) - radius)), 0), max(int(np.ceil(min(xa, xb) - radius)), 0)
    y1 = min(int(np.floor(max(ya, yb) + radius)) + 1, shape[0])
    x1 = min(int(np.floor(max(xa, xb) + radius)) + 1, shape[1])
    if y0 >= y1 or x0 >= x1:
        return None
    yy, xx = np.ogrid[y0:y1, x0:x1]
    dx, dy = xb - xa, yb - ya
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else np.clip(((xx - xa) * dx + (yy - ya) * dy) / length2, 0.0, 1.0)
    inside = (xx - xa - t * dx) ** 2 + (yy - ya - t * dy) ** 2 <= radius * radius + 1e-9
    return (y0, y1, x0, x1), np.broadcast_to(inside, (y1 - y0, x1 - x0))


def background_region(mask: np.ndarray, x: int, y: int) -> np.ndarray | None:
    """The background pixels 4-connected to ``(x, y)`` in a ``(Y, X)`` bool mask, or None when
    that pixel is already inside the object (labelled with :func:`scipy.ndimage.label`)."""
    if mask[y, x]:
        return None
    labels, _ = ndimage.label(~mask)
    return labels == labels[y, x]


def union(a: Box | None, b: Box) -> Box:
    if a is None:
        return b
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])
