"""TIFF files of every layout tifffile reads, as an exact ``(Z, Y, X)`` Volume or a clear refusal.

Which pixels: a file may hold several series (a preview or thumbnail before the stack, OME
images, pages appended one by one, which tifffile reads as one 2D series each). We read the
series the user names (``file.tif:series=N``), else the largest 3D one, skipping reduced
(preview) series; consecutive 2D series of one shape and dtype are one stack in page order.
How: memory-mapped when the series is one uncompressed run of bytes, else decoded one page at
a time (:class:`TiffPages`). Axes come from the series (ImageJ, OME, tifffile's metadata).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import tifffile

from ..errors import ImageContentError, InputError, UnreadableFileError
from ..volume import Volume
from .atomic import atomic_path
from .axes import ReadOptions, as_zyx
from .common import check_decoded_size, check_slice_size
from .mapped import MappedArray
from .tiff_metadata import COLOUR, declared_size, stored_axes, tiff_pixel_size

_PREVIEW_NAMES = ("thumbnail", "macro", "label", "preview", "overview")


class TiffPages:
    """Lazy array over a TIFF series' pages: shape ``stack_shape + page shape``.

    Page ``i`` holds the plane at C-order position ``i`` of ``stack_shape`` (as tifffile
    orders series). Integer and slice indices on the stack axes decode only the pages asked
    for; the last page decoded is kept, so a single-page series decodes once.
    """

    def __init__(self, pages: Sequence, stack_shape: tuple, path: Path) -> None:
        self._pages, self._stack, self._path = list(pages), tuple(stack_shape), path
        key = self._pages[0].keyframe
        self.shape = self._stack + tuple(key.shape)
        self.dtype = np.dtype(key.dtype)
        self._last: tuple = (None, None)

    def read_page(self, i: int) -> np.ndarray:
        """Decode page ``i`` of the series; raises :class:`UnreadableFileError` naming it."""
        index, array = self._last
        if index == i:
            return array
        page = self._pages[i]
        try:
            array = page.asarray()
        except Exception as exc:  # codecs raise their own kinds (zlib.error, DeflateError, ...)
            raise UnreadableFileError(
                self._path, f"cannot decode page {page.index} ({type(exc).__name__}: {exc})"
            ) from None
        self._last = (i, array)
        return array

    def _page_number(self, at: tuple) -> int:
        return int(np.ravel_multi_index(at, self._stack)) if at else 0

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (len(self.shape) - len(key) + 1) + key[i + 1 :]
        n = len(self._stack)
        stack_key, page_key = key[:n] + (slice(None),) * max(0, n - len(key)), key[n:]
        ranges: list[range | list[int]] = []
        for k, size in zip(stack_key, self._stack, strict=True):
            if isinstance(k, slice):
                ranges.append(range(*k.indices(size)))
            elif isinstance(k, (int, np.integer)) and -size <= k < size:
                ranges.append([int(k) % size])
            else:
                raise IndexError(f"unsupported index {key!r} for shape {self.shape}")
        kept = tuple(len(r) for k, r in zip(stack_key, ranges, strict=True) if isinstance(k, slice))
        planes = [self.read_page(self._page_number(at))[page_key] for at in itertools.product(*ranges)]
        if not planes:
            return np.empty(kept + np.empty(self.shape[n:], np.uint8)[page_key].shape, self.dtype)
        return np.stack(planes).reshape(kept + planes[0].shape)


def _open(path: Path) -> tifffile.TiffFile:
    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:  # a damaged header can raise anything struct or tifffile raise
        raise UnreadableFileError(path, f"not a readable TIFF file ({exc})") from None
    try:
        if not tif.series:
            raise UnreadableFileError(path, "not a readable TIFF file (no image in it)")
        tif.filehandle.set_lock(True)  # pages may be decoded from several threads
    except InputError:
        tif.close()
        raise
    except Exception as exc:
        tif.close()
        raise UnreadableFileError(path, f"not a readable TIFF file ({exc})") from None
    return tif


def _describe(tif: tifffile.TiffFile) -> str:
    shown = [
        f"{i}: {s.axes} {tuple(s.shape)} {s.dtype}" + (" (preview)" if _is_preview(s) else "")
        for i, s in enumerate(tif.series[:12])
    ]
    return "; ".join(shown) + ("; ..." if len(tif.series) > 12 else "")


def _is_preview(series) -> bool:
    return bool(series.keyframe.is_reduced) or series.name.lower() in _PREVIEW_NAMES


def _planes(series) -> int:
    """Number of ``(Y, X)`` planes in a series (colour samples not counted)."""
    return int(np.prod([n for a, n in zip(series.axes, series.shape, strict=True) if a not in "YXS"], dtype=np.int64))


def _named_series(tif: tifffile.TiffFile, path: Path, text: str) -> list[int]:
    name, _, number = text.partition("=")
    if name.strip().lower() != "series" or not number.strip().isdigit():
        raise InputError(path, f"cannot read {text!r} after the TIFF file name: write file.tif:series=N (N from 0)")
    n = int(number)
    if n >= len(tif.series):
        raise InputError(path, f"has no series {n}; its series are {_describe(tif)}")
    return [n]


def _auto_series(tif: tifffile.TiffFile) -> list[int]:
    """Series to read: the largest 3D one, or a run of same-shaped 2D series (appended pages)."""
    kept = [i for i, s in enumerate(tif.series) if not _is_preview(s)] or list(range(len(tif.series)))
    runs: list[tuple] = []
    for i in kept:
        s = tif.series[i]
        key = (tuple(s.shape), str(s.dtype), s.axes) if _planes(s) == 1 else None
        if key is not None and runs and runs[-1][0] == key:
            runs[-1][1].append(i)
        else:
            runs.append((key, [i]))
    stacks = [ix for key, ix in runs if key is None or len(ix) > 1]
    return max(stacks or [[i] for i in kept], key=lambda ix: sum(tif.series[i].size for i in ix))


def _truncated(path: Path, problem: str) -> UnreadableFileError:
    return UnreadableFileError(path, f"the file is truncated or damaged: {problem}")


def _chain_is_cut(tif: tifffile.TiffFile) -> bool:
    """True when the last page tifffile could parse points on to another, unreadable page."""
    fmt, fh = tif.tiff, tif.filehandle
    if tif.is_ndpi or not len(tif.pages):
        return False
    with fh.lock:
        offset = tif.pages[-1].offset
        fh.seek(offset)
        count = struct.unpack(fmt.tagnoformat, fh.read(fmt.tagnosize))[0]
        fh.seek(offset + fmt.tagnosize + count * fmt.tagsize)
        raw = fh.read(fmt.offsetsize)
    return len(raw) < fmt.offsetsize or struct.unpack(fmt.offsetformat, raw)[0] != 0


def _check_complete(tif: tifffile.TiffFile, path: Path, series_list: list) -> None:
    """Refuse series whose header claims more data than the file holds, before any is read."""
    size = tif.filehandle.size
    declared_any = False
    for series in series_list:
        declared, said = declared_size(tif, series)
        declared_any = declared_any or declared > 0
        if series.size < declared:
            raise _truncated(path, f"its header says {said}, only {series.axes} {tuple(series.shape)} can be found")
        offset = series.dataoffset
        if offset is not None:  # one run of bytes: its end is enough (and pages stay unparsed)
            if offset + series.nbytes > size:
                raise _truncated(path, f"the image data end at byte {offset + series.nbytes:,}, the file has {size:,}")
            continue
        for page in series.pages:
            if page is None:
                raise _truncated(path, f"pages of series {series.axes} {tuple(series.shape)} are missing")
            ends = np.add(page.dataoffsets, page.databytecounts, dtype=np.int64)
            if len(ends) and ends.max() > size:
                raise _truncated(path, f"page {page.index} ends at byte {int(ends.max()):,}, the file has {size:,}")
    if (len(series_list) > 1 or not declared_any) and _chain_is_cut(tif):  # no count vouches for the pages
        raise _truncated(path, f"the page after page {len(tif.pages) - 1} cannot be read")


def _memmap(tif: tifffile.TiffFile, path: Path, series) -> MappedArray | None:
    if series.dataoffset is None or not tif.filehandle.is_file:
        return None
    dtype = np.dtype(tif.byteorder + series.dtype.char)
    return MappedArray(path, dtype, series.dataoffset, tuple(series.shape))


def _paged(series_list: list, path: Path) -> TiffPages:
    """Page-by-page reader of one series, or of several one-page series as a stack."""
    if len(series_list) > 1:
        return TiffPages([s.pages[0] for s in series_list], (len(series_list),), path)
    series = series_list[0]
    page_shape = tuple(series.keyframe.shape)
    stack = tuple(series.shape[: len(series.shape) - len(page_shape)])
    if tuple(series.shape[len(stack) :]) != page_shape or int(np.prod(stack, dtype=np.int64)) != len(series.pages):
        raise ImageContentError(
            path,
            f"unsupported TIFF layout: series {series.axes} {tuple(series.shape)} "
            f"in {len(series.pages)} pages of {page_shape}",
        )
    return TiffPages(series.pages, stack, path)


def _pixels(tif: tifffile.TiffFile, path: Path, series_list: list):
    """The chosen series' pixels: a memory map where possible, else a :class:`TiffPages`."""
    series = series_list[0]
    page = series.keyframe
    if page.dtype is None:
        raise ImageContentError(
            path, f"unsupported TIFF sample format ({page.bitspersample} bits, sample format {int(page.sampleformat)})"
        )
    yx = (int(page.imagelength), int(page.imagewidth))
    check_slice_size(yx, path)
    check_decoded_size(yx, page.samplesperpixel if page.photometric in COLOUR else 1, page.dtype.itemsize, path)
    _check_complete(tif, path, series_list)
    mapped = _memmap(tif, path, series) if len(series_list) == 1 else None
    if mapped is not None:
        return mapped
    check_decoded_size(
        yx, int(page.size) // (yx[0] * yx[1]), page.dtype.itemsize, path
    )  # all planes of a page decode at once
    data = _paged(series_list, path)
    data.read_page(0)  # decode one page now: a missing codec or damage shows at once
    return data


