"""The one overlay renderer: grey EM slice + coloured masks -> RGB. Every export and the GUI use it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .intensity_stats import sample_slices, tissue_stats
from .objects import colour_of
from .volume import Volume

#: Contrast of a newly shown stack: these percentiles of its tissue.
DISPLAY_PERCENTILES = (0.5, 99.5)


def display_range(
    slices: Sequence[np.ndarray], percentiles: tuple[float, float] = DISPLAY_PERCENTILES
) -> tuple[float, float]:
    """Contrast limits from percentiles of the tissue of the given slices (a sample of a
    stack is enough); NaN, constant borders and saturated runs are left out (see
    :func:`~emviewer.core.intensity_stats.tissue_stats`)."""
    stats = tissue_stats(slices, percentiles)
    return stats.low, stats.high


def to_uint8(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``[low, high]`` to ``[0, 255]`` with clipping, for display of any dtype."""
    image = np.asarray(image)
    if image.dtype in (np.uint8, np.uint16):  # a lookup table is several times faster on big slices
        return _scale(np.arange(np.iinfo(image.dtype).max + 1), low, high)[image]
    return _scale(image, low, high)


def mask_image(mask: np.ndarray) -> np.ndarray:
    """Mask (boolean, or any values: non-zero is object) -> uint8 0/255, with no temporary wider
    than a byte per pixel (``np.where(mask, 255, 0)`` makes int64 first: 8 bytes per pixel)."""
    return (np.asarray(mask) != 0).view(np.uint8) * np.uint8(255)


def _scale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    scaled = (np.asarray(values, np.float32) - low) * (255.0 / (high - low))
    return np.nan_to_num(np.clip(scaled + 0.5, 0, 255), nan=0.0).astype(np.uint8)  # NaN shows black


def render_overlay(
    grey: np.ndarray,
    masks: Mapping[str, np.ndarray],
    opacity: float | Mapping[str, float] = 0.45,
    colours: Mapping[str, tuple[int, int, int]] | None = None,
) -> np.ndarray:
    """Blend object masks over a display slice.

    Parameters
    ----------
    grey
        ``(Y, X)`` uint8 display image (see :func:`to_uint8`).
    masks
        Object key -> ``(Y, X)`` mask, boolean or 0/255; drawn in the given order.
    opacity
        0 (invisible) to 1 (opaque), one value or one per object.
    colours
        Object key -> RGB 0-255; objects not in it get their standard colour.

    Returns
    -------
    ``(Y, X, 3)`` uint8 RGB image.
    """
    grey = np.asarray(grey, np.uint8)
    planes = [grey.ravel().copy() for _ in range(3)]  # contiguous R, G, B: fast lookups
    for name, mask in masks.items():
        alpha = opacity.get(name, 0.45) if isinstance(opacity, Mapping) else opacity
        colour = np.asarray((colours or {}).get(name) or colour_of(name), np.float32)
        inside = np.flatnonzero(np.asarray(mask).ravel())  # only object pixels change: most are not
        # Blending a grey level with the colour depends only on that level: a 256-entry table
        # per channel replaces per-pixel float arithmetic on large slices.
        table = np.clip((1 - alpha) * np.arange(256, dtype=np.float32)[:, None] + alpha * colour + 0.5, 0, 255).astype(
            np.uint8
        )
        for c, plane in enumerate(planes):
            plane[inside] = table[plane[inside], c]
    return np.stack(planes, axis=-1).reshape(*grey.shape, 3)


class StackRenderer:
    """Renders slices of a stack for display with one contrast setting for the whole stack.

    The contrast comes from percentiles of up to ``sample`` evenly spaced slices, so a
    lazily read stack is not read in full. ``colours`` (object -> RGB 0-255) overrides the
    standard object colours, as the app's colour picker does.
    """

    def __init__(
        self,
        volume: Volume,
        masks: Mapping[str, Volume],
        opacity: float | Mapping[str, float] = 0.45,
        sample: int = 8,
        colours: Mapping[str, tuple[int, int, int]] | None = None,
    ) -> None:
        self.volume, self.masks, self.opacity, self.colours = volume, masks, opacity, colours
        self.levels = display_range(sample_slices(volume, sample))

    def display(self, z: int, step: int = 1, rows: tuple[int, int] | None = None) -> np.ndarray:
        """Slice ``z`` as ``(Y, X)`` uint8; with ``step`` > 1 every ``step``-th pixel of each row
        and column (``(ceil(Y / step), ceil(X / step))``: a page of a huge slice is rendered
        at the page's size); ``rows = (start, stop)``: just those rows (a band of a huge slice).
        Only what is shown is read from memory-mapped and chunked files."""
        return to_uint8(self.volume[(z,) + _part(step, rows)], *self.levels)

    def overlay(
        self, z: int, grey: np.ndarray | None = None, step: int = 1, rows: tuple[int, int] | None = None
    ) -> np.ndarray:
        """Slice ``z`` with its masks as ``(Y, X, 3)`` uint8 RGB (``grey``: its display at the same
        ``step`` and ``rows``, if known); ``step`` and ``rows`` as in :meth:`display`."""
        grey = self.display(z, step, rows) if grey is None else grey
        masks = {k: m[(z,) + _part(step, rows)] for k, m in self.masks.items()}
        return render_overlay(grey, masks, self.opacity, self.colours)


def _part(step: int, rows: tuple[int, int] | None) -> tuple[slice, slice]:
    start, stop = rows if rows is not None else (None, None)
    return slice(start, stop, step), slice(None, None, step)
