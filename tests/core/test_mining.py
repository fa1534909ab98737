"""Hard-example mining: error cells are measured right and hard cells get the crops."""

from __future__ import annotations

import numpy as np

from emviewer.core.dataset import LabelledStack, random_batch
from emviewer.core.mining import ErrorMaps, cell_means, error_maps


def test_cell_means_average_each_cell_and_the_partial_edge_cells():
    error = np.zeros((5, 7), np.float32)
    error[:4, :4] = 1.0  # the first full cell
    error[4, 4:] = 0.5  # the corner cell holds one row of three pixels
    cells = cell_means(error, 4)
    np.testing.assert_allclose(cells, [[1.0, 0.0], [0.0, 0.5]])


def test_hard_cells_centre_the_mined_crops():
    maps = [np.full((2, 4, 4), 0.05, np.float32), np.full((3, 4, 4), 0.05, np.float32)]
    maps[1][2, 1, 3] = 0.9  # one badly wrong cell among 80 slightly wrong ones
    rng = np.random.default_rng(1)
    picks = [ErrorMaps(maps, 16).pick_centre(rng) for _ in range(400)]
    in_hard_cell = [p for p in picks if p[:2] == (1, 2) and 16 <= p[2] < 32 and 48 <= p[3] < 64]
    # Its share of the squared error is 0.81 / (0.81 + 79 * 0.0025) = 0.80.
    assert 0.7 < len(in_hard_cell) / len(picks) < 0.9
    assert all(0 <= p[2] < 64 and 0 <= p[3] < 64 for p in picks)


def test_random_batch_crops_around_the_hard_region():
    images = np.zeros((3, 128, 128), np.uint8)
    images[1, 96:112, 96:112] = 200  # a bright square where the model errs
    stack = LabelledStack(images, images > 0, ["a", "b", "c"], (0.0, 255.0), "synthetic")
    maps = np.zeros((3, 8, 8), np.float32)
    maps[1, 6, 6] = 1.0
    rng = np.random.default_rng(2)
    x, y = random_batch([stack], 16, 32, 1, rng, None, ErrorMaps([maps], 16), hard_fraction=1.0)
    assert (x.reshape(16, -1).max(axis=1) > 0.5).all()  # every crop holds part of the square
    uniform, _ = random_batch([stack], 16, 32, 1, rng, None, ErrorMaps([maps], 16), hard_fraction=0.0)
    assert (uniform.reshape(16, -1).max(axis=1) > 0.5).mean() < 0.5


def test_error_maps_measure_a_real_model_on_every_slice():
    from emviewer.core.models import build_model

    model = build_model("deepem3d", 1, 4, 2)
    images = np.random.default_rng(0).integers(0, 255, (2, 100, 70)).astype(np.uint8)
    stack = LabelledStack(images, images > 128, ["a", "b"], (0.0, 255.0), "noise")
    found = error_maps(model, 1, [stack], block=32)
    assert found.block == 32 and len(found.maps) == 1
    assert found.maps[0].shape == (2, 4, 3)
    assert (found.maps[0] > 0).all() and (found.maps[0] <= 1).all()
