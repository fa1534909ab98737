"""Loading a trained model with its card, and running it on batches of tiles."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .registry import read_card


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class LoadedModel:
    """A Keras model ready to predict, with what its card says about how to use it."""

    name: str
    model: Any  # keras.Model; typed loosely so importing this module stays free of Keras
    context: int = 1
    threshold: float = 0.5
    card: dict | None = None

    @property
    def reference(self) -> tuple[float, float]:
        """Where the tissue's 1st / 99th intensity percentiles lay in the model's [0, 1] input
        during training (the card's ``input_reference``; see :mod:`..intensity`)."""
        from ..intensity import DEFAULT_REFERENCE

        levels = (self.card or {}).get("input_reference")
        return (float(levels[0]), float(levels[1])) if levels else DEFAULT_REFERENCE

    def threshold_for(self, tta: int) -> float:
        """The card's threshold for this many test-time variants: averaging variants makes
        probabilities less extreme, so accurate mode has its own (``"thresholds": {"16": t}``)."""
        thresholds = (self.card or {}).get("thresholds", {})
        if tta > 1 and (str(tta) in thresholds or "16" in thresholds):
            return float(thresholds.get(str(tta), thresholds.get("16")))
        return self.threshold

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """``(N, Y, X, context)`` float32 in [0, 1] -> ``(N, Y, X, 1)`` float32 probabilities."""
        out = self.model.predict_on_batch(np.ascontiguousarray(batch, np.float32))
        return np.asarray(out, np.float32)


def load_model(path: str | Path) -> LoadedModel:
    """Load ``model.keras`` and its card ``model.json``; refuses a file whose hash disagrees."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such model file")
    card = read_card(path)
    expected = card.get("sha256")
    if expected and sha256_of(path) != expected:
        raise InputError(path, "model file does not match the SHA-256 in its card (damaged or replaced)")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many kinds for a damaged archive
        raise InputError(path, f"cannot load the model ({exc})") from None
    return LoadedModel(path.stem, model, int(card.get("context", 1)), float(card.get("threshold", 0.5)), card)
