"""MRC / CCP4 maps (cryo-EM, tomography, IMOD/SerialEM stacks), memory-mapped with mrcfile.

Modes read: 0 (8-bit), 1 (int16), 2 (float32), 6 (uint16), 12 (float16). Mode 0 is signed
in MRC2014, but IMOD and SerialEM write unsigned bytes: their header carries IMOD's stamp and
a flags word whose bit 0 says "bytes are signed". mrcfile always maps mode 0 as int8, so
where IMOD says unsigned the map is viewed as uint8 (no copy, still lazy).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import mrcfile
import numpy as np

from ..errors import UnreadableFileError
from ..volume import Volume
from .axes import ReadOptions
from .common import check_slice_size
from .mapped import MappedArray

#: IMOD's header stamp (bytes ``IMOD``), at byte 152 of the header, inside mrcfile's ``extra2``.
IMOD_STAMP = 1146047817
_IMOD_STAMP_AT = 152 - 112  # offsets of imodStamp (and imodFlags 4 bytes on) within extra2
_IMOD_FLAG_SIGNED_BYTES = 1
_HEADER_BYTES = 1024


def imod_bytes_unsigned(header) -> bool:
    """True when a mode-0 header is IMOD's and its flags say the bytes are unsigned."""
    order = header.dtype["nx"].byteorder
    words = np.frombuffer(
        bytes(header.extra2)[_IMOD_STAMP_AT : _IMOD_STAMP_AT + 8], dtype=np.dtype("i4").newbyteorder(order)
    )
    stamp, flags = int(words[0]), int(words[1])
    return stamp == IMOD_STAMP and not flags & _IMOD_FLAG_SIGNED_BYTES


def _one_line(caught) -> str:
    return "; ".join(" ".join(str(w.message).split()) for w in caught)


def _claimed_size(path: Path) -> str:
    """What a header whose data block could not be mapped claims, against the file's size."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, mode="r", permissive=True, header_only=True) as mrc:
                h = mrc.header
                nx, ny, nz, mode, extended = int(h.nx), int(h.ny), int(h.nz), int(h.mode), int(h.nsymbt)
                itemsize = mrcfile.utils.data_dtype_from_header(h).itemsize
    except (ValueError, OSError, EOFError) as exc:
        return f"the header is damaged ({' '.join(str(exc).split())})"
    held = max(path.stat().st_size - _HEADER_BYTES - extended, 0)
    claimed = nx * ny * nz * itemsize
    return (
        f"the header claims {nz} x {ny} x {nx} values in mode {mode} ({claimed:,} bytes) "
        f"but the file holds {held:,} bytes of data (truncated?)"
    )


def _open(path: Path):
    """The mrcfile memory map; header problems that leave no data raise UnreadableFileError."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            mrc = mrcfile.mmap(path, mode="r", permissive=True)
        except (ValueError, OSError, EOFError) as exc:
            raise UnreadableFileError(path, f"not a readable MRC file ({' '.join(str(exc).split())})") from None
    if mrc.data is None:
        mrc.close()
        mapped = any("memmap" in str(w.message) for w in caught)
        raise UnreadableFileError(
            path, _claimed_size(path) if mapped else f"not a readable MRC file ({_one_line(caught) or 'no data block'})"
        )
    return mrc


def _pixel_size(voxel) -> tuple | None:
    """``(z, y, x)`` nm from mrcfile's voxel size in Å; 0 means unknown (z alone, or the whole).

    The header holds float32: 7 significant digits are kept, so 16.4 Å is 1.64 nm.
    """
    x, y, z = (float(f"{float(v) / 10:.7g}") for v in (voxel.x, voxel.y, voxel.z))
    if not (x > 0 and y > 0):
        return None
    return (z if z > 0 else None, y, x)


def read_mrc(path: Path, options: ReadOptions | None = None) -> Volume:
    """Open an MRC file as a memory-mapped ``(Z, Y, X)`` Volume (a single image gets Z = 1).

    The dtype is the mode's (mode 0: uint8 for IMOD/SerialEM unsigned bytes, else int8);
    the voxel size is converted from Å to nm (``metadata["pixel_size_from"] = "MRC header"``).

    Raises
    ------
    UnreadableFileError
        Not an MRC file, an unknown mode, or a header that claims more data than the file holds.
    """
    mrc = _open(path)
    try:
        data = mrc.data if mrc.data.ndim == 3 else mrc.data.reshape((1,) + mrc.data.shape)
        signed_bytes = int(mrc.header.mode) == 0
        if signed_bytes and imod_bytes_unsigned(mrc.header):
            data = data.view(np.uint8)
        check_slice_size(data.shape, path)
        pixel_size = _pixel_size(mrc.voxel_size)
        metadata = {"format": "mrc", "axes": "ZYX", "mode": int(mrc.header.mode)}
        if pixel_size:
            metadata["pixel_size_from"] = "MRC header"
        # our own map of the data block: mrcfile's stays open while any slice of it lives
        mapped = MappedArray(path, data.dtype, int(mrc.data.offset), data.shape)
    finally:
        mrc.close()
    return Volume(mapped, str(path), pixel_size=pixel_size, closer=mapped.close, metadata=metadata)