def read_tiff(path: Path, options: ReadOptions | None = None, series: str | None = None) -> Volume:
    """Open a TIFF file as a lazy ``(Z, Y, X)`` Volume, keeping its dtype.

    Parameters
    ----------
    path
        A TIFF, BigTIFF, ImageJ or OME-TIFF file, compressed with any codec imagecodecs reads.
    options
        ``channel`` picks one channel of a multi-channel file (and skips the RGB to grey
        conversion); ``axes`` replaces the stored axis order of the series read.
    series
        ``"series=N"`` (0-based) to read that series instead of the largest 3D one.

    Returns
    -------
    Volume
        ``(Z, Y, X)`` in the file's dtype (photometric RGB converted to grey);
        ``pixel_size`` ``(z, y, x)`` in nm where the file is calibrated; ``metadata`` has
        ``axes`` (stored order read), ``series`` and ``pixel_size_from``.

    Raises
    ------
    InputError
        Not a TIFF, truncated, a page too large to decode, a series that does not exist,
        several channels without ``--channel``, a page that fails to decode.
    """
    options = options or ReadOptions()
    tif = _open(path)
    try:
        return _read(tif, path, options, series)
    except InputError:
        tif.close()
        raise
    except Exception as exc:  # tifffile on a damaged or crafted file: still one line naming it
        tif.close()
        raise UnreadableFileError(path, f"cannot read the TIFF ({type(exc).__name__}: {exc})") from None


