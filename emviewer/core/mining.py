"""Hard-example mining: draw more training crops where the model is still wrong.

Rare structures that look like the object (myelin sheaths next to mitochondria, say) fill
few random crops, so a model sees them too seldom to learn them. Before each epoch the
model predicts every training slice; the squared mean error of each ``block x block`` cell
becomes that cell's chance of centring a crop. Squaring lets the few badly wrong cells
outweigh the many cells with a little error along object borders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class ErrorMaps:
    """Per training stack, a ``(Z, ceil(Y / block), ceil(X / block))`` map of mean errors."""

    maps: list[np.ndarray]
    block: int

    def __post_init__(self) -> None:
        # one probability per cell of all stacks, computed once: crops are drawn thousands of times
        weights = np.concatenate([np.square(m, dtype=np.float64).ravel() for m in self.maps])
        total = weights.sum()
        self._probabilities = (
            weights / total if total > 0 else np.full(weights.size, 1.0 / weights.size)
        )  # a perfect model: every cell alike
        self._starts = np.cumsum([0] + [m.size for m in self.maps])

    def pick_centre(self, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """``(stack, z, y, x)``: a pixel in a cell drawn with probability ~ error squared."""
        flat = int(rng.choice(self._probabilities.size, p=self._probabilities))
        stack = int(np.searchsorted(self._starts, flat, side="right")) - 1
        z, cy, cx = np.unravel_index(flat - self._starts[stack], self.maps[stack].shape)
        y, x = (int(c) * self.block + int(rng.integers(self.block)) for c in (cy, cx))
        return stack, int(z), y, x


def cell_means(error: np.ndarray, block: int) -> np.ndarray:
    """Mean of a ``(Y, X)`` map over ``block x block`` cells (edge cells: over their pixels)."""
    height, width = error.shape
    rows, cols = -(-height // block), -(-width // block)
    padded = np.zeros((rows * block, cols * block), np.float64)
    counts = np.zeros_like(padded)
    padded[:height, :width] = error
    counts[:height, :width] = 1
    sums = padded.reshape(rows, block, cols, block).sum(axis=(1, 3))
    return (sums / counts.reshape(rows, block, cols, block).sum(axis=(1, 3))).astype(np.float32)


def error_maps(model, context: int, stacks: Sequence, block: int = 64, cancel=None) -> ErrorMaps:
    """The model's mean absolute error per cell on every slice of the training stacks."""
    from .predict import labelled_predictions

    grids: dict[int, np.ndarray] = {}
    for stack, index, probability in labelled_predictions(model, context, stacks, cancel=cancel):
        cells = cell_means(np.abs(probability.astype(np.float32) - stack.masks[index]), block)
        grid = grids.setdefault(id(stack), np.zeros((len(stack), *cells.shape), np.float32))
        grid[index] = cells
    return ErrorMaps([grids[id(stack)] for stack in stacks], block)
