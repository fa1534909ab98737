"""N5 containers (BigDataViewer, Paintera, n5-viewer, tensorstore), read lazily block by block.

N5 is a folder: each dataset is a sub-folder whose ``attributes.json`` gives
``dimensions`` and ``blockSize`` (X first), ``dataType`` and ``compression``; its blocks
are files ``<dataset>/<x>/<y>/<z>``. A block starts with a big-endian header (``uint16``
mode, ``uint16`` number of dimensions, ``uint32`` size per dimension, X first) followed by
the compressed big-endian samples, X fastest. Blocks that were never written read as 0.

Blocks are decoded with bounded output (the header's size, never more), and nothing is read
through a link leaving the container. Compressions: raw, gzip (and zlib), bzip2, xz, blosc,
zstd. N5's lz4 (the Java LZ4 block stream) is refused by name.
"""

from __future__ import annotations

import bz2
import itertools
import lzma
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

import numpy as np

from ..errors import ImageContentError, InputError, UnreadableFileError
from ..volume import Volume
from .axes import ReadOptions, as_zyx, guess_axes
from .common import check_decoded_size, check_slice_size, short_list
from .ome_zarr import axis_letters
from .units import nm_per_unit
from .zarr_safety import MAX_CHUNK_BYTES, MAX_STORED_OBJECT_BYTES, StoreFiles, check_sizes, confine, join_key, node_key

_DTYPES = {
    n: np.dtype(n).newbyteorder(">")
    for n in ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float32", "float64")
}
_COMPRESSIONS = ("raw", "gzip", "bzip2", "xz", "blosc", "zstd")
_MAX_DEPTH, _MAX_NODES = 12, 10_000


@dataclass(frozen=True)
class _Dataset:
    shape: tuple[int, ...]  # numpy order (Z, Y, X): N5's X-first dimensions reversed
    blocks: tuple[int, ...]
    dtype: np.dtype  # big-endian, as stored
    compression: dict


def _dataset(attrs: dict, source, where: str) -> _Dataset:
    dims, block, dtype = attrs.get("dimensions"), attrs.get("blockSize"), attrs.get("dataType")
    if dtype not in _DTYPES:
        raise UnreadableFileError(
            source, f"N5 dataset {where or '/'} has data type {dtype!r}; EMViewer reads integers and floats"
        )
    compression = attrs.get("compression", {"type": attrs.get("compressionType", "raw")})
    kind = compression.get("type") if isinstance(compression, dict) else None
    if kind == "lz4":
        raise UnreadableFileError(
            source,
            f"N5 dataset {where or '/'} uses lz4 compression (Java LZ4 block stream), which EMViewer cannot decode; "
            "re-save it with gzip, zstd or blosc compression (Fiji: File > Save As > HDF5/N5/Zarr/OME-NGFF)",
        )
    if kind not in _COMPRESSIONS:
        raise UnreadableFileError(
            source, f"N5 dataset {where or '/'} uses compression {kind!r}; EMViewer reads {', '.join(_COMPRESSIONS)}"
        )
    if not (
        isinstance(dims, list)
        and isinstance(block, list)
        and len(dims) == len(block)
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in dims + block)
    ):
        raise UnreadableFileError(
            source, f"N5 dataset {where or '/'} has malformed dimensions {dims!r} or blockSize {block!r}"
        )
    info = _Dataset(tuple(dims[::-1]), tuple(block[::-1]), _DTYPES[dtype], compression)
    check_sizes(info.shape, info.blocks, info.dtype.itemsize, source, where)
    return info


