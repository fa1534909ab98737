"""Component sizes of a mask read in pieces equal those of labelling it whole."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from emviewer.core.component_sizes import component_sizes


def _whole(mask: np.ndarray) -> list[int]:
    labels, n = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, bool))
    return sorted(np.bincount(labels.ravel())[1:].tolist())


@pytest.mark.parametrize("seed", range(4))
def test_slices_of_a_stack_give_the_whole_stacks_sizes(seed):
    rng = np.random.default_rng(seed)
    mask = ndimage.binary_opening(rng.random((9, 40, 37)) > 0.55)  # many objects crossing slices
    pieces = (mask[z : z + 1] for z in range(len(mask)))
    assert sorted(component_sizes(pieces).tolist()) == _whole(mask)


@pytest.mark.parametrize("rows", [1, 2, 7, 64])
def test_bands_of_rows_of_one_slice_give_the_slices_sizes(rows):
    rng = np.random.default_rng(rows)
    mask = rng.random((64, 53)) > 0.6  # diagonal contacts across the seams too
    bands = (mask[y : y + rows] for y in range(0, len(mask), rows))
    assert sorted(component_sizes(bands).tolist()) == _whole(mask)


def test_objects_touching_only_at_a_corner_across_a_seam_are_one():
    mask = np.zeros((4, 4), bool)
    mask[1, 3] = mask[2, 2] = True  # 8-connected across the seam between rows 1 and 2
    mask[1, 0] = mask[2, 0] = True
    assert sorted(component_sizes([mask[:2], mask[2:]]).tolist()) == [2, 2]
    assert component_sizes([np.zeros((2, 3), bool)]).size == 0
