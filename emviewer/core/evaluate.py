"""Score predicted masks against expert labels, pairing slices by the number in their names (or by order)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import ImageContentError
from .io import ReadOptions, open_volume
from .metrics import Scores, mean_scores, score
from .progress import CancelToken, Progress, check, report
from .validate import Pairing, check_same_shape, label_to_mask, pair_slices
from .volume import Volume


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


def truth_masks(
    labels: Volume,
    pairing: Pairing,
    shape: Sequence[int],
    source: str,
    names: Sequence[str],
    foreground: Sequence[float] | None = None,
    invert: bool = False,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """For each pair ``(i, j)``, yield ``i`` and label slice ``j`` as a ``(Y, X)`` bool mask.

    Checks each label's shape against ``shape`` (the slices of ``source``, named ``names``
    in pairing order) and, with ``foreground``, that at least one label holds one of them.
    """
    found, n = False, len(pairing.pairs)
    for done, (i, j) in enumerate(pairing.pairs):
        check(cancel)
        report(progress, done, n, f"scoring {labels.slice_names[j]}")
        label, name = labels.slice(j), f"{labels.source} ({labels.slice_names[j]})"
        check_same_shape(tuple(shape), label.shape, f"{source} ({names[i]})", name)
        found |= bool(foreground) and bool(np.isin(label, foreground).any())
        yield i, label_to_mask(label, name, foreground, invert)
    if foreground and not found:
        raise ImageContentError(
            labels.source, f"no label holds the foreground value(s) {', '.join(f'{v:g}' for v in foreground)}"
        )
    report(progress, n, n, "done")


def evaluate_volumes(
    pred: Volume,
    truth: Volume,
    foreground: Sequence[float] | None = None,
    invert: bool = False,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    pair_by: str = "number",
) -> Evaluation:
    """Score a prediction stack (masks, any two values) against a label stack, paired
    ``pair_by`` ``"number"`` or ``"order"`` (see :func:`~emviewer.core.validate.pair_slices`)."""
    pairing = pair_slices(
        pred.slice_names, truth.slice_names, pred.source, truth.source, pair_by, ("predictions", "labels")
    )
    names, per_image = [], []
    for i, truth_mask in truth_masks(
        truth, pairing, pred.shape[1:], pred.source, pred.slice_names, foreground, invert, progress, cancel
    ):
        where = f"{pred.source} ({pred.slice_names[i]})"
        per_image.append(score(label_to_mask(pred.slice(i), where, what="prediction"), truth_mask))
        names.append(pred.slice_names[i])
    return Evaluation(names, per_image, pairing.unpaired_a, pairing.unpaired_b)


def evaluate(
    predictions: str,
    labels: str,
    foreground: Sequence[float] | None = None,
    invert: bool = False,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    pair_by: str = "number",
    label_options: ReadOptions | None = None,
) -> Evaluation:
    """Compare a prediction folder/stack (masks, any two values) with a label folder/stack.

    ``foreground`` and ``invert`` say which label value is the object (see
    :func:`~emviewer.core.validate.label_to_mask`). With ``pair_by="number"`` slices pair by
    the number in their names, so ``slice 010`` of the prediction meets ``mitos_3D.010`` of
    the labels, and slices of one side without a partner are listed in the result; with
    ``"order"`` the *n*-th prediction meets the *n*-th label (natural order, equal counts).
    ``label_options`` (channel, axes) say how to read a label file from another tool.

    Raises
    ------
    PairingError
        When the numbers do not line up one to one (both sides hold numbers the other
        lacks, or nothing pairs), or by order, the counts differ.
    InputError
        For unreadable files, non-binary masks, label values or shapes that break the rules.
    """
    with open_volume(predictions) as pred, open_volume(labels, label_options) as truth:
        return evaluate_volumes(pred, truth, foreground, invert, progress, cancel, pair_by)
