"""Training data: real labels loaded by number, crops and augmentation keep image and mask aligned."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import tifffile
from PIL import Image

from emviewer.core.dataset import Augmentation, LabelledStack, holdout_split, load_labelled, random_batch
from emviewer.core.errors import PairingError
from emviewer.core.train import DataSpec, load_data


def test_loads_real_pairs_in_number_order(cdeep3m):
    stack = load_labelled(str(cdeep3m / "validation" / "images"), str(cdeep3m / "validation" / "labels"))
    assert stack.names[0] == "images.050" and len(stack) == 10
    assert stack.images.dtype == np.uint8 and stack.masks.dtype == bool
    assert 0.02 < stack.masks.mean() < 0.25
    train, val = holdout_split(stack)
    assert val.names == ["images.058", "images.059"] and len(train) == 8


def test_held_out_parts_keep_the_voxel_size_levels_and_reference(cdeep3m):
    from emviewer.core.io import ReadOptions

    stack = load_labelled(
        str(cdeep3m / "validation" / "images"),
        str(cdeep3m / "validation" / "labels"),
        reference=(0.2, 0.8),
        options=ReadOptions(pixel_size=(50.0, 7.0, 7.0)),
    )
    for part in holdout_split(stack):
        assert part.pixel_size == (50.0, 7.0, 7.0)  # the trained card records it
        assert (part.reference, part.levels, part.source) == (stack.reference, stack.levels, stack.source)


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
        assert x.min() >= 0 and x.max() <= 1
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


# ---------------------------------------------------------------------------- pairing of the training data

VALIDATION = [f"0{n}" for n in range(50, 55)]


def crop(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)[:128, :128]


@pytest.fixture
def shifted(cdeep3m, tmp_path):
    """The issue's case: EM images as a 1-based PNG folder (``img_0001...``) and their labels as
    one TIFF stack, whose slices get 0-based names (``slice_0000...``)."""
    images = tmp_path / "images"
    images.mkdir()
    for z, n in enumerate(VALIDATION, 1):
        Image.fromarray(crop(cdeep3m / "validation" / "images" / f"images.{n}.png")).save(images / f"img_{z:04d}.png")
    labels = np.stack([crop(cdeep3m / "validation" / "labels" / f"mitos_3D.{n}.png") for n in VALIDATION])
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    return images, tmp_path / "labels.tif", labels


def test_a_1_based_folder_and_a_0_based_stack_are_refused(shifted):
    images, labels, _ = shifted
    with pytest.raises(PairingError) as info:
        load_labelled(str(images), str(labels))
    message = str(info.value)
    assert str(labels) in message and "images 1-5, labels 0-4" in message and "--pair-by order" in message


def test_pairing_by_order_loads_each_image_with_its_own_label(shifted):
    images, labels, truth = shifted
    stack = load_labelled(str(images), str(labels), pair_by="order")
    assert stack.names == [f"img_{n:04d}" for n in range(1, 6)]
    np.testing.assert_array_equal(stack.masks, truth == 1)
    assert stack.warnings() == []


def test_labels_without_an_image_are_skipped_and_named(cdeep3m, make_crops):
    images = make_crops([cdeep3m / "validation" / "images" / f"images.{n}.png" for n in VALIDATION], "images")
    labels = make_crops(sorted((cdeep3m / "validation" / "labels").glob("*.png")), "labels")
    stack = load_labelled(str(images), str(labels))
    assert stack.names == [f"images.{n}" for n in VALIDATION] and len(stack.unpaired_labels) == 5
    assert stack.unpaired_images == [] and stack.unpaired_labels[0] == "mitos_3D.055"
    assert stack.warnings() == [
        f"{labels}: 5 label slice(s) without a partner, skipped: " + ", ".join(f"mitos_3D.0{n}" for n in range(55, 60))
    ]


def test_training_data_warns_then_refuses_a_shifted_validation_set(cdeep3m, make_crops, shifted):
    """``train`` loads every set before it builds a model: unpaired slices are reported as
    each set loads, a set that does not pair stops it."""
    images, labels, _ = shifted
    subset = make_crops([cdeep3m / "training" / "images" / f"images.0{n}.png" for n in range(10, 14)], "train_images")
    all_labels = make_crops(sorted((cdeep3m / "training" / "labels").glob("*.png")), "train_labels")
    spec = DataSpec([str(subset)], [str(all_labels)], [str(images)], [str(labels)])
    warned = []
    with pytest.raises(PairingError, match="images 1-5, labels 0-4"):
        load_data(spec, warned.append)
    assert len(warned) == 1 and "16 label slice(s) without a partner" in warned[0] and "mitos_3D.014" in warned[0]
    train_sets, val_sets = load_data(replace(spec, val_images=[], val_labels=[]))
    assert [s.names for s in train_sets + val_sets] == [["images.010", "images.011", "images.012"], ["images.013"]]
    by_order = load_data(replace(spec, images=[str(images)], labels=[str(labels)], pair_by="order"))
    assert [len(s) for s in by_order[0] + by_order[1]] == [5, 5]
