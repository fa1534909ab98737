"""Zarr arrays and OME-Zarr images (level 0 of the multiscale pyramid), read lazily."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import zarr

from ..errors import ImageContentError, InputError, UnreadableFileError
from ..volume import Volume
from .axes import ReadOptions
from .common import PlaneAsStack, check_slice_size

def _open(path: Path):
    try:
        store = zarr.storage.ZipStore(path, mode="r") if path.suffix.lower() == ".zip" else str(path)
        return zarr.open(store, mode="r")
    except Exception as exc:  # zarr raises many kinds for damaged stores
        raise UnreadableFileError(path, f"not a readable Zarr store ({exc})") from None


def _multiscale_level0(group) -> Optional[str]:
    attrs = dict(group.attrs)
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if multiscales:
        return multiscales[0]["datasets"][0]["path"]
    return None


def _arrays(group, prefix: str = "") -> list[str]:
    found = [prefix + name for name, arr in group.arrays() if arr.ndim >= 2]
    for name, sub in group.groups():
        found += _arrays(sub, prefix + name + "/")
    return found


def _pick_array(node, path: Path, name: Optional[str]):
    if isinstance(node, zarr.Array):
        return node
    if name:
        try:
            return node[name.strip("/")]
        except KeyError:
            raise InputError(path, f"no array {name!r} in the store") from None
    level0 = _multiscale_level0(node)
    if level0 is not None:
        return node[level0]
    arrays = _arrays(node)
    if len(arrays) != 1:
        what = "no image array" if not arrays else f"several arrays ({', '.join(arrays)}); choose one as {path.name}:/name"
        raise InputError(path, f"the store holds {what}")
    return node[arrays[0]]


class _Squeezed:
    """Lazy ``(Z, Y, X)`` view of an OME-style ``(T, C, Z, Y, X)`` array whose extra axes are 1."""

    def __init__(self, array, lead: int) -> None:
        self._array, self._lead = array, lead
        self.shape = tuple(array.shape[lead:])
        self.dtype = array.dtype

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        return np.asarray(self._array[(0,) * self._lead + key])


def read_zarr(path: Path, name: Optional[str] = None, options: Optional[ReadOptions] = None) -> Volume:
    """Open a Zarr / OME-Zarr image as ``(Z, Y, X)``; leading singleton axes (t, c) are dropped."""
    array = _pick_array(_open(path), path, name)
    shape = tuple(array.shape)
    check_slice_size(shape, path)
    lead = len(shape) - 3
    if lead > 0 and any(n != 1 for n in shape[:lead]):
        raise ImageContentError(path, f"array of shape {shape} has more than one time point or channel")
    data = PlaneAsStack(array) if lead < 0 else _Squeezed(array, lead) if lead > 0 else array
    return Volume(data, f"{path}:{array.path}" if array.path else str(path), metadata={"format": "zarr"})
