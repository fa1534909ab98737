"""Axis names of stored arrays, and the lazy ``(Z, Y, X)`` view every reader hands on.

Files store more than ``(Z, Y, X)``: ilastik writes ``tzyxc``, OME ``tczyx``, ImageJ
``TZCYXS``, and many tools a trailing colour axis. A reader names the stored axes (from the
file's metadata, else :func:`guess_axes`), then :func:`as_zyx` takes one channel and one
time point and puts the rest in ``(Z, Y, X)`` order without reading any pixels.

Axis letters (upper or lower case): ``Z`` slices, ``Y`` rows, ``X`` columns, ``C`` channels,
``S`` colour samples (as C), ``T`` time; any other letter (tifffile's ``I``, ``Q``) is a
stack axis of unknown meaning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ChannelChoiceError, ImageContentError, InputError
from .common import to_grey

_CHANNEL_AXES = "CS"
#: A trailing axis this short, and shorter than both others, holds channels, not columns.
MAX_GUESSED_CHANNELS = 4


@dataclass(frozen=True)
class ReadOptions:
    """What the user says about a file that the file does not say (or says wrongly).

    Parameters
    ----------
    channel
        0-based channel to read from a file with several channels.
    axes
        Stored axis order, e.g. ``"ZYXC"``; overrides the file's metadata.
    pixel_size
        ``(z, y, x)`` voxel size in nm; overrides the file's calibration.
    """

    channel: int | None = None
    axes: str | None = None
    pixel_size: tuple[float, float, float] | None = None


def guess_axes(shape: Sequence[int]) -> str:
    """Axis names for an array whose file does not name them.

    A last axis of at most 4 entries that is shorter than both others is taken for channels
    (``(256, 256, 1)`` is ``YXC``, ``(5, 512, 512)`` is ``ZYX``); the rest are read as
    ``YX``, ``ZYX``, ``CZYX`` (a short first axis) or ``TZYX`` / ``TCZYX`` (OME order).
    """
    shape = tuple(int(n) for n in shape)
    ndim = len(shape)
    if ndim < 2:
        return "X" * ndim
    trailing_channel = ndim >= 3 and shape[-1] <= MAX_GUESSED_CHANNELS and shape[-1] < min(shape[-3], shape[-2])
    spatial = shape[:-1] if trailing_channel else shape
    four = "TZYX" if trailing_channel or spatial[0] > MAX_GUESSED_CHANNELS else "CZYX"
    names = {2: "YX", 3: "ZYX", 4: four, 5: "TCZYX"}.get(len(spatial))
    if names is None:
        names = "Q" * (len(spatial) - 3) + "ZYX"
    return names + ("C" if trailing_channel else "")


def _well_formed(axes: str) -> bool:
    """Distinct letters, Y and X among them."""
    return axes.isalpha() and len(set(axes)) == len(axes) and "Y" in axes and "X" in axes


def check_axes(axes: str, shape: Sequence[int], source) -> str:
    """``axes`` in upper case, after checking it fits ``shape``; raises :class:`InputError`."""
    text = str(axes).strip().upper()
    if len(text) != len(shape):
        raise InputError(source, f"axes {axes!r} name {len(text)} axes but the array has {len(shape)} {tuple(shape)}")
    if not _well_formed(text):
        raise InputError(source, f"axes {axes!r} must be distinct letters including Y and X (e.g. ZYX, ZYXC, TCZYX)")
    return text


def parse_axes(text: str) -> str:
    """Check the spelling of a ``--axes`` value (letters only); the length is checked per file."""
    cleaned = str(text).strip().upper()
    if not _well_formed(cleaned):
        raise InputError(None, f"--axes {text!r} must be distinct letters including Y and X, e.g. ZYX, ZYXC or TCZYX")
    return cleaned


@dataclass
class _Plan:
    fixed: dict[int, int]  # stored axis -> the one index read (channel, time point, singleton)
    z_axis: int | None
    y_axis: int
    x_axis: int
    grey_axis: int | None  # colour samples averaged to luminance when reading


def _pick_channel(size: int, channel: int | None, axes: str, shape, source) -> int:
    if channel is None:
        raise ChannelChoiceError(
            source,
            f"has {size} channels (axes {axes}, shape {tuple(shape)}); choose one with --channel N (0-{size - 1})",
            size,
            axes,
        )
    if not 0 <= channel < size:
        raise InputError(
            source, f"--channel {channel} is out of range: the file has channels 0-{size - 1} (axes {axes})"
        )
    return int(channel)


def _plan(axes: str, shape: Sequence[int], source, channel: int | None, colour_to_grey: bool) -> _Plan:
    fixed: dict[int, int] = {}
    grey_axis = None
    stack_axes = [i for i, a in enumerate(axes) if a not in "YX" + _CHANNEL_AXES and shape[i] > 1]
    for i, name in enumerate(axes):
        if name in _CHANNEL_AXES:
            if shape[i] == 1:
                fixed[i] = 0
            elif channel is None and colour_to_grey and name == "S" and shape[i] in (3, 4):
                grey_axis = i
            else:
                fixed[i] = _pick_channel(shape[i], channel, axes, shape, source)
        elif name not in "YX" and shape[i] == 1 and (name != "Z" or len(stack_axes) > 0):
            fixed[i] = 0
    if len(stack_axes) > 1:
        described = ", ".join(f"{axes[i]}={shape[i]}" for i in stack_axes)
        raise ImageContentError(
            source,
            f"holds a {len(stack_axes) + 2}D series ({described}, axes {axes}); EMViewer reads one (Z, Y, X) "
            "stack: save one time point, or name the axes with --axes",
        )
    # One stack axis of any name (T in a Fiji stack saved as frames, tifffile's I or Q) is Z.
    z_axis = (
        stack_axes[0]
        if stack_axes
        else (axes.index("Z") if "Z" in axes and "Z" not in [axes[i] for i in fixed] else None)
    )
    return _Plan(fixed, z_axis, axes.index("Y"), axes.index("X"), grey_axis)


class AxesView:
    """Lazy ``(Z, Y, X)`` view of a stored array of any axis order (see :func:`as_zyx`).

    Indexing with ``[z]``, ``[z0:z1]`` and basic slices on Y and X reads only that part of
    the stored array, so h5py, zarr, memory maps and the TIFF page reader stay lazy.
    """

    def __init__(self, array, plan: _Plan) -> None:
        self._array, self._plan = array, plan
        shape = tuple(int(n) for n in array.shape)
        self.shape = (shape[plan.z_axis] if plan.z_axis is not None else 1, shape[plan.y_axis], shape[plan.x_axis])
        self.dtype = np.dtype(array.dtype)

    @property
    def stored_nbytes(self) -> int:
        """Bytes of the whole stored array once decoded: every channel and time point counted."""
        return int(np.prod([int(n) for n in self._array.shape], dtype=np.float64)) * self.dtype.itemsize

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (3 - len(key))
        z, y, x = key[:3]
        plan = self._plan
        stored: list = [slice(None)] * len(self._array.shape)
        for axis, index in plan.fixed.items():
            stored[axis] = index
        y_basic, x_basic = isinstance(y, slice), isinstance(x, slice)
        stored[plan.y_axis] = y if y_basic else slice(None)
        stored[plan.x_axis] = x if x_basic else slice(None)
        z_int = isinstance(z, (int, np.integer))
        if plan.z_axis is not None:
            stored[plan.z_axis] = int(z) if z_int else z
        else:
            np.arange(1)[z]  # the one slice: raises IndexError for any other index
        data = np.asarray(self._array[tuple(stored)])
        kept = [i for i in range(len(stored)) if not isinstance(stored[i], (int, np.integer))]
        order = [a for a in (plan.z_axis, plan.y_axis, plan.x_axis, plan.grey_axis) if a in kept]
        data = np.transpose(data, [kept.index(a) for a in order])
        if plan.grey_axis is not None:
            data = to_grey(data)
        if plan.z_axis is None and not z_int:
            data = data[np.newaxis][z]
        if not y_basic:
            data = np.take(data, y, axis=-2)
        if not x_basic:
            data = np.take(data, x, axis=-1)
        return data


def as_zyx(array, axes: str | None, source, channel: int | None = None, colour_to_grey: bool = False):
    """A lazy ``(Z, Y, X)`` view of ``array`` stored with ``axes`` (guessed when ``None``).

    Parameters
    ----------
    array
        Any array-like with ``shape``, ``dtype`` and numpy-style indexing (h5py, zarr, memmap).
    axes
        One letter per stored axis (see the module docstring).
    channel
        Channel to take when the array has several; without it several channels raise.
    colour_to_grey
        Average RGB(A) colour samples (axis ``S``) to luminance instead of asking for a
        channel: for images the file itself marks as colour (photometric RGB).

    Returns
    -------
    The array itself when it is already ``(Z, Y, X)``, else an :class:`AxesView`.

    Raises
    ------
    InputError
        Several channels without ``channel``, a channel out of range, more than one
        stack axis (time and Z), or axes that do not fit the shape.
    """
    shape = tuple(int(n) for n in array.shape)
    axes = check_axes(axes, shape, source) if axes else guess_axes(shape)
    if axes == "ZYX":
        return array
    return AxesView(array, _plan(axes, shape, source, channel, colour_to_grey))
