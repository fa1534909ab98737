"""Export a stack and its masks to HDF5, PNG, JPEG, TIFF, RAW or a PDF report.

One entry point, :func:`export`, used by the command line, the app's export dialog and
prediction output, so every format is written the same way (atomically, slice by slice).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import InputError
from .overlay import StackRenderer
from .progress import CancelToken, Progress, check, report
from .validate import check_same_shape
from .volume import Volume, map_slices

FORMATS = {
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".zarr": "ome-zarr",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".raw": "raw",
    ".pdf": "pdf",
}
CONTENTS = ("raw", "mask", "overlay")


def format_of(path: Path) -> str:
    """The export format named by the output file's extension."""
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise InputError(
            path,
            f"cannot export to {path.suffix or 'a file without extension'}; use one of {', '.join(sorted(FORMATS))}",
        ) from None


def parse_slices(text: str | None, n_slices: int) -> list[int]:
    """``"0-4,9"`` -> ``[0, 1, 2, 3, 4, 9]`` (0-based, inclusive ranges); ``None`` -> all slices."""
    if not text:
        return list(range(n_slices))
    chosen: list[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            first, last = int(first), int(last or first)
            if last < first:
                raise ValueError
            chosen += [z for z in range(first, last + 1) if z not in chosen]
    except ValueError:
        raise InputError(None, f"slices {text!r} are not like '0-4,9' (0-based, ranges low to high)") from None
    bad = [z for z in chosen if not 0 <= z < n_slices]
    if bad:
        raise InputError(None, f"slice {bad[0]} is out of range: the stack has slices 0-{n_slices - 1}")
    return chosen


def binary_mask_volume(mask: Volume) -> Volume:
    """A saved mask stack (any two values) as uint8 0/255, read lazily."""
    return map_slices(mask, lambda s: np.where(s > 0, 255, 0).astype(np.uint8), np.uint8)


def slice_paths(out: Path, names: Sequence[str]) -> list[Path]:
    """File per slice: ``out`` itself for one slice, else ``<stem>_<slice name><suffix>``."""
    if len(names) == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{name}{out.suffix}") for name in names]


def _check_inputs(volume: Volume, masks: Mapping[str, Volume], content: str, fmt: str) -> None:
    for mask in masks.values():
        check_same_shape(volume.shape, mask.shape, volume.source, mask.source)
    if content not in CONTENTS:
        raise InputError(None, f"unknown content {content!r}; choose from {', '.join(CONTENTS)}")
    if content in ("mask", "overlay") and not masks and fmt not in ("hdf5", "ome-zarr", "pdf"):
        raise InputError(None, f"content {content!r} needs masks, and none were given")
    if content == "mask" and len(masks) > 1 and fmt != "hdf5":
        raise InputError(None, "mask export to image files takes one object at a time")


def export(
    out: str | Path,
    volume: Volume,
    masks: Mapping[str, Volume] | None = None,
    probabilities: Mapping[str, Volume] | None = None,
    content: str | None = None,
    slices: Sequence[int] | None = None,
    metrics: Mapping | None = None,
    provenance: Mapping | None = None,
    opacity: float | Mapping[str, float] = 0.45,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> list[Path]:
    """Write ``volume`` (and masks) to ``out`` in the format its extension names.

    Parameters
    ----------
    volume
        The EM stack ``(Z, Y, X)``, any supported dtype.
    masks
        Object key -> mask stack of the same shape (any two values; > 0 is the object).
    probabilities
        Object key -> float32 stack in [0, 1]; written by HDF5 only.
    content
        ``raw``, ``mask`` or ``overlay`` for PNG, JPEG, TIFF and RAW; default overlay when
        masks are given, else raw. HDF5 and PDF always hold raw and masks.
    slices
        0-based slice indices to export (default all).

    Returns the files written. Nothing is left behind when it fails or is cancelled.
    """
    out = Path(out)
    fmt = format_of(out)
    masks = {k: binary_mask_volume(m) for k, m in (masks or {}).items()}
    content = content or ("overlay" if masks else "raw")
    _check_inputs(volume, masks, content, fmt)
    indices = list(range(len(volume))) if slices is None else list(dict.fromkeys(slices))
    if not indices:
        raise InputError(None, "no slices chosen to export")
    volume = map_slices(volume, indices=indices)
    masks = {k: map_slices(m, indices=indices) for k, m in masks.items()}
    probabilities = {k: map_slices(p, indices=indices) for k, p in (probabilities or {}).items()}
    if fmt == "hdf5":
        from .io.hdf5 import write_hdf5

        write_hdf5(
            out,
            raw=volume,
            masks=masks,
            probabilities=probabilities,
            provenance=provenance,
            progress=progress,
            cancel=cancel,
        )
        return [out]
    if fmt == "ome-zarr":
        from .io.ome_zarr import write_ome_zarr

        extra = {**{k: m for k, m in masks.items()}, **{f"{k}_probabilities": p for k, p in probabilities.items()}}
        write_ome_zarr(
            out,
            volume.iter_slices(),
            volume.shape,
            volume.dtype,
            volume.pixel_size,
            extra_arrays=extra,
            progress=progress,
            cancel=cancel,
        )
        return [out]
    if fmt == "pdf":
        from .report import write_report

        write_report(out, volume, masks, metrics=metrics, provenance=provenance, progress=progress, cancel=cancel)
        return [out]
    return _export_pixels(out, fmt, volume, masks, content, opacity, progress, cancel)


def _export_pixels(out, fmt, volume, masks, content, opacity, progress, cancel) -> list[Path]:
    renderer = StackRenderer(volume, masks, opacity)
    n = len(volume)
    rgb = content == "overlay"
    mask = next(iter(masks.values()), None)

    def frames():
        for z in range(n):
            check(cancel)
            report(progress, z, n, f"writing slice {z + 1} of {n}")
            if content == "overlay":
                yield renderer.overlay(z)
            elif content == "mask":
                yield mask.slice(z)
            elif fmt == "jpeg" or (fmt == "png" and volume.dtype not in (np.uint8, np.uint16)):
                yield renderer.display(z)  # JPEG holds 8 bits, PNG 8 or 16
            else:
                yield volume.slice(z)
        report(progress, n, n, "done")

    dtype = np.uint8 if content != "raw" else volume.dtype
    shape = volume.shape + ((3,) if rgb else ())
    if fmt in ("png", "jpeg"):
        from .io.slices import write_slices

        paths = slice_paths(out, volume.slice_names)
        write_slices(paths, frames())
        return paths
    if fmt == "tiff":
        from .io.tiff import write_tiff

        write_tiff(out, frames(), shape, dtype, rgb=rgb, pixel_size=volume.pixel_size)
        return [out]
    from .io.raw import sidecar_path, write_raw

    write_raw(
        out,
        frames(),
        shape,
        dtype,
        pixel_size=volume.pixel_size,
        extra={"content": content, "source": volume.source},
        cancel=cancel,
    )
    return [out, sidecar_path(out)]
