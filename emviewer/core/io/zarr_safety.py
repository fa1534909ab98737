"""Zarr and N5 stores read as untrusted input: their metadata is checked before zarr opens them.

A store's JSON metadata chooses the code that decodes its chunks. With zarr 2 and numcodecs
before 0.15.2 (all that pip offers on Python 3.10) the ``pickle`` codec runs code from the
store when an array is opened, and object codecs (``vlen-*``, ``json``, ``msgpack``,
``categorize``) build Python objects. So this module reads the metadata itself, as plain
JSON, and refuses before zarr sees the store:

- a compressor, filter or codec that is not on the allow-list (numeric compressors,
  checksums and byte filters only), and storage transformers;
- a data type other than booleans, integers and floats (object, string, structured);
- a shape or chunk shape that claims more data than a reader can sanely hold;
- an array path with ``..`` or ``.`` parts (from the user or from OME-Zarr metadata);
- in a folder store, any file reached through a symbolic link that leaves the store.

The allow-lists and limits are constants here, so a review sees the whole policy at once.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import ImageContentError, InputError, UnreadableFileError

#: Largest metadata file we parse (``.zarray``, ``.zattrs``, ``zarr.json``, ``attributes.json``).
MAX_METADATA_BYTES = 16 * 2**20
#: Largest decoded chunk: zarr decodes whole chunks, so this bounds memory per chunk read.
MAX_CHUNK_BYTES = 2**30
#: Largest stored object read whole (a compressed chunk, a shard, a zip member).
MAX_STORED_OBJECT_BYTES = 2 * MAX_CHUNK_BYTES
#: Largest array we accept (1 TiB); a larger claim is a damaged or hostile header.
MAX_ARRAY_BYTES = 2**40
#: Longest axis we accept; a stack gets one slice name per Z, so Z must stay countable.
MAX_AXIS_LENGTH = 2**20
MAX_NDIM = 6

#: numcodecs ids (Zarr v2 ``compressor`` / ``filters``): compressors, checksums, numeric filters.
SAFE_V2_CODECS = frozenset(
    {"blosc", "zstd", "lz4", "gzip", "zlib", "bz2", "lzma", "delta", "shuffle", "fixedscaleoffset",
     "crc32", "crc32c", "adler32"}
)  # fmt: skip
#: Zarr v3 codec names; ``numcodecs.<id>`` is how zarr 3 names the v2 codecs in v3 metadata.
SAFE_V3_CODECS = frozenset(
    {"bytes", "transpose", "crc32c", "sharding_indexed", "blosc", "zstd", "gzip"}
    | {f"numcodecs.{c}" for c in SAFE_V2_CODECS}
)
SAFE_V3_DTYPES = frozenset(
    {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64"}
)
_SAFE_V2_DTYPE = re.compile(r"^[<>|=]?(b1|u[1248]|i[1248]|f[248])$")
_DTYPE_PARAMETERS = ("dtype", "astype", "encode_dtype", "decode_dtype")
_OUTSIDE = "EMViewer reads only data stored inside the store"


@dataclass(frozen=True)
class ArrayInfo:
    """What the checked metadata of one array says.

    ``shape`` and ``chunks`` are in stored axis order; ``dimension_names`` come from Zarr v3
    ``dimension_names`` (or xarray's ``_ARRAY_DIMENSIONS`` attribute), ``None`` when absent.
    """

    zarr_format: Literal[2, 3]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    dimension_names: tuple[str, ...] | None = None


# ----------------------------------------------------------------------------- paths


def node_key(name: str, source, what: str = "array path") -> str:
    """``name`` (``/labels/mito``, ``0``) as a store key ``labels/mito``; ``""`` is the root.

    Raises
    ------
    InputError
        For ``..`` or ``.`` parts, backslashes or NUL characters: a name may not step out
        of the store or name a folder twice.
    """
    text = str(name)
    if "\\" in text or "\x00" in text:
        raise InputError(source, f"{what} {name!r} contains a backslash or NUL character")
    parts = [p for p in text.strip("/").split("/") if p != ""]
    if any(p in (".", "..") for p in parts):
        raise InputError(
            source, f"{what} {name!r} steps outside its place with '.' or '..'; give a path inside the store"
        )
    return "/".join(parts)


def join_key(*parts: str) -> str:
    """Join store keys with ``/``, skipping empty parts (the root)."""
    return "/".join(p for p in parts if p)


def confine(root_real: str, file_path: str, source, whole: bool = True) -> str:
    """The real path of ``file_path`` after checking it lies inside ``root_real``.

    Raises
    ------
    UnreadableFileError
        When a symbolic link leads outside the store, or (``whole``) the file is larger than
        :data:`MAX_STORED_OBJECT_BYTES`, so reading it whole could exhaust memory.
    """
    real = os.path.realpath(file_path)
    if not _inside(root_real, real):
        raise UnreadableFileError(
            source,
            f"{_link_shown(root_real, file_path, source)} is a symbolic link leading outside the store; {_OUTSIDE}",
        )
    if whole:
        try:
            size = os.stat(real).st_size
        except OSError:
            return real
        if size > MAX_STORED_OBJECT_BYTES:
            raise UnreadableFileError(
                source,
                f"{os.path.basename(file_path)} holds {size:,} bytes, more than any chunk may; refusing to read it",
            )
    return real


def _inside(root_real: str, real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _link_shown(root_real: str, file_path: str, source) -> str:
    """The store-relative name of the first link on ``file_path`` that leads outside."""
    relative = os.path.relpath(os.path.abspath(file_path), os.path.abspath(str(source)))
    parts = relative.split(os.sep)
    for i in range(1, len(parts) + 1):
        here = os.path.join(str(source), *parts[:i])
        if os.path.islink(here) and not _inside(root_real, os.path.realpath(here)):
            return "/".join(parts[:i])
    return "/".join(parts)


# ----------------------------------------------------------------------------- store files


class StoreFiles:
    """Read-only access to the files of a folder or zip store, confined to the store.

    Used for metadata before zarr opens anything, and to list a store's folders. Raises
    :class:`UnreadableFileError` naming the store for links that leave it and oversized
    files, never reads outside the store.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        if self.path.is_file():
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (OSError, zipfile.BadZipFile) as exc:
                raise UnreadableFileError(self.path, f"not a readable zip store ({exc})") from None
            self._names = set(self._zip.namelist())
            _check_zip_members(self._zip, self.path)
        else:
            self.root_real = os.path.realpath(self.path)

    @property
    def is_zip(self) -> bool:
        return self._zip is not None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def read(self, key: str, limit: int = MAX_METADATA_BYTES) -> bytes | None:
        """The bytes of ``key``, or ``None`` when there is no such file."""
        if self._zip is not None:
            if key not in self._names:
                return None
            info = self._zip.getinfo(key)
            if info.file_size > limit:
                raise UnreadableFileError(
                    self.path, f"{key} holds {info.file_size:,} bytes, more than the limit of {limit:,}"
                )
            try:
                return self._zip.read(info)
            except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
                raise UnreadableFileError(self.path, f"{key} is damaged in the zip ({exc})") from None
        real = confine(self.root_real, os.path.join(self.path, key), self.path, whole=False)
        if not os.path.isfile(real):
            return None
        if os.path.getsize(real) > limit:
            raise UnreadableFileError(
                self.path, f"{key} holds {os.path.getsize(real):,} bytes, more than the limit of {limit:,}"
            )
        with open(real, "rb") as f:
            return f.read()

    def json(self, key: str) -> dict | None:
        """The JSON object in ``key``, ``None`` when absent; raises for anything but an object."""
        data = self.read(key)
        if data is None:
            return None
        try:
            value = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise UnreadableFileError(self.path, f"{key} is not valid JSON ({str(exc)[:80]})") from None
        if not isinstance(value, dict):
            raise UnreadableFileError(self.path, f"{key} does not hold a JSON object")
        return value

    def folders(self, key: str) -> list[str]:
        """Names of the sub-folders of folder ``key``, sorted."""
        if self._zip is not None:
            prefix = key + "/" if key else ""
            found = {
                n[len(prefix) :].split("/", 1)[0]
                for n in self._names
                if n.startswith(prefix) and "/" in n[len(prefix) :]
            }
            return sorted(found)
        folder = os.path.join(self.path, key)
        confine(self.root_real, folder, self.path, whole=False)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return []
        names = sorted(e.name for e in entries if e.is_dir())
        for name in names:  # a linked folder that leaves the store is refused, not skipped
            confine(self.root_real, os.path.join(folder, name), self.path, whole=False)
        return names


def _check_zip_members(zf: zipfile.ZipFile, source) -> None:
    for info in zf.infolist():
        if info.file_size > MAX_STORED_OBJECT_BYTES:
            raise UnreadableFileError(
                source, f"zip member {info.filename} claims {info.file_size:,} bytes, more than any chunk may"
            )


# ----------------------------------------------------------------------------- array metadata


def check_array_metadata(meta: dict, attrs: dict | None, source, where: str) -> ArrayInfo:
    """Check one array's metadata (``.zarray`` or a ``zarr.json`` of node type array).

    Parameters
    ----------
    meta
        The parsed metadata document.
    attrs
        The array's attributes (for xarray's ``_ARRAY_DIMENSIONS``), or ``None``.
    where
        The array's path in the store, for messages.

    Raises
    ------
    UnreadableFileError
        Unknown or unsafe codecs, data types, storage transformers or malformed fields.
    ImageContentError
        Shapes or chunks that claim more data than the limits allow.
    """
    fmt = meta.get("zarr_format")
    if fmt == 2:
        info = _check_v2(meta, source, where)
        names = (attrs or {}).get("_ARRAY_DIMENSIONS")
    elif fmt == 3:
        info = _check_v3(meta, source, where)
        names = meta.get("dimension_names")
    else:
        raise UnreadableFileError(
            source, f"array {where or '/'} has zarr_format {fmt!r}; EMViewer reads Zarr formats 2 and 3"
        )
    if isinstance(names, list) and len(names) == len(info.shape) and all(isinstance(n, str) for n in names):
        info = ArrayInfo(info.zarr_format, info.shape, info.chunks, info.dtype, tuple(names))
    return info


def _refuse(source, where: str, problem: str) -> UnreadableFileError:
    return UnreadableFileError(source, f"array {where or '/'} {problem}; refusing to open it")


def _check_v2(meta: dict, source, where: str) -> ArrayInfo:
    dtype = meta.get("dtype")
    if not isinstance(dtype, str) or not _SAFE_V2_DTYPE.match(dtype):
        raise _refuse(source, where, f"has data type {dtype!r}; EMViewer reads booleans, integers and floats only")
    codecs = ([meta["compressor"]] if meta.get("compressor") is not None else []) + list(meta.get("filters") or [])
    for codec in codecs:
        _check_v2_codec(codec, source, where)
    if meta.get("dimension_separator", ".") not in (".", "/"):
        raise _refuse(source, where, f"has dimension separator {meta.get('dimension_separator')!r}")
    if meta.get("order", "C") not in ("C", "F"):
        raise _refuse(source, where, f"has order {meta.get('order')!r}")
    _check_fill_value(meta.get("fill_value"), source, where)
    shape, chunks = _ints(meta.get("shape"), source, where, "shape"), _ints(meta.get("chunks"), source, where, "chunks")
    if len(chunks) != len(shape):
        raise _refuse(source, where, f"has shape {shape} but chunks {chunks}")
    return _sized(ArrayInfo(2, shape, chunks, np.dtype(dtype)), chunks, source, where)


def _check_v2_codec(codec, source, where: str) -> None:
    if not isinstance(codec, dict) or codec.get("id") not in SAFE_V2_CODECS:
        name = codec.get("id") if isinstance(codec, dict) else codec
        raise _refuse(source, where, f"uses codec {name!r}, which is not on EMViewer's list of safe numeric codecs")
    for key in _DTYPE_PARAMETERS:
        if key in codec and not (isinstance(codec[key], str) and _SAFE_V2_DTYPE.match(codec[key])):
            raise _refuse(source, where, f"uses codec {codec['id']!r} with {key} {codec[key]!r}")


def _check_v3(meta: dict, source, where: str) -> ArrayInfo:
    dtype = meta.get("data_type")
    if not isinstance(dtype, str) or dtype not in SAFE_V3_DTYPES:
        raise _refuse(source, where, f"has data type {dtype!r}; EMViewer reads booleans, integers and floats only")
    if meta.get("storage_transformers"):
        raise _refuse(source, where, "uses storage transformers")
    grid = meta.get("chunk_grid") or {}
    if not isinstance(grid, dict) or grid.get("name") != "regular":
        raise _refuse(
            source,
            where,
            f"has chunk grid {grid.get('name') if isinstance(grid, dict) else grid!r}; EMViewer reads regular grids",
        )
    encoding = meta.get("chunk_key_encoding") or {}
    separator = (encoding.get("configuration") or {}).get("separator", "/") if isinstance(encoding, dict) else None
    if not isinstance(encoding, dict) or encoding.get("name") not in ("default", "v2") or separator not in (".", "/"):
        raise _refuse(source, where, f"has chunk key encoding {encoding!r}")
    _check_fill_value(meta.get("fill_value"), source, where)
    shape = _ints(meta.get("shape"), source, where, "shape")
    chunks = _ints((grid.get("configuration") or {}).get("chunk_shape"), source, where, "chunk shape")
    if len(chunks) != len(shape):
        raise _refuse(source, where, f"has shape {shape} but chunk shape {chunks}")
    decoded = _check_v3_codecs(meta.get("codecs"), chunks, source, where)
    return _sized(ArrayInfo(3, shape, chunks, np.dtype(dtype)), decoded, source, where)


def _check_v3_codecs(codecs, chunks: tuple[int, ...], source, where: str) -> tuple[int, ...]:
    """Check a codec pipeline; returns the chunk shape decoded at once (the inner shard chunk)."""
    if not isinstance(codecs, list) or not codecs:
        raise _refuse(source, where, "has no codec list")
    decoded = chunks
    for codec in codecs:
        name = codec if isinstance(codec, str) else codec.get("name") if isinstance(codec, dict) else None
        if name not in SAFE_V3_CODECS:
            raise _refuse(
                source,
                where,
                f"uses codec {name if name is not None else codec!r}, "
                "which is not on EMViewer's list of safe numeric codecs",
            )
        config = (codec.get("configuration") or {}) if isinstance(codec, dict) else {}
        if not isinstance(config, dict):
            raise _refuse(source, where, f"has a malformed {name} codec")
        for key in _DTYPE_PARAMETERS:
            if key in config and not (isinstance(config[key], str) and _SAFE_V2_DTYPE.match(config[key])):
                raise _refuse(source, where, f"uses codec {name!r} with {key} {config[key]!r}")
        if name == "sharding_indexed":
            decoded = _ints(config.get("chunk_shape"), source, where, "inner chunk shape")
            _check_v3_codecs(config.get("codecs"), decoded, source, where)
            _check_v3_codecs(config.get("index_codecs") or ["bytes"], decoded, source, where)
    return decoded


def _check_fill_value(value, source, where: str) -> None:
    ok = value is None or isinstance(value, (bool, int, float))
    ok = ok or (
        isinstance(value, str)
        and (value in ("NaN", "Infinity", "-Infinity") or re.fullmatch(r"0x[0-9a-fA-F]{1,16}", value) is not None)
    )
    if not ok:
        raise _refuse(source, where, f"has fill value {str(value)[:40]!r}, not a number")


def _ints(value, source, where: str, what: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value):
        raise _refuse(source, where, f"has a malformed {what} {str(value)[:60]}")
    return tuple(value)


def _sized(info: ArrayInfo, decoded_chunk: Sequence[int], source, where: str) -> ArrayInfo:
    check_sizes(info.shape, decoded_chunk, info.dtype.itemsize, source, where)
    return info


def check_sizes(shape: Sequence[int], decoded_chunk: Sequence[int], itemsize: int, source, where: str) -> None:
    """Refuse shapes and chunks whose sizes no real image has, before any chunk is read.

    Parameters
    ----------
    shape, decoded_chunk
        The array's shape and the shape of the chunks decoded at once (inner shard chunks),
        in the same axis order.
    itemsize
        Bytes per sample.

    Raises
    ------
    ImageContentError
        Fewer than 2 or more than :data:`MAX_NDIM` axes, an empty or over-long axis, more
        than :data:`MAX_ARRAY_BYTES` in all or :data:`MAX_CHUNK_BYTES` per chunk.
    """
    shape, name = tuple(shape), where or "/"
    if not 2 <= len(shape) <= MAX_NDIM or len(decoded_chunk) != len(shape):
        raise ImageContentError(
            source,
            f"array {name} has shape {shape} and chunks {tuple(decoded_chunk)}; expected a 2D to {MAX_NDIM}D image",
        )
    if min(shape) == 0 or max(shape) > MAX_AXIS_LENGTH:
        raise ImageContentError(
            source, f"array {name} has shape {shape}; every axis must hold 1 to {MAX_AXIS_LENGTH:,} entries"
        )
    total, chunk = math.prod(shape) * itemsize, math.prod(decoded_chunk) * itemsize
    if total > MAX_ARRAY_BYTES:
        raise ImageContentError(
            source,
            f"array {name} claims {total / 2**40:.1f} TiB, more than the limit of {MAX_ARRAY_BYTES / 2**40:g} TiB",
        )
    if chunk == 0 or chunk > MAX_CHUNK_BYTES:
        limit = f"{MAX_CHUNK_BYTES / 2**30:g} GiB"
        raise ImageContentError(
            source,
            f"array {name} has chunks of {tuple(decoded_chunk)} x {itemsize} bytes; "
            f"a chunk may decode to at most {limit}",
        )
