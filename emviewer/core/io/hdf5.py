"""HDF5: read one 2D/3D dataset lazily (``file.h5`` or ``file.h5:/path/to/ds``); write results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Optional

import h5py
import numpy as np

from ..errors import ImageContentError, InputError, UnreadableFileError
from ..progress import CancelToken, Progress, check, report
from ..volume import Volume
from .axes import ReadOptions
from .atomic import atomic_path
from .common import PlaneAsStack, check_slice_size

def image_datasets(group: h5py.Group) -> list[str]:
    """Paths of all 2D and 3D numeric datasets in the file, in file order."""
    found: list[str] = []

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset) and obj.ndim in (2, 3) and obj.dtype.kind in "uifbc":
            found.append("/" + name)

    group.visititems(visit)
    return found


def _pick_dataset(h5: h5py.File, path: Path, dataset: Optional[str]) -> h5py.Dataset:
    if dataset:
        if dataset not in h5:
            raise InputError(path, f"no dataset {dataset!r} in the file (it has: {', '.join(image_datasets(h5)) or 'none'})")
        obj = h5[dataset]
        if not isinstance(obj, h5py.Dataset) or obj.ndim not in (2, 3):
            raise ImageContentError(path, f"{dataset!r} is not a 2D or 3D dataset")
        return obj
    candidates = image_datasets(h5)
    if not candidates:
        raise ImageContentError(path, "the file holds no 2D or 3D dataset")
    if len(candidates) > 1:
        raise InputError(path, f"the file holds several 2D/3D datasets ({', '.join(candidates)}); choose one as {path.name}:/dataset")
    return h5[candidates[0]]


def read_hdf5(path: Path, dataset: Optional[str] = None, options: Optional[ReadOptions] = None) -> Volume:
    """Open a dataset of an HDF5 file as a lazy ``(Z, Y, X)`` Volume (2D datasets get Z = 1)."""
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise UnreadableFileError(path, f"not a readable HDF5 file ({exc})") from None
    try:
        ds = _pick_dataset(h5, path, dataset)
        check_slice_size(ds.shape, path)
        data = ds if ds.ndim == 3 else PlaneAsStack(ds)
        source = f"{path}:{ds.name}"
        pixel_size = _pixel_size(ds)
        return Volume(data, source, pixel_size=pixel_size, closer=h5.close, metadata={"format": "hdf5", "dataset": ds.name})
    except Exception:
        h5.close()
        raise


def _pixel_size(ds: h5py.Dataset) -> Optional[tuple[float, float, float]]:
    value = ds.attrs.get("pixel_size_nm")
    if value is None or np.size(value) != 3:
        return None
    return tuple(float(v) for v in np.ravel(value))


def _write_stack(group: h5py.Group, name: str, shape: tuple, dtype, slices: Iterable[np.ndarray], cancel) -> None:
    chunks = (1, min(shape[1], 256), min(shape[2], 256))
    ds = group.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, compression="gzip", compression_opts=4)
    for z, plane in enumerate(slices):
        check(cancel)
        ds[z] = plane


def write_hdf5(
    path: Path,
    raw: Optional[Volume] = None,
    masks: Optional[Mapping[str, Volume]] = None,
    probabilities: Optional[Mapping[str, Volume]] = None,
    provenance: Optional[Mapping] = None,
    progress: Optional[Progress] = None,
    cancel: Optional[CancelToken] = None,
) -> None:
    """Write ``/raw``, ``/masks/<object>`` (uint8 0/255) and ``/probabilities/<object>`` (float32).

    Each is a chunked, gzip-compressed ``(Z, Y, X)`` dataset written slice by slice; the
    provenance goes into the root attributes (nested values as JSON text).
    """
    items = ([("raw", raw)] if raw is not None else []) + [(f"masks/{k}", v) for k, v in (masks or {}).items()]
    items += [(f"probabilities/{k}", v) for k, v in (probabilities or {}).items()]
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        for key, value in (provenance or {}).items():
            h5.attrs[key] = value if isinstance(value, (str, int, float)) else json.dumps(value, default=str)
        for i, (name, volume) in enumerate(items):
            report(progress, i, len(items), f"writing {name}")
            _write_stack(h5, name, volume.shape, volume.dtype, volume.iter_slices(), cancel)
            if name == "raw" and volume.pixel_size:
                h5[name].attrs["pixel_size_nm"] = volume.pixel_size
        report(progress, len(items), len(items), "done")
