"""The model input path: intensity normalisation to [0, 1] and the 1/3/5-slice context."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .overlay import display_range, sample_slices

#: Percentiles mapped to 0 and 1 for images that are not 8-bit.
INPUT_PERCENTILES = (0.1, 99.9)


def input_levels(volume, sample: int = 8) -> tuple[float, float]:
    """The intensity range mapped to [0, 1]: the full range for uint8, else stack percentiles.

    8-bit EM is used as it is (salt-and-pepper noise cannot shift the mapping); other
    depths are scaled by percentiles of up to ``sample`` evenly spaced slices.
    """
    if volume.dtype == np.uint8:
        return 0.0, 255.0
    return display_range(sample_slices(volume, sample), INPUT_PERCENTILES)


def normalise(image: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    """Scale ``image`` so that ``levels`` map to 0 and 1 (clipped), as float32."""
    low, high = levels
    return np.clip((np.asarray(image, np.float32) - low) / (high - low), 0.0, 1.0)


def reflect_indices(indices: np.ndarray, length: int) -> np.ndarray:
    """Map indices outside ``[0, length)`` back inside by mirroring at the ends (edge not repeated).

    Same rule as ``numpy.pad(mode="reflect")``; with ``length == 1`` every index maps to 0.
    """
    indices = np.asarray(indices)
    if length == 1:
        return np.zeros_like(indices)
    period = 2 * (length - 1)
    folded = np.mod(indices, period)
    return np.where(folded < length, folded, period - folded)


def context_indices(z: int, n_slices: int, context: int) -> list[int]:
    """Slices feeding the model for slice ``z``: ``z`` and its neighbours, mirrored at the ends.

    ``context_indices(0, 10, 5) == [2, 1, 0, 1, 2]``.
    """
    if context % 2 != 1:
        raise ValueError(f"context must be odd (1, 3 or 5), got {context}")
    half = context // 2
    return [int(i) for i in reflect_indices(np.arange(z - half, z + half + 1), n_slices)]


def context_input(slices: Sequence[np.ndarray], levels: tuple[float, float]) -> np.ndarray:
    """Stack normalised ``(Y, X)`` slices as channels: ``(Y, X, C)`` float32 in [0, 1]."""
    return np.stack([normalise(s, levels) for s in slices], axis=-1)
