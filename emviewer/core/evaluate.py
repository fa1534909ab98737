"""Score predicted masks against expert labels, pairing slices by the number in their names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .errors import ImageContentError
from .io import open_volume
from .metrics import Scores, mean_scores, score
from .progress import CancelToken, Progress, check, report
from .validate import check_same_shape, label_to_mask, pair_by_number


@dataclass
class Evaluation:
    """Per-image scores (with the prediction's slice names), their mean and unpaired slices."""

    names: list[str]
    per_image: list[Scores]
    unpaired_predictions: list[str] = field(default_factory=list)
    unpaired_labels: list[str] = field(default_factory=list)

    @property
    def mean(self) -> Scores:
        return mean_scores(self.per_image)

    def as_dict(self) -> dict:
        """``{"per_image": [{"name": ..., "precision": ...}, ...], "mean": {...}}``."""
        return {
            "per_image": [dict(name=n, **s.as_dict()) for n, s in zip(self.names, self.per_image)],
            "mean": self.mean.as_dict(),
        }


def evaluate(
    predictions: str,
    labels: str,
    foreground: Optional[Sequence[float]] = None,
    invert: bool = False,
    progress: Optional[Progress] = None,
    cancel: Optional[CancelToken] = None,
) -> Evaluation:
    """Compare a prediction folder/stack (masks, any two values) with a label folder/stack.

    ``foreground`` and ``invert`` say which label value is the object (see
    :func:`~emviewer.core.validate.label_to_mask`). Slices pair by number, so
    ``slice 010`` of the prediction meets ``mitos_3D.010`` of the labels.
    """
    with open_volume(predictions) as pred, open_volume(labels) as truth:
        pairing = pair_by_number(pred.slice_names, truth.slice_names, pred.source, truth.source)
        names, per_image, found_foreground = [], [], False
        for done, (i, j) in enumerate(pairing.pairs):
            check(cancel)
            report(progress, done, len(pairing.pairs), f"scoring {pred.slice_names[i]}")
            p, t = pred.slice(i), truth.slice(j)
            p_name, t_name = f"{pred.source} ({pred.slice_names[i]})", f"{truth.source} ({truth.slice_names[j]})"
            check_same_shape(p.shape, t.shape, p_name, t_name)
            truth_mask = label_to_mask(t, t_name, foreground, invert)
            found_foreground |= bool(foreground) and bool(np.isin(t, foreground).any())
            per_image.append(score(label_to_mask(p, p_name, what="prediction"), truth_mask))
            names.append(pred.slice_names[i])
        if foreground and not found_foreground:
            raise ImageContentError(truth.source, f"no label holds the --foreground value(s) {', '.join(f'{v:g}' for v in foreground)}")
        report(progress, len(pairing.pairs), len(pairing.pairs), "done")
    return Evaluation(names, per_image, pairing.unpaired_a, pairing.unpaired_b)
