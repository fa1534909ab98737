"""Training data: real labels loaded by number, crops and augmentation keep image and mask aligned."""

from __future__ import annotations

import numpy as np

from emviewer.core.dataset import Augmentation, LabelledStack, holdout_split, load_labelled, random_batch


def test_loads_real_pairs_in_number_order(cdeep3m):
    stack = load_labelled(str(cdeep3m / "validation" / "images"), str(cdeep3m / "validation" / "labels"))
    assert stack.names[0] == "images.050" and len(stack) == 10
    assert stack.images.dtype == np.uint8 and stack.masks.dtype == bool
    assert 0.02 < stack.masks.mean() < 0.25
    train, val = holdout_split(stack)
    assert val.names == ["images.058", "images.059"] and len(train) == 8


def test_batches_are_aligned_with_context_and_in_range():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 200, (100, 90)).astype(np.uint8)
    images = np.stack([base + 10 * z for z in range(4)]).astype(np.uint8)  # slice z is base + 10 z
    masks = np.stack([base % 2 == 1] * 4)  # parity survives the even offsets between slices
    stack = LabelledStack(images, masks, [f"s{z}" for z in range(4)], (0.0, 255.0), "synthetic")
    dihedral_only = Augmentation(brightness=0, contrast=0, noise_probability=0, blur_probability=0)
    for augmentation in (None, dihedral_only):
        x, y = random_batch([stack], 8, 64, 3, rng, augmentation)
        assert x.shape == (8, 64, 64, 3) and y.shape == (8, 64, 64, 1) and x.dtype == np.float32
        assert 0 <= x.min() and x.max() <= 1
        grey = np.rint(x * 255)
        # Neighbours are 10 grey levels either side (20 apart), or equal where mirrored at an end.
        assert set(np.unique(np.abs(grey[..., 2] - grey[..., 0]))) <= {0.0, 20.0}
        np.testing.assert_array_equal(y[..., 0] > 0.5, grey[..., 1] % 2 == 1)  # the mask moved with the image


def test_augmentation_moves_mask_with_image():
    rng = np.random.default_rng(3)
    x = np.zeros((32, 32, 3), np.float32)
    x[2:6, 20:30, :] = 1.0
    y = x[..., 1].copy()
    plain = Augmentation(brightness=0, contrast=0, noise_probability=0, blur_probability=0)
    for _ in range(20):
        ax, ay = plain(x, y, rng)
        np.testing.assert_array_equal(ax[..., 1] > 0.5, ay > 0.5)
