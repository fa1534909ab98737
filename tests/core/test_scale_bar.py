"""Scale bars burnt into figures: a round length, white with a dark outline, lower left."""

from __future__ import annotations

import numpy as np
import pytest

from emviewer.core.scale_bar import draw_scale_bar, format_length, scale_bar_length


@pytest.mark.parametrize(
    "width_nm, expected",
    [(1000, 200), (3584, 500), (5000, 1000), (9999, 1000), (10_000, 2000), (40, 5), (3.3, 0.5)],
)
def test_length_is_a_round_one_near_a_fifth_of_the_width(width_nm, expected):
    assert scale_bar_length(width_nm) == pytest.approx(expected)


def test_a_width_that_is_no_length_is_refused():
    for bad in (0, -5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive"):
            scale_bar_length(bad)


def test_labels_in_nm_below_a_micrometre():
    assert format_length(500) == "500 nm" and format_length(2000) == "2 µm" and format_length(1500) == "1.5 µm"


@pytest.mark.parametrize("image", [np.full((400, 600), 128, np.uint8), np.full((400, 600, 3), 128, np.uint8)])
def test_bar_is_drawn_in_the_lower_left_corner_with_a_dark_outline(image):
    drawn = draw_scale_bar(image, pixel_nm=10.0)  # 6 µm wide: a 1 µm bar of 100 pixels
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert np.array_equal(image, np.full_like(image, 128))  # the input is left as it was
    grey = drawn if drawn.ndim == 2 else drawn[..., 0]
    changed = np.argwhere(grey != 128)
    assert changed[:, 0].min() > 300 and changed[:, 1].max() < 300  # bottom quarter, left half
    bar_row = grey[grey.shape[0] - 16 - 3]  # inside the bar (margin 16, 4 pixels thick at 400 px)
    white = np.flatnonzero(bar_row == 255)
    assert 95 <= white.size <= 101 and white.min() < 25  # 100 pixels long, from the left margin
    assert (grey == 0).sum() > 100 and (grey == 255).sum() > 300  # dark outline and white bar + label


def test_no_pixel_size_leaves_the_image_unchanged():
    image = np.full((64, 64), 7, np.uint8)
    assert draw_scale_bar(image, None) is image
    with pytest.raises(ValueError, match="uint8"):
        draw_scale_bar(image.astype(np.uint16), 5.0)
