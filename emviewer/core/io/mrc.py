"""MRC / CCP4 maps (cryo-EM, tomography), memory-mapped with mrcfile."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import mrcfile

from ..errors import UnreadableFileError
from ..volume import Volume
from .axes import ReadOptions
from .common import check_slice_size

def read_mrc(path: Path, options: Optional[ReadOptions] = None) -> Volume:
    """Open an MRC file as a memory-mapped ``(Z, Y, X)`` Volume; pixel size converted to nm."""
    try:
        mrc = mrcfile.mmap(path, mode="r", permissive=True)
    except (ValueError, OSError, EOFError) as exc:
        raise UnreadableFileError(path, f"not a readable MRC file ({exc})") from None
    if mrc.data is None:
        mrc.close()
        raise UnreadableFileError(path, "the MRC header is damaged or the data are truncated")
    data = mrc.data if mrc.data.ndim == 3 else mrc.data.reshape((1,) + mrc.data.shape)
    try:
        check_slice_size(data.shape, path)
        voxel = mrc.voxel_size  # angstrom, (x, y, z)
        pixel_size = None
        if voxel.x > 0 and voxel.y > 0:
            pixel_size = (float(voxel.z) / 10, float(voxel.y) / 10, float(voxel.x) / 10)
        return Volume(data, str(path), pixel_size=pixel_size, closer=mrc.close, metadata={"format": "mrc"})
    except Exception:
        mrc.close()
        raise
