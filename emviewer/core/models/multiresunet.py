"""MultiResUNet (Ibtehaz & Rahman, Neural Networks 2020), pure Keras 3.

Two changes to the U-Net: each double convolution becomes a *MultiRes block*, a chain of
three 3x3 convolutions whose outputs are concatenated (effective 3x3, 5x5 and 7x7 fields
at the cost of 3x3 kernels) plus a 1x1 residual shortcut; and each skip connection goes
through a *Res path* of residual convolutions, longest at the top level, to narrow the
semantic gap between shallow encoder and deep decoder features.
"""

from __future__ import annotations

import keras
from keras import layers

from emviewer.core.models.blocks import check_settings, conv_bn, sigmoid_head

#: Widening factor of the MultiRes blocks, as in the paper.
ALPHA = 1.67


def multires_block(x: keras.KerasTensor, units: int, alpha: float = ALPHA) -> keras.KerasTensor:
    """Chained 3x3 convolutions of widths W/6, W/3, W/2 (W = alpha * units), concatenated,
    plus a 1x1 shortcut. ``(N, Y, X, C) -> (N, Y, X, ~W)``."""
    w = alpha * units
    widths = [max(1, int(w / 6)), max(1, int(w / 3)), max(1, int(w / 2))]
    shortcut = conv_bn(x, sum(widths), 1, activation=None)
    chain, branch = [], x
    for filters in widths:
        branch = conv_bn(branch, filters, 3)
        chain.append(branch)
    out = layers.BatchNormalization()(layers.Concatenate()(chain))
    out = layers.Activation("relu")(layers.Add()([shortcut, out]))
    return layers.BatchNormalization()(out)


def res_path(x: keras.KerasTensor, filters: int, length: int) -> keras.KerasTensor:
    """``length`` residual units (3x3 conv + 1x1 shortcut) on a skip connection."""
    for _ in range(length):
        shortcut = conv_bn(x, filters, 1, activation=None)
        out = conv_bn(x, filters, 3)
        x = layers.BatchNormalization()(layers.Activation("relu")(layers.Add()([shortcut, out])))
    return x


def build_multiresunet(context: int = 1, width: int = 32, depth: int = 4, name: str = "multiresunet") -> keras.Model:
    """Build a MultiResUNet for binary segmentation of one slice.

    Parameters
    ----------
    context : int
        Input channels: the slice and its neighbours (1, 3 or 5), float32 in [0, 1].
    width : int
        Base number of filters ``U`` of the top level; level ``i`` has ``U * 2**i``.
        The paper uses 32; 8 to 16 gives a small, fast model.
    depth : int
        Number of 2x down-samplings; Res paths have lengths ``depth, ..., 1``.
    name : str
        Keras model name.

    Returns
    -------
    keras.Model
        Input ``(N, Y, X, context)`` with Y and X divisible by ``2**depth``; output
        ``(N, Y, X, 1)`` float32 probabilities in [0, 1].
    """
    check_settings(context, width, depth)
    inputs = keras.Input(shape=(None, None, context), name="image")
    skips, x = [], inputs
    for level in range(depth):
        x = multires_block(x, width * 2**level)
        # The top level's features are the least abstract, so their path is longest.
        skips.append(res_path(x, width * 2**level, depth - level))
        x = layers.MaxPooling2D(2)(x)
    x = multires_block(x, width * 2**depth)
    for level in reversed(range(depth)):
        x = layers.Conv2DTranspose(width * 2**level, 2, strides=2, padding="same")(x)
        x = layers.Concatenate()([x, skips[level]])
        x = multires_block(x, width * 2**level)
    return keras.Model(inputs, sigmoid_head(x), name=name)
