"""A DeepEM3D / CDeep3M-style network (Zeng et al., Bioinformatics 2017), pure Keras 3.

DeepEM3D, the network inside CDeep3M, stacks inception-residual blocks: parallel
convolution branches with different receptive fields, concatenated, projected and added to
the block input. The encoder down-samples a few times, and every scale contributes a side
output that is up-sampled to full resolution; the side outputs are fused into one
prediction, so fine membranes (small scale) and whole organelles (large scale) both count.
This version keeps one fused output (no auxiliary per-scale losses); side outputs are
up-sampled with learned transposed convolutions, as in DeepEM3D.
"""

from __future__ import annotations

import keras
from keras import layers

from emviewer.core.models.blocks import check_settings, conv_bn, sigmoid_head

#: Inception-residual blocks per scale.
BLOCKS_PER_LEVEL = 2


def inception_residual_block(x: keras.KerasTensor, filters: int) -> keras.KerasTensor:
    """Four branches (receptive fields 1, 3, 5 and 7 pixels) concatenated, projected to
    ``filters`` and added to the input. ``(N, Y, X, C) -> (N, Y, X, filters)``."""
    branch = max(1, filters // 4)
    field_1 = conv_bn(x, branch, 1)
    field_3 = conv_bn(conv_bn(x, branch, 1), branch, 3)
    field_5 = conv_bn(conv_bn(conv_bn(x, branch, 1), branch, 3), branch, 3)
    # A dilated 3x3 reaches 7x7 with nine weights per channel pair.
    field_7 = conv_bn(conv_bn(x, branch, 1), branch, 3, dilation_rate=3)
    mixed = layers.Concatenate()([field_1, field_3, field_5, field_7])
    residual = conv_bn(mixed, filters, 1, activation=None)
    shortcut = x if x.shape[-1] == filters else conv_bn(x, filters, 1, activation=None)
    return layers.Activation("relu")(layers.Add()([shortcut, residual]))


def build_deepem3d(context: int = 1, width: int = 32, depth: int = 3, name: str = "deepem3d") -> keras.Model:
    """Build a DeepEM3D-style network for binary segmentation of one slice.

    Parameters
    ----------
    context : int
        Input channels: the slice and its neighbours (1, 3 or 5), float32 in [0, 1].
    width : int
        Filters of the full-resolution scale; scale ``i`` has ``width * 2**i``.
    depth : int
        Number of 2x down-samplings (DeepEM3D uses 3); ``depth + 1`` scales feed the
        fused output.
    name : str
        Keras model name.

    Returns
    -------
    keras.Model
        Input ``(N, Y, X, context)`` with Y and X divisible by ``2**depth``; output
        ``(N, Y, X, 1)`` float32 probabilities in [0, 1].
    """
    check_settings(context, width, depth)
    side_filters = max(1, width // 2)
    inputs = keras.Input(shape=(None, None, context), name="image")
    x = conv_bn(inputs, width, 3)
    sides = []
    for level in range(depth + 1):
        if level > 0:
            x = layers.MaxPooling2D(2)(x)
        for _ in range(BLOCKS_PER_LEVEL):
            x = inception_residual_block(x, width * 2**level)
        side = conv_bn(x, side_filters, 1)
        if level > 0:
            # Learned up-sampling, as in DeepEM3D; it also keeps graph tracing free of
            # shape-dependent resize ops, which fail on unknown tile sizes in TensorFlow.
            side = layers.Conv2DTranspose(side_filters, 2 * 2**level, strides=2**level, padding="same")(side)
        sides.append(side)
    fused = conv_bn(layers.Concatenate()(sides), width, 3)
    return keras.Model(inputs, sigmoid_head(fused), name=name)
