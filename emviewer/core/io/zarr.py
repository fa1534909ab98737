"""Zarr arrays (formats 2 and 3, folder or zip) and OME-Zarr images, read lazily as ``(Z, Y, X)``.

Stores are untrusted input: :mod:`.zarr_safety` reads and checks the metadata of the array
we will read before zarr opens anything, and zarr then opens exactly that array, through a
folder store that refuses files reached by links leaving the store. Which array: the one
the user names (``store.zarr:path/in/store``), else level 0 of the store's OME-Zarr image,
else the store's only image array. Axis names come from ``--axes``, then OME-Zarr
``axes``, then Zarr v3 ``dimension_names`` (or xarray's ``_ARRAY_DIMENSIONS``), else
:func:`~emviewer.core.io.axes.guess_axes`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from ..errors import ImageContentError, InputError, UnreadableFileError
from ..volume import Volume
from .axes import ReadOptions, as_zyx, guess_axes
from .common import check_decoded_size, check_slice_size, short_list
from .ome_zarr import PIXEL_SIZE_FROM, NgffLevel, axis_letters, multiscales, ngff_level
from .zarr_safety import ArrayInfo, StoreFiles, check_array_metadata, confine, join_key, node_key

ZARR_MAJOR = int(zarr.__version__.split(".")[0])
#: How deep and how wide the search for a store's image may go before it gives up.
_MAX_DEPTH, _MAX_NODES = 12, 10_000
MAX_LEVELS = 32  # pyramid levels looked at for display (a level = a halving: 32 covers any size)

if ZARR_MAJOR >= 3:
    from zarr.storage import LocalStore

    class _ConfinedStore(LocalStore):
        """A read-only folder store that refuses keys whose files lie outside the store."""

        def __init__(self, root, *, read_only: bool = True) -> None:
            super().__init__(root, read_only=read_only)
            self._root_real = os.path.realpath(self.root)

        async def get(self, key, prototype=None, byte_range=None):
            confine(self._root_real, os.path.join(self.root, key), self.root, whole=byte_range is None)
            return await super().get(key, prototype, byte_range)

        async def get_partial_values(self, prototype, key_ranges):
            key_ranges = list(key_ranges)
            for key, _ in key_ranges:
                confine(self._root_real, os.path.join(self.root, key), self.root, whole=False)
            return await super().get_partial_values(prototype, key_ranges)

else:  # zarr 2 (Python 3.10)
    # zarr 2 only; mypy reads the installed zarr 3 (Python 3.11+), which has no DirectoryStore
    from zarr.storage import DirectoryStore  # type: ignore[attr-defined]

    class _ConfinedStore(DirectoryStore):  # type: ignore[no-redef]
        """A folder store that refuses files lying outside the store (zarr 2 reads them all here)."""

        def __init__(self, root, *, read_only: bool = True) -> None:
            super().__init__(str(root))
            self._source, self._root_real = Path(root), os.path.realpath(root)

        def _fromfile(self, fn):
            with open(confine(self._root_real, fn, self._source), "rb") as f:
                return f.read()


@dataclass
class _Node:
    kind: str  # "array", "group" or "none" (a folder without Zarr metadata)
    meta: dict | None
    attrs: dict


def _node(files: StoreFiles, key: str) -> _Node:
    v3 = files.json(join_key(key, "zarr.json"))
    v2_array, v2_group = files.json(join_key(key, ".zarray")), files.json(join_key(key, ".zgroup"))
    if v3 is not None:
        if v2_array is not None or v2_group is not None:
            raise UnreadableFileError(files.path, f"{key or 'the root'} holds both Zarr v2 and v3 metadata")
        kind = v3.get("node_type")
        if kind not in ("array", "group"):
            raise UnreadableFileError(files.path, f"{key or 'the root'}/zarr.json has node type {kind!r}")
        attrs = v3.get("attributes")
        return _Node(kind, v3, attrs if isinstance(attrs, dict) else {})
    attrs = files.json(join_key(key, ".zattrs")) or {}
    if v2_array is not None:
        return _Node("array", v2_array, attrs)
    return _Node("group" if v2_group is not None else "none", v2_group, attrs)


def _images(files: StoreFiles, key: str, depth: int = 0, seen: list | None = None) -> list[str]:
    """Keys of the images below ``key``: arrays of 2 or more axes, and OME-Zarr image groups."""
    seen = [0] if seen is None else seen
    found: list[str] = []
    for child in files.folders(key):
        seen[0] += 1
        if seen[0] > _MAX_NODES:
            raise UnreadableFileError(
                files.path,
                f"the store holds more than {_MAX_NODES:,} folders; name the array as {files.path.name}:path",
            )
        child_key = join_key(key, child)
        node = _node(files, child_key)
        shape = (node.meta or {}).get("shape") if node.kind == "array" else None
        if isinstance(shape, list) and len(shape) >= 2 or multiscales(node.attrs):
            found.append(child_key)
        elif node.kind != "array" and depth < _MAX_DEPTH:
            found += _images(files, child_key, depth + 1, seen)
    return found


def _level_of(files: StoreFiles, key: str) -> NgffLevel | None:
    """The OME-Zarr description of array ``key`` when its parent group lists it as a level."""
    parent, _, leaf = key.rpartition("/")
    return ngff_level(_node(files, parent).attrs, files.path, leaf) if key else None


def _pyramid_level(files: StoreFiles, name: str | None, index: int) -> tuple[str, _Node, NgffLevel | None]:
    """Level ``index`` (0 = full resolution) of the OME-Zarr image ``name`` (default: the store's only image)."""
    key, _, level = _target(files, name)
    parent = key.rpartition("/")[0]
    chosen = ngff_level(_node(files, parent).attrs, files.path, index=index) if level is not None else None
    if chosen is None:
        count = len((multiscales(_node(files, parent).attrs) or [{}])[0].get("datasets") or [])
        raise InputError(files.path, f"the image {parent or '/'} has no level {index} (it has {count or 'no'} levels)")
    array_key = join_key(parent, chosen.path)
    node = _node(files, array_key)
    if node.kind != "array":
        raise UnreadableFileError(files.path, f"OME-Zarr level {array_key!r} is not an array")
    return array_key, node, chosen


def _target(files: StoreFiles, name: str | None) -> tuple[str, _Node, NgffLevel | None]:
    """The array to read: its key, its metadata node and its OME-Zarr level (if any).
    ``name`` may end in ``level=N`` (``level=2``, ``mito/level=2``): that pyramid level."""
    path = files.path
    pyramid = re.fullmatch(r"(?:(.*)/)?level=(\d{1,3})", name or "")
    if pyramid:
        return _pyramid_level(files, pyramid.group(1), int(pyramid.group(2)))
    key = node_key(name, path) if name else ""
    node = _node(files, key)
    if node.kind == "array":
        return key, node, _level_of(files, key)
    level = ngff_level(node.attrs, path)
    if level is not None:
        array_key = join_key(key, level.path)
        array_node = _node(files, array_key)
        if array_node.kind != "array":
            raise UnreadableFileError(path, f"OME-Zarr level {array_key!r} is not an array")
        return array_key, array_node, level
    images = _images(files, key)
    if len(images) == 1:
        return _target(files, images[0])
    if images:
        raise InputError(
            path, f"the store holds several images ({short_list(images)}); choose one as {path.name}:{images[0]}"
        )
    if name:
        raise InputError(
            path, f"no array {name!r} in the store (it has: {', '.join(_images(files, '')[:8]) or 'none'})"
        )
    raise ImageContentError(path, "the store holds no image array")


def _open_array(path: Path, files: StoreFiles, key: str, info: ArrayInfo):
    """Open the checked array ``key`` with zarr; returns the array and a closer (or ``None``)."""
    store = zarr.storage.ZipStore(str(path), mode="r") if files.is_zip else _ConfinedStore(path)
    try:
        if ZARR_MAJOR >= 3:
            array = zarr.open_array(store=store, path=key, zarr_format=info.zarr_format, mode="r")
        else:
            array = zarr.open_array(store=store, path=key or None, mode="r")  # type: ignore[arg-type]  # zarr 2 API
    except InputError:
        raise
    except Exception as exc:  # zarr raises many kinds for damaged stores
        raise UnreadableFileError(path, f"array {key or '/'} is not readable ({exc})") from None
    return array, (store.close if files.is_zip else None)


class _ReadErrorsNamed:
    """A zarr array whose read errors (damaged chunks, failing codecs) name the store."""

    def __init__(self, array, source: str) -> None:
        self._array, self._source = array, source
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        try:
            return self._array[key]
        except (InputError, IndexError):
            raise
        except Exception as exc:
            raise UnreadableFileError(
                self._source, f"a chunk could not be read ({type(exc).__name__}: {exc})"
            ) from None


def _coarser_levels(files: StoreFiles, key: str, level: NgffLevel | None) -> list[tuple[str, ArrayInfo]]:
    """The OME-Zarr image's levels listed after ``key`` (the coarser ones), checked like the level
    read. Display only: a level that fails the checks ends the list (the viewer then reads finer data)."""
    if level is None:
        return []
    parent = key.rpartition("/")[0]
    attrs, found, after = _node(files, parent).attrs, [], False
    for index in range(MAX_LEVELS):
        other = ngff_level(attrs, files.path, index=index)
        if other is None:
            break
        other_key = join_key(parent, other.path)
        if after:
            try:
                node = _node(files, other_key)
                if node.kind != "array":
                    break
                found.append((other_key, check_array_metadata(node.meta or {}, node.attrs, files.path, other_key)))
            except InputError:
                break
        after = after or other_key == key
    return found


def _open_overviews(path: Path, files: StoreFiles, levels, axes: str, options: ReadOptions, shape: tuple):
    """Open the coarser ``levels`` as ``(Z, Y', X')`` arrays like the level read; their closers."""
    opened, closers = [], []
    for key, info in levels:
        try:
            array, closer = _open_array(path, files, key, info)
        except InputError:
            break
        if closer is not None:
            closers.append(closer)
        try:
            data = as_zyx(_ReadErrorsNamed(array, f"{path}:{key}"), axes, f"{path}:{key}", options.channel)
        except InputError:
            break
        if data.shape[0] != shape[0] or data.shape[1] > shape[1] or data.shape[2] > shape[2]:
            break
        opened.append(data)
    return opened, closers


def _axes(info: ArrayInfo, level: NgffLevel | None, options: ReadOptions) -> str:
    named = axis_letters(list(info.dimension_names)) if info.dimension_names else None
    named = named if named and "Y" in named and "X" in named else None
    return options.axes or (level.axes if level else None) or named or guess_axes(info.shape)


def read_zarr(path: Path, name: str | None = None, options: ReadOptions | None = None) -> Volume:
    """Open a Zarr array or OME-Zarr image lazily as a ``(Z, Y, X)`` :class:`Volume`.

    Parameters
    ----------
    path
        A Zarr folder (``.zarr``) or zip (``.zarr.zip``), format 2 or 3.
    name
        Path of an array or OME-Zarr image group inside the store; default: level 0 of the
        store's OME-Zarr image, else its only image array.
    options
        ``channel`` and ``axes`` for arrays with channel or time axes.

    Returns
    -------
    Volume
        Data in the stored dtype; ``pixel_size`` ``(z, y, x)`` in nm from OME-Zarr
        ``coordinateTransformations`` and axis units (``None`` without units);
        ``metadata["axes"]`` the stored axis order used.

    Raises
    ------
    InputError
        Naming the store: unsafe codecs or data types, sizes beyond the limits, paths or links
        leading outside the store, several images or channels without a choice, damaged data.
    """
    options = options or ReadOptions()
    files = StoreFiles(path)
    try:
        key, node, level = _target(files, name)
        where = f"{path}:{key}" if key else str(path)
        info = check_array_metadata(node.meta or {}, node.attrs, path, key)
        coarser = _coarser_levels(files, key, level)
    finally:
        files.close()
    axes = _axes(info, level, options)
    array, closer = _open_array(path, files, key, info)
    closers = [closer] if closer is not None else []
    try:
        data = as_zyx(_ReadErrorsNamed(array, where), axes, where, options.channel)
        overviews, more = _open_overviews(path, files, coarser, axes, options, data.shape)
        closers += more
        check_slice_size(data.shape, where)
        check_decoded_size(data.shape[-2:], 1, info.dtype.itemsize, where)
        metadata = {
            "format": "ome-zarr" if level else "zarr",
            "array": key or "/",
            "axes": axes.upper(),
            "zarr_format": info.zarr_format,
        }
        pixel_size = level.pixel_size if level else None
        if level:
            metadata["ngff_version"] = level.version
        if pixel_size is not None:
            metadata["pixel_size_from"] = PIXEL_SIZE_FROM
        return Volume(
            data,
            where,
            pixel_size=pixel_size,
            metadata=metadata,
            closer=_all_of(closers) if closers else None,
            overviews=tuple(overviews),
        )
    except BaseException:
        for close in closers:
            close()
        raise


def _all_of(closers: list) -> Callable[[], None]:
    def close() -> None:
        for each in closers:
            each()

    return close
