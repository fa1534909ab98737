"""Export a stack and its masks to HDF5, PNG, JPEG, TIFF, RAW or a PDF report.

One entry point, :func:`export`, used by the command line, the app's export dialog and
prediction output, so every format is written the same way (atomically, slice by slice).
:func:`mask_volumes` and :func:`probability_volumes` turn predictions kept per slice (the
app's) into the lazy stacks :func:`export` takes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import InputError
from .objects import OBJECTS
from .overlay import StackRenderer, mask_image
from .progress import CancelToken, Progress, check, report
from .scale_bar import draw_scale_bar
from .validate import check_same_shape
from .volume import LazySlices, Volume, map_slices

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
#: Rows of a slice rendered and written at once to TIFF and RAW (a TIFF strip each).
EXPORT_BAND_ROWS = 1024


def format_of(path: Path) -> str:
    """The export format named by the output file's extension."""
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise InputError(
            path,
            f"cannot export to {path.suffix or 'a file without extension'}; use one of {', '.join(sorted(FORMATS))}",
        ) from None


def parse_slices(text: str | None, n_slices: int, first: int = 0) -> list[int]:
    """``"0-4,9"`` -> ``[0, 1, 2, 3, 4, 9]`` (inclusive ranges); ``None`` -> all slices.

    ``first`` is the number the text gives the stack's first slice: 0 on the command line, 1 in
    the app (as its slider counts). The result is always 0-based. Raises
    :class:`~.errors.InputError` for text not like that or a slice outside the stack."""
    if not text:
        return list(range(n_slices))
    chosen: list[int] = []
    try:
        for part in text.split(","):
            first_text, _, last_text = part.strip().partition("-")
            low, high = int(first_text), int(last_text or first_text)
            if high < low:
                raise ValueError
            chosen += [z for z in range(low, high + 1) if z not in chosen]
    except ValueError:
        example = f"{first}-{first + 4},{first + 9}"
        raise InputError(
            None, f"slices {text!r} are not like '{example}' ({first}-based, ranges low to high)"
        ) from None
    bad = [z for z in chosen if not first <= z < n_slices + first]
    if bad:
        raise InputError(None, f"slice {bad[0]} is out of range: the stack has slices {first}-{n_slices - 1 + first}")
    return [z - first for z in chosen]


def binary_mask_volume(mask: Volume) -> Volume:
    """A saved mask stack (any two values) as uint8 0/255, read lazily."""
    return map_slices(mask, lambda s: mask_image(s > 0), np.uint8, pixelwise=True)


class _PlaneStack(LazySlices):
    """Lazy ``(Z, Y, X)`` array over a ``{z: (Y, X) array}`` dict, converting each slice when read."""

    def __init__(
        self, planes: Mapping[int, np.ndarray], shape: tuple, dtype, convert: Callable[[np.ndarray], np.ndarray]
    ) -> None:
        self._planes, self._convert = planes, convert
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)

    def _read(self, z: int) -> np.ndarray:
        return self._read_part(z, ())

    def _read_part(self, z: int, rest: tuple) -> np.ndarray:
        if z not in self._planes:
            raise InputError(None, f"slice {z} has no result")
        return self._convert(self._planes[z][rest])  # the converters work pixel by pixel: only the part


def _object_label(key: str) -> str:
    return OBJECTS[key].label if key in OBJECTS else key


def _slice_list(volume: Volume, zs: Sequence[int], shown: int = 5) -> str:
    text = ", ".join(f"{z} ({volume.slice_names[z]})" for z in zs[:shown])
    return text + (f" and {len(zs) - shown} more" if len(zs) > shown else "")


def _plane_volumes(volume, per_object, slices, objects, what: str, dtype, convert) -> dict[str, Volume]:
    wanted = list(range(len(volume))) if slices is None else [int(z) for z in slices]
    found: dict[str, Volume] = {}
    for key, planes in per_object.items():
        if objects is not None and key not in objects:
            continue
        planes = dict(planes)  # a snapshot: an export reads it while new slices may arrive
        missing = [z for z in wanted if z not in planes]
        if len(missing) == len(wanted):
            continue
        if missing:
            raise InputError(
                None,
                f"{_object_label(key)}: no {what} on slice{'s' if len(missing) > 1 else ''} "
                f"{_slice_list(volume, missing)}; predict the whole stack first, or export only slices that have one",
            )
        found[key] = Volume(
            _PlaneStack(planes, volume.shape, dtype, convert),
            f"{_object_label(key)} {what}s",
            slice_names=list(volume.slice_names),
            pixel_size=volume.pixel_size,
        )
    return found


