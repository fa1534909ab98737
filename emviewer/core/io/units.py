"""Length units as image files write them, in nanometres (the unit of ``Volume.pixel_size``)."""

from __future__ import annotations

import math

#: Nanometres per unit: UDUNITS-2 names (as OME-NGFF asks), the spellings Fiji/ImageJ, OME-XML,
#: HDF5 attributes and N5 use, and ImageJ's escaped non-ASCII ones.
NM_PER_UNIT = {
    "pm": 1e-3, "picometer": 1e-3,
    "a": 0.1, "å": 0.1, "\\u00c5": 0.1, "angstrom": 0.1, "ångström": 0.1,
    "nm": 1.0, "nanometer": 1.0, "nanometre": 1.0, "nanometers": 1.0, "nanometres": 1.0,
    "um": 1e3, "µm": 1e3, "μm": 1e3, "\\u00b5m": 1e3, "micron": 1e3, "microns": 1e3,
    "micrometer": 1e3, "micrometre": 1e3, "micrometers": 1e3, "micrometres": 1e3,
    "mm": 1e6, "millimeter": 1e6, "millimetre": 1e6,
    "cm": 1e7, "centimeter": 1e7, "centimetre": 1e7,
    "m": 1e9, "meter": 1e9, "metre": 1e9,
    "in": 2.54e7, "inch": 2.54e7,
}  # fmt: skip

#: Resolutions screens, Pillow, Photoshop and GIMP write when nobody calibrated (dots per inch).
SCREEN_DPI = (72.0, 96.0)


def nm_per_unit(unit) -> float | None:
    """Nanometres in one ``unit`` (``"micron"``, ``"µm"``, ``"nanometer"``, ``"inch"`` ...).

    ``None`` for ``"pixel"``, an empty or an unknown unit: no calibration.
    """
    return NM_PER_UNIT.get(str(unit).strip().lower()) if unit is not None else None


def rounded_nm(nm: float) -> float:
    """Round a length converted from file units to 9 significant digits (TIFF rationals and
    floats in other units are not exact: 7 nm should read back as 7, not 7.000000001)."""
    return float(f"{nm:.9g}")


def dpi_to_nm(dpi) -> float | None:
    """Pixel size in nm for a resolution in dots per inch, or ``None`` when it is no calibration.

    72 and 96 dpi are the defaults that screens, Pillow, Photoshop, GIMP and most writers put
    in every file (ImageJ shows them as "0.0139 inch" pixels); they are never a microscope's
    calibration, so they, like zero, negative or non-finite values, count as unknown.
    """
    try:
        dpi = float(dpi)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(dpi) or dpi <= 0 or any(abs(dpi - screen) < 0.05 for screen in SCREEN_DPI):
        return None
    return rounded_nm(2.54e7 / dpi)
