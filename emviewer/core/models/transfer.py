"""Start a network from a trained one that sees a different number of slices.

Networks of one architecture and width differ only in the kernels that read the input
when their context (1, 3 or 5 slices) differs, so a 5fm or 1fm model can start from a
trained 3fm one instead of from random weights: far less training on a CPU.
"""

from __future__ import annotations

import numpy as np


def adapt_input_kernel(kernel: np.ndarray, slices: int) -> np.ndarray:
    """A ``(kh, kw, C, F)`` convolution kernel for ``slices`` input slices, same centre slice.

    More slices: the new outer slices start with zero weights, so the network computes
    exactly what it did. Fewer: each dropped outer slice's weights are added to the nearest
    kept slice, so a stack whose neighbours equal the centre slice gets the same answer.
    """
    have = kernel.shape[2]
    if slices >= have:
        extra = (slices - have) // 2
        return np.pad(kernel, ((0, 0), (0, 0), (extra, extra), (0, 0)))
    drop = (have - slices) // 2
    adapted = kernel[:, :, drop : drop + slices].copy()
    adapted[:, :, 0] += kernel[:, :, :drop].sum(axis=2)
    adapted[:, :, -1] += kernel[:, :, drop + slices :].sum(axis=2)
    return adapted


def copy_weights(source, target) -> None:
    """Set ``target``'s weights to ``source``'s, two models built alike but perhaps for
    different contexts; raises ValueError when they differ in anything else."""
    have_slices, want_slices = source.inputs[0].shape[-1], target.inputs[0].shape[-1]
    have, want = source.get_weights(), target.get_weights()
    if len(have) != len(want):
        raise ValueError(f"the networks differ: {len(have)} weight arrays against {len(want)}")
    weights = []
    for old, new in zip(have, want, strict=True):
        if old.shape != new.shape:
            reads_input = old.ndim == 4 and old.shape[2] == have_slices and new.shape[2] == want_slices
            if not (reads_input and old.shape[:2] == new.shape[:2] and old.shape[3] == new.shape[3]):
                raise ValueError(f"the networks differ: weights of shape {old.shape} against {new.shape}")
            old = adapt_input_kernel(old, want_slices)
        weights.append(old)
    target.set_weights(weights)
