"""Single 2D images and folders of slices (PNG, JPEG, TIFF), read lazily one file at a time."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import tifffile
from PIL import Image

from ..errors import ImageContentError, InputError, ShapeMismatchError, UnreadableFileError
from ..volume import LazySlices, Volume
from .axes import ReadOptions
from .atomic import atomic_paths
from .common import MAX_SLICE_PIXELS, check_slice_size, image_files, is_colour, to_grey

# Let PIL open anything up to our own limit; we refuse larger slices ourselves with a clear message.
Image.MAX_IMAGE_PIXELS = MAX_SLICE_PIXELS


def _is_tiff(path: Path) -> bool:
    return path.suffix.lower() in (".tif", ".tiff")


def probe_2d(path: Path) -> tuple[tuple[int, int], str]:
    """Return ``((Y, X), kind)`` of a 2D image from its header, without decoding pixels.

    ``kind`` tells files apart that cannot share a stack (PIL mode or TIFF dtype).
    """
    try:
        if _is_tiff(path):
            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                shape, kind = page.shape, str(page.dtype)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as img:
                    shape, kind = (img.height, img.width), img.mode
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageContentError(path, f"header claims more than {MAX_SLICE_PIXELS:,} pixels; refusing to read it") from None
    except (OSError, ValueError, SyntaxError, tifffile.TiffFileError) as exc:
        raise UnreadableFileError(path, f"not a readable image ({exc})") from None
    check_slice_size(shape[:2], path)
    return (int(shape[0]), int(shape[1])), kind


def read_2d(path: Path) -> np.ndarray:
    """Decode one image file to ``(Y, X)``; colour is converted to grey, the dtype is kept."""
    try:
        if _is_tiff(path):
            array = tifffile.imread(path, key=0)
        else:
            with Image.open(path) as img:
                array = np.asarray(img)  # palette images keep their indices: label maps are saved so
    except (OSError, ValueError, SyntaxError, tifffile.TiffFileError) as exc:
        raise UnreadableFileError(path, f"cannot decode the image ({exc})") from None
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 2:  # grey + alpha
        array = array[..., 0]
    if array.ndim == 3 and is_colour(array.shape):
        array = to_grey(array)
    if array.ndim != 2:
        raise ImageContentError(path, f"expected a 2D image, found shape {array.shape}")
    return array


class SliceFiles(LazySlices):
    """Lazy ``(Z, Y, X)`` array over a list of same-sized 2D image files."""

    def __init__(self, paths: list[Path], shape_yx: tuple[int, int], dtype: np.dtype) -> None:
        self.paths = paths
        self.shape = (len(paths),) + tuple(shape_yx)
        self.dtype = np.dtype(dtype)

    def _read(self, z: int) -> np.ndarray:
        path = self.paths[z]
        array = read_2d(path)
        if array.shape != self.shape[1:]:
            raise ShapeMismatchError(path, f"slice is {array.shape[1]} x {array.shape[0]}, the others are {self.shape[2]} x {self.shape[1]}")
        if array.dtype != self.dtype:
            raise ImageContentError(path, f"pixel type {array.dtype} differs from the other slices ({self.dtype})")
        return array


def read_image(path: Path, options: Optional[ReadOptions] = None) -> Volume:
    """A single 2D image file as a one-slice Volume (decoded now, so damage shows at once)."""
    probe_2d(path)
    array = read_2d(path)
    return Volume(array[np.newaxis], str(path), slice_names=[path.stem])


def read_folder(folder: Path, options: Optional[ReadOptions] = None) -> Volume:
    """A folder of 2D slices, ordered by the number in their names (``img2`` before ``img10``)."""
    if not any(folder.iterdir()):
        raise InputError(folder, "the folder is empty")
    paths = image_files(folder)
    if not paths:
        raise InputError(folder, "the folder holds no PNG, TIFF or JPEG images")
    first_shape, first_kind = probe_2d(paths[0])
    for path in paths[1:]:
        shape, kind = probe_2d(path)
        if shape != first_shape:
            raise ShapeMismatchError(
                path, f"slice is {shape[1]} x {shape[0]} pixels but {paths[0].name} is {first_shape[1]} x {first_shape[0]}; all slices must have one size"
            )
        if kind != first_kind:
            raise ImageContentError(path, f"pixel format {kind} differs from {paths[0].name} ({first_kind})")
    dtype = read_2d(paths[0]).dtype
    return Volume(SliceFiles(paths, first_shape, dtype), str(folder), slice_names=[p.stem for p in paths])


def write_slices(paths: list[Path], images, quality: int = 95) -> None:
    """Write one PNG or JPEG per ``(Y, X)`` grey or ``(Y, X, 3)`` RGB image, all or nothing.

    PNG keeps 8- and 16-bit grey values; JPEG needs 8-bit data.
    """
    with atomic_paths(paths) as temps:
        for image, tmp, path in zip(images, temps, paths):  # images first: its generator runs to the end
            fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
            options = {"quality": quality} if fmt == "JPEG" else {"compress_level": 6}
            Image.fromarray(np.ascontiguousarray(image)).save(tmp, format=fmt, **options)
