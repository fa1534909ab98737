"""Readers and writers for EM image formats. ``open_volume`` picks the reader from the path."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError, UnreadableFileError
from ..volume import Volume
from .axes import ReadOptions
from .common import HDF5_SUFFIXES, MRC_SUFFIXES, PIL_SUFFIXES, TIFF_SUFFIXES, is_n5, is_zarr

__all__ = ["ReadOptions", "open_volume", "split_dataset"]

_DATASET_SUFFIXES = HDF5_SUFFIXES + (".zarr", ".zip", ".n5")


def split_dataset(spec: str | Path) -> tuple[Path, str | None]:
    """Split ``file.h5:/path/to/ds`` (or ``file.tif:series=N``) into the file and the dataset.

    The dataset is ``None`` when absent.
    """
    text = str(spec)
    head, sep, tail = text.rpartition(":")
    if sep and head.lower().endswith(_DATASET_SUFFIXES) and tail:
        return Path(head), tail
    if sep and head.lower().endswith(TIFF_SUFFIXES) and tail.lower().startswith("series="):
        return Path(head), tail  # file.tif:series=N, read by read_tiff
    return Path(text), None


def open_volume(spec: str | Path, options: ReadOptions | None = None) -> Volume:
    """Open an image or stack lazily as a ``(Z, Y, X)`` :class:`Volume`.

    Accepts a folder of PNG/TIFF/JPEG slices, a TIFF stack, ``file.h5[:/dataset]``, a Zarr /
    OME-Zarr store, an MRC file, a ``.raw`` with its JSON sidecar, or one 2D image.
    ``options`` carries what the user says about the file (channel, axis order, voxel size
    in nm); a voxel size given there replaces the file's.
    Raises :class:`InputError` naming the file when it cannot be read.
    """
    options = options or ReadOptions()
    volume = _open(spec, options)
    if options.pixel_size is not None:
        z, y, x = options.pixel_size
        volume.pixel_size = (float(z), float(y), float(x))
        volume.metadata["pixel_size_from"] = "--pixel-size"
    return volume


def _open(spec: str | Path, options: ReadOptions) -> Volume:
    path, dataset = split_dataset(spec)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    suffix = path.suffix.lower()
    if is_n5(path):
        from .n5 import read_n5

        return read_n5(path, dataset, options)
    if is_zarr(path):
        from .zarr import read_zarr

        return read_zarr(path, dataset, options)
    if path.is_dir():
        from .slices import read_folder

        return read_folder(path, options)
    if suffix in HDF5_SUFFIXES:
        from .hdf5 import read_hdf5

        return read_hdf5(path, dataset, options)
    if suffix in TIFF_SUFFIXES:
        from .tiff import read_tiff

        return read_tiff(path, options, series=dataset)
    if suffix in PIL_SUFFIXES:
        from .slices import read_image

        return read_image(path, options)
    if suffix in MRC_SUFFIXES:
        from .mrc import read_mrc

        return read_mrc(path, options)
    if suffix == ".raw":
        from .raw import read_raw

        return read_raw(path, options)
    raise UnreadableFileError(
        path,
        f"unknown file type {suffix or '(no extension)'}; expected a folder, TIFF, PNG, JPEG, HDF5, Zarr, MRC or RAW",
    )
