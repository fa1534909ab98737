"""Score predicted masks against expert labels, pairing slices by the number in their names (or by order).

One scorer for the CLI (:func:`evaluate`: files against files) and the app's Evaluate tab
(:func:`evaluate_masks`: masks in memory against files; :func:`robustness_against_labels`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import ImageContentError
from .io import ReadOptions, open_volume
from .metrics import Scores, mean_scores, score
from .predict import Predictor
from .progress import CancelToken, Progress, check, report
from .robustness import RobustnessPoint, robustness_curve
from .validate import Pairing, check_same_shape, label_to_mask, pair_slices
from .volume import Volume, map_slices


@dataclass
class Evaluation:
    """Per-image scores (with the prediction's slice names and indices), their mean and unpaired slices."""

    names: list[str]
    per_image: list[Scores]
    unpaired_predictions: list[str] = field(default_factory=list)
    unpaired_labels: list[str] = field(default_factory=list)
    slices: list[int] = field(default_factory=list)  # index of each scored slice in the prediction stack

    @property
    def mean(self) -> Scores:
        return mean_scores(self.per_image)

    def as_dict(self) -> dict:
        """``{"per_image": [{"name": ..., "precision": ...}, ...], "mean": {...}}``."""
        return {
            "per_image": [dict(name=n, **s.as_dict()) for n, s in zip(self.names, self.per_image, strict=True)],
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
        found |= foreground is not None and bool(foreground) and bool(np.isin(label, foreground).any())
        yield i, label_to_mask(label, name, foreground, invert)
    if foreground and not found:
        raise ImageContentError(
            labels.source, f"no label holds the foreground value(s) {', '.join(f'{v:g}' for v in foreground)}"
        )
    report(progress, n, n, "done")


def _score_pairs(
    prediction: Callable[[int], np.ndarray],
    labels: Volume,
    pairing: Pairing,
    stack: Volume,
    foreground: Sequence[float] | None,
    invert: bool,
    progress: Progress | None,
    cancel: CancelToken | None,
) -> tuple[list[int], list[Scores]]:
    """Score ``prediction(i)`` (a ``(Y, X)`` bool mask) against label ``j`` for each pair ``(i, j)``;
    ``stack`` is the predicted stack (shape and names for the messages)."""
    indices, per_image = [], []
    for i, truth in truth_masks(
        labels, pairing, stack.shape[1:], stack.source, stack.slice_names, foreground, invert, progress, cancel
    ):
        per_image.append(score(prediction(i), truth))
        indices.append(i)
    return indices, per_image


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

    def prediction(i: int) -> np.ndarray:
        return label_to_mask(pred.slice(i), f"{pred.source} ({pred.slice_names[i]})", what="prediction")

    indices, per_image = _score_pairs(prediction, truth, pairing, pred, foreground, invert, progress, cancel)
    names = [pred.slice_names[i] for i in indices]
    return Evaluation(names, per_image, pairing.unpaired_a, pairing.unpaired_b, indices)


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


def _pair_with_stack(volume: Volume, labels: Volume, pair_by: str) -> Pairing:
    """The stack's slices (all of them, so its numbering is checked whole) paired with the labels."""
    return pair_slices(
        volume.slice_names, labels.slice_names, volume.source, labels.source, pair_by, ("slices", "labels")
    )


def evaluate_masks(
    masks: Mapping[int, np.ndarray],
    volume: Volume,
    labels: str,
    foreground: Sequence[float] | None = None,
    invert: bool = False,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    pair_by: str = "number",
    label_options: ReadOptions | None = None,
) -> Evaluation:
    """Score masks of some slices of ``volume`` against a label folder/stack (the app's Evaluate tab).

    Parameters
    ----------
    masks
        ``{z: (Y, X) bool}``: the predicted masks of slices ``z`` of ``volume``.
    volume
        The predicted stack ``(Z, Y, X)``: its slice names pair with the labels' (all of
        them, so the numbering is checked whole), its shape is checked against theirs.
    labels, foreground, invert, pair_by, label_options
        As for :func:`evaluate`.

    Returns
    -------
    Evaluation
        One score per masked slice that has a label, in the stack's order (``slices`` their
        indices); ``unpaired_predictions`` the masked slices without a label,
        ``unpaired_labels`` the labels no masked slice met.

    Raises
    ------
    PairingError, InputError
        As for :func:`evaluate`.
    Cancelled
        ``cancel`` was set (checked before each slice).
    """
    with open_volume(labels, label_options) as truth:
        whole = _pair_with_stack(volume, truth, pair_by)
        pairing = Pairing([(z, j) for z, j in whole.pairs if z in masks], [], [])
        paired, per_image = _score_pairs(
            masks.__getitem__, truth, pairing, volume, foreground, invert, progress, cancel
        )
        labelled = {j for _, j in pairing.pairs}
        unpaired_labels = [name for j, name in enumerate(truth.slice_names) if j not in labelled]
    unpaired = [volume.slice_names[z] for z in sorted(set(masks) - set(paired))]
    return Evaluation([volume.slice_names[z] for z in paired], per_image, unpaired, unpaired_labels, paired)


def robustness_against_labels(
    predictor: Predictor,
    volume: Volume,
    labels: str,
    object_key: str,
    foreground: Sequence[float] | None = None,
    invert: bool = False,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    pair_by: str = "number",
) -> list[RobustnessPoint]:
    """F1 against salt-and-pepper noise on the slices of ``volume`` that have a label (paired ``pair_by``).

    Returns one :class:`~emviewer.core.robustness.RobustnessPoint` per noise level; raises as
    :func:`evaluate_masks` does.
    """
    with open_volume(labels) as truth:
        pairing = _pair_with_stack(volume, truth, pair_by)
        truths = dict(
            truth_masks(
                truth, pairing, volume.shape[1:], volume.source, volume.slice_names, foreground, invert, None, cancel
            )
        )
    zs = sorted(truths)
    return robustness_curve(
        predictor,
        map_slices(volume, indices=zs),
        [truths[z] for z in zs],
        object_key=object_key,
        progress=progress,
        cancel=cancel,
    )