def _read(tif: tifffile.TiffFile, path: Path, options: ReadOptions, series: str | None) -> Volume:
    indices = _named_series(tif, path, series) if series else _auto_series(tif)
    series_list = [tif.series[i] for i in indices]
    page = series_list[0].keyframe
    axes = options.axes or stored_axes(tif, series_list, options)
    pixels = _pixels(tif, path, series_list)
    data = as_zyx(pixels, axes, path, options.channel, colour_to_grey=page.photometric in COLOUR)
    pixel_size, pixel_from = tiff_pixel_size(tif, indices[0], page)
    metadata = {"format": "tiff", "axes": axes, "series": indices[0] if len(indices) == 1 else indices}
    if pixel_from:
        metadata["pixel_size_from"] = pixel_from
    names = [path.stem] if data.shape[0] == 1 else ()
    source = f"{path}:{series}" if series else str(path)

    def close() -> None:
        if isinstance(pixels, MappedArray):
            pixels.close()
        tif.close()

    return Volume(data, source, slice_names=names, pixel_size=pixel_size, closer=close, metadata=metadata)


IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)


def imagej_calibration(pixel_size: tuple[float | None, float, float] | None) -> tuple[dict, dict]:
    """ImageJ ``metadata`` entries and ``TiffWriter.write`` keywords recording a ``(z, y, x)`` nm
    voxel size as Fiji does: resolution in pixels per µm, ``unit=um``, ``spacing`` (z in µm).
    Both are empty when ``y`` or ``x`` is unknown; ``spacing`` is left out when ``z`` is."""
    metadata: dict = {}
    kwargs: dict = {}
    if pixel_size is not None and pixel_size[1] and pixel_size[2]:
        z, y, x = pixel_size
        kwargs["resolution"] = (1000.0 / x, 1000.0 / y)
        metadata["unit"] = "um"
        if z:
            metadata["spacing"] = z / 1000.0
    return metadata, kwargs


