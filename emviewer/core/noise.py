"""Corruptions for robustness studies and training augmentation: salt-and-pepper, Gaussian, blur."""

from __future__ import annotations

import numpy as np


def salt_and_pepper(
    image: np.ndarray, fraction: float, rng: np.random.Generator, low: float | None = None, high: float | None = None
) -> np.ndarray:
    """Set ``fraction`` of the pixels to the darkest or brightest value, half each.

    ``low`` / ``high`` default to the dtype's range for integers and to 0 / 1 for floats
    (the model input range). Returns a new array of the same shape and dtype.
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        low, high = info.min if low is None else low, info.max if high is None else high
    else:
        low, high = 0.0 if low is None else low, 1.0 if high is None else high
    out = image.copy()
    hit = rng.random(image.shape) < fraction
    salt = rng.random(image.shape) < 0.5
    out[hit & salt] = high
    out[hit & ~salt] = low
    return out


def gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add zero-mean Gaussian noise of standard deviation ``sigma`` (in the image's units).

    Integer images are clipped to their dtype's range and keep their dtype.
    """
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return np.clip(np.rint(noisy), info.min, info.max).astype(image.dtype)
    return noisy.astype(image.dtype)


def box_blur(image: np.ndarray, radius: int = 1) -> np.ndarray:
    """Mean over a ``(2r+1)``-pixel square on the first two axes (edges repeated), as float32."""
    if radius <= 0:
        return image.astype(np.float32)
    size = 2 * radius + 1
    padded = np.pad(
        image.astype(np.float32), ((radius, radius), (radius, radius)) + ((0, 0),) * (image.ndim - 2), mode="edge"
    )
    # Running sums along each axis: two passes of O(pixels) regardless of the radius.
    rows = np.cumsum(padded, axis=0)
    rows = np.concatenate([rows[size - 1 : size], rows[size:] - rows[:-size]], axis=0)
    cols = np.cumsum(rows, axis=1)
    cols = np.concatenate([cols[:, size - 1 : size], cols[:, size:] - cols[:, :-size]], axis=1)
    return cols / (size * size)
