"""OME-Zarr (OME-NGFF): axes and pixel size from ``multiscales`` metadata, and a writer.

Reading: NGFF 0.1-0.3 name no units; 0.4 keeps ``multiscales`` in ``.zattrs`` (Zarr v2),
0.5 under ``ome`` in ``zarr.json`` (Zarr v3). Each dataset (resolution level) carries
``coordinateTransformations`` (a ``scale`` per axis, optionally preceded by a
multiscale-wide one); each axis may carry a unit (``nanometer``, ``micrometer``,
``angstrom``...). The voxel size of a level is the product of both scales in that unit,
converted to nm. An axis without a (known) unit gives no size: a guess would be wrong.

Writing: :func:`write_ome_zarr` writes NGFF 0.4 (Zarr v2, ``/`` chunk keys), one resolution
level, slice by slice, into a temporary folder beside the target that is renamed into place.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, ShapeMismatchError
from ..progress import CancelToken, Progress, check, report
from .common import ZARR_MARKERS
from .units import nm_per_unit
from .zarr_safety import node_key

PIXEL_SIZE_FROM = "OME-Zarr coordinateTransformations"
NGFF_VERSION = "0.4"
#: Chunks of one slice, 1024 x 1024 pixels: a slice is written, and read back, in whole chunks.
CHUNK_YX = 1024

_SPARE_AXIS_LETTERS = "QIJKLMNOPRUVW"


@dataclass(frozen=True)
class NgffLevel:
    """One resolution level of an OME-Zarr image, as its metadata describes it.

    ``path`` is the level's array path inside the image group; ``axes`` one letter per
    stored axis (see :mod:`emviewer.core.io.axes`), ``None`` when the metadata names none;
    ``pixel_size`` is ``(z, y, x)`` in nm with ``z`` ``None`` for an image without a
    calibrated Z axis, or ``None`` when Y and X have no known unit.
    """

    path: str
    axes: str | None
    pixel_size: tuple[float | None, float, float] | None
    version: str


def multiscales(attrs: dict | None) -> list | None:
    """The ``multiscales`` list of a group's attributes (NGFF 0.4, or 0.5 under ``ome``)."""
    if not isinstance(attrs, dict):
        return None
    found = attrs.get("multiscales")
    if found is None and isinstance(attrs.get("ome"), dict):
        found = attrs["ome"].get("multiscales")
    return found if isinstance(found, list) and found and isinstance(found[0], dict) else None


def ngff_level(attrs: dict, source, dataset_path: str | None = None, index: int | None = None) -> NgffLevel | None:
    """Describe level ``dataset_path``, or the ``index``-th level (0 = full resolution), by
    default level 0, of the image whose attributes are ``attrs``.

    Returns ``None`` when the attributes hold no multiscales or no such level. Raises
    :class:`InputError` (via :func:`node_key`) when a dataset path steps outside the group.
    """
    found = multiscales(attrs)
    if found is None:
        return None
    image = found[0]
    datasets = [d for d in image.get("datasets") or [] if isinstance(d, dict) and isinstance(d.get("path"), str)]
    paths = [node_key(d["path"], source, "OME-Zarr dataset path") for d in datasets]
    if index is not None:
        dataset_path = paths[index] if 0 <= index < len(paths) else None
        if dataset_path is None:
            return None
    wanted = paths[0] if dataset_path is None and paths else dataset_path
    if wanted not in paths:
        return None
    dataset = datasets[paths.index(wanted)]
    version = str(image.get("version") or (attrs.get("ome") or {}).get("version") or "")
    axes = image.get("axes") if isinstance(image.get("axes"), list) else None
    letters = axis_letters(axes) if axes else ("TCZYX" if version in ("0.1", "0.2") else None)
    scale = _combined_scale(image.get("coordinateTransformations"), dataset.get("coordinateTransformations"))
    pixel_size = _pixel_size_nm(axes, letters, scale) if axes and letters else None
    return NgffLevel(wanted, letters, pixel_size, version)


