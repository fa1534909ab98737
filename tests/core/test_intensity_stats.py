"""Tissue statistics: NaN, borders and saturation left out; the data rectangle found; sampling."""

from __future__ import annotations

import numpy as np
from tissue_variants import banded_with_border, float_with_nan

from emviewer.core.intensity_stats import SAMPLE_PIXELS, sample_slices, stack_stats, tissue_stats
from emviewer.core.volume import from_array


def test_nan_inf_border_and_saturation_are_left_out(tissue):
    plain = tissue_stats(list(tissue))
    holes = float_with_nan(tissue.astype(np.float32), fraction=0.016)
    holes[0, :5, :5] = np.inf
    stats = tissue_stats(list(holes))
    assert np.isfinite([stats.low, stats.high]).all()
    assert 0.014 < stats.nonfinite_fraction < 0.018
    saturated = tissue.copy()
    saturated[:, 100:160, 100:160] = 255  # a blown-out run inside the tissue
    sat = tissue_stats(list(saturated))
    assert abs(sat.high - plain.high) <= 2 and abs(sat.low - plain.low) <= 2
    _, inside = banded_with_border(tissue)
    bordered = tissue_stats(list(banded_with_border(tissue)[0]))
    assert bordered.low >= 30000 and bordered.excluded_fraction > 0.55


def test_blank_and_all_nan_stacks_do_not_break():
    assert tissue_stats([np.zeros((32, 32), np.uint8)]).high > tissue_stats([np.zeros((32, 32), np.uint8)]).low
    stats = tissue_stats([np.full((32, 32), np.nan, np.float32)])
    assert (stats.low, stats.high, stats.nonfinite_fraction) == (0.0, 1.0, 1.0)


def test_the_data_rectangle_is_found_exactly_even_on_large_strided_slices(tissue):
    canvas = np.zeros((1700, 1500), np.uint16)  # more than SAMPLE_PIXELS: statistics are strided
    canvas[301:685, 517:901] = 30000 + tissue[0].astype(np.uint16) * 16
    assert tissue_stats([canvas]).box == (301, 685, 517, 901)
    holes = np.full((1700, 1500), np.nan, np.float32)  # a NaN frame, as aligned float stacks have
    holes[100:1600, 200:1400] = np.resize(tissue[0], (1500, 1200))
    assert tissue_stats([holes]).box == (100, 1600, 200, 1400)
    assert tissue_stats([tissue[0]]).box == (0, 384, 0, 384)


def test_sample_slices_are_evenly_spaced_and_include_both_ends():
    stack = np.arange(20, dtype=np.uint8)[:, None, None] * np.ones((1, 4, 4), np.uint8)  # slice z holds z
    assert [int(s[0, 0]) for s in sample_slices(from_array(stack), 5)] == [0, 4, 9, 14, 19]
    assert [int(s[0, 0]) for s in sample_slices(from_array(stack[:3]), 8)] == [0, 1, 2]


def test_small_slices_are_sampled_in_greater_number(tissue):
    """A stack of small patches has too few pixels in 8 slices: more are read, up to the budget."""
    patches = tissue[:, :64, :64]
    stack = np.concatenate([np.zeros((40, 64, 64), np.uint8) + 128, patches, patches])  # 46 patches
    assert SAMPLE_PIXELS * 8 > 46 * 64 * 64  # so every patch is sampled, tissue included
    assert stack_stats(from_array(stack)) == tissue_stats(list(stack))


def _trim_line_by_line(image, box, border_values):
    """The trimming rule read one line at a time, as it was first written."""
    y0, y1, x0, x1 = box

    def empty(line):
        return not np.any(~np.isin(line, border_values) & np.isfinite(line))

    while y1 - y0 > 1 and empty(image[y0, x0:x1]):
        y0 += 1
    while y1 - y0 > 1 and empty(image[y1 - 1, x0:x1]):
        y1 -= 1
    while x1 - x0 > 1 and empty(image[y0:y1, x0]):
        x0 += 1
    while x1 - x0 > 1 and empty(image[y0:y1, x1 - 1]):
        x1 -= 1
    return y0, y1, x0, x1


def test_trimming_in_blocks_keeps_the_line_by_line_rule(monkeypatch):
    from emviewer.core import intensity_stats

    monkeypatch.setattr(intensity_stats, "TRIM_BLOCK", 7)  # several blocks per side
    rng = np.random.default_rng(0)
    for _ in range(200):
        height, width = (int(n) for n in rng.integers(2, 120, 2))
        image = np.zeros((height, width), np.float32)
        if rng.random() < 0.9:
            a, b = sorted(rng.integers(0, height, 2))
            c, d = sorted(rng.integers(0, width, 2))
            image[a : b + 1, c : d + 1] = rng.random((b + 1 - a, d + 1 - c)) + 1
        if rng.random() < 0.3:
            image[rng.integers(0, height), rng.integers(0, width)] = np.nan
        y0, x0 = int(rng.integers(0, height)), int(rng.integers(0, width))
        box = (y0, int(rng.integers(y0 + 1, height + 1)), x0, int(rng.integers(x0 + 1, width + 1)))
        assert intensity_stats._trim_box(image, box, [0.0]) == _trim_line_by_line(image, box, [0.0])
