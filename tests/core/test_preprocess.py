"""Model input path: normalisation, mirrored context at the stack ends."""

from __future__ import annotations

import numpy as np

from emviewer.core.preprocess import context_indices, normalise, reflect_indices


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


def test_normalise_scales_clips_and_fills_nan_with_neutral_grey():
    values = np.array([[1000.0, 2000.0], [3000.0, np.nan]], np.float32)
    scaled = normalise(values, (1500.0, 2500.0))
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, [[0.0, 0.5], [1.0, 0.5]])
