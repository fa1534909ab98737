"""A trained model's ``training_domain`` (see :mod:`.domain`), measured on its own labelled slices.

`emviewer train` and `emviewer adapt` write it into the card they make, so the out-of-domain
line at Predict knows the user's own models as it knows the bundled ones (whose statistics
``benchmarks/card_domains.py`` measured).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .dataset import LabelledStack
from .domain import training_domain
from .progress import CancelToken

#: Slices measured per labelled set at most, spread evenly over it (a model's whole training
#: set would cost a prediction of every slice; the statistics settle with a few).
MAX_SLICES_PER_SET = 8


#: Folder names that say nothing about the data: the folder above them names it too.
GENERIC_NAMES = {"images", "image", "imgs", "img", "raw", "data", "train", "training", "validation", "val"}


def data_name(stack: LabelledStack) -> str:
    """A labelled set's short name: its image folder or file with the folders above it that are
    generic, e.g. ``"cdeep3m_mito/training/images"``, ``"tem_stack.tif"``."""
    path = Path(stack.source)
    parts = path.parts[1:] if path.anchor else path.parts
    keep = 1
    while keep < len(parts) and parts[-keep].lower() in GENERIC_NAMES:
        keep += 1
    return "/".join(parts[-keep:]) or str(stack.source)


def trained_on(stacks: Sequence[LabelledStack]) -> str:
    """One line for a card's ``trained_on``: the sets' short names and the pixel size when known,
    e.g. ``"cdeep3m_mito/training, 10 nm"``."""
    names = ", ".join(dict.fromkeys(data_name(s) for s in stacks))
    pixel = _pixel_size(stacks)
    return f"{names}, {pixel:g} nm" if pixel else names


def measured_domain(
    model,
    context: int,
    stacks: Sequence[LabelledStack],
    threshold: float,
    description: str,
    cancel: CancelToken | None = None,
) -> dict:
    """The card's ``training_domain`` of a Keras ``model`` (``context`` slices in) on ``stacks``.

    At most :data:`MAX_SLICES_PER_SET` slices of each set are predicted as users' slices are;
    each set is one source of the domain (a slice at Predict is in the domain when it is like
    any of them). ``threshold`` is the model's (its probabilities are calibrated to 0.5 at it,
    as prediction yields them). Raises :class:`~.progress.Cancelled` on ``cancel``.
    """
    from .predict import calibrate, labelled_predictions

    sampled = [s.split(_spread(len(s))) for s in stacks if len(s)]
    inputs, probabilities, groups = [], [], []
    for labelled, index, probability in labelled_predictions(model, context, sampled, cancel=cancel):
        inputs.append(labelled.model_input(index, context)[..., context // 2])
        probabilities.append(calibrate(probability, threshold))
        groups.append(data_name(labelled))
    pixel = _pixel_size(stacks)
    return training_domain(inputs, probabilities, pixel, description, groups)


def _pixel_size(stacks: Sequence[LabelledStack]) -> float | None:
    """The first set's pixel size (x, nm) that is known, or None."""
    return next((s.pixel_size[-1] for s in stacks if s.pixel_size), None)


def _spread(count: int) -> list[int]:
    """Up to :data:`MAX_SLICES_PER_SET` indices spread evenly over ``count`` slices."""
    return sorted({int(i) for i in np.linspace(0, count - 1, min(count, MAX_SLICES_PER_SET))})
