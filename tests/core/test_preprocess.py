"""Model input path: normalisation, mirrored context at the stack ends."""

from __future__ import annotations

import numpy as np

from emviewer.core.preprocess import context_indices, input_levels, normalise, reflect_indices
from emviewer.core.volume import from_array


def test_context_mirrors_at_both_ends():
    assert context_indices(0, 10, 5) == [2, 1, 0, 1, 2]
    assert context_indices(9, 10, 5) == [7, 8, 9, 8, 7]
    assert context_indices(4, 10, 3) == [3, 4, 5]
    assert context_indices(0, 1, 5) == [0, 0, 0, 0, 0]
    assert context_indices(0, 2, 5) == [0, 1, 0, 1, 0]


def test_reflect_matches_numpy_pad():
    values = np.arange(6)
    for offset in range(-13, 20):
        assert values[reflect_indices(np.array([offset]), 6)][0] == np.pad(values, 14, mode="reflect")[offset + 14]


def test_levels_keep_8_bit_and_stretch_16_bit():
    assert input_levels(from_array(np.array([[0, 50], [100, 200]], np.uint8))) == (0.0, 255.0)
    sixteen = np.linspace(1000, 3000, 10000).reshape(100, 100).astype(np.uint16)
    low, high = input_levels(from_array(sixteen))
    assert 1000 <= low < 1010 and 2990 < high <= 3000
    scaled = normalise(sixteen, (low, high))
    assert scaled.dtype == np.float32 and scaled.min() == 0 and scaled.max() == 1
