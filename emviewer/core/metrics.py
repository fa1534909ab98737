"""Pixel-wise precision, recall, F1 and IoU per image, their mean, and threshold sweeps.

A ratio whose denominator is zero counts as 1: an image with no object in its label and
none predicted scores 1 everywhere (nothing to find, nothing wrongly found), while one with
false detections on an empty label scores precision, F1 and IoU 0 and recall 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Scores:
    """Counts and scores of one image (or the mean over images, where counts are sums)."""

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    iou: float

    def as_dict(self) -> dict:
        return asdict(self)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 1.0


def scores_from_counts(tp: int, fp: int, fn: int) -> Scores:
    """Scores from true positive, false positive and false negative pixel counts."""
    return Scores(
        tp=int(tp),
        fp=int(fp),
        fn=int(fn),
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        iou=_ratio(tp, tp + fp + fn),
    )


def score(prediction: np.ndarray, truth: np.ndarray) -> Scores:
    """Scores of a boolean prediction against a boolean truth of the same shape."""
    prediction, truth = np.asarray(prediction, bool), np.asarray(truth, bool)
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction {prediction.shape} and truth {truth.shape} differ in shape")
    tp = int(np.count_nonzero(prediction & truth))
    fp = int(np.count_nonzero(prediction)) - tp
    fn = int(np.count_nonzero(truth)) - tp
    return scores_from_counts(tp, fp, fn)


def mean_scores(per_image: Sequence[Scores]) -> Scores:
    """Mean of each score over images; the counts are summed."""
    if not per_image:
        raise ValueError("no images to average")

    def total(name: str) -> int:
        return int(sum(getattr(s, name) for s in per_image))

    def mean(name: str) -> float:
        return float(np.mean([getattr(s, name) for s in per_image]))

    return Scores(
        tp=total("tp"),
        fp=total("fp"),
        fn=total("fn"),
        precision=mean("precision"),
        recall=mean("recall"),
        f1=mean("f1"),
        iou=mean("iou"),
    )


def pooled_scores(per_image: Sequence[Scores]) -> Scores:
    """Scores of all pixels of all images taken together (micro average)."""
    return scores_from_counts(sum(s.tp for s in per_image), sum(s.fp for s in per_image), sum(s.fn for s in per_image))


def default_thresholds(step: float = 0.01) -> np.ndarray:
    return np.round(np.arange(step, 1.0, step), 6)


def threshold_counts(probability: np.ndarray, truth: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``(len(thresholds), 3)`` array of tp, fp, fn when predicting ``probability >= t``.

    One sort of the probabilities serves all thresholds, so a fine sweep costs about as
    much as a single threshold.
    """
    probability = np.asarray(probability, np.float32).ravel()
    truth = np.asarray(truth, bool).ravel()
    order = np.argsort(probability, kind="stable")
    p_sorted, t_sorted = probability[order], truth[order]
    # Pixels at or above a threshold form a suffix of the sorted array.
    positives_from = np.cumsum(t_sorted[::-1])[::-1]
    start = np.searchsorted(p_sorted, np.asarray(thresholds, np.float32), side="left")
    n, total_true = p_sorted.size, int(t_sorted.sum())
    tp = np.where(start < n, positives_from[np.minimum(start, n - 1)], 0)
    predicted = n - start
    return np.stack([tp, predicted - tp, total_true - tp], axis=1)


def threshold_sweep(
    probabilities: Iterable[np.ndarray], truths: Iterable[np.ndarray], thresholds: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean per-image F1 for each threshold.

    Returns ``(thresholds, mean_f1)``; ``thresholds[argmax(mean_f1)]`` is the best one.
    """
    thresholds = default_thresholds() if thresholds is None else np.asarray(thresholds)
    f1_rows = []
    for probability, truth in zip(probabilities, truths, strict=True):
        counts = threshold_counts(probability, truth, thresholds)
        f1_rows.append([scores_from_counts(*row).f1 for row in counts])
    if not f1_rows:
        raise ValueError("no images to sweep")
    return thresholds, np.mean(np.asarray(f1_rows), axis=0)


def best_threshold(
    probabilities: Iterable[np.ndarray], truths: Iterable[np.ndarray], thresholds: np.ndarray | None = None
) -> tuple[float, float]:
    """The threshold with the highest mean per-image F1, and that F1."""
    thresholds, f1 = threshold_sweep(probabilities, truths, thresholds)
    best = int(np.argmax(f1))
    return float(thresholds[best]), float(f1[best])