class N5Array:
    """Lazy array-like over one N5 dataset, in numpy axis order (N5's X-first reversed).

    Supports integer, slice and Ellipsis indexing (and one integer list per axis, taken as
    outer indexing); reads only the blocks that overlap the request. ``dtype`` is the native
    byte order of the stored type, so values are exact.
    """

    def __init__(self, root: Path, key: str, info: _Dataset, source: str) -> None:
        self._root, self._key, self._info, self._source = Path(root), key, info, source
        self._root_real = os.path.realpath(root)
        self.shape, self.ndim = info.shape, len(info.shape)
        self.dtype = info.dtype.newbyteorder("=")

    def __getitem__(self, key):
        picks = _picks(key, self.shape)
        lo = [min(p) if len(p) else 0 for p, _ in picks]
        hi = [max(p) + 1 if len(p) else 0 for p, _ in picks]
        box = np.zeros([h - low for low, h in zip(lo, hi, strict=True)], dtype=self.dtype)
        if box.size:
            ranges = [range(low // b, (h - 1) // b + 1) for low, h, b in zip(lo, hi, self._info.blocks, strict=True)]
            for index in itertools.product(*ranges):
                self._copy_block(index, lo, hi, box)
        out = box[np.ix_(*[np.asarray(p) - low for (p, _), low in zip(picks, lo, strict=True)])] if box.size else box
        dropped = tuple(i for i, (_, scalar) in enumerate(picks) if scalar)
        return out.reshape([n for i, n in enumerate(out.shape) if i not in dropped]) if dropped else out

    def _copy_block(self, index: tuple[int, ...], lo, hi, box: np.ndarray) -> None:
        block = self._read_block(index)
        if block is None:
            return  # never written: stays 0
        start = [i * b for i, b in zip(index, self._info.blocks, strict=True)]
        src, dst = [], []
        for s, n, low, h in zip(start, block.shape, lo, hi, strict=True):
            a, b = max(s, low), min(s + n, h)
            src.append(slice(a - s, b - s))
            dst.append(slice(a - low, b - low))
        box[tuple(dst)] = block[tuple(src)]

    def _read_block(self, index: tuple[int, ...]) -> np.ndarray | None:
        name = "/".join(str(i) for i in index[::-1])  # block paths are X first
        where = join_key(self._key, name)
        real = confine(self._root_real, os.path.join(self._root, *where.split("/")), self._root)
        if not os.path.isfile(real):
            return None
        with open(real, "rb") as f:
            data = f.read(MAX_STORED_OBJECT_BYTES + 1)
        return _decode_block(data, self._info, index, self._source, where)


def _decode_block(data: bytes, info: _Dataset, index, source, where: str) -> np.ndarray:
    ndim = len(info.shape)
    if len(data) < 4 + 4 * ndim:
        raise UnreadableFileError(source, f"N5 block {where} is truncated")
    mode, count = struct.unpack(">HH", data[:4])
    if mode != 0 or count != ndim:
        raise UnreadableFileError(
            source, f"N5 block {where} has mode {mode} and {count} dimensions; expected mode 0 and {ndim}"
        )
    sizes = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])[::-1]
    edge = [min(b, n - i * b) for i, b, n in zip(index, info.blocks, info.shape, strict=True)]
    if any(s < e or s > b for s, e, b in zip(sizes, edge, info.blocks, strict=True)):
        raise UnreadableFileError(
            source,
            f"N5 block {where} claims size {sizes[::-1]} (X first); "
            f"expected {tuple(edge[::-1])} to {info.blocks[::-1]}",
        )
    expected = math.prod(sizes) * info.dtype.itemsize
    if expected > MAX_CHUNK_BYTES:
        raise ImageContentError(source, f"N5 block {where} claims {expected:,} bytes")
    raw = _decompress(data[4 + 4 * ndim :], expected, info.compression, source, where)
    if len(raw) != expected:
        raise UnreadableFileError(
            source, f"N5 block {where} holds {len(raw):,} bytes of data; its header says {expected:,}"
        )
    return np.frombuffer(raw, dtype=info.dtype).reshape(sizes).astype(info.dtype.newbyteorder("="))


