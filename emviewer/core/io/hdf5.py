"""HDF5: read one image dataset lazily (``file.h5`` or ``file.h5:/path/to/ds``); write results.

A dataset may have 2 to 5 dimensions: ``(Y, X)``, ``(Z, Y, X)`` and the channel and time
layouts ilastik, Fiji and BigDataViewer write (``yxc``, ``zyxc``, ``czyx``, ``tzyxc``). Axis
names come from ``--axes``, else ilastik's ``axistags`` attribute, else h5py dimension labels,
else :func:`~emviewer.core.io.axes.guess_axes`. The voxel size comes from attributes of the
dataset or its group (``pixel_size_nm``, ``element_size_um``, ``resolution``, ``pixel_size`` +
``unit``). Files are untrusted: see :mod:`.hdf5_safety`.
"""

from __future__ import annotations

import json
import math
import posixpath
from collections.abc import Iterable, Mapping
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  registers the Blosc, LZ4, Zstd, bitshuffle... filters with HDF5
import numpy as np

from ..errors import ImageContentError, ReportedError
from ..progress import CancelToken, Progress, check, report
from ..volume import Volume
from . import units
from .atomic import atomic_path
from .axes import ReadOptions, as_zyx, guess_axes
from .common import check_slice_size
from .hdf5_safety import (
    CheckedDataset,
    check_dataset,
    image_datasets,
    is_image_candidate,
    open_checked,
    picked_dataset_path,
    refuse_outside_links,
    resolve_dataset,
)

__all__ = ["image_datasets", "read_hdf5", "write_hdf5"]

#: Attributes holding the voxel size, in the order they are trusted, and their unit in nm
#: (``None``: the unit is in a ``unit`` attribute beside it, nm when absent).
PIXEL_SIZE_ATTRIBUTES = (("pixel_size_nm", 1.0), ("element_size_um", 1000.0), ("resolution", 1.0), ("pixel_size", None))
#: h5py dimension labels spelled out, as some writers do (single letters are taken as they are).
_LABEL_WORDS = {"time": "T", "channel": "C", "channels": "C", "depth": "Z", "slice": "Z", "row": "Y", "column": "X"}


def read_hdf5(path: Path, dataset: str | None = None, options: ReadOptions | None = None) -> Volume:
    """Open a dataset of an HDF5 file as a lazy ``(Z, Y, X)`` Volume of the stored dtype.

    Parameters
    ----------
    dataset
        Path of the dataset in the file; when ``None`` the file must hold exactly one image
        dataset (2 to 5 dimensions, numeric).
    options
        ``axes`` names the stored axes, ``channel`` picks one of several channels.

    Raises
    ------
    UnreadableFileError
        Not HDF5, truncated, data outside the file (external links, virtual datasets,
        external storage), a compression filter not installed, or a read failing later.
    InputError
        No such dataset, none or several to choose from, several channels without
        ``channel``, axes that do not fit.
    """
    options = options or ReadOptions()
    h5, handle = open_checked(path)

    def close() -> None:
        h5.close()
        handle.close()

    try:
        ds, where = _pick_dataset(h5, path, dataset)
        check_dataset(ds, path, where)
        source = f"{path}:{where}"
        axes = (options.axes or _stored_axes(ds, source) or guess_axes(ds.shape)).upper()
        data = as_zyx(CheckedDataset(ds, source), axes, source, options.channel)
        check_slice_size(data.shape, source)
        metadata = {"format": "hdf5", "dataset": where, "axes": axes}
        pixel_size, found = _pixel_size((ds, h5[posixpath.dirname(where)]), axes)
        if found:
            metadata["pixel_size_from"] = found
        return Volume(data, source, pixel_size=pixel_size, closer=close, metadata=metadata)
    except BaseException:
        close()
        raise


def _pick_dataset(h5: h5py.File, path: Path, dataset: str | None) -> tuple[h5py.Dataset, str]:
    if dataset:
        ds, where = resolve_dataset(h5, path, dataset)
        if not is_image_candidate(ds):
            raise ImageContentError(
                path,
                f"{where} is not an image dataset (shape {ds.shape}, type {ds.dtype}); "
                "expected 2 to 5 numeric dimensions",
            )
        return ds, where
    refuse_outside_links(h5, path)
    where = picked_dataset_path(image_datasets(h5), path)
    return h5[where], where


