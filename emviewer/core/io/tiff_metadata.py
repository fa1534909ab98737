"""What a TIFF's metadata says: voxel size in nm, the stored axis order, the declared size.

Where each writer keeps the voxel size (read in this order):

- OME-TIFF (Bio-Formats, tifffile ``ome=True``): ``Pixels`` attributes ``PhysicalSizeX/Y/Z``
  with ``PhysicalSizeXUnit`` etc., in µm when the unit is absent.
- ImageJ / Fiji: ``XResolution`` / ``YResolution`` in pixels per ``unit`` (from the image
  description; ``yunit``/``zunit`` where they differ) and ``spacing`` (z, in ``unit``).
  ``unit=pixel`` means uncalibrated.
- Any other TIFF: the resolution tags with ``ResolutionUnit`` inch or centimetre; a
  ``ResolutionUnit`` of none (tifffile's default ``(1, 1)``) and the 72 or 96 dpi that
  Pillow and most software write by default are no calibration.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree

import numpy as np
import tifffile
from tifffile.tifffile import shaped_description_metadata

from .axes import ReadOptions
from .units import SCREEN_DPI, nm_per_unit

PixelSize = tuple[float | None, float, float]

GREY = (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.MINISWHITE)
#: Photometric interpretations read as colour (converted to grey unless a channel is chosen).
COLOUR = (tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.YCBCR)
#: tifffile's ImageJ version stamp: its ``imagej=True`` writes a plain 3D array as channels.
TIFFFILE_IMAGEJ = "1.11a"


_NM_PER_RESOLUTION_UNIT = {
    tifffile.RESUNIT.INCH: 2.54e7,
    tifffile.RESUNIT.CENTIMETER: 1e7,
    tifffile.RESUNIT.MILLIMETER: 1e6,
    tifffile.RESUNIT.MICROMETER: 1e3,
}


def _length(value, factor: float | None) -> float | None:
    """``value`` units in nm, rounded to 9 significant digits (TIFF rationals are not exact)."""
    if factor is None:
        return None
    try:
        number = float(value) * factor
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number <= 0:
        return None
    return float(f"{number:.9g}")


def _per_pixel(resolution, factor: float | None) -> float | None:
    """Size of one pixel in nm from a resolution in pixels per unit."""
    try:
        resolution = float(resolution)
    except (TypeError, ValueError):
        return None
    if factor is None or not math.isfinite(resolution) or resolution <= 0:
        return None
    return _length(1.0 / resolution, factor)


def _ome(tif: tifffile.TiffFile, series_index: int) -> PixelSize | None:
    try:
        root = ElementTree.fromstring(tif.ome_metadata or "")
    except ElementTree.ParseError:
        return None
    pixels = [e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"]
    if len(pixels) == len(tif.series):
        attrs = pixels[series_index].attrib
    elif len(pixels) == 1:
        attrs = pixels[0].attrib
    else:
        return None

    def size(axis: str) -> float | None:
        return _length(attrs.get(f"PhysicalSize{axis}"), nm_per_unit(attrs.get(f"PhysicalSize{axis}Unit", "µm")))

    y, x = size("Y"), size("X")
    return (size("Z"), y, x) if y and x else None


def _imagej(tif: tifffile.TiffFile, page) -> PixelSize | None:
    meta = tif.imagej_metadata or {}
    unit = meta.get("unit")
    if not _has_resolution(page):
        return None
    x_res, y_res = page.resolution
    x = _per_pixel(x_res, nm_per_unit(unit))
    y = _per_pixel(y_res, nm_per_unit(meta.get("yunit", unit)))
    if not (x and y):
        return None
    z = _length(meta.get("spacing"), nm_per_unit(meta.get("zunit", unit)))
    return (z, y, x)


def _has_resolution(page) -> bool:
    """Both resolution tags are in the file (tifffile reports ``(1, 1)`` per inch when absent)."""
    return "XResolution" in page.tags and "YResolution" in page.tags


def _resolution_tags(page) -> PixelSize | None:
    if not _has_resolution(page):
        return None
    factor = _NM_PER_RESOLUTION_UNIT.get(page.resolutionunit)
    x_res, y_res = page.resolution
    if factor is not None and any(
        abs(res * 2.54e7 / factor - dpi) < 0.05 for res in (x_res, y_res) for dpi in SCREEN_DPI
    ):
        return None
    x, y = _per_pixel(x_res, factor), _per_pixel(y_res, factor)
    return (None, y, x) if x and y else None


def tiff_pixel_size(tif: tifffile.TiffFile, series_index: int, page) -> tuple[PixelSize | None, str | None]:
    """Voxel size ``(z, y, x)`` in nm of series ``series_index``, and where it was read.

    ``page`` is the series' first page (its resolution tags). ``z`` is ``None`` when the file
    gives only the in-plane size; the whole result ``(None, None)`` when it has no calibration.
    """
    if tif.is_ome:
        found = _ome(tif, series_index)
        if found:
            return found, "OME-XML PhysicalSize"
    if tif.is_imagej and (tif.imagej_metadata or {}).get("unit") is not None:
        found = _imagej(tif, page)
        if found:
            return found, "ImageJ resolution/unit" + (" and spacing" if found[0] else "")
        return None, None  # ImageJ's unit=pixel (or one it does not know): uncalibrated
    found = _resolution_tags(page)
    if found:
        return found, f"TIFF resolution tags ({tifffile.RESUNIT(page.resolutionunit).name.lower()})"
    return None, None


def shaped_metadata(series) -> dict:
    """tifffile's own description of a series it wrote (``shape``, ``axes`` when given), else ``{}``."""
    description = series.keyframe.shaped_description
    try:
        return shaped_description_metadata(description) if description else {}
    except Exception:  # a description that only looks like tifffile's
        return {}