def _decompress(body: bytes, expected: int, compression: dict, source, where: str) -> bytes:
    kind = compression.get("type")
    try:
        if kind == "raw":
            return body[: expected + 1]
        if kind == "gzip":  # gzip or zlib framing (useZlib): detected from the header
            return zlib.decompressobj(zlib.MAX_WBITS | 32).decompress(body, expected + 1)
        if kind == "bzip2":
            return bz2.BZ2Decompressor().decompress(body, expected + 1)
        if kind == "xz":
            return lzma.LZMADecompressor().decompress(body, expected + 1)
        import numcodecs

        if kind == "blosc" and (len(body) < 16 or struct.unpack("<I", body[4:8])[0] != expected):
            return b""  # blosc's own header (bytes 4-8: decoded size) disagrees: reported by the caller
        codec = numcodecs.Blosc() if kind == "blosc" else numcodecs.Zstd()
        out = np.zeros(expected, dtype=np.uint8)  # the codec checks the block fits: no larger output
        return bytes(codec.decode(body, out=out))
    except (OSError, EOFError, ValueError, RuntimeError, zlib.error, lzma.LZMAError) as exc:
        raise UnreadableFileError(source, f"N5 block {where} could not be decompressed ({kind}: {exc})") from None


def _picks(key, shape) -> list[tuple[np.ndarray, bool]]:
    """Per axis: the indices picked and whether the axis is dropped (an integer index)."""
    key = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis for k in key):
        at = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:at] + (slice(None),) * (len(shape) - len(key) + 1) + key[at + 1 :]
    if len(key) > len(shape):
        raise IndexError(f"too many indices for an array of shape {shape}")
    key = key + (slice(None),) * (len(shape) - len(key))
    picks = []
    for k, n in zip(key, shape, strict=True):
        if isinstance(k, slice):
            picks.append((np.arange(*k.indices(n)), False))
        elif isinstance(k, (int, np.integer)):
            if not -n <= k < n:
                raise IndexError(f"index {k} is out of range for an axis of {n}")
            picks.append((np.array([int(k) % n]), True))
        else:
            values = np.asarray(k, dtype=np.int64).ravel()
            if values.size and (values.min() < -n or values.max() >= n):
                raise IndexError(f"indices out of range for an axis of {n}")
            picks.append((values % n, False))
    return picks


# ----------------------------------------------------------------------------- container


def _is_dataset(attrs: dict | None) -> TypeGuard[dict]:
    return isinstance(attrs, dict) and "dimensions" in attrs and "dataType" in attrs


def _datasets(files: StoreFiles, key: str, depth: int = 0, seen: list | None = None) -> list[str]:
    """Datasets below ``key``; a multiscale group (``s0``, ``s1``...) counts once, as ``s0``."""
    seen = [0] if seen is None else seen
    found: list[str] = []
    children = files.folders(key)
    if "s0" in children and _is_dataset(files.json(join_key(key, "s0/attributes.json"))):
        return [join_key(key, "s0")]
    for child in children:
        seen[0] += 1
        if seen[0] > _MAX_NODES:
            raise UnreadableFileError(
                files.path,
                f"the N5 container holds more than {_MAX_NODES:,} folders; name the dataset as {files.path.name}:path",
            )
        child_key = join_key(key, child)
        if _is_dataset(files.json(join_key(child_key, "attributes.json"))):
            found.append(child_key)
        elif depth < _MAX_DEPTH:
            found += _datasets(files, child_key, depth + 1, seen)
    return found


def _pick(files: StoreFiles, name: str | None) -> tuple[str, dict]:
    path = files.path
    key = node_key(name, path, "dataset path") if name else ""
    attrs = files.json(join_key(key, "attributes.json"))
    if _is_dataset(attrs):
        return key, attrs
    found = _datasets(files, key)
    if len(found) == 1:
        return found[0], files.json(join_key(found[0], "attributes.json")) or {}
    if found:
        raise InputError(
            path, f"the N5 container holds several datasets ({short_list(found)}); choose one as {path.name}:{found[0]}"
        )
    if name:
        raise InputError(path, f"no N5 dataset {name!r} in the container")
    raise ImageContentError(path, "the N5 container holds no dataset")