def axis_letters(axes: list) -> str | None:
    """One letter per axis (Z Y X C T, spare letters for unknown axes) from NGFF axes or names."""
    letters: list[str | None] = []
    for axis in axes:
        name = str(axis.get("name") if isinstance(axis, dict) else axis).strip().lower()
        kind = axis.get("type") if isinstance(axis, dict) else None
        if name in ("z", "y", "x", "c", "t"):
            letters.append(name.upper())
        elif name in ("channel", "channels") or kind == "channel":
            letters.append("C")
        elif name == "time" or kind == "time":
            letters.append("T")
        else:
            letters.append(None)
    if len({x for x in letters if x}) != len([x for x in letters if x]):
        return None  # two axes claim one name: the metadata cannot be trusted to say which
    spare = iter(c for c in _SPARE_AXIS_LETTERS if c not in letters)
    return "".join(x or next(spare) for x in letters)


def _scale_of(transforms) -> list[float] | None:
    for item in transforms if isinstance(transforms, list) else []:
        if isinstance(item, dict) and item.get("type") == "scale" and isinstance(item.get("scale"), list):
            values = item["scale"]
            if all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in values
            ):
                return [float(v) for v in values]
    return None


def _combined_scale(global_transforms, dataset_transforms) -> list[float] | None:
    level = _scale_of(dataset_transforms)
    overall = _scale_of(global_transforms)
    if level is None:
        return None
    if overall is not None and len(overall) == len(level):
        return [a * b for a, b in zip(overall, level, strict=True)]
    return level


def _pixel_size_nm(axes: list, letters: str, scale: list[float] | None):
    if scale is None or len(scale) != len(letters) or len(axes) != len(letters):
        return None

    def size(letter: str) -> float | None:
        if letter not in letters:
            return None
        i = letters.index(letter)
        unit = axes[i].get("unit") if isinstance(axes[i], dict) else None
        factor = nm_per_unit(unit)
        return None if factor is None else float(f"{scale[i] * factor:.12g}")

    y, x = size("Y"), size("X")
    return None if y is None or x is None else (size("Z"), y, x)


# ----------------------------------------------------------------------------- writing


def _is_zarr_folder(path: Path) -> bool:
    return path.is_dir() and (not any(path.iterdir()) or any((path / m).exists() for m in ZARR_MARKERS))


