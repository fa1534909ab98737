"""The model-input scaling that holds across microscopes.

The same tissue looks different from one microscope (or export) to the next (see
:mod:`.intensity_stats`). The rule, the same for 8-bit, 16-bit and float images: take robust
percentiles (:data:`~.intensity_stats.TISSUE_PERCENTILES`) of the *tissue* over a sample of
slices of the whole stack (:func:`~.intensity_stats.stack_stats`), and map them linearly onto
the model's *reference levels*: where the same percentiles of its training data lay in its
[0, 1] input. A model then sees any stack at the contrast it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .intensity_stats import TissueStats

#: Reference levels of a model whose card has none: the 1st / 99th percentiles of the
#: CDeep3M SBEM training images scaled 0-255 to [0, 1] (measured with :func:`~.intensity_stats.tissue_stats`).
DEFAULT_REFERENCE = (0.098, 0.878)


def levels_for(stats: TissueStats, reference: Sequence[float] | None = None) -> tuple[float, float]:
    """The intensities ``(a, b)`` that the model input maps to 0 and 1.

    Chosen so that the tissue's percentiles ``stats.low`` / ``stats.high`` land on the
    model's ``reference`` levels (default :data:`DEFAULT_REFERENCE`):
    ``input = clip((image - a) / (b - a), 0, 1)``.
    """
    ref_low, ref_high = reference or DEFAULT_REFERENCE
    scale = (stats.high - stats.low) / (ref_high - ref_low)
    low = stats.low - ref_low * scale
    return float(low), float(low + scale)


def tissue_units(image: np.ndarray, stats: TissueStats) -> np.ndarray:
    """``(image - low) / (high - low)`` as float32, unclipped: the tissue's percentiles become
    0 and 1. NaN and infinite pixels become 0.5, a neutral grey in the middle of the tissue's
    range, so a hole does not look like an edge (prediction marks them background after)."""
    scaled = (np.asarray(image, np.float32) - np.float32(stats.low)) * np.float32(1.0 / (stats.high - stats.low))
    return np.where(np.isfinite(scaled), scaled, np.float32(0.5)) if np.asarray(image).dtype.kind == "f" else scaled


def model_input(units: np.ndarray, reference: Sequence[float] | None = None) -> np.ndarray:
    """Tissue units (see :func:`tissue_units`) onto a model's reference levels, clipped to
    [0, 1]: the float32 input the model was trained on."""
    ref_low, ref_high = reference or DEFAULT_REFERENCE
    return np.clip(units * np.float32(ref_high - ref_low) + np.float32(ref_low), 0.0, 1.0)