def _attr(obj, name: str):
    """An attribute's value, or ``None`` when absent or of a type h5py cannot read."""
    try:
        value = obj.attrs.get(name)
    except (OSError, TypeError, ValueError):
        return None
    return None if isinstance(value, h5py.Empty) else value


def _text(value) -> str | None:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _stored_axes(ds: h5py.Dataset, source: str) -> str | None:
    """Axis letters the file gives: ilastik ``axistags``, else h5py dimension labels."""
    tags = _attr(ds, "axistags")
    if tags is not None:
        return _axistags(_text(tags), ds.shape, source)
    labels = [(ds.dims[i].label or "").strip().lower() for i in range(ds.ndim)]
    letters = [label.upper() if len(label) == 1 else _LABEL_WORDS.get(label, "") for label in labels]
    if all(letters) and len(set(letters)) == len(letters):
        return "".join(letters)
    return None


def _axistags(text: str | None, shape: tuple, source: str) -> str:
    """Letters of ilastik/vigra ``axistags`` JSON (``{"axes": [{"key": "t"}, ...]}``), in stored order."""
    try:
        keys = [str(axis["key"]) for axis in json.loads(text or "")["axes"]]
    except (ValueError, KeyError, TypeError):
        raise ImageContentError(
            source, "its 'axistags' attribute cannot be read; give the axis order with --axes (e.g. ZYXC)"
        ) from None
    if len(keys) != len(shape) or any(len(k) != 1 for k in keys):
        raise ImageContentError(
            source,
            f"its 'axistags' attribute names the axes {keys} but the dataset has shape {tuple(shape)}; "
            "give the axis order with --axes",
        )
    return "".join(keys).upper()


def _pixel_size(objects: Iterable, axes: str) -> tuple[tuple | None, str | None]:
    """``((z, y, x) nm, where it was read)`` from the first usable attribute, or ``(None, None)``."""
    for i, obj in enumerate(objects):
        for name, nm_per_unit in PIXEL_SIZE_ATTRIBUTES:
            value = _attr(obj, name)
            if value is None:
                continue
            if nm_per_unit is None:
                unit = _text(_attr(obj, "unit"))
                nm_per_unit = units.nm_per_unit(unit or "nm")
            size = _zyx_nm(value, axes, nm_per_unit) if nm_per_unit else None
            if size is not None:
                return size, f"HDF5 attribute {name}" + (f" of group {obj.name}" if i else "")
    return None, None


def _zyx_nm(value, axes: str, nm_per_unit: float) -> tuple | None:
    """Three values are ``(z, y, x)``, two ``(y, x)``, one per axis follow ``axes``; NaN or 0 z = unknown."""
    try:
        values = [float(v) for v in np.ravel(np.asarray(value, dtype=np.float64))]
    except (TypeError, ValueError):
        return None
    if len(values) not in (2, 3) and len(values) == len(axes) and "Z" in axes:
        values = [values[axes.index(a)] for a in "ZYX"]
    if len(values) == 2:
        values = [math.nan] + values
    if len(values) != 3:
        return None
    z, y, x = (float(f"{v * nm_per_unit:.12g}") for v in values)
    if not (math.isfinite(y) and math.isfinite(x) and y > 0 and x > 0):
        return None
    return (z if math.isfinite(z) and z > 0 else None, y, x)


def pixel_size_attributes(pixel_size: tuple | None) -> dict[str, np.ndarray]:
    """Attributes recording a ``(z, y, x)`` nm voxel size: ``pixel_size_nm`` (NaN z when unknown)
    and, when all three are known, ``element_size_um`` (read by Fiji's HDF5 plugin and ilastik)."""
    if not pixel_size:
        return {}
    z, y, x = pixel_size
    attrs = {"pixel_size_nm": np.array([math.nan if z is None else z, y, x], dtype=np.float64)}
    if z is not None:
        attrs["element_size_um"] = np.array([z, y, x], dtype=np.float64) / 1000
    return attrs


