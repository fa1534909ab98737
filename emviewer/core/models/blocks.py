"""Layer helpers shared by the architectures (pure Keras 3, any backend)."""

from __future__ import annotations

import keras
from keras import layers


def conv_bn(
    x: keras.KerasTensor,
    filters: int,
    kernel_size: int,
    activation: str | None = "relu",
    dilation_rate: int = 1,
) -> keras.KerasTensor:
    """Convolution ('same' padding) -> batch normalisation -> optional activation.

    The convolution has no bias because the batch normalisation right after it has one.

    Parameters
    ----------
    x : KerasTensor
        ``(N, Y, X, C)`` feature map, channels last.
    filters : int
        Output channels.
    kernel_size : int
        Square kernel size.
    activation : str or None
        Keras activation name; None keeps the result linear (e.g. before a residual add).
    dilation_rate : int
        Spacing of the kernel taps; widens the receptive field without more weights.

    Returns
    -------
    KerasTensor
        ``(N, Y, X, filters)``.
    """
    x = layers.Conv2D(filters, kernel_size, padding="same", dilation_rate=dilation_rate, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    if activation is not None:
        x = layers.Activation(activation)(x)
    return x


def sigmoid_head(x: keras.KerasTensor) -> keras.KerasTensor:
    """1x1 convolution to one channel and a sigmoid, always computed in float32.

    Under a mixed-precision policy the rest of the model runs in float16/bfloat16; the
    probabilities stay float32 so thresholds and losses are not hit by rounding.

    Returns
    -------
    KerasTensor
        ``(N, Y, X, 1)`` float32 probabilities in [0, 1].
    """
    x = layers.Conv2D(1, 1, padding="same")(x)
    return layers.Activation("sigmoid", dtype="float32", name="probabilities")(x)


def check_settings(context: int, width: int, depth: int) -> None:
    """Raise ValueError for settings no architecture can be built with."""
    for what, value in (("context", context), ("width", width), ("depth", depth)):
        if int(value) != value or value < 1:
            raise ValueError(f"{what} must be a positive integer, not {value!r}")