def write_tiff(
    path: Path,
    slices: Iterable[np.ndarray],
    shape: tuple,
    dtype,
    rgb: bool = False,
    pixel_size: tuple[float | None, float, float] | None = None,
    band_rows: int | None = None,
) -> None:
    """Write ``(Z, Y, X)`` (or ``(Z, Y, X, 3)`` RGB) slices as an ImageJ (Fiji) multi-page TIFF.

    ``slices`` is consumed one at a time, so a large stack never sits in memory; with
    ``band_rows`` it yields each slice in bands of that many rows (the last of a slice may be
    shorter), written as strips of ``band_rows`` rows, so not even a slice does.
    ImageJ knows only uint8, uint16 and float32: other dtypes are written as float32.
    ``pixel_size`` ``(z, y, x)`` in nm (``z`` may be ``None``) is written as Fiji does:
    resolution in pixels per µm, ``unit=um`` and ``spacing`` (z in µm).
    """
    dtype = np.dtype(dtype)
    out_dtype = dtype if dtype.type in IMAGEJ_DTYPES else np.dtype(np.float32)
    calibration, kwargs = imagej_calibration(pixel_size)
    metadata = {"axes": "ZYXS" if rgb else "ZYX", **calibration}
    data: Iterator[np.ndarray] | Iterator[bytes]
    if band_rows is not None:  # tifffile takes strips as bytes, in the file's (native) byte order
        data = (np.ascontiguousarray(s, dtype=out_dtype).tobytes() for s in slices)
        kwargs["rowsperstrip"] = band_rows
    else:
        data = (np.asarray(s, dtype=out_dtype) for s in slices)
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            data=data,
            shape=shape,
            dtype=out_dtype,
            imagej=True,
            photometric="rgb" if rgb else "minisblack",
            metadata=metadata,
            **kwargs,
        )