@contextlib.contextmanager
def _atomic_folder(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target`` whole."""
    if target.exists() and not _is_zarr_folder(target):
        raise InputError(target, "exists and is not a Zarr store; refusing to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes owner-only folders; outputs get normal permissions
    try:
        yield tmp
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def multiscales_metadata(name: str, pixel_size, levels: int = 1) -> list[dict]:
    """The ``multiscales`` attribute of a ``(Z, Y, X)`` image with ``levels`` resolution levels
    at paths ``0``, ``1``...: level ``k`` has ``2**k`` times the pixel size in Y and X.
    ``pixel_size`` ``(z, y, x)`` in nm; an unknown size is scale 1 without a unit."""
    sizes = tuple(pixel_size) if pixel_size is not None else (None, None, None)
    axes = []
    for letter, size in zip("zyx", sizes, strict=True):
        axis = {"name": letter, "type": "space"}
        if size is not None:  # no unit for an unknown size: "1 nanometer" would be read as a calibration
            axis["unit"] = "nanometer"
        axes.append(axis)
    z, y, x = (float(s) if s is not None else 1.0 for s in sizes)
    datasets = [
        {"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": [z, y * 2**k, x * 2**k]}]}
        for k in range(levels)
    ]
    return [{"version": NGFF_VERSION, "name": name, "axes": axes, "datasets": datasets}]


def create_level_array(group, path: str, shape: tuple, dtype):
    """A new ``(Z, Y, X)`` array ``path`` in a Zarr v2 ``group``: chunks of one slice by at most
    :data:`CHUNK_YX` squared, Blosc-Zstd, ``/`` chunk keys, fill value 0."""
    import numcodecs
    import zarr

    chunks = (1, min(shape[1], CHUNK_YX), min(shape[2], CHUNK_YX))
    compressor = numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    if int(zarr.__version__.split(".")[0]) >= 3:
        return group.create_array(
            path, shape=shape, dtype=dtype, chunks=chunks, compressors=compressor, fill_value=0,
            chunk_key_encoding={"name": "v2", "separator": "/"},
        )  # fmt: skip
    return group.create_dataset(
        path, shape=shape, dtype=dtype, chunks=chunks, compressor=compressor, fill_value=0, dimension_separator="/"
    )


def open_group_for_writing(path: Path, *parts: str):
    """A new, empty Zarr v2 group at ``path/parts...`` (an existing one there is emptied)."""
    import zarr

    folder = path.joinpath(*parts)
    if int(zarr.__version__.split(".")[0]) >= 3:
        return zarr.open_group(str(folder), mode="w", zarr_format=2)
    return zarr.open_group(str(folder), mode="w")


def _write_image(
    group, name: str, slices: Iterable[np.ndarray], shape: tuple, dtype, pixel_size, target: Path, progress, cancel
) -> None:
    array = create_level_array(group, "0", shape, dtype)
    count = 0
    for z, plane in enumerate(slices):
        check(cancel)
        plane = np.asarray(plane)
        if z >= shape[0] or plane.shape != tuple(shape[1:]):
            raise ShapeMismatchError(
                target, f"{name} slice {z} has shape {plane.shape}; expected {shape[0]} slices of {tuple(shape[1:])}"
            )
        array[z] = plane
        count += 1
        report(progress, count, shape[0], f"writing {name}")
    if count != shape[0]:
        raise ShapeMismatchError(target, f"{name} got {count} slices; expected {shape[0]}")
    group.attrs["multiscales"] = multiscales_metadata(name, pixel_size)


def _extra_slices(value) -> tuple[Iterable[np.ndarray], tuple, np.dtype]:
    if isinstance(value, tuple) and len(value) == 3:
        slices, shape, dtype = value
        return slices, tuple(int(n) for n in shape), np.dtype(dtype)
    shape = tuple(int(n) for n in value.shape)
    return (np.asarray(value[z]) for z in range(shape[0])), shape, np.dtype(value.dtype)


def write_ome_zarr(
    path: str | Path,
    slices: Iterable[np.ndarray],
    shape: Sequence[int],
    dtype,
    pixel_size: Sequence[float | None] | None = None,
    name: str = "raw",
    extra_arrays: Mapping[str, object] | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> None:
    """Write a ``(Z, Y, X)`` stack as an OME-Zarr (NGFF 0.4) image, slice by slice, atomically.

    Parameters
    ----------
    path
        The ``.zarr`` folder to create; an existing Zarr store there is replaced only once the
        new one is complete. Any other existing file or folder is refused.
    slices
        ``shape[0]`` arrays of shape ``(Y, X)``; cast to ``dtype`` as they are stored.
    shape, dtype
        ``(Z, Y, X)`` and the pixel type, kept as given (no scaling).
    pixel_size
        ``(z, y, x)`` voxel size in nm, ``z`` may be ``None``; written as the level's scale
        with unit ``nanometer``. An unknown size is written as scale 1 without a unit.
    name
        The image name in the ``multiscales`` metadata.
    extra_arrays
        ``{name: stack}`` written beside the image with the same axes and scale, each stack a
        ``(Z, Y, X)`` array-like (numpy array, :class:`~emviewer.core.volume.Volume`) or a
        ``(slices, shape, dtype)`` triple. Integer stacks (masks) become NGFF labels at
        ``labels/<name>``; others (probabilities) images at ``<name>``.

    Layout: the image at the root (array ``0``, chunks of 1 x 1024 x 1024, Blosc-Zstd).

    Raises
    ------
    InputError
        When ``path`` exists and is not a Zarr store.
    ShapeMismatchError
        When the slices do not match ``shape``.
    """
    target, shape = Path(path), tuple(int(n) for n in shape)
    if len(shape) != 3:
        raise ShapeMismatchError(target, f"expected a (Z, Y, X) shape, got {shape}")
    extras = {key: _extra_slices(value) for key, value in (extra_arrays or {}).items()}
    for key in extras:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", key) or key in ("0", "labels"):
            raise ValueError(f"extra array name {key!r} must be a plain name other than '0' and 'labels'")
    with _atomic_folder(target) as tmp:
        _write_image(open_group_for_writing(tmp), name, slices, shape, dtype, pixel_size, target, progress, cancel)
        labels = [k for k, (_, _, dt) in extras.items() if dt.kind in "iu"]
        if labels:  # the labels group first: opening a group for writing empties its folder
            open_group_for_writing(tmp, "labels").attrs["labels"] = labels
        for key, (stack, extra_shape, extra_dtype) in extras.items():
            parts = ("labels", key) if key in labels else (key,)
            group = open_group_for_writing(tmp, *parts)
            _write_image(group, key, stack, extra_shape, extra_dtype, pixel_size, target, progress, cancel)
            if key in labels:
                group.attrs["image-label"] = {"version": NGFF_VERSION, "source": {"image": "../../"}}
