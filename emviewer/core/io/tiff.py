"""Multi-page TIFF stacks: memory-mapped where the layout allows, else read page by page."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import tifffile

from ..errors import ImageContentError, UnreadableFileError
from ..volume import LazySlices, Volume
from .axes import ReadOptions
from .atomic import atomic_path
from .common import GreyView, check_slice_size


def _samples_last(array: np.ndarray, axes: str) -> np.ndarray:
    """Move a TIFF's colour-sample axis ``S`` (planar RGB stores it first) to the end."""
    return np.moveaxis(array, axes.index("S"), -1) if "S" in axes else array


class TiffPages(LazySlices):
    """Lazy ``(Z, Y, X[, S])`` array over the pages of an open TIFF, decoding one page at a time."""

    def __init__(self, tif: tifffile.TiffFile, path: Path, n_pages: int) -> None:
        self._pages, self._path = tif.pages, path
        first = tif.pages.first
        self._axes = first.axes
        self.shape = (n_pages,) + _samples_last(np.empty(first.shape, np.uint8), first.axes).shape
        self.dtype = np.dtype(first.dtype)

    def _read(self, z: int) -> np.ndarray:
        try:
            return _samples_last(self._pages[z].asarray(), self._axes)
        except Exception as exc:  # codecs raise their own kinds (zlib.error, ...) on damaged data
            raise UnreadableFileError(self._path, f"cannot decode page {z} ({exc})") from None


def _declared_slices(tif: tifffile.TiffFile) -> Optional[int]:
    """How many slices the writer said the file holds (ImageJ or tifffile metadata), if it said."""
    if tif.is_imagej and tif.imagej_metadata:
        return int(tif.imagej_metadata.get("images", 0)) or None
    if tif.is_shaped and tif.shaped_metadata:
        shape = tif.shaped_metadata[0].get("shape", ())
        planes = 2 + (len(shape) > 2 and shape[-1] in (3, 4))
        return int(np.prod(shape[:-planes])) if len(shape) > planes else 1
    return None


def _check_complete(tif: tifffile.TiffFile, path: Path, found: int) -> None:
    declared = _declared_slices(tif)
    if declared and found < declared:
        raise UnreadableFileError(path, f"the file is truncated: its header says {declared} slices, only {found} can be read")


def _series_array(tif: tifffile.TiffFile, path: Path):
    """The file's pixels as a ``(Z, Y, X[, S])`` array-like, memory-mapped when possible."""
    if not tif.series:
        raise UnreadableFileError(path, "not a readable TIFF file (no image in it)")
    series = tif.series[0]
    axes, shape = series.axes, tuple(series.shape)
    check_slice_size((shape[axes.index("Y")], shape[axes.index("X")]), path)
    stack_axes = axes.replace("Y", "").replace("X", "").replace("S", "")
    if len(stack_axes) > 1:
        raise ImageContentError(path, f"TIFF with axes {axes} {shape}: only 2D images and (Z, Y, X) stacks are supported")
    n_slices = shape[axes.index(stack_axes)] if stack_axes else 1
    try:
        array = _samples_last(tifffile.memmap(path, mode="r"), axes)
    except (ValueError, OSError):  # compressed, scattered or truncated pages cannot be mapped
        _check_complete(tif, path, min(n_slices, len(tif.pages)))
        return TiffPages(tif, path, n_pages=n_slices)
    _check_complete(tif, path, n_slices)
    return array if stack_axes else array[np.newaxis]


def read_tiff(path: Path, options: Optional[ReadOptions] = None) -> Volume:
    """Open a 2D or multi-page TIFF as ``(Z, Y, X)``; RGB pages are converted to grey."""
    try:
        tif = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, ValueError, OSError) as exc:
        raise UnreadableFileError(path, f"not a readable TIFF file ({exc})") from None
    try:
        data = _series_array(tif, path)
    except Exception:
        tif.close()
        raise
    if len(data.shape) == 4:
        data = GreyView(data)
    names = [path.stem] if data.shape[0] == 1 else None
    return Volume(data, str(path), slice_names=names or (), closer=tif.close, metadata={"format": "tiff"})


IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)


def write_tiff(path: Path, slices: Iterable[np.ndarray], shape: tuple, dtype, rgb: bool = False, pixel_size_nm: Optional[float] = None) -> None:
    """Write ``(Z, Y, X)`` (or ``(Z, Y, X, 3)`` RGB) slices as an ImageJ-readable multi-page TIFF.

    ``slices`` is consumed one at a time, so a large stack never sits in memory.
    ImageJ knows only uint8, uint16 and float32: other dtypes are written as float32.
    """
    dtype = np.dtype(dtype)
    out_dtype = dtype if dtype.type in IMAGEJ_DTYPES else np.dtype(np.float32)
    axes = "ZYXS" if rgb else "ZYX"
    kwargs = {}
    if pixel_size_nm:
        kwargs["resolution"] = (1.0 / pixel_size_nm, 1.0 / pixel_size_nm)
        kwargs["metadata"] = {"axes": axes, "unit": "nm"}
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            data=(np.asarray(s, dtype=out_dtype) for s in slices),
            shape=shape,
            dtype=out_dtype,
            imagej=True,
            photometric="rgb" if rgb else "minisblack",
            metadata=kwargs.pop("metadata", {"axes": axes}),
            **kwargs,
        )
