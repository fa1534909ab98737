"""The job budget: what one upload may ask of the server (slices, decoded size), checked
before the job is queued, so a small file cannot claim hours of work or gigabytes of memory."""

from __future__ import annotations

from collections.abc import Sequence

from ..core.errors import InputError
from ..core.volume import Volume
from .settings import ServerSettings


class OverBudgetError(Exception):
    """The job asks for more than the server allows; answered with 413 and this message."""


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.1f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"


def check_slices(slices: Sequence[int] | None, n_slices: int, max_slices: int) -> int:
    """How many slices the job predicts.

    Raises
    ------
    InputError
        An index is outside ``0 .. n_slices - 1`` or listed twice (the server answers 422).
    OverBudgetError
        More than ``max_slices`` slices would be predicted (413).
    """
    if slices is not None:
        wrong = next((z for z in slices if not 0 <= z < n_slices), None)
        if wrong is not None:
            raise InputError(None, f"slice {wrong} is outside the stack (it has {n_slices} slices, numbered from 0)")
        seen: set[int] = set()
        for z in slices:
            if z in seen:
                raise InputError(None, f"slice {z} is listed twice in 'slices'")
            seen.add(z)
    count = n_slices if slices is None else len(slices)
    if count > max_slices:
        raise OverBudgetError(f"the job asks for {count} slices; this server predicts at most {max_slices} per job")
    return count


def check_job(volume: Volume, slices: Sequence[int] | None, settings: ServerSettings) -> int:
    """Check an opened upload against the budget; returns the number of slices to predict.

    The decoded size counts every voxel, channel and byte per sample the file holds
    (``Volume.decoded_nbytes``), whatever part of it the job reads.

    Raises
    ------
    InputError, OverBudgetError
        See :func:`check_slices`; ``OverBudgetError`` also when the decoded data is over
        ``settings.max_decoded_bytes``.
    """
    decoded = volume.decoded_nbytes
    if decoded > settings.max_decoded_bytes:
        raise OverBudgetError(
            f"the upload holds {_size(decoded)} of image data once decoded; this server accepts at most "
            f"{_size(settings.max_decoded_bytes)} per job"
        )
    return check_slices(slices, len(volume), settings.max_slices)
