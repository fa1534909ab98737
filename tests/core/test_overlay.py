"""The overlay renderer and display scaling that every export (and later the GUI) shares."""

from __future__ import annotations

import numpy as np

from emviewer.core.overlay import StackRenderer, display_range, render_overlay, to_uint8
from emviewer.core.volume import from_array


def test_overlay_colours_only_the_mask():
    grey = np.full((4, 4), 100, np.uint8)
    mask = np.zeros((4, 4), np.uint8)
    mask[1, 2] = 255
    rgb = render_overlay(grey, {"mito": mask}, opacity=1.0, colours={"mito": (255, 0, 0)})
    assert rgb.shape == (4, 4, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[1, 2]) == (255, 0, 0)
    assert np.all(rgb[0, 0] == 100)
    half = render_overlay(grey, {"mito": mask}, opacity=0.5, colours={"mito": (255, 0, 0)})
    assert tuple(half[1, 2]) == (178, 50, 50)


def test_display_scaling_of_16_bit_data():
    image = np.linspace(1000, 5000, 10000).reshape(100, 100).astype(np.uint16)
    low, high = display_range([image], (0, 100))
    assert (low, high) == (1000, 5000)
    scaled = to_uint8(image, low, high)
    assert scaled.min() == 0 and scaled.max() == 255


def test_constant_image_does_not_divide_by_zero():
    low, high = display_range([np.full((5, 5), 7.0)])
    assert high > low
    assert np.all(to_uint8(np.full((5, 5), 7.0), low, high) == 0)


def test_a_thinned_display_is_every_step_th_pixel_of_the_full_one():
    rng = np.random.default_rng(3)
    stack = rng.integers(0, 255, (2, 101, 77), dtype=np.uint8)
    masks = {"mito": from_array((stack > 128).astype(np.uint8) * 255, "masks")}
    renderer = StackRenderer(from_array(stack, "stack"), masks)
    full, thin = renderer.overlay(1), renderer.overlay(1, step=4)
    assert thin.shape == (26, 20, 3)
    np.testing.assert_array_equal(thin, full[::4, ::4])
