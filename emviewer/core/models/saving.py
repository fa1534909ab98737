"""Saving a Keras model so that an interrupted save never leaves a damaged model behind."""

from __future__ import annotations

import os
from pathlib import Path

from ..io.atomic import atomic_path


def save_model_atomically(model, path: str | Path) -> None:
    """Save a Keras model (``keras.Model``) to ``path``, all or nothing.

    Keras writes only to names ending in ``.keras``, so the model is saved under such a name
    beside the target and then renamed into place; an existing file at ``path`` is replaced
    only by a complete new one.

    Parameters
    ----------
    model
        The model; saved with its optimizer state when it was compiled.
    path : str or Path
        The target file, usually ``<name>.keras``; its folder is created if missing.

    Raises
    ------
    Exception
        Whatever ``model.save`` raises (e.g. ``OSError`` for a full disk); nothing is left
        beside the target then, and a file already at ``path`` is kept unchanged.
    """
    with atomic_path(path) as tmp:
        staged = tmp.with_suffix(".keras")
        try:
            model.save(staged)
            os.replace(staged, tmp)
        finally:
            staged.unlink(missing_ok=True)