def declared_size(tif: tifffile.TiffFile, series) -> tuple[int, str]:
    """How many values the writer said the series holds (ImageJ or tifffile metadata), in words."""
    if tif.is_imagej and len(tif.series) == 1 and tif.imagej_metadata:  # tifffile falls back to 1 page when cut
        images = int(tif.imagej_metadata.get("images", 0))
        return images * series.keyframe.size, f"{images} images"
    shape = shaped_metadata(series).get("shape")
    if not isinstance(shape, (list, tuple)):
        return 0, ""
    try:
        return int(np.prod(shape, dtype=np.int64)), f"shape {tuple(shape)}"
    except (TypeError, ValueError):  # absent, or not a list of numbers
        return 0, ""


def stored_axes(tif: tifffile.TiffFile, series_list: list, options: ReadOptions) -> str:
    """The stored axis order of the series read (several: one-page series stacked on a new Z).

    Two layouts are named differently from tifffile's ``series.axes``, because their planes
    are slices: the separate planes ``S`` of one grey page (or of an RGB page that tifffile
    marked as colour only because a 3D array had 3 or 4 planes), and the ``C`` axis of a 3D
    array saved with tifffile's ``imagej=True`` without axes (it writes ``channels=N``
    where Fiji writes ``slices=N``), unless the user chose a channel.
    """
    series = series_list[0]
    axes = ("Z" if len(series_list) > 1 else "") + series.axes
    page = series.keyframe
    shape = ((len(series_list),) if len(series_list) > 1 else ()) + tuple(series.shape)
    stack = [a for a, n in zip(axes, shape, strict=True) if a not in "YXS" and n > 1]
    if (
        "S" in axes
        and not stack
        and page.planarconfig == tifffile.PLANARCONFIG.SEPARATE
        and _planes_are_slices(series, page)
    ):
        return axes.replace("S", "Z")
    meta = (tif.imagej_metadata or {}) if series.kind == "imagej" else {}
    tifffile_default = (
        meta.get("ImageJ") == TIFFFILE_IMAGEJ
        and not {"slices", "frames"} & set(meta)
        and meta.get("mode") not in ("composite", "color")
    )
    if stack == ["C"] and tifffile_default and options.channel is None:
        return axes.replace("C", "Z")
    return axes


def _planes_are_slices(series, page) -> bool:
    """Separate planes of one page: grey planes are slices; so are RGB planes that tifffile
    marked as colour only by their count (3 or 4) when its writer was given no axes."""
    if page.photometric in GREY:
        return True
    described = shaped_metadata(series)
    return page.photometric == tifffile.PHOTOMETRIC.RGB and bool(described) and "axes" not in described
