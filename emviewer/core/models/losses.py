"""Losses for sparse objects (about 10 % foreground): binary cross-entropy plus soft Dice."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="emviewer")
def bce_dice_loss(y_true, y_pred):
    """Mean BCE plus (1 - soft Dice) per image; both terms lie in similar ranges.

    BCE alone lets a model settle on "all background" for small objects; Dice rewards
    overlap directly and is insensitive to the class ratio.
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.clip(ops.cast(y_pred, "float32"), 1e-6, 1 - 1e-6)
    bce = ops.mean(-(y_true * ops.log(y_pred) + (1 - y_true) * ops.log(1 - y_pred)))
    axes = (1, 2, 3)
    intersection = ops.sum(y_true * y_pred, axis=axes)
    dice = (2 * intersection + 1.0) / (ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes) + 1.0)
    return bce + ops.mean(1 - dice)
