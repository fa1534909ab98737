"""A read-only memory map of an uncompressed array in a file that :meth:`close` really closes.

``np.memmap`` keeps a duplicate of the file descriptor for as long as any view of it lives,
so a slice handed to a consumer kept a deleted upload open on the server. Here every read
returns a copy, so nothing outlives :meth:`close`. After each read the map's pages are given
back (``madvise(MADV_DONTNEED)``; the file stays in the system's cache): otherwise every page
ever read counts in the process's resident memory, and reading a 64 GB volume through would
look like holding it.
"""

from __future__ import annotations

import math
import mmap
from pathlib import Path

import numpy as np


class MappedArray:
    """``shape`` array of ``dtype`` stored C-order at byte ``offset`` of ``path``.

    Indexing reads only the indexed part and returns a new array (a copy, in the stored
    byte order). Raises ``ValueError`` when read after :meth:`close`.
    """

    def __init__(self, path: Path, dtype: np.dtype, offset: int, shape: tuple[int, ...]) -> None:
        self.shape, self.dtype = tuple(int(n) for n in shape), np.dtype(dtype)
        count = math.prod(self.shape)
        self._map: mmap.mmap | None = None
        self._array: np.ndarray | None = None
        if count == 0:  # mmap cannot map nothing
            self._array = np.empty(self.shape, self.dtype)
        else:
            with open(path, "rb") as handle:
                self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            self._array = np.frombuffer(self._map, self.dtype, count, offset).reshape(self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        if self._array is None:
            raise ValueError("read from a closed memory map")
        data = np.array(self._array[key])
        if self._map is not None and hasattr(self._map, "madvise"):  # Unix; Windows maps have no madvise
            self._map.madvise(mmap.MADV_DONTNEED)
        return data

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self[...] if dtype is None else self[...].astype(dtype)

    def close(self) -> None:
        self._array = None  # the only view: the map can close now
        if self._map is not None:
            self._map.close()
            self._map = None
