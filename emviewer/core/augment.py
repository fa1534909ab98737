"""Test-time augmentation: 8 dihedral transforms x optional z-flip = 16 variants.

A variant flips the image horizontally (optional), then rotates it by ``k * 90`` degrees
counter-clockwise, and for context inputs (3 or 5 neighbouring slices stacked as channels)
optionally reverses the slice order (z-flip). The model sees the transformed input; its
prediction map is mapped back with :func:`invert` and the variants are averaged.

Supported layouts, channels last:

* ``(Y, X)``: one slice,
* ``(Y, X, C)``: one slice with ``C`` context slices (or one output channel),
* ``(N, Y, X, C)``: a batch.

All functions are pure numpy, keep the dtype and return new C-contiguous arrays (never
views of the input), because the results go straight into a model or get averaged in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Variant", "IDENTITY", "variants", "apply", "invert"]


@dataclass(frozen=True)
class Variant:
    """One test-time transform.

    Attributes
    ----------
    rotations : int
        Number of 90-degree counter-clockwise rotations in the (Y, X) plane, 0 to 3.
    flip : bool
        Mirror the X axis (left-right) before rotating.
    zflip : bool
        Reverse the channel (context-slice) axis; a no-op for ``(Y, X)`` arrays.
    """

    rotations: int = 0
    flip: bool = False
    zflip: bool = False

    def __post_init__(self) -> None:
        if self.rotations not in (0, 1, 2, 3):
            raise ValueError(f"rotations must be 0, 1, 2 or 3, not {self.rotations!r}")

    def __str__(self) -> str:
        # Short, stable name for logs and file names, e.g. "r90-flip-zflip".
        parts = [f"r{90 * self.rotations}"]
        if self.flip:
            parts.append("flip")
        if self.zflip:
            parts.append("zflip")
        return "-".join(parts)


IDENTITY = Variant()


def variants(n: int) -> list[Variant]:
    """Return the first ``n`` test-time variants, the identity first.

    Parameters
    ----------
    n : {1, 8, 16}
        1: identity only; 8: the dihedral group (4 rotations x optional flip);
        16: the dihedral group x optional z-flip.

    Returns
    -------
    list of Variant
        ``n`` distinct variants; ``variants(8)`` is a prefix of ``variants(16)``.
    """
    if n not in (1, 8, 16):
        raise ValueError(f"the number of test-time variants must be 1, 8 or 16, not {n!r}")
    return [
        Variant(rotations=k, flip=flip, zflip=zflip)
        for zflip in (False, True)
        for flip in (False, True)
        for k in range(4)
    ][:n]


def _spatial_axes(array: np.ndarray) -> tuple[int, int]:
    """(Y, X) axes of a slice, a slice with channels, or a batch."""
    if array.ndim in (2, 3):
        return 0, 1
    if array.ndim == 4:
        return 1, 2
    raise ValueError(f"expected an array shaped (Y, X), (Y, X, C) or (N, Y, X, C), got shape {array.shape}")


def apply(array: np.ndarray, variant: Variant) -> np.ndarray:
    """Transform a model input by ``variant``.

    Parameters
    ----------
    array : numpy.ndarray
        ``(Y, X)``, ``(Y, X, C)`` or ``(N, Y, X, C)``, any dtype and value range.
    variant : Variant
        The transform to apply.

    Returns
    -------
    numpy.ndarray
        Same dtype and values, a C-contiguous copy. Y and X swap places for odd rotations, and
        the channel order is reversed when ``variant.zflip`` is set.
    """
    y_axis, x_axis = _spatial_axes(array)
    out = np.flip(array, axis=x_axis) if variant.flip else array
    out = np.rot90(out, k=variant.rotations, axes=(y_axis, x_axis))
    if variant.zflip and array.ndim > 2:
        out = np.flip(out, axis=-1)
    return np.array(out, order="C")


def invert(array: np.ndarray, variant: Variant) -> np.ndarray:
    """Map a prediction made on ``apply(x, variant)`` back onto the geometry of ``x``.

    Only the spatial part is undone: the z-flip reorders the input's context slices around
    the same centre slice, so the prediction for that centre slice needs no un-flipping,
    and the output channels (one probability map per object) are left in their order.

    Parameters
    ----------
    array : numpy.ndarray
        Prediction ``(Y, X)``, ``(Y, X, 1)`` or ``(N, Y, X, 1)``, typically float32
        probabilities in [0, 1]; any channel count and dtype is accepted.
    variant : Variant
        The variant that produced the model input.

    Returns
    -------
    numpy.ndarray
        Same dtype and values, a C-contiguous copy, in the original (Y, X) orientation.
    """
    y_axis, x_axis = _spatial_axes(array)
    # Undo in reverse order: rotate back first, then mirror (a flip is its own inverse).
    out = np.rot90(array, k=-variant.rotations, axes=(y_axis, x_axis))
    if variant.flip:
        out = np.flip(out, axis=x_axis)
    return np.array(out, order="C")
