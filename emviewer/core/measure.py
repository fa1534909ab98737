"""Objects of a mask stack: 3D connected components (2D per slice for a single image) and
their sizes, in µm from the voxel size or in pixels when there is none.

Labelling is :func:`scipy.ndimage.label` with full connectivity (26 neighbours in 3D, 8 in
2D, like ``skimage.measure.label(connectivity=ndim)``); the per-object sums behind centroid,
size and shape are :func:`numpy.bincount` over the labelled voxels, so no loop runs per object.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from .errors import InputWarning
from .io.atomic import atomic_path
from .progress import CancelToken, Progress, check, report
from .validate import check_same_shape, label_to_mask
from .volume import Volume

PixelSize = tuple[float | None, float, float]


@dataclass
class ObjectTable:
    """One row per object, as named columns of equal length.

    Attributes
    ----------
    columns
        Column name -> ``(N,)`` array, in CSV order. Always ``id``, ``first_slice``,
        ``last_slice``, ``slices`` (0-based slice indices, count spanned), ``centroid_z_px``,
        ``centroid_y_px``, ``centroid_x_px``; with a voxel size (``unit == "um"``)
        ``centroid_{z,y,x}_um`` (``z`` in 3D only); ``voxels`` (3D) or ``pixels`` (2D); then
        ``volume_um3`` or ``area_um2``, ``equivalent_diameter_um``, ``major_axis_length_um``,
        or without a voxel size (``unit == "px"``) ``equivalent_diameter_px`` and
        ``major_axis_length_px``.
        ``mean_intensity`` (in the image's own values) when an image was given.
    dims
        3: objects are 3D components with a volume; 2: 2D components per slice with an area.
    unit
        ``"um"`` (sizes in µm, µm², µm³) or ``"px"`` (pixels, voxels).
    pixel_size
        The ``(z, y, x)`` voxel size in nm the sizes were computed with, or ``None``.
    labels
        ``(Z, Y, X)`` int32 label image: 0 background, ``id`` for each object kept.
    z_offset
        Slice of the stack that ``labels[0]`` is (not 0 when only some slices were measured,
        see :func:`measure_slices`); the slice columns always count from the stack's first slice.
    """

    columns: dict[str, np.ndarray]
    dims: int
    unit: str
    pixel_size: PixelSize | None = None
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), np.int32), repr=False)
    z_offset: int = 0

    def __len__(self) -> int:
        return len(self.columns["id"])

    @property
    def size_column(self) -> str:
        """Name of the size column: ``volume_um3``, ``area_um2``, ``voxels`` or ``pixels``."""
        if self.unit == "um":
            return "volume_um3" if self.dims == 3 else "area_um2"
        return "voxels" if self.dims == 3 else "pixels"

    @property
    def size_unit(self) -> str:
        """Unit of :attr:`size_column`, for messages: ``µm³``, ``µm²``, ``voxels`` or ``pixels``."""
        if self.unit == "um":
            return "µm³" if self.dims == 3 else "µm²"
        return "voxels" if self.dims == 3 else "pixels"

    @property
    def total_size(self) -> float:
        """Sum of :attr:`size_column` over all objects."""
        return float(np.sum(self.columns[self.size_column]))

    def rows(self) -> list[dict[str, float | int]]:
        """The table as one ``{column: value}`` dict per object (Python numbers)."""
        names = list(self.columns)
        values = [self.columns[name].tolist() for name in names]
        return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]

    def summary(self) -> str:
        """One line, e.g. ``"12 objects (3D), total volume 3.41 µm³"``."""
        what = "volume" if self.dims == 3 else "area"
        count = f"{len(self)} object{'' if len(self) == 1 else 's'} ({self.dims}D)"
        text = f"{count}, total {what} {self.total_size:.6g} {self.size_unit}"
        return text if self.unit == "um" else text + " (no voxel size: give --pixel-size Z,Y,X in nm)"


def label_objects(mask: np.ndarray, per_slice: bool = False, min_size: int = 0) -> tuple[np.ndarray, int]:
    """Connected components of a boolean ``(Z, Y, X)`` mask, with full connectivity.

    Parameters
    ----------
    mask
        ``(Z, Y, X)`` boolean (anything non-zero is object).
    per_slice
        Label each slice on its own (8-connected in 2D) instead of 26-connected in 3D.
    min_size
        Objects of fewer voxels (pixels, per slice) are dropped.

    Returns
    -------
    labels : (Z, Y, X) int32
        0 background, 1..N the objects kept, numbered in raster order of their first voxel.
    n : int
        Number of objects kept.
    """
    structure = np.ones((3, 3, 3), dtype=bool)
    if per_slice:
        structure[0] = structure[2] = False  # no links between slices
    labels, n = ndimage.label(np.asarray(mask, dtype=bool), structure=structure)
    labels = labels.astype(np.int32, copy=False)
    if n == 0 or min_size <= 1:
        return labels, int(n)
    keep = np.bincount(labels.ravel(), minlength=n + 1) >= min_size
    keep[0] = False
    new_ids = np.zeros(n + 1, dtype=np.int32)
    new_ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return new_ids[labels], int(keep.sum())


def usable_pixel_size(pixel_size: PixelSize | None, dims: int) -> tuple[float, float, float] | None:
    """``(z, y, x)`` nm when the sizes can be in µm (``z`` may be unknown, then 1, in 2D), else None."""
    if pixel_size is None:
        return None
    z, y, x = pixel_size
    if dims == 3 and z is None:
        warnings.warn(
            InputWarning("the slice spacing (z) is unknown: sizes are in voxels; give --pixel-size Z,Y,X in nm"),
            stacklevel=3,
        )
        return None
    return (float(z) if z is not None else 1.0, float(y), float(x))


def _moments(labels: np.ndarray, n: int, axes: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per object: voxel count ``(N,)``, centroid ``(N, 3)`` in pixels, covariance of the
    ``axes`` coordinates ``(N, len(axes), len(axes))`` in pixels², and the flat indices of the
    labelled voxels with their labels (for other per-object sums)."""
    flat = np.flatnonzero(labels)
    ids = labels.ravel()[flat]
    coords = np.unravel_index(flat, labels.shape)
    counts = np.bincount(ids, minlength=n + 1)[1:].astype(np.float64)
    centroid = np.stack([np.bincount(ids, c, minlength=n + 1)[1:] for c in coords], axis=1) / counts[:, None]
    centred = [coords[a] - centroid[ids - 1, a] for a in axes]
    cov = np.empty((n, len(axes), len(axes)))
    for i, ci in enumerate(centred):  # a few axis pairs, not objects
        for j in range(i, len(axes)):
            cov[:, i, j] = cov[:, j, i] = np.bincount(ids, ci * centred[j], minlength=n + 1)[1:] / counts
    return counts, centroid, cov, np.stack([flat, ids])


def measure_objects(
    mask: np.ndarray,
    image: np.ndarray | None = None,
    pixel_size: PixelSize | None = None,
    min_size: int = 0,
    per_slice: bool | None = None,
    cancel: CancelToken | None = None,
) -> ObjectTable:
    """Label the objects of a boolean mask stack and measure each.

    Parameters
    ----------
    mask
        ``(Z, Y, X)`` (or ``(Y, X)``) boolean object mask.
    image
        The EM stack of the same shape, any numeric dtype, for ``mean_intensity``; or ``None``.
    pixel_size
        ``(z, y, x)`` voxel size in nm (``z`` may be ``None`` in 2D), or ``None``: sizes in pixels.
    min_size
        Objects of fewer voxels (pixels in 2D) are dropped.
    per_slice
        2D objects per slice (areas) instead of 3D objects (volumes); default: only for a
        single image (``Z == 1``).
    cancel
        Checked between the steps.

    Returns
    -------
    ObjectTable

    Raises
    ------
    ShapeMismatchError
        ``image`` does not have the shape of ``mask``.
    """
    mask = np.asarray(mask, dtype=bool)
    mask = mask[None] if mask.ndim == 2 else mask
    if image is not None:
        image = np.asarray(image)
        image = image[None] if image.ndim == 2 else image
        check_same_shape(mask.shape, image.shape, "the masks", "the image")
    if per_slice is None:
        per_slice = mask.shape[0] == 1
    dims = 2 if per_slice else 3
    spacing = usable_pixel_size(pixel_size, dims)
    labels, n = label_objects(mask, per_slice, min_size)
    check(cancel)
    axes = [1, 2] if dims == 2 else [0, 1, 2]
    counts, centroid, cov, (flat, ids) = _moments(labels, n, axes)
    check(cancel)
    unit = "px" if spacing is None else "um"
    scale = np.ones(3) if spacing is None else np.asarray(spacing) / 1000.0  # nm -> µm
    spans = ndimage.find_objects(labels)
    first = np.array([s[0].start for s in spans], dtype=np.int64).reshape(n)
    last = np.array([s[0].stop - 1 for s in spans], dtype=np.int64).reshape(n)
    columns: dict[str, np.ndarray] = {
        "id": np.arange(1, n + 1, dtype=np.int64),
        "first_slice": first,
        "last_slice": last,
        "slices": last - first + 1,
        "centroid_z_px": centroid[:, 0],
        "centroid_y_px": centroid[:, 1],
        "centroid_x_px": centroid[:, 2],
    }
    if spacing is not None:
        for a in axes:
            columns[f"centroid_{'zyx'[a]}_um"] = centroid[:, a] * scale[a]
    columns["voxels" if dims == 3 else "pixels"] = counts.astype(np.int64)
    size = counts * float(np.prod(scale[axes]))
    if spacing is not None:
        columns["volume_um3" if dims == 3 else "area_um2"] = size
    columns[f"equivalent_diameter_{unit}"] = (
        np.cbrt(6.0 * size / math.pi) if dims == 3 else np.sqrt(4.0 * size / math.pi)
    )
    # the full length of the ellipse (ellipsoid) with the same second moments, as skimage's
    # axis_major_length: a variance of a²/4 (2D) or a²/5 (3D) along the semi-axis a
    physical_cov = cov * np.outer(scale[axes], scale[axes])
    largest = np.clip(np.linalg.eigvalsh(physical_cov)[:, -1], 0, None) if n else np.zeros(0)
    columns[f"major_axis_length_{unit}"] = np.sqrt((16.0 if dims == 2 else 20.0) * largest)
    if image is not None:
        values = image.ravel()[flat].astype(np.float64)
        columns["mean_intensity"] = np.bincount(ids, values, minlength=n + 1)[1:] / counts
    return ObjectTable(columns, dims, unit, pixel_size if spacing is not None else None, labels)


def measure_volume(
    masks: Volume,
    image: Volume | None = None,
    pixel_size: PixelSize | None = None,
    min_size: int = 0,
    per_slice: bool | None = None,
    cancel: CancelToken | None = None,
) -> ObjectTable:
    """:func:`measure_objects` on a mask stack as ``emviewer predict`` writes it (or any
    stack of two values, the larger one the object).

    Parameters
    ----------
    masks
        The masks, ``(Z, Y, X)``, read whole.
    image
        The EM stack of the same shape, for ``mean_intensity``; or ``None``.
    pixel_size
        ``(z, y, x)`` in nm; default: the masks' voxel size, else the image's.
    min_size, per_slice, cancel
        As for :func:`measure_objects`.

    Raises
    ------
    ImageContentError
        The masks hold more than two values.
    ShapeMismatchError
        The image's shape differs from the masks'.
    """
    if image is not None:
        check_same_shape(masks.shape, image.shape, masks.source, image.source)
    mask = label_to_mask(masks.read(), masks.source, what="mask")
    check(cancel)
    data = image.read() if image is not None else None
    if pixel_size is None:
        pixel_size = masks.pixel_size or (image.pixel_size if image is not None else None)
    return measure_objects(mask, data, pixel_size, min_size, per_slice, cancel)


def measure_slices(
    masks: Mapping[int, np.ndarray],
    image: Volume,
    pixel_size: PixelSize | None = None,
    min_size: int = 0,
    per_slice: bool | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> ObjectTable:
    """:func:`measure_objects` on per-slice masks as the app keeps them: slices without a mask
    count as empty.

    Only the slices from the first to the last with a mask are read (the others hold no
    object); the table's slice numbers and z centroids are those of the whole stack, and its
    ``labels`` cover the slices read, from :attr:`ObjectTable.z_offset` on.

    Parameters
    ----------
    masks
        0-based slice -> ``(Y, X)`` boolean mask of the image's slice shape; at least one.
    image
        The EM stack the masks belong to, for ``mean_intensity``.
    pixel_size
        ``(z, y, x)`` in nm, or ``None``: sizes in pixels.
    min_size, cancel
        As for :func:`measure_objects`.
    per_slice
        As for :func:`measure_objects`; default: only when ``image`` is a single image.
    progress
        ``progress(done, total, message)`` as slices are read.

    Raises
    ------
    ValueError
        ``masks`` is empty.
    """
    if not masks:
        raise ValueError("no slice has a mask")
    z0, z1 = min(masks), max(masks) + 1
    stack = np.zeros((z1 - z0, *image.shape[1:]), bool)
    data = np.empty((z1 - z0, *image.shape[1:]), image.dtype)
    for i, z in enumerate(range(z0, z1)):
        check(cancel)
        report(progress, i, z1 - z0, f"reading slice {z + 1}")
        if z in masks:
            stack[i] = masks[z]
        data[i] = image.slice(z)
    report(progress, z1 - z0, z1 - z0, "labelling and measuring the objects")
    per_slice = len(image) == 1 if per_slice is None else per_slice  # a single image, not a single slice read
    table = measure_objects(stack, data, pixel_size, min_size, per_slice, cancel)
    columns, table.z_offset = table.columns, z0
    for name in ("first_slice", "last_slice", "centroid_z_px"):
        columns[name] = columns[name] + z0
    if "centroid_z_um" in columns and table.pixel_size is not None:
        columns["centroid_z_um"] = columns["centroid_z_px"] * float(table.pixel_size[0] or 1.0) / 1000.0
    return table


def _cell(value: float | int) -> str:
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def write_csv(table: ObjectTable, path: str | Path) -> Path:
    """Write ``table`` to ``path`` as CSV (header of column names, one row per object), atomically.

    Raises
    ------
    OSError
        The file cannot be written (nothing is left at ``path`` then).
    """
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(table.columns)
        for row in table.rows():
            writer.writerow([_cell(v) for v in row.values()])
    return path
