"""RAW: the bare pixels in C order plus a JSON sidecar that says how to read them.

The sidecar ``stack.raw.json`` holds ``shape``, ``dtype`` (a numpy name such as ``uint16``),
``byte_order`` (``little`` or ``big``), ``axis_order`` (``ZYX``, or ``ZYXC`` for RGB exports),
``order`` (``C``), ``pixel_size_nm`` (``[z, y, x]``, ``null`` for an unknown z, or ``null``
when the voxel size is unknown) and ``pixel_size_unit`` (``nm``). A sidecar comes with the
file, so it is checked as untrusted: anything that does not describe exactly the bytes of
the ``.raw`` file is refused before the file is mapped.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import UnreadableFileError
from ..progress import CancelToken, check
from ..volume import SUPPORTED_KINDS, Volume
from .atomic import atomic_paths
from .axes import ReadOptions, as_zyx, guess_axes
from .common import check_slice_size
from .mapped import MappedArray

#: A sidecar is a few hundred bytes; a larger one is not ours.
MAX_SIDECAR_BYTES = 2**20


def sidecar_path(path: Path) -> Path:
    """``stack.raw`` -> ``stack.raw.json``."""
    return path.with_name(path.name + ".json")


def _pixel_size_list(pixel_size: tuple | None) -> list | None:
    """``(z, y, x)`` nm -> JSON list; an unknown (``None``, non-finite, non-positive) z stays ``null``."""
    if pixel_size is None:
        return None

    def known(v) -> float | None:
        return float(v) if v is not None and math.isfinite(float(v)) and float(v) > 0 else None

    z, y, x = (known(v) for v in pixel_size)
    return None if y is None or x is None else [z, y, x]


def write_raw(
    path: Path,
    slices: Iterable[np.ndarray],
    shape: tuple,
    dtype,
    pixel_size: tuple | None = None,
    extra: dict | None = None,
    cancel: CancelToken | None = None,
) -> None:
    """Write ``(Z, Y, X[, 3])`` slices as raw bytes and the sidecar (see the module docstring).

    Parameters
    ----------
    slices
        One ``(Y, X[, 3])`` array per slice, cast to ``dtype``.
    shape
        ``(Z, Y, X)`` or ``(Z, Y, X, 3)``.
    pixel_size
        Voxel size ``(z, y, x)`` in nm (``z`` may be ``None``), or ``None`` when unknown.
    extra
        More sidecar keys (e.g. ``content``, ``source``); they cannot replace the ones above.
    """
    dtype = np.dtype(dtype)
    byte_order = (
        "little" if (dtype.byteorder == "<" or (dtype.byteorder in "=|" and sys.byteorder == "little")) else "big"
    )
    sidecar = {
        "shape": [int(n) for n in shape],
        "dtype": dtype.name,
        "byte_order": byte_order,
        "axis_order": "ZYXC" if len(shape) == 4 else "ZYX",
        "order": "C",
        "pixel_size_nm": _pixel_size_list(pixel_size),
        "pixel_size_unit": "nm",
    }
    sidecar.update({k: v for k, v in (extra or {}).items() if k not in sidecar})
    with atomic_paths([path, sidecar_path(path)]) as (tmp_raw, tmp_json):
        with open(tmp_raw, "wb") as f:
            for plane in slices:
                check(cancel)
                f.write(np.ascontiguousarray(plane, dtype=dtype).tobytes())
        tmp_json.write_text(json.dumps(sidecar, indent=2))


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _load_sidecar(path: Path) -> dict:
    meta_path = sidecar_path(path)
    if not meta_path.is_file():
        raise UnreadableFileError(path, f"no sidecar {meta_path.name} saying its shape and dtype")
    if meta_path.stat().st_size > MAX_SIDECAR_BYTES:
        raise UnreadableFileError(
            meta_path,
            f"sidecar is {meta_path.stat().st_size:,} bytes, more than a sidecar can be ({MAX_SIDECAR_BYTES:,})",
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except (OSError, ValueError, RecursionError) as exc:
        raise UnreadableFileError(meta_path, f"sidecar is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise UnreadableFileError(
            meta_path, f"sidecar must be a JSON object with shape and dtype, found a {type(meta).__name__}"
        )
    return meta


def _shape(meta: dict, meta_path: Path) -> tuple[int, ...]:
    shape = meta.get("shape")
    if (
        not isinstance(shape, list)
        or not 2 <= len(shape) <= 6
        or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)
    ):
        raise UnreadableFileError(
            meta_path, f"sidecar shape must be a list of 2 to 6 positive integers, found {str(shape)[:80]}"
        )
    return tuple(shape)


def _dtype(meta: dict, meta_path: Path) -> np.dtype:
    name, order = meta.get("dtype"), meta.get("byte_order", "little")
    if order not in ("little", "big"):
        raise UnreadableFileError(meta_path, f"sidecar byte_order must be 'little' or 'big', found {str(order)[:40]!r}")
    try:
        dtype = np.dtype(name) if isinstance(name, str) and len(name) <= 20 else None
    except (TypeError, ValueError, SyntaxError):
        dtype = None
    if dtype is None or dtype.kind not in SUPPORTED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        found = str(name)[:40]
        raise UnreadableFileError(
            meta_path,
            f"sidecar dtype {found!r} is not a pixel type (use an integer or float name: uint8, uint16, float32...)",
        )
    return dtype.newbyteorder("<" if order == "little" else ">")


def _pixel_size(meta: dict, meta_path: Path) -> tuple | None:
    value, unit = meta.get("pixel_size_nm"), meta.get("pixel_size_unit", "nm")
    if value is None:
        return None
    if unit != "nm":
        raise UnreadableFileError(meta_path, f"sidecar pixel_size_unit must be 'nm', found {str(unit)[:40]!r}")

    def valid(v, may_be_null: bool) -> bool:
        if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
            return v is None and may_be_null
        return 0 < v < 1e9  # also false for NaN; a huge int compares without overflow

    if (
        not isinstance(value, list)
        or len(value) != 3
        or not (valid(value[0], True) and valid(value[1], False) and valid(value[2], False))
    ):
        raise UnreadableFileError(
            meta_path, f"sidecar pixel_size_nm must be [z, y, x] positive nm (z may be null), found {str(value)[:80]}"
        )
    return tuple(None if v is None else float(v) for v in value)


def read_raw(path: Path, options: ReadOptions | None = None) -> Volume:
    """Memory-map a ``.raw`` file described by its ``.raw.json`` sidecar, as a lazy ``(Z, Y, X)`` Volume.

    The dtype is the sidecar's, in native byte order (a big-endian file is converted as it
    is read, values unchanged); ``pixel_size`` ``(z, y, x)`` nm is its ``pixel_size_nm``.
    ``options.axes`` overrides the sidecar's ``axis_order``; ``options.channel`` picks one
    channel of a ``ZYXC`` file (an RGB export).

    Raises
    ------
    UnreadableFileError
        Naming the file or its sidecar: no sidecar, not a JSON object, a shape that is not
        positive integers or whose byte count differs from the file's size, a dtype that is
        not a plain integer or float, a bad byte order, order or pixel size.
    ImageContentError
        Slices over the size limit, or axes that need a ``--channel``.
    """
    options = options or ReadOptions()
    meta_path = sidecar_path(path)
    meta = _load_sidecar(path)
    shape, dtype, pixel_size = _shape(meta, meta_path), _dtype(meta, meta_path), _pixel_size(meta, meta_path)
    if meta.get("order", "C") != "C":
        raise UnreadableFileError(
            meta_path, f"sidecar order must be 'C' (row-major), found {str(meta.get('order'))[:20]!r}"
        )
    axes = options.axes or meta.get("axis_order") or None
    if axes is not None and not isinstance(axes, str):
        raise UnreadableFileError(meta_path, f"sidecar axis_order must be letters such as ZYX, found {str(axes)[:40]}")
    expected = math.prod(shape) * dtype.itemsize  # Python integers: no overflow for absurd shapes
    size = path.stat().st_size
    if not path.is_file() or size != expected:
        raise UnreadableFileError(
            path, f"file has {size:,} bytes, the sidecar's shape {list(shape)} and dtype {dtype.name} need {expected:,}"
        )
    mapped = MappedArray(path, dtype, 0, shape)
    used = (axes or guess_axes(shape)).upper()
    data = as_zyx(mapped, used, path, options.channel)  # Volume hands out big-endian data in native order
    check_slice_size(data.shape[-2:], path)
    metadata = {"format": "raw", "axes": used}
    if pixel_size is not None:
        metadata["pixel_size_from"] = f"sidecar {meta_path.name} (pixel_size_nm)"
    return Volume(data, str(path), pixel_size=pixel_size, metadata=metadata, closer=mapped.close)
