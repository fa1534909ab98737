"""Helpers shared by the readers: natural ordering, size limits, colour to grey."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ImageContentError

#: Largest slice we accept (32768 x 32768); a header claiming more is refused before
#: any pixel buffer is allocated, so a corrupt or hostile file cannot exhaust memory.
MAX_SLICE_PIXELS = 2**30

TIFF_SUFFIXES = (".tif", ".tiff")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_SUFFIXES = PIL_SUFFIXES + TIFF_SUFFIXES
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
MRC_SUFFIXES = (".mrc", ".mrcs", ".map", ".rec", ".st", ".ali")
ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup")

_NUMBER = re.compile(r"\d+")


def is_zarr(path: Path) -> bool:
    """True for a ``*.zarr`` folder, a ``*.zarr.zip`` file, or any folder holding Zarr metadata."""
    if path.name.lower().endswith((".zarr", ".zarr.zip")):
        return True
    return path.is_dir() and any((path / marker).exists() for marker in ZARR_MARKERS)


def numbers_in(name: str) -> tuple[int, ...]:
    """All runs of digits in ``name``, as integers (``"mitos_3D.010"`` -> ``(3, 10)``)."""
    return tuple(int(m) for m in _NUMBER.findall(name))


def natural_key(name: str) -> tuple:
    """Sort key that orders ``img2`` before ``img10``."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, in natural order of their names."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=lambda p: natural_key(p.name))


def check_slice_size(shape: Sequence[int], source) -> None:
    """Refuse slices whose header claims more pixels than :data:`MAX_SLICE_PIXELS`."""
    y, x = int(shape[-2]), int(shape[-1])
    if y * x > MAX_SLICE_PIXELS:
        raise ImageContentError(
            source, f"header claims {x} x {y} pixels per slice, more than the limit of {MAX_SLICE_PIXELS:,} pixels; refusing to read it"
        )


def is_colour(shape: Sequence[int]) -> bool:
    """True for ``(..., Y, X, 3|4)`` arrays (RGB or RGBA)."""
    return len(shape) >= 3 and shape[-1] in (3, 4)


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """Convert ``(..., 3|4)`` RGB(A) pixels to luminance, keeping the dtype (alpha is ignored)."""
    weights = np.array([0.299, 0.587, 0.114])
    grey = rgb[..., :3].astype(np.float64) @ weights
    if np.issubdtype(rgb.dtype, np.integer):
        info = np.iinfo(rgb.dtype)
        return np.clip(np.rint(grey), info.min, info.max).astype(rgb.dtype)
    return grey.astype(rgb.dtype)


class GreyView:
    """Lazy ``(Z, Y, X)`` view of an RGB(A) ``(Z, Y, X, C)`` array-like."""

    def __init__(self, rgb) -> None:
        self._rgb = rgb
        self.shape = tuple(rgb.shape[:3])
        self.dtype = np.dtype(rgb.dtype)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        return to_grey(np.asarray(self._rgb[key + (slice(None),) * (3 - len(key)) + (slice(None),)]))


class PlaneAsStack:
    """A 2D array-like seen as ``(1, Y, X)``; the plane is read only when indexed."""

    def __init__(self, plane) -> None:
        self._plane = plane
        self.shape = (1,) + tuple(plane.shape)
        self.dtype = np.dtype(plane.dtype)

    def __getitem__(self, key):
        return np.asarray(self._plane[...])[np.newaxis][key]
