"""Tensors, weights and cover of a bioimage.io package (see :mod:`.bioimageio`): the test crop, the
described preprocessing in numpy, the float32 copy of a model, its ONNX conversion and the cover PNG.

Keras, tf2onnx, onnx and onnxruntime are imported inside the functions that use them.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

#: Tissue percentiles mapped onto the model's reference levels, and scale_range's epsilon.
PERCENTILES = (1.0, 99.0)
EPS = 1e-6

# ---------------------------------------------------------------------------- tensors


def test_crop(volume: Any, tile: int, context: int, corner: tuple[int, int] | None = None) -> np.ndarray:
    """A raw test input: ``(1, tile, tile, context)`` uint8/16/float from a ``(Z, Y, X)`` stack.

    ``corner`` is the crop's top-left ``(y, x)`` (default: centred); the slices around the middle
    one (edge slices repeated, as in prediction) make the context. A stack smaller than ``tile``
    is refused.
    """
    depth, height, width = volume.shape
    if height < tile or width < tile:
        raise InputError(None, f"the test image is {height} x {width} pixels; it must be at least {tile} x {tile}")
    y, x = corner or ((height - tile) // 2, (width - tile) // 2)
    z = depth // 2
    picks = [min(max(z + d, 0), depth - 1) for d in range(-(context // 2), context // 2 + 1)]
    planes = [np.asarray(volume.slice(p))[y : y + tile, x : x + tile] for p in picks]
    return np.stack(planes, axis=-1)[None]


def crop_corners(shape: tuple[int, ...], tile: int) -> list[tuple[int, int]]:
    """Top-left corners of up to 3 x 3 candidate crops, half a tile apart, inside ``(Z, Y, X)``."""
    _, height, width = shape

    def starts(size: int) -> list[int]:
        return sorted({min(s, size - tile) for s in range(0, max(1, size - tile) + 1, max(1, tile // 2))})[:3]

    return [(y, x) for y in starts(height) for x in starts(width)]


def bioimageio_input(raw: np.ndarray, reference: tuple[float, float]) -> np.ndarray:
    """The described preprocessing (see the module docstring) applied to a raw ``(N, Y, X, C)``
    array: float32 in [0, 1], one scaling per sample over slices and space."""
    values = raw.astype(np.float32)
    low, high = np.percentile(values, PERCENTILES, axis=(1, 2, 3), keepdims=True)
    scaled = (values - low) / (high - low + EPS)
    ref_low, ref_high = reference
    return np.clip(scaled * np.float32(ref_high - ref_low) + np.float32(ref_low), 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------- weights


def write_onnx(model: Any, path: Path, sample: np.ndarray) -> int:
    """Export a float32 Keras model to ONNX (tf2onnx through Keras); returns the opset version."""
    import contextlib

    import onnx

    model.predict_on_batch(sample)  # Keras exports only a model that has been called
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():  # tf2onnx prints its progress
        # Keras's tf2onnx shim tests for np.object, which NumPy 2 warns about: not the user's concern
        warnings.filterwarnings("ignore", category=FutureWarning, module="keras.src.export.tf2onnx_lib")
        model.export(str(path), format="onnx", verbose=False)
    proto = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(proto)
    return max(op.version for op in proto.opset_import if op.domain in ("", "ai.onnx"))


def run_onnx(path: Path, batch: np.ndarray) -> np.ndarray:
    """``(N, Y, X, C)`` float32 through the ONNX model with ONNX Runtime on the CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: batch})[0], np.float32)


def mask_changes(a: np.ndarray, b: np.ndarray, threshold: float) -> float:
    """Fraction of pixels on different sides of ``threshold`` in two probability maps."""
    return float(np.mean((a >= threshold) != (b >= threshold)))


# ---------------------------------------------------------------------------- cover


def cover_image(raw: np.ndarray, probability: np.ndarray, threshold: float, object_key: str) -> bytes:
    """PNG bytes: the test input's middle slice, raw | with the predicted mask over it (2:1)."""
    from PIL import Image

    from ..overlay import display_range, render_overlay, to_uint8

    slice_ = raw[0, :, :, raw.shape[-1] // 2]
    grey = to_uint8(slice_, *display_range([slice_]))
    overlay = render_overlay(grey, {object_key: probability[0, :, :, 0] >= threshold})
    picture = np.concatenate([np.repeat(grey[..., None], 3, axis=-1), overlay], axis=1)
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def test_tensors(loaded: Any, volume: Any, tile: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw test input, the float32 model input made from it and the installed model's output.

    Of a few crops, the one where the model finds most of its object (up to a third of the
    pixels) is taken, so the test tensors and the cover show the object."""
    best: tuple[float, np.ndarray, np.ndarray, np.ndarray] | None = None
    for corner in crop_corners(volume.shape, tile):
        raw = test_crop(volume, tile, loaded.context, corner)
        batch = bioimageio_input(raw, loaded.reference)
        output = loaded.predict(batch)
        score = min(float(np.mean(output >= loaded.threshold)), 1 / 3)
        if best is None or score > best[0]:
            best = (score, raw, batch, output)
    assert best is not None
    return best[1], best[2], best[3]
