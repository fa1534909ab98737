"""The model input path: intensity normalisation to [0, 1] and the 1/3/5-slice context."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .intensity import levels_for
from .intensity_stats import stack_stats


def input_levels(volume, reference: Sequence[float] | None = None, sample: int = 8) -> tuple[float, float]:
    """The intensities of a ``(Z, Y, X)`` stack that the model input maps to 0 and 1.

    The tissue's robust percentiles over up to ``sample`` evenly spaced slices land on the
    model's ``reference`` levels, by one rule for every dtype (see :mod:`.intensity`).
    """
    return levels_for(stack_stats(volume, sample), reference)


def normalise(image: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    """Scale ``image`` so that ``levels`` map to 0 and 1 (clipped), as float32 in [0, 1].

    NaN and infinite pixels become 0.5 (neutral grey; prediction marks them background).
    """
    low, high = levels
    scaled = (np.asarray(image, np.float32) - np.float32(low)) * np.float32(1.0 / (high - low))
    if np.asarray(image).dtype.kind == "f":
        scaled = np.where(np.isfinite(scaled), scaled, np.float32(0.5))
    return np.clip(scaled, 0.0, 1.0)


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
