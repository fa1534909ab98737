"""RAW: the bare pixels in C order plus a JSON sidecar that says how to read them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from ..errors import ImageContentError, UnreadableFileError
from ..progress import CancelToken, check
from ..volume import Volume
from .axes import ReadOptions
from .atomic import atomic_paths


def sidecar_path(path: Path) -> Path:
    """``stack.raw`` -> ``stack.raw.json``."""
    return path.with_name(path.name + ".json")


def write_raw(path: Path, slices: Iterable[np.ndarray], shape: tuple, dtype, extra: Optional[dict] = None, cancel: Optional[CancelToken] = None) -> None:
    """Write ``(Z, Y, X[, 3])`` slices as raw bytes and a sidecar with shape, dtype, byte order, axes."""
    dtype = np.dtype(dtype)
    byte_order = "little" if (dtype.byteorder == "<" or (dtype.byteorder in "=|" and sys.byteorder == "little")) else "big"
    sidecar = {
        "shape": list(shape),
        "dtype": dtype.name,
        "byte_order": byte_order,
        "axis_order": "ZYXC" if len(shape) == 4 else "ZYX",
        "order": "C",
        **(extra or {}),
    }
    with atomic_paths([path, sidecar_path(path)]) as (tmp_raw, tmp_json):
        with open(tmp_raw, "wb") as f:
            for plane in slices:
                check(cancel)
                f.write(np.ascontiguousarray(plane, dtype=dtype).tobytes())
        tmp_json.write_text(json.dumps(sidecar, indent=2))


def read_raw(path: Path, options: Optional[ReadOptions] = None) -> Volume:
    """Memory-map a ``.raw`` file described by its ``.raw.json`` sidecar."""
    meta_path = sidecar_path(path)
    if not meta_path.exists():
        raise UnreadableFileError(path, f"no sidecar {meta_path.name} saying its shape and dtype")
    try:
        meta = json.loads(meta_path.read_text())
        dtype = np.dtype(meta["dtype"]).newbyteorder("<" if meta.get("byte_order", "little") == "little" else ">")
        shape = tuple(int(n) for n in meta["shape"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UnreadableFileError(meta_path, f"sidecar is not valid ({exc})") from None
    if len(shape) != 3:
        raise ImageContentError(path, f"only (Z, Y, X) raw stacks can be opened, the sidecar says {shape}")
    expected = int(np.prod(shape)) * dtype.itemsize
    if path.stat().st_size != expected:
        raise UnreadableFileError(path, f"file has {path.stat().st_size} bytes, the sidecar's shape and dtype need {expected}")
    return Volume(np.memmap(path, dtype=dtype, mode="r", shape=shape), str(path), metadata={"format": "raw"})
