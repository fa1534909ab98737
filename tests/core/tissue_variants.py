"""One tissue as different microscopes and exports deliver it (for the intensity tests)."""

from __future__ import annotations

import numpy as np


def squeezed(images):
    return np.rint(100 + images * (50 / 255)).astype(np.uint8)


def banded_with_border(images, pad=190):
    """uint16 in a 4096-wide band inside a zero border covering 60 % of the canvas."""
    z, y, x = images.shape
    canvas = np.zeros((z, y + 2 * pad, x + 2 * pad), np.uint16)
    canvas[:, pad:-pad, pad:-pad] = 30000 + images.astype(np.uint16) * 16
    return canvas, (slice(None), slice(pad, -pad), slice(pad, -pad))


def float_with_nan(images, fraction=0.01):
    values = images.astype(np.float32) / 255 * 3.7 - 1.2
    values[np.random.default_rng(0).random(values.shape) < fraction] = np.nan
    return values
