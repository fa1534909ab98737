"""What a file holds, as ``emviewer info FILE`` and the app's status bar show it."""

from __future__ import annotations

from ..intensity_stats import stack_stats
from ..volume import Volume


def format_pixel_size(pixel_size: tuple | None) -> str:
    """``(50, 7, 7)`` -> ``"50 x 7 x 7 nm (z, y, x)"``; an unknown z shows as ``?``;
    ``None`` -> ``"unknown"``."""
    if not pixel_size:
        return "unknown"
    z, y, x = pixel_size
    return f"{'?' if z is None else f'{z:g}'} x {y:g} x {x:g} nm (z, y, x)"


def describe(volume: Volume) -> dict:
    """Shape ``(Z, Y, X)``, dtype, stored axes, voxel size (nm) and where it was read, and the
    tissue's intensity range (1st-99th percentile of a sample of slices; see
    :mod:`..intensity`) with the share of NaN / infinite and border pixels."""
    stats = stack_stats(volume)
    z, y, x = volume.shape
    return {
        "file": volume.source,
        "format": volume.metadata.get("format", "?"),
        "shape_zyx": [z, y, x],
        "dtype": volume.dtype.name,
        "stored_axes": volume.metadata.get("axes", "ZYX"),
        "pixel_size_nm_zyx": list(volume.pixel_size) if volume.pixel_size else None,
        "pixel_size": format_pixel_size(volume.pixel_size),
        "pixel_size_from": volume.metadata.get("pixel_size_from", "not in the file")
        if volume.pixel_size
        else "not in the file",
        "tissue_intensity_1_99": [round(stats.low, 6), round(stats.high, 6)],
        "nonfinite_fraction": round(stats.nonfinite_fraction, 6),
        "border_or_saturated_fraction": round(max(0.0, stats.excluded_fraction - stats.nonfinite_fraction), 6),
        "slices": f"{volume.slice_names[0]} ... {volume.slice_names[-1]}" if z > 1 else volume.slice_names[0],
    }
