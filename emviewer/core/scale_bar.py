"""Scale bars burnt into figure images (PNG/JPEG overlay exports, PDF report pages).

A bar of a round length (1, 2 or 5 x 10^k nm) near a fifth of the image width, white with a
dark outline and labelled in nm or µm, so it shows on dark and light EM alike. Data exports
(masks, TIFF, RAW, HDF5) never get one: they carry the pixel size as calibration instead.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Bar length steps within a decade.
STEPS = (1, 2, 5)


def scale_bar_length(width_nm: float) -> float:
    """A round bar length in nm near a fifth of ``width_nm``.

    Parameters
    ----------
    width_nm
        Width of the whole image (or view) in nm, > 0.

    Returns
    -------
    float
        The largest 1, 2 or 5 x 10^k nm not longer than ``width_nm / 5``.

    Raises
    ------
    ValueError
        ``width_nm`` is not a positive finite number.
    """
    if not (math.isfinite(width_nm) and width_nm > 0):
        raise ValueError(f"image width must be a positive number of nm, not {width_nm}")
    target = width_nm / 5
    power = 10.0 ** math.floor(math.log10(target))
    return float(max(step * power for step in STEPS if step * power <= target * (1 + 1e-9)))


def format_length(length_nm: float) -> str:
    """``500`` -> ``"500 nm"``, ``2000`` -> ``"2 µm"`` (µm from 1 µm up)."""
    return f"{length_nm / 1000:g} µm" if length_nm >= 1000 else f"{length_nm:g} nm"


def draw_scale_bar(image: np.ndarray, pixel_nm: float | None) -> np.ndarray:
    """``image`` with a scale bar and its length in the lower-left corner.

    Parameters
    ----------
    image
        ``(Y, X)`` grey or ``(Y, X, 3)`` RGB, uint8.
    pixel_nm
        The width of one pixel in nm; ``None`` or not positive: the image is returned unchanged.

    Returns
    -------
    numpy.ndarray
        A new array of the same shape and dtype (or ``image`` itself when there is no pixel size).

    Raises
    ------
    ValueError
        ``image`` is not uint8 grey or RGB.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"a scale bar is drawn on uint8 grey or RGB images, not {image.dtype} {image.shape}")
    if not pixel_nm or pixel_nm <= 0:
        return image
    height, width = image.shape[:2]
    length_nm = scale_bar_length(width * pixel_nm)
    bar_px = max(1, round(length_nm / pixel_nm))
    unit = max(min(width, height) / 100, 1.0)  # sizes follow the image, so the bar reads the same when shrunk
    margin, thick, outline = round(4 * unit), max(round(1.2 * unit), 2), max(round(0.3 * unit), 1)
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    dark, light = (0 if image.ndim == 2 else (0, 0, 0)), (255 if image.ndim == 2 else (255, 255, 255))
    x0, y1 = margin, height - margin
    draw.rectangle([x0, y1 - thick, x0 + bar_px, y1], fill=light, outline=dark, width=outline)
    font = ImageFont.load_default(size=max(round(3.2 * unit), 8))
    draw.text(
        (x0, y1 - thick - outline - unit),
        format_length(length_nm),
        fill=light,
        font=font,
        anchor="ld",
        stroke_width=outline,
        stroke_fill=dark,
    )
    return np.asarray(picture)
