"""Robustness study: segmentation F1 as images are corrupted by growing amounts of noise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .metrics import mean_scores, score
from .noise import gaussian_noise, salt_and_pepper
from .predict import Predictor
from .progress import CancelToken, Progress, check, report
from .volume import Volume, map_slices

DEFAULT_LEVELS = (0.0, 0.01, 0.02, 0.05, 0.10, 0.20)


@dataclass(frozen=True)
class RobustnessPoint:
    level: float  # fraction of pixels (salt-and-pepper) or sigma as a fraction of the range (Gaussian)
    f1: float  # mean per-slice F1
    relative: float  # F1 / F1 on clean images


def corrupt(volume: Volume, kind: str, level: float, seed: int = 0) -> Volume:
    """The volume with noise added slice by slice (lazily, reproducibly: one seed per slice)."""
    if level == 0:
        return volume
    span = float(np.iinfo(volume.dtype).max) if np.issubdtype(volume.dtype, np.integer) else 1.0

    def noisy(image: np.ndarray, z: int) -> np.ndarray:
        rng = np.random.default_rng([seed, int(level * 1e6), z])  # the same noise however often a slice is read
        if kind == "salt_and_pepper":
            return salt_and_pepper(image, level, rng)
        return gaussian_noise(image, level * span, rng)

    if kind not in ("salt_and_pepper", "gaussian"):
        raise ValueError(f"unknown noise {kind!r}; choose salt_and_pepper or gaussian")
    return map_slices(volume, noisy, with_index=True)


def robustness_curve(
    predictor: Predictor,
    volume: Volume,
    truths: Sequence[np.ndarray],
    levels: Sequence[float] = DEFAULT_LEVELS,
    kind: str = "salt_and_pepper",
    object_key: str | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> list[RobustnessPoint]:
    """Mean per-slice F1 of ``predictor`` on ``volume`` corrupted at each level.

    ``truths`` are the ``(Y, X)`` boolean object masks of the slices; the first level
    should be 0 (clean), against which the others are compared.
    """
    object_key = object_key or predictor.objects[0]
    f1s = []
    for i, level in enumerate(levels):
        check(cancel)
        report(progress, i, len(levels), f"noise level {level:g}")
        results = predictor.iter_predict(corrupt(volume, kind, level, seed), cancel=cancel)
        f1s.append(mean_scores([score(r.masks()[object_key], truths[r.index]) for r in results]).f1)
    report(progress, len(levels), len(levels), "done")
    clean = f1s[0] if f1s and f1s[0] > 0 else float("nan")
    return [RobustnessPoint(level, f1, f1 / clean) for level, f1 in zip(levels, f1s, strict=True)]
