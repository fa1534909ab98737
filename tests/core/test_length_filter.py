"""Rejecting objects far longer than any labelled one: lengths, the limit, the veto."""

from __future__ import annotations

import numpy as np
import pytest

from emviewer.core.length_filter import MARGIN, drop_long_objects, length_limit, long_objects, object_lengths


def _bar_and_disk(size=200):
    mask = np.zeros((size, size), bool)
    mask[20:23, 10:190] = True  # a bar 180 px long, 3 px thick
    yy, xx = np.mgrid[:size, :size]
    mask |= (yy - 120) ** 2 + (xx - 80) ** 2 <= 15**2  # a disk of radius 15
    return mask


def test_lengths_are_major_axes_of_each_object():
    labels, lengths = object_lengths(_bar_and_disk())
    assert labels.max() == 2 and len(lengths) == 2
    bar, disk = lengths[labels[21, 100] - 1], lengths[labels[120, 80] - 1]
    assert bar == pytest.approx(180 * 2 / np.sqrt(3), rel=0.01)  # uniform bar: 4 sqrt(L^2 / 12)
    assert disk == pytest.approx(30, rel=0.03)  # a disk's major axis is its diameter


def test_diagonal_neighbours_form_one_object():
    diagonal = np.eye(50, dtype=bool)
    labels, lengths = object_lengths(diagonal)
    assert labels.max() == 1 and lengths[0] > 50


def test_empty_mask_has_no_objects_and_no_limit():
    labels, lengths = object_lengths(np.zeros((30, 40), bool))
    assert labels.max() == 0 and lengths.size == 0
    assert length_limit([np.zeros((30, 40), bool)]) is None


def test_limit_is_margin_times_the_longest_labelled_object():
    small = np.zeros((200, 200), bool)
    small[50:60, 50:60] = True
    longest = object_lengths(_bar_and_disk())[1].max()
    assert length_limit([small, _bar_and_disk()]) == pytest.approx(MARGIN * longest, abs=0.1)


def test_veto_zeroes_only_the_objects_over_the_limit():
    probability = np.where(_bar_and_disk(), np.float32(0.9), np.float32(0.2))
    probability[150, 150] = 0.4  # under the cut: not an object, left alone
    kept = drop_long_objects(probability, max_length=100)
    assert kept.dtype == np.float32
    assert np.all(kept[20:23, 10:190] == 0)  # the bar is rejected
    assert (
        kept[120, 80] == pytest.approx(0.9)
        and kept[150, 150] == pytest.approx(0.4)
        and kept[0, 0] == pytest.approx(0.2)
    )
    assert drop_long_objects(probability, max_length=None) is probability
    assert drop_long_objects(probability, max_length=500) is probability  # nothing that long
    np.testing.assert_array_equal(long_objects(_bar_and_disk(), 100), kept == 0)
