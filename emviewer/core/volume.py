"""The lazy ``(Z, Y, X)`` image stack every reader returns and every consumer takes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ImageContentError

#: Pixel kinds we segment: unsigned and signed integers, floats and booleans.
SUPPORTED_KINDS = "uifb"


@dataclass
class Volume:
    """A lazily read image stack.

    Parameters
    ----------
    data
        Array-like of shape ``(Z, Y, X)`` (numpy memmap, h5py or zarr dataset, or a lazy
        slice reader) that reads only what is indexed.
    source
        Where it came from, used in messages (a path, or ``path:/dataset``).
    slice_names
        One name per slice: the file stem for a folder of slices, ``slice_NNNN`` otherwise.
        Output files are named after these.
    pixel_size
        Voxel size ``(z, y, x)`` in nanometres, where the file says so (or the user, with
        ``--pixel-size``), else ``None``. Readers convert the file's unit (Å, µm, inch) to nm;
        ``z`` is ``None`` when only the in-plane size is known (a 2D image, a TIFF without
        ImageJ spacing). ``metadata["pixel_size_from"]`` says where it was read.
    overviews
        Lower-resolution copies of ``data`` for display, each a ``(Z, Y / f, X / f)`` array-like
        for a power of two ``f`` (an OME-Zarr image's coarser pyramid levels); empty otherwise.
        Only the viewer reads them (:mod:`emviewer.core.display_levels`); prediction never does.
    """

    data: Any
    source: str
    slice_names: Sequence[str] = ()
    pixel_size: tuple[float | None, float, float] | None = None
    metadata: dict = field(default_factory=dict)
    closer: Callable[[], None] | None = None
    overviews: Sequence[Any] = ()

    def __post_init__(self) -> None:
        if len(self.data.shape) != 3:
            raise ImageContentError(
                self.source, f"expected a 2D image or 3D stack, found shape {tuple(self.data.shape)}"
            )
        dtype = np.dtype(self.data.dtype)
        if dtype.kind not in SUPPORTED_KINDS:
            raise ImageContentError(self.source, f"unsupported pixel type {dtype} (use 8/16-bit integers or floats)")
        if not self.slice_names:
            self.slice_names = [f"slice_{z:04d}" for z in range(self.shape[0])]
        if len(self.slice_names) != self.shape[0]:
            raise ValueError("one slice name per slice is required")

    @property
    def shape(self) -> tuple[int, int, int]:
        z, y, x = self.data.shape
        return int(z), int(y), int(x)

    @property
    def dtype(self) -> np.dtype:
        """The pixel type in this machine's byte order (big-endian files read as native)."""
        return _native(np.dtype(self.data.dtype))

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def decoded_nbytes(self) -> int:
        """Bytes the stored data takes once decoded, channels and time points included (a
        colour or multi-channel file counts every sample, not just the grey view)."""
        return int(getattr(self.data, "stored_nbytes", self.nbytes))

    def __len__(self) -> int:
        return self.shape[0]

    def slice(self, z: int) -> np.ndarray:
        """Read slice ``z`` as a ``(Y, X)`` array of the volume's dtype."""
        if not -len(self) <= z < len(self):
            raise IndexError(f"slice {z} out of range for {len(self)} slices")
        return _to_native(np.asarray(self.data[z % len(self)]))

    def rows(self, z: int, start: int, stop: int) -> np.ndarray:
        """Read rows ``start`` to ``stop`` of slice ``z`` as a ``(stop - start, X)`` array of the
        volume's dtype. Chunked and memory-mapped files (Zarr, HDF5, N5, uncompressed TIFF, MRC,
        RAW) read only those rows; others decode the slice and keep the rows."""
        if not -len(self) <= z < len(self):
            raise IndexError(f"slice {z} out of range for {len(self)} slices")
        return _to_native(np.asarray(self.data[z % len(self), start:stop]))

    def __getitem__(self, key) -> np.ndarray:
        return _to_native(np.asarray(self.data[key]))

    def iter_slices(self, indices: Sequence[int] | None = None) -> Iterator[np.ndarray]:
        for z in range(len(self)) if indices is None else indices:
            yield self.slice(z)

    def read(self) -> np.ndarray:
        """Read the whole stack into memory as ``(Z, Y, X)``."""
        return np.stack([self.slice(z) for z in range(len(self))]) if len(self) else np.asarray(self.data[:])

    def close(self) -> None:
        if self.closer is not None:
            self.closer()
            self.closer = None

    def __enter__(self) -> Volume:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _native(dtype: np.dtype) -> np.dtype:
    return dtype.newbyteorder("=") if dtype.byteorder not in "=|" else dtype


def _to_native(array: np.ndarray) -> np.ndarray:
    """Values unchanged, bytes in this machine's order (a no-op for native arrays)."""
    return array.astype(_native(array.dtype), copy=False)


def from_array(array: np.ndarray, source: str = "<array>", **kwargs) -> Volume:
    """Wrap an in-memory ``(Y, X)`` or ``(Z, Y, X)`` array as a Volume."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[np.newaxis]
    return Volume(array, source, **kwargs)


class LazySlices:
    """Base of array-likes that read one ``(Y, X[, C])`` slice at a time with ``_read(z)``.

    Subclasses set ``shape`` and ``dtype``; indexing with an integer or a slice on Z (and
    anything numpy accepts on the other axes) reads only the slices asked for.
    """

    shape: tuple
    dtype: np.dtype
    #: Whether reading part of a slice decodes all of it (True unless ``_read_part`` reads less).
    decodes_whole: bool = True

    def _read(self, z: int) -> np.ndarray:
        raise NotImplementedError

    def _read_part(self, z: int, rest: tuple) -> np.ndarray:
        """``rest`` (indices on Y, X...) of slice ``z``; subclasses that can read less override it."""
        return self._read(z)[rest]

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        z, rest = key[0], key[1:]
        if isinstance(z, (int, np.integer)):
            return self._read_part(int(z), rest)
        if isinstance(z, slice):
            return np.stack([self._read(i) for i in range(*z.indices(self.shape[0]))])[(slice(None),) + rest]
        raise TypeError(f"unsupported index {key!r}")


def decodes_whole_slices(volume: Volume) -> bool:
    """Whether reading any part of a slice of ``volume`` decodes the whole slice (a folder of
    PNGs, a mapped stack): readers of many small parts should then decode it once and keep it."""
    return isinstance(volume.data, LazySlices) and volume.data.decodes_whole


class _MappedSlices(LazySlices):
    """Lazy ``(Z, Y', X'[, C])`` array applying ``fn`` to each slice of a Volume when read
    (``pixelwise``: to just the part indexed, e.g. the rows of a band)."""

    def __init__(
        self,
        volume: Volume,
        indices: Sequence[int],
        fn: Callable[[np.ndarray, int], np.ndarray],
        shape_yx: tuple,
        dtype,
        pixelwise: bool = False,
    ) -> None:
        self._volume, self._indices, self._fn, self._pixelwise = volume, list(indices), fn, pixelwise
        self.shape = (len(self._indices),) + tuple(shape_yx)
        self.dtype = np.dtype(dtype)
        self.decodes_whole = not pixelwise or decodes_whole_slices(volume)

    def _read(self, i: int) -> np.ndarray:
        source = self._indices[i]
        return self._fn(self._volume.slice(source), source)

    def _read_part(self, i: int, rest: tuple) -> np.ndarray:
        if not self._pixelwise:
            return self._read(i)[rest]
        source = self._indices[i]
        return self._fn(self._volume[(source,) + rest], source)


def map_slices(
    volume: Volume,
    fn: Callable[..., np.ndarray] | None = None,
    dtype=None,
    indices: Sequence[int] | None = None,
    with_index: bool = False,
    pixelwise: bool = False,
) -> Volume:
    """A lazy Volume of ``fn(slice)`` for the chosen slices (all by default, identity by default).

    ``fn`` must keep the ``(Y, X)`` shape and return ``dtype`` (the volume's by default);
    with ``with_index`` it is called as ``fn(slice, z)`` with the slice's index in ``volume``.
    ``pixelwise``: ``fn`` treats each pixel on its own, so reading rows or every n-th pixel
    applies it to just those (a band of a huge slice costs a band).
    """
    indices = list(range(len(volume))) if indices is None else [int(i) for i in indices]

    def call(image: np.ndarray, z: int) -> np.ndarray:
        if fn is None:
            return image
        return fn(image, z) if with_index else fn(image)

    data = _MappedSlices(volume, indices, call, volume.shape[1:], dtype or volume.dtype, pixelwise or fn is None)
    return Volume(
        data,
        volume.source,
        slice_names=[volume.slice_names[i] for i in indices],
        pixel_size=volume.pixel_size,
        metadata=dict(volume.metadata),
    )


class _Window:
    """Lazy ``(Z, y1 - y0, x1 - x0)`` view of a ``(Z, Y, X)`` array-like: forward slices on Y
    and X read only those rows and columns; any other index reads the window's slice first."""

    def __init__(self, data, box: tuple[int, ...]) -> None:
        self._data, (self._y0, y1, self._x0, x1) = data, box
        self.shape = (int(data.shape[0]), y1 - self._y0, x1 - self._x0)
        self.dtype = np.dtype(data.dtype)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        z, rest = key[0], key[1:] + (slice(None),) * (3 - len(key))
        moved = [_shifted(k, n, o) for k, n, o in zip(rest[:2], self.shape[1:], (self._y0, self._x0), strict=True)]
        if len(rest) == 2 and moved[0] is not None and moved[1] is not None:
            return np.asarray(self._data[z, moved[0], moved[1]])
        whole = np.asarray(self._data[z, self._y0 : self._y0 + self.shape[1], self._x0 : self._x0 + self.shape[2]])
        return whole[(slice(None),) * (whole.ndim - 2) + tuple(rest)]


def _shifted(key, size: int, offset: int) -> slice | None:
    """A forward slice of a window's axis as a slice of the whole axis; None for anything else."""
    if not isinstance(key, slice) or (key.step or 1) < 0:
        return None
    start, stop, step = key.indices(size)
    return slice(start + offset, max(start, stop) + offset, step)


def crop_yx(volume: Volume, box: tuple[int, int, int, int]) -> Volume:
    """A lazy view of the rectangle ``box = (y0, y1, x0, x1)`` of every slice of ``volume``
    (row reads stay row reads: see :meth:`Volume.rows`)."""
    data = _Window(volume.data, tuple(int(v) for v in box))
    return Volume(
        data,
        volume.source,
        slice_names=list(volume.slice_names),
        pixel_size=volume.pixel_size,
        metadata=dict(volume.metadata),
    )
