"""Corruptions used for robustness: fractions, ranges and dtypes as promised."""

from __future__ import annotations

import numpy as np
import pytest

from emviewer.core.noise import box_blur, gaussian_noise, salt_and_pepper


def test_salt_and_pepper_hits_the_requested_fraction():
    rng = np.random.default_rng(0)
    image = np.full((400, 400), 128, np.uint8)
    noisy = salt_and_pepper(image, 0.1, rng)
    changed = noisy != 128
    assert noisy.dtype == np.uint8 and abs(changed.mean() - 0.1) < 0.005
    assert set(np.unique(noisy[changed])) == {0, 255}
    assert abs((noisy == 255).mean() - 0.05) < 0.005
    floats = salt_and_pepper(np.full((50, 50), 0.5, np.float32), 0.2, rng)
    assert set(np.unique(floats)) <= {0.0, 0.5, 1.0}
    with pytest.raises(ValueError):
        salt_and_pepper(image, 1.5, rng)


def test_gaussian_noise_keeps_dtype_and_spread():
    rng = np.random.default_rng(1)
    noisy = gaussian_noise(np.full((300, 300), 100, np.uint8), 10.0, rng)
    assert noisy.dtype == np.uint8 and abs(noisy.astype(float).std() - 10) < 0.5


def test_box_blur_is_a_local_mean():
    image = np.zeros((5, 5), np.float32)
    image[2, 2] = 9
    blurred = box_blur(image, 1)
    assert blurred[2, 2] == pytest.approx(1.0) and blurred[1, 1] == pytest.approx(1.0) and blurred[0, 0] == 0
    assert box_blur(image, 0) is not image