def mask_volumes(
    volume: Volume,
    masks: Mapping[str, Mapping[int, np.ndarray]],
    slices: Sequence[int] | None = None,
    objects: Sequence[str] | None = None,
) -> dict[str, Volume]:
    """Masks kept per slice as lazy mask stacks for :func:`export`.

    Parameters
    ----------
    volume
        The predicted stack ``(Z, Y, X)``: shape, slice names and pixel size of the result.
    masks
        ``{object: {z: (Y, X) bool}}``; read at the call (a snapshot of each object's dict).
    slices
        0-based slices that will be exported (all by default).
    objects
        Keys to consider (every object in ``masks`` by default).

    Returns
    -------
    dict[str, Volume]
        Object key -> ``(Z, Y, X)`` uint8 stack (0 or 255) the shape of ``volume``; only the
        exported slices are ever read. Objects without a mask on any exported slice are left out.

    Raises
    ------
    InputError
        An object has masks on some of the exported slices but not all (the message names them).
    """
    return _plane_volumes(volume, masks, slices, objects, "mask", np.uint8, mask_image)


def probability_volumes(
    volume: Volume,
    probabilities: Mapping[str, Mapping[int, np.ndarray]],
    slices: Sequence[int] | None = None,
    objects: Sequence[str] | None = None,
) -> dict[str, Volume]:
    """Like :func:`mask_volumes` for probabilities kept per slice: ``(Z, Y, X)`` float32 in [0, 1]."""
    return _plane_volumes(
        volume, probabilities, slices, objects, "probability map", np.float32, lambda p: np.asarray(p, np.float32)
    )


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
    colours: Mapping[str, tuple[int, int, int]] | None = None,
    scale_bar: bool = True,
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
    colours
        Object key -> overlay colour, RGB 0-255 (default: each object's standard colour).
    scale_bar
        Burn a scale bar into PNG/JPEG overlays and 8-bit raw images, and into the PDF's
        images, when the volume has a pixel size. Masks, 16-bit PNG, TIFF, RAW and HDF5 hold
        data and never get one (TIFF, RAW and HDF5 record the pixel size instead).

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

        extra = {**dict(masks.items()), **{f"{k}_probabilities": p for k, p in probabilities.items()}}
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

        write_report(
            out,
            volume,
            masks,
            metrics=metrics,
            provenance=provenance,
            progress=progress,
            cancel=cancel,
            colours=colours,
            scale_bar=scale_bar,
            numbers=[z + 1 for z in indices],
        )
        return [out]
    renderer = StackRenderer(volume, masks, opacity, colours=colours)
    return _export_pixels(out, fmt, renderer, content, scale_bar, progress, cancel)


def _figure(fmt: str, frame: np.ndarray, pixel_size, scale_bar: bool) -> np.ndarray:
    """A PNG/JPEG frame as shown (8-bit) with a scale bar burnt in; other frames are data, left as they are."""
    if not scale_bar or fmt not in ("png", "jpeg") or frame.dtype != np.uint8 or not pixel_size:
        return frame
    return draw_scale_bar(frame, pixel_size[-1])


def _export_pixels(out, fmt, renderer: StackRenderer, content, scale_bar, progress, cancel) -> list[Path]:
    volume, masks = renderer.volume, renderer.masks
    n = len(volume)
    rgb = content == "overlay"
    mask = next(iter(masks.values()), None)

    def frame(z: int, rows: tuple[int, int] | None = None) -> np.ndarray:
        """Slice ``z`` (or its ``rows``) as written."""
        part = () if rows is None else (slice(*rows),)
        if content == "overlay":
            return _figure(fmt, renderer.overlay(z, rows=rows), volume.pixel_size, scale_bar)
        if content == "mask" and mask is not None:  # _check_inputs refused a mask export without masks
            return mask[(z,) + part]
        if fmt == "jpeg" or (fmt == "png" and volume.dtype not in (np.uint8, np.uint16)):
            return _figure(fmt, renderer.display(z, rows=rows), volume.pixel_size, scale_bar)  # 8 bits (PNG: or 16)
        return _figure(fmt, volume[(z,) + part], volume.pixel_size, scale_bar)

    def frames(band_rows: int | None = None):
        """Each slice whole, or (``band_rows``) in bands of that many rows, top to bottom."""
        height = volume.shape[1]
        for z in range(n):
            check(cancel)
            report(progress, z, n, f"writing slice {z + 1} of {n}")
            if band_rows is None:
                yield frame(z)
            else:
                for start in range(0, height, band_rows):
                    check(cancel)
                    yield frame(z, (start, min(height, start + band_rows)))
        report(progress, n, n, "done")

    dtype = np.uint8 if content != "raw" else volume.dtype
    shape = volume.shape + ((3,) if rgb else ())
    if fmt in ("png", "jpeg"):
        from .io.slices import write_slices

        paths = slice_paths(out, volume.slice_names)
        write_slices(paths, frames())
        return paths
    # TIFF and RAW take rows as they come: a huge slice is never whole in memory (nor its RGB)
    if fmt == "tiff":
        from .io.tiff import write_tiff

        bands = frames(EXPORT_BAND_ROWS)
        write_tiff(out, bands, shape, dtype, rgb=rgb, pixel_size=volume.pixel_size, band_rows=EXPORT_BAND_ROWS)
        return [out]
    from .io.raw import sidecar_path, write_raw

    write_raw(
        out,
        frames(EXPORT_BAND_ROWS),
        shape,
        dtype,
        pixel_size=volume.pixel_size,
        extra={"content": content, "source": volume.source},
        cancel=cancel,
    )
    return [out, sidecar_path(out)]
