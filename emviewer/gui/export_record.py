"""The provenance record an export from the app carries (HDF5 attributes, the PDF's first page)."""

from __future__ import annotations

from collections.abc import Sequence

from ..core.provenance import provenance
from .session import Session


def export_provenance(session: Session, content: str, slices: Sequence[int]) -> dict:
    """A :func:`~emviewer.core.provenance.provenance` record of an export of the open stack.

    Parameters
    ----------
    session
        Holds the stack, ``runs`` (object -> how its masks were predicted: ``mode``, ``tta``,
        ``where``, ``models``) and ``edited`` (object -> 0-based slices changed by hand).
    content
        What the file holds (a key of the export dialog's contents).
    slices
        The exported slices, 0-based.

    Returns
    -------
    dict
        ``created``, ``software`` and ``parameters``: ``source``, ``content``, ``slices``,
        ``predictions`` ``{object: run record}`` and ``edited_slices`` ``{object: sorted 0-based z}``
        for every object with masks (an object predicted before runs were recorded has no entry).
    """
    volume = session.volume
    keys = [key for key, planes in session.masks.items() if planes]
    predictions = {key: dict(session.runs[key]) for key in keys if key in session.runs}
    edited = {key: sorted(int(z) for z in session.edited.get(key, ())) for key in keys}
    return provenance(
        source=None if volume is None else volume.source,
        content=content,
        slices=list(slices),
        predictions=predictions,
        edited_slices=edited,
    )
