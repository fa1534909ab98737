"""Zoom: the user's pixels resized to the scale a model knows.

A network learns objects of a certain size in pixels. A microscope with finer pixels shows the
same mitochondria larger, and the model then misses or splits them (measured in
``models/TRAINING.md``: the SBEM-only mito model on Lucchi++ FIB-SEM at 5 nm, whose
mitochondria are 1.8 times wider in pixels, scored IoU 0.46 at its own scale and 0.72 with the
slices halved). As Cellpose matches a cell's diameter to its model's, a card may say how wide
the labelled objects it learnt were (``object_width_px``) and at which zoom its input is taken
(``input_zoom``): prediction resizes each tile by the zoom before the network and the
probabilities back to the tile's pixels, so masks always come at the slice's own size.

Width is the median minor-axis length of the labelled objects (the short axis of the ellipse
with the object's second moments, as scikit-image's ``regionprops`` measures it): the long axis
of mitochondria varies with how they are cut, their width much less.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["MIN_ZOOM", "MAX_ZOOM", "object_width", "matched_zoom", "zoomed_shape", "resize", "zoomed", "zoomed_masks"]

#: The zoom range adaptation may choose: a quarter to twice the pixels per side.
MIN_ZOOM, MAX_ZOOM = 0.25, 2.0
#: Width ratios this close to 1 are left at zoom 1: resampling costs sharpness and time.
SAME_SCALE = (0.85, 1.18)
#: Objects smaller than this (px) are left out of the width: specks of a brush or of noise.
MIN_AREA = 16
#: Tiles are resized to a multiple of this, so every depth of U-Net still fits.
MULTIPLE = 32


def object_width(masks: Iterable[np.ndarray]) -> float | None:
    """Median minor-axis length (px) of the 8-connected objects of ``(Y, X)`` bool masks.

    Objects under :data:`MIN_AREA` pixels are skipped; ``None`` when no object is left.
    """
    from skimage.measure import label, regionprops

    widths = [
        r.axis_minor_length
        for mask in masks
        for r in regionprops(label(np.asarray(mask, bool), connectivity=2))
        if r.area >= MIN_AREA
    ]
    return round(float(np.median(widths)), 1) if widths else None


def matched_zoom(model_width: float | None, user_width: float | None) -> float:
    """The zoom that shows the user's objects at the model's width (``model_width /
    user_width``), kept within [:data:`MIN_ZOOM`, :data:`MAX_ZOOM`] and rounded to 0.01;
    1.0 when a width is unknown or the two are within :data:`SAME_SCALE` of each other."""
    if not model_width or not user_width:
        return 1.0
    ratio = model_width / user_width
    if SAME_SCALE[0] <= ratio <= SAME_SCALE[1]:
        return 1.0
    return round(float(np.clip(ratio, MIN_ZOOM, MAX_ZOOM)), 2)


def zoomed_shape(shape: tuple[int, int], zoom: float, multiple: int = 1) -> tuple[int, int]:
    """``(Y, X)`` of a ``shape`` image zoomed, each side rounded up to ``multiple`` (at least one)."""
    return tuple(max(multiple, -(-round(side * zoom) // multiple) * multiple) for side in shape)  # type: ignore[return-value]


def resize(images: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Images resized to ``shape`` (Y, X) with linear interpolation, smoothed first when made
    smaller (so fine texture does not alias). ``images``: ``(Y, X)``, ``(N, Y, X)`` or
    ``(N, Y, X, C)``; the result is float32 with the other axes unchanged."""
    from skimage.transform import resize as sk_resize

    images = np.asarray(images, np.float32)
    yx = 0 if images.ndim == 2 else 1
    if images.shape[yx : yx + 2] == tuple(shape):
        return images
    full = images.shape[:yx] + tuple(shape) + images.shape[yx + 2 :]
    smaller = shape[0] < images.shape[yx] or shape[1] < images.shape[yx + 1]
    sigma = [0.0] * images.ndim
    if smaller:  # anti-alias along Y and X only: never across slices, tiles or channels
        for axis, new in zip((yx, yx + 1), shape, strict=True):
            sigma[axis] = max(0.0, (images.shape[axis] / new - 1) / 2)
    resized = sk_resize(images, full, order=1, anti_aliasing=smaller, anti_aliasing_sigma=sigma, preserve_range=True)
    return resized.astype(np.float32)


def zoomed(images: np.ndarray, zoom: float) -> np.ndarray:
    """A ``(Y, X)`` image or ``(Z, Y, X)`` stack at ``zoom`` (see :func:`resize`), float32."""
    images = np.asarray(images, np.float32)
    return images if zoom == 1.0 else resize(images, zoomed_shape(images.shape[-2:], zoom))


def zoomed_masks(masks: np.ndarray, zoom: float) -> np.ndarray:
    """``(Z, Y, X)`` bool masks at ``zoom``: each object's covered share resized, kept at >= 0.5."""
    return zoomed(masks, zoom) >= 0.5
