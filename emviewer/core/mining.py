"""Hard-example mining: draw more training crops where the model is still wrong.

Rare structures that look like the object (myelin sheaths next to mitochondria, say) fill
few random crops, so a model sees them too seldom to learn them. Before each epoch the
model predicts every training slice; the squared mean error of each ``block x block`` cell
becomes that cell's chance of centring a crop. Squaring lets the few badly wrong cells
outweigh the many cells with a little error along object borders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass
class ErrorMaps:
    """Per training stack, a ``(Z, ceil(Y / block), ceil(X / block))`` map of mean errors."""

    maps: list[np.ndarray]
    block: int

    def pick_centre(self, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """``(stack, z, y, x)``: a pixel in a cell drawn with probability ~ error squared."""
        weights = np.concatenate([np.square(m, dtype=np.float64).ravel() for m in self.maps])
        total = weights.sum()
        sizes = [m.size for m in self.maps]
        if total <= 0:  # a perfect model: every cell alike
            weights, total = np.ones_like(weights), float(weights.size)
        flat = int(rng.choice(weights.size, p=weights / total))
        stack = int(np.searchsorted(np.cumsum(sizes), flat, side="right"))
        z, cy, cx = np.unravel_index(flat - sum(sizes[:stack]), self.maps[stack].shape)
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


def error_maps(model, context: int, stacks: Sequence, tile: int, block: int = 64, cancel=None) -> ErrorMaps:
    """The model's mean absolute error per cell on every slice of the training stacks."""
    from .models.loading import LoadedModel
    from .predict import LocalPredictor
    from .volume import from_array

    predictor = LocalPredictor({"object": [LoadedModel("mining", model, context, 0.5)]}, tta=1, tile=max(tile, 256), overlap=32)
    maps = []
    for stack in stacks:
        grid = None
        volume = from_array(stack.images, stack.source, slice_names=stack.names)
        for result in predictor.iter_predict(volume, cancel=cancel):
            error = np.abs(result.probabilities["object"].astype(np.float32) - stack.masks[result.index])
            cells = cell_means(error, block)
            if grid is None:
                grid = np.zeros((len(stack), *cells.shape), np.float32)
            grid[result.index] = cells
        maps.append(grid)
    return ErrorMaps(maps, block)
