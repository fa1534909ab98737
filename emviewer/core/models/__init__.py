"""Segmentation architectures.

Keras is imported only when a model is built, so importing :mod:`emviewer.core` stays
free of TensorFlow (the CLI's ``--help`` must be instant).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

#: Architecture names accepted by :func:`build_model` (and ``emviewer train --arch``).
ARCHITECTURES = ("multiresunet", "deepem3d")


def build_model(arch: str, context: int = 1, width: int = 32, depth: int = 4) -> keras.Model:
    """Build an untrained segmentation model by architecture name.

    Parameters
    ----------
    arch : {"multiresunet", "deepem3d"}
        Architecture.
    context : int
        Input channels (1, 3 or 5 neighbouring slices), float32 in [0, 1].
    width : int
        Base number of filters.
    depth : int
        Number of 2x down-samplings; tile sides must be divisible by ``2**depth``.

    Returns
    -------
    keras.Model
        ``(N, Y, X, context) -> (N, Y, X, 1)`` float32 probabilities in [0, 1].
    """
    if arch == "multiresunet":
        from emviewer.core.models.multiresunet import build_multiresunet

        return build_multiresunet(context=context, width=width, depth=depth)
    if arch == "deepem3d":
        from emviewer.core.models.deepem3d import build_deepem3d

        return build_deepem3d(context=context, width=width, depth=depth)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
