"""Metrics on cases computed by hand, and the threshold sweep against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emviewer.core.metrics import best_threshold, mean_scores, pooled_scores, score, threshold_counts


def test_hand_computed_case():
    truth = np.array([[1, 1, 0, 0], [1, 1, 0, 0]], bool)  # 4 object pixels
    pred = np.array([[1, 0, 0, 0], [1, 1, 1, 0]], bool)  # 3 hits, 1 false alarm, 1 miss
    s = score(pred, truth)
    assert (s.tp, s.fp, s.fn) == (3, 1, 1)
    assert s.precision == pytest.approx(3 / 4)
    assert s.recall == pytest.approx(3 / 4)
    assert s.f1 == pytest.approx(6 / 8)
    assert s.iou == pytest.approx(3 / 5)


def test_empty_cases():
    empty = np.zeros((3, 3), bool)
    assert score(empty, empty).f1 == 1.0 and score(empty, empty).iou == 1.0
    false_alarm = score(np.eye(3, dtype=bool), empty)
    assert (false_alarm.precision, false_alarm.recall, false_alarm.f1) == (0.0, 1.0, 0.0)
    all_missed = score(empty, np.eye(3, dtype=bool))
    assert (all_missed.precision, all_missed.recall, all_missed.f1, all_missed.iou) == (1.0, 0.0, 0.0, 0.0)


def test_mean_is_per_image_and_pooled_is_per_pixel():
    perfect = score(np.ones((2, 2), bool), np.ones((2, 2), bool))
    half = score(np.array([[1, 1, 0, 0]], bool), np.array([[1, 0, 1, 0]], bool))  # F1 0.5
    assert mean_scores([perfect, half]).f1 == pytest.approx(0.75)
    assert pooled_scores([perfect, half]).f1 == pytest.approx(2 * 5 / (2 * 5 + 1 + 1))
    assert mean_scores([perfect, half]).tp == 5


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError):
        score(np.zeros((2, 2)), np.zeros((2, 3)))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 400))
def test_sweep_matches_brute_force(seed, n):
    rng = np.random.default_rng(seed)
    prob = np.round(rng.random(n), 2).astype(np.float32)  # ties on purpose
    truth = rng.random(n) < 0.3
    thresholds = np.array([0.0, 0.1, 0.25, 0.5, 0.73, 0.99, 1.0], np.float32)
    counts = threshold_counts(prob, truth, thresholds)
    for t, (tp, fp, fn) in zip(thresholds, counts, strict=True):
        s = score(prob >= t, truth)
        assert (tp, fp, fn) == (s.tp, s.fp, s.fn)


def test_best_threshold_on_a_separable_case():
    truth = np.array([0, 0, 0, 1, 1], bool)
    prob = np.array([0.1, 0.2, 0.35, 0.6, 0.9], np.float32)
    t, f1 = best_threshold([prob], [truth], np.array([0.3, 0.5, 0.7]))
    assert t == 0.5 and f1 == 1.0