def create_stack(group: h5py.Group, name: str, shape: tuple, dtype, growable: bool = False) -> h5py.Dataset:
    """An empty ``(Z, Y, X)`` dataset as results are stored: chunks one slice deep (tiles of at
    most 256 x 256), gzip level 4; ``growable`` lets Z grow with ``Dataset.resize``."""
    chunks = (1, min(shape[1], 256), min(shape[2], 256))
    maxshape = (None, *shape[1:]) if growable else None
    return group.create_dataset(
        name, shape=shape, dtype=dtype, chunks=chunks, maxshape=maxshape, compression="gzip", compression_opts=4
    )


def provenance_attributes(provenance: Mapping | None) -> dict:
    """Root attributes recording a run: strings and numbers as they are, other values as JSON text."""
    return {
        k: v if isinstance(v, (str, int, float)) else json.dumps(v, default=str) for k, v in (provenance or {}).items()
    }


#: Longest provenance text read back from a file (an untrusted file's attribute may be huge).
MAX_PROVENANCE_BYTES = 1 << 20


def read_provenance_parameters(path: Path) -> dict:
    """The ``parameters`` of the provenance an EMViewer HDF5 file carries in its root attributes
    (see :func:`provenance_attributes`; e.g. the ``emviewer predict`` record with mode, tta and
    models), or ``{}`` for a file without one, a malformed one, one over
    :data:`MAX_PROVENANCE_BYTES` or a file that is not HDF5. Never raises for the file's content."""
    if not path.is_file() or not h5py.is_hdf5(path):
        return {}
    try:
        h5, handle = open_checked(path)
    except ReportedError:
        return {}
    try:
        if "parameters" not in h5.attrs or h5.attrs.get_id("parameters").get_storage_size() > MAX_PROVENANCE_BYTES:
            return {}
        text = _text(_attr(h5, "parameters")) or "null"  # a variable-length text's size shows only when read
        value = json.loads(text) if len(text) <= MAX_PROVENANCE_BYTES else None
        return value if isinstance(value, dict) else {}
    except (OSError, KeyError, ValueError):  # an unreadable attribute, or not JSON
        return {}
    finally:
        h5.close()
        handle.close()


def write_stack(
    group: h5py.Group,
    name: str,
    shape: tuple,
    dtype,
    slices: Iterable[np.ndarray],
    cancel: CancelToken | None = None,
) -> h5py.Dataset:
    """Write ``slices`` (``(Y, X)`` each) into a new :func:`create_stack` dataset of ``shape``, one at a time."""
    ds = create_stack(group, name, shape, dtype)
    for z, plane in enumerate(slices):
        check(cancel)
        ds[z] = plane
    return ds


def write_hdf5(
    path: Path,
    raw: Volume | None = None,
    masks: Mapping[str, Volume] | None = None,
    probabilities: Mapping[str, Volume] | None = None,
    provenance: Mapping | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> None:
    """Write ``/raw``, ``/masks/<object>`` (uint8 0/255) and ``/probabilities/<object>`` (float32).

    Each is a chunked, gzip-compressed ``(Z, Y, X)`` dataset written slice by slice and
    carries the voxel size (of ``raw``, else of the first volume that has one) as the
    attributes of :func:`pixel_size_attributes`; the provenance goes into the root
    attributes (nested values as JSON text).
    """
    items = ([("raw", raw)] if raw is not None else []) + [(f"masks/{k}", v) for k, v in (masks or {}).items()]
    items += [(f"probabilities/{k}", v) for k, v in (probabilities or {}).items()]
    voxel = pixel_size_attributes(next((v.pixel_size for _, v in items if v.pixel_size), None))
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update(provenance_attributes(provenance))
        for i, (name, volume) in enumerate(items):
            report(progress, i, len(items), f"writing {name}")
            ds = write_stack(h5, name, volume.shape, volume.dtype, volume.iter_slices(), cancel)
            ds.attrs.update(voxel)
        report(progress, len(items), len(items), "done")