def _resolution(attrs: dict) -> tuple[list[float], list] | None:
    """``(sizes, units)`` X first from ``pixelResolution`` or ``resolution`` (+ ``units``)."""
    pixel = attrs.get("pixelResolution")
    if isinstance(pixel, dict) and isinstance(pixel.get("dimensions"), list):
        sizes = pixel["dimensions"]
        return sizes, [pixel.get("unit")] * len(sizes)
    sizes = attrs.get("resolution")
    if isinstance(sizes, list):
        units = attrs.get("units", attrs.get("unit"))
        return sizes, units if isinstance(units, list) else [units] * len(sizes)
    return None


def _pixel_size(files: StoreFiles, key: str, axes: str):
    """``((z, y, x) nm, where from)`` from the dataset's attributes or those of its groups."""
    parts = key.split("/") if key else []
    for depth in range(len(parts), -1, -1):
        attrs = files.json(join_key("/".join(parts[:depth]), "attributes.json")) or {}
        found = _resolution(attrs)
        if found is None:
            continue
        sizes, units = found[0][::-1], found[1][::-1]  # X first on disk; numpy order here
        if len(sizes) != len(axes) or len(units) != len(axes):
            return None, None
        assumed = any(u is None for u in units)
        factors = [nm_per_unit("nm" if u is None else u) for u in units]
        y, x = _axis_nm(axes, "Y", sizes, factors), _axis_nm(axes, "X", sizes, factors)
        if y is None or x is None:
            return None, None
        name = "N5 pixelResolution" if "pixelResolution" in attrs else "N5 resolution"
        return (_axis_nm(axes, "Z", sizes, factors), y, x), name + (" (no unit given: taken as nm)" if assumed else "")
    return None, None


def _axis_nm(axes: str, letter: str, sizes: list, factors: list[float | None]) -> float | None:
    """The size of axis ``letter`` in nm, or ``None`` when absent, unitless or not positive."""
    i = axes.find(letter)
    if i < 0:
        return None
    value, factor = sizes[i], factors[i]
    if factor is None or not isinstance(value, (int, float)) or value <= 0:
        return None
    return float(f"{value * factor:.12g}")


def read_n5(path: Path, name: str | None = None, options: ReadOptions | None = None) -> Volume:
    """Open an N5 dataset lazily as a ``(Z, Y, X)`` :class:`Volume`.

    Parameters
    ----------
    path
        The N5 container folder (``*.n5``), or a dataset folder inside one.
    name
        Dataset path inside the container (``setup0/timepoint0/s0``); default: the only
        dataset, or ``s0`` of the only multiscale group.
    options
        ``axes`` (stored order, numpy order: Z before Y before X) and ``channel``.

    Returns
    -------
    Volume
        Samples in the stored type (native byte order), ``pixel_size`` ``(z, y, x)`` in nm from
        ``pixelResolution`` or ``resolution`` (X first on disk), ``metadata["axes"]``.

    Raises
    ------
    InputError
        Naming the container: unknown compression or data type, damaged blocks, sizes beyond
        the limits, paths or links leading outside the container, several datasets.
    """
    options = options or ReadOptions()
    path = Path(path)
    if not path.is_dir():
        raise UnreadableFileError(path, "not an N5 container: an N5 container is a folder")
    files = StoreFiles(path)
    try:
        key, attrs = _pick(files, name)
        where = f"{path}:{key}" if key else str(path)
        info = _dataset(attrs, path, key)
        stored_axes = attrs.get("axes")
        named = (
            axis_letters(list(stored_axes)[::-1])
            if isinstance(stored_axes, list) and len(stored_axes) == len(info.shape)
            else None
        )
        axes = (
            options.axes or (named if named and "Y" in named and "X" in named else None) or guess_axes(info.shape)
        ).upper()
        pixel_size, pixel_from = _pixel_size(files, key, axes)
    finally:
        files.close()
    data = as_zyx(N5Array(path, key, info, where), axes, where, options.channel)
    check_slice_size(data.shape, where)
    check_decoded_size(data.shape[-2:], 1, info.dtype.itemsize, where)
    metadata = {"format": "n5", "dataset": key or "/", "axes": axes, "compression": info.compression.get("type")}
    if pixel_from:
        metadata["pixel_size_from"] = pixel_from
    return Volume(data, where, pixel_size=pixel_size, metadata=metadata)
