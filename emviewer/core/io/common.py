"""Helpers shared by the readers: natural ordering, size limits, colour to grey."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ImageContentError

#: Largest slice we accept (32768 x 32768); a header claiming more is refused before
#: any pixel buffer is allocated, so a corrupt or hostile file cannot exhaust memory.
MAX_SLICE_PIXELS = 2**30

#: Largest decoded slice we accept, in bytes: pixels x samples (RGB = 3) x bytes per sample.
#: A PNG of one colour compresses 8192 x 8192 RGB to 200 KB; this budget, checked from the
#: header before decoding, keeps such files from costing more memory than a real slice.
MAX_DECODED_SLICE_BYTES = 2**30

#: Pixels converted to grey at a time, so the float64 arithmetic stays near 25 MB per block.
_GREY_BLOCK_PIXELS = 2**20

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


def is_n5(path: Path) -> bool:
    """True for a ``*.n5`` folder, or a folder whose ``attributes.json`` marks an N5 container or dataset."""
    if not path.is_dir():
        return False
    if path.name.lower().endswith(".n5"):
        return True
    marker = path / "attributes.json"
    try:  # only a small marker inside the folder itself is read, never one a link points elsewhere
        if not marker.is_file() or marker.resolve().parent != path.resolve() or marker.stat().st_size > 2**20:
            return False
        attrs = json.loads(marker.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(attrs, dict) and ("n5" in attrs or {"dimensions", "dataType"} <= attrs.keys())


def numbers_in(name: str) -> tuple[int, ...]:
    """All runs of digits in ``name``, as integers (``"mitos_3D.010"`` -> ``(3, 10)``)."""
    return tuple(int(m) for m in _NUMBER.findall(name))


def short_list(items: Sequence, most: int = 8) -> str:
    """``"a, b, c, ..."``: the first ``most`` items, and an ellipsis when there are more."""
    return ", ".join(str(item) for item in items[:most]) + (", ..." if len(items) > most else "")


def natural_key(name: str) -> tuple:
    """Sort key that orders ``img2`` before ``img10``."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, in natural order of their names."""
    files = [
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def check_slice_size(shape: Sequence[int], source) -> None:
    """Refuse slices whose header claims more pixels than :data:`MAX_SLICE_PIXELS`."""
    y, x = int(shape[-2]), int(shape[-1])
    if y * x > MAX_SLICE_PIXELS:
        raise ImageContentError(
            source,
            f"header claims {x} x {y} pixels per slice, more than the limit of {MAX_SLICE_PIXELS:,} pixels; "
            "refusing to read it",
        )


def check_decoded_size(shape_yx: Sequence[int], samples: int, itemsize: int, source) -> None:
    """Refuse a slice whose decoded pixels would exceed :data:`MAX_DECODED_SLICE_BYTES`.

    Parameters
    ----------
    shape_yx
        ``(Y, X)`` of the slice as its header states it.
    samples
        Samples per pixel as stored (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA).
    itemsize
        Bytes per sample as decoded (1 for 8-bit, 2 for 16-bit, 4 for float32).

    Raises
    ------
    ImageContentError
        Naming ``source`` and the sizes, before any pixel is decoded.
    """
    y, x = int(shape_yx[-2]), int(shape_yx[-1])
    total = y * x * int(samples) * int(itemsize)
    if total > MAX_DECODED_SLICE_BYTES:
        raise ImageContentError(
            source,
            f"one slice decodes to {x} x {y} pixels x {samples} samples x {itemsize} bytes = {total / 2**30:.2f} GiB, "
            f"more than the limit of {MAX_DECODED_SLICE_BYTES / 2**30:g} GiB per slice; refusing to read it",
        )


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """Convert ``(..., 3|4)`` RGB(A) pixels to luminance, keeping the dtype (alpha is ignored).

    ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B), rounded to the nearest integer for integer
    dtypes. Works through blocks of leading rows, so the float64 arithmetic never holds more
    than about 25 MB at once, whatever the image size.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim < 3 or rgb[..., 0].size <= _GREY_BLOCK_PIXELS:
        return _grey_block(rgb)
    out = np.empty(rgb.shape[:-1], dtype=rgb.dtype)
    row_pixels = rgb[0, ..., 0].size
    step = _GREY_BLOCK_PIXELS // row_pixels
    if step < 1:  # one leading row is itself too big: split it further
        for i in range(len(rgb)):
            out[i] = to_grey(rgb[i])
    else:
        for start in range(0, len(rgb), step):
            out[start : start + step] = _grey_block(rgb[start : start + step])
    return out


def _grey_block(rgb: np.ndarray) -> np.ndarray:
    weights = np.array([0.299, 0.587, 0.114])
    grey = rgb[..., :3].astype(np.float64) @ weights
    if np.issubdtype(rgb.dtype, np.integer):
        info = np.iinfo(rgb.dtype)
        return np.clip(np.rint(grey), info.min, info.max).astype(rgb.dtype)
    return grey.astype(rgb.dtype)
