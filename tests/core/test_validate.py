"""The data rules of emviewer.core.validate on the real labelled sets and their file names."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emviewer.core.errors import ImageContentError, InputError, PairingError
from emviewer.core.validate import check_image, describe_keys, label_to_mask, pair_by_number, pair_slices


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def numbers(name: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", name)]


# ---------------------------------------------------------------------------- check_image


@pytest.fixture(scope="module")
def em_slices(cdeep3m, lucchi, isbi, hela) -> dict[str, Path]:
    """One real EM slice of each data set."""
    return {
        "cdeep3m": cdeep3m / "training" / "images" / "images.010.png",
        "lucchi": lucchi / "images" / "train_000.png",
        "isbi": isbi / "image" / "0.png",
        "hela": hela / "images" / "Hela_Data_Slice_100_Sample_7.png",
    }


@pytest.mark.parametrize("name", ["cdeep3m", "lucchi", "isbi", "hela"])
def test_real_em_slices_pass_the_image_check(name, em_slices):
    check_image(pixels(em_slices[name]), em_slices[name])


def test_a_0_255_label_given_as_image_is_refused_naming_the_file(lucchi):
    path = lucchi / "labels" / "train_000.png"
    with pytest.raises(ImageContentError, match=r"binary") as info:
        check_image(pixels(path), path)
    assert "train_000.png" in str(info.value) and "0, 255" in str(info.value)
    assert info.value.path == str(path)


def test_a_0_1_label_given_as_image_is_refused(cdeep3m):
    path = cdeep3m / "training" / "labels" / "mitos_3D.010.png"
    with pytest.raises(ImageContentError, match=r"mitos_3D\.010\.png.*binary \(values 0, 1\)"):
        check_image(pixels(path), path)


def test_a_constant_image_is_refused(em_slices):
    flat = np.full_like(pixels(em_slices["cdeep3m"])[:64, :64], 117)
    with pytest.raises(ImageContentError, match=r"blank_slice\.png: the image is binary \(values 117\)"):
        check_image(flat, "blank_slice.png")


def test_three_grey_levels_are_enough_to_be_an_image():
    check_image(np.array([[0, 1], [2, 2]], np.uint8), "tiny.png")


# ---------------------------------------------------------------------------- label_to_mask


def _fraction(mask: np.ndarray) -> float:
    assert mask.dtype == bool
    return float(mask.mean())


def test_cdeep3m_labels_0_1_give_mitochondria(cdeep3m):
    folder = cdeep3m / "training" / "labels"
    labels = np.stack([pixels(folder / f"mitos_3D.0{n}.png") for n in (10, 20, 29)])
    mask = label_to_mask(labels, folder)
    assert mask.shape == labels.shape
    np.testing.assert_array_equal(mask, labels == 1)
    assert 0.02 < _fraction(mask) < 0.25


def test_0_1_and_0_255_labels_give_the_same_mask(cdeep3m):
    label = pixels(cdeep3m / "training" / "labels" / "mitos_3D.010.png")
    np.testing.assert_array_equal(label_to_mask(label, "a"), label_to_mask(label.astype(np.uint8) * 255, "b"))


def test_lucchi_labels_0_255_give_mitochondria(lucchi):
    label = pixels(lucchi / "labels" / "train_000.png")
    mask = label_to_mask(label, "train_000.png")
    np.testing.assert_array_equal(mask, label == 255)
    assert 0.02 < _fraction(mask) < 0.25


def test_isbi_labels_inverted_give_membranes(isbi):
    label = pixels(isbi / "label" / "0.png")
    membrane = label_to_mask(label, "0.png", invert=True)
    np.testing.assert_array_equal(membrane, label == 0)
    assert 0.10 < _fraction(membrane) < 0.40
    assert _fraction(label_to_mask(label, "0.png")) > 0.6  # without --invert: the cell interiors


def test_hela_class_map_with_foreground_2_gives_nuclei(hela):
    paths = sorted((hela / "labels").glob("Hela_Label_Slice100_Sample_*.png"))
    labels = np.stack([pixels(p) for p in paths])
    assert set(np.unique(labels)) == {1, 2, 3}
    nucleus = label_to_mask(labels, "hela", foreground=[2])
    np.testing.assert_array_equal(nucleus, labels == 2)
    assert 0.15 < _fraction(nucleus) < 0.60
    envelope_and_nucleus = label_to_mask(labels, "hela", foreground=[1.0, 2.0])
    np.testing.assert_array_equal(envelope_and_nucleus, labels < 3)


def test_class_map_without_foreground_is_refused_listing_its_values(hela):
    path = hela / "labels" / "Hela_Label_Slice100_Sample_7.png"
    with pytest.raises(ImageContentError) as info:
        label_to_mask(pixels(path), path)
    message = str(info.value)
    assert "Hela_Label_Slice100_Sample_7.png" in message
    assert "values 1, 2, 3" in message and "--foreground" in message


# ---------------------------------------------------------------------------- pairing


def _stems(folder: Path) -> list[str]:
    return [p.stem for p in folder.glob("*.png")]


def test_cdeep3m_images_pair_with_mitos_3d_labels(cdeep3m):
    images = sorted(_stems(cdeep3m / "training" / "images"))
    labels = sorted(_stems(cdeep3m / "training" / "labels"), reverse=True)  # position must not matter
    assert images[0] == "images.010" and len(images) == len(labels) == 20
    pairing = pair_by_number(images, labels)
    assert len(pairing.pairs) == 20 and not pairing.unpaired_a and not pairing.unpaired_b
    for i, j in pairing.pairs:
        assert labels[j] == "mitos_3D." + images[i].split(".")[1]


def test_hela_patches_pair_by_slice_and_sample(hela):
    images = _stems(hela / "images")
    labels = _stems(hela / "labels")
    np.random.default_rng(3).shuffle(labels)
    pairing = pair_by_number(images, labels)
    assert len(pairing.pairs) == len(images) == 2337
    assert not pairing.unpaired_a and not pairing.unpaired_b
    assert all(numbers(images[i]) == numbers(labels[j]) for i, j in pairing.pairs)
    partner = dict(pairing.pairs)
    assert labels[partner[images.index("Hela_Data_Slice_100_Sample_7")]] == "Hela_Label_Slice100_Sample_7"
    assert labels[partner[images.index("Hela_Data_Slice_100_Sample_10")]] == "Hela_Label_Slice100_Sample_10"
    assert labels[partner[images.index("Hela_Data_Slice_102_Sample_7")]] == "Hela_Label_Slice102_Sample_7"


def test_unpaired_names_on_one_side_are_reported(cdeep3m):
    """Predictions for 5 of the 20 labelled slices: a subset pairs, the rest is listed for a warning."""
    images = [f"images.0{n}" for n in range(12, 17)]
    labels = _stems(cdeep3m / "training" / "labels")
    pairing = pair_by_number(images, labels)
    assert [(images[i], labels[j]) for i, j in pairing.pairs] == [
        (f"images.0{n}", f"mitos_3D.0{n}") for n in range(12, 17)
    ]
    assert pairing.unpaired_a == [] and len(pairing.unpaired_b) == 15 and "mitos_3D.010" in pairing.unpaired_b
    extra = pair_by_number(images + ["images.099"], [f"mitos_3D.0{n}" for n in range(12, 17)])
    assert extra.unpaired_a == ["images.099"] and extra.unpaired_b == []


def test_a_subset_of_the_hela_patches_pairs_with_all_labels(hela):
    images = _stems(hela / "images")[:100]
    pairing = pair_by_number(images, _stems(hela / "labels"))
    assert len(pairing.pairs) == 100 and not pairing.unpaired_a and len(pairing.unpaired_b) == 2337 - 100


def test_numberings_that_differ_are_refused_listing_both_sides():
    """A 0-based stack's generated names against a 1-based folder: by number each mask would
    meet the next slice, so pairing refuses and offers pairing by order."""
    stack = [f"slice_{z:04d}" for z in range(5)]
    masks = [f"mask_{n:04d}" for n in range(1, 6)]
    with pytest.raises(PairingError) as info:
        pair_by_number(masks, stack, "masks", "labels.tif")
    message = str(info.value)
    assert message.startswith("labels.tif: ") and "masks" in message and "\n" not in message
    assert "images 1-5, labels 0-4" in message and "--pair-by order" in message and 'Pair by "order"' in message


def test_partial_overlap_is_refused():
    images = [f"images.0{n}" for n in range(10, 16)]
    labels = [f"mitos_3D.0{n}" for n in range(12, 21)]
    with pytest.raises(
        PairingError, match=r"label_folder: .*do not line up.*\(predictions 10-15, labels 12-20\).*--pair-by order"
    ):
        pair_slices(images, labels, "pred_folder", "label_folder", "number", ("predictions", "labels"))


def test_nothing_pairs():
    with pytest.raises(PairingError, match=r"label_folder: no file pairs") as info:
        pair_by_number(["images.010", "images.011"], ["mitos_3D.050", "mitos_3D.051"], "image_folder", "label_folder")
    assert "images 10-11, labels 50-51" in str(info.value) and "--pair-by order" in str(info.value)


def test_long_lists_of_numbers_stay_short():
    assert describe_keys([(n,) for n in (1, 2, 3, 5, 7, 8, 9, 20, 22)]) == "1-3, 5, 7-9, ..., 22 (9 in all)"
    assert describe_keys([(100, 7), (100, 10), (100, 1)]) == "100_1, 100_7, 100_10"
    assert describe_keys([("cell",)]) == "cell"


def test_pairing_by_order_takes_natural_order():
    masks = ["mask_10", "mask_9", "mask_2"]
    labels = [f"slice_{z:04d}" for z in range(3)]
    pairing = pair_slices(masks, labels, by="order")
    assert [(masks[i], labels[j]) for i, j in pairing.pairs] == [
        ("mask_10", "slice_0002"),
        ("mask_9", "slice_0001"),
        ("mask_2", "slice_0000"),
    ]
    assert not pairing.unpaired_a and not pairing.unpaired_b


def test_pairing_by_order_needs_equal_counts():
    with pytest.raises(
        PairingError, match=r"^labels.tif: pairing by order needs as many labels as images: 4 here, 5 in images/$"
    ):
        pair_slices([f"m{n}" for n in range(5)], [f"s{n}" for n in range(4)], "images/", "labels.tif", "order")


def test_an_unknown_pairing_is_refused():
    with pytest.raises(InputError, match=r"pair by 'position': choose one of number, order"):
        pair_slices(["a1"], ["b1"], by="position")


@pytest.mark.parametrize(
    "images, labels, blamed",
    [
        (["images.010", "images_copy.010", "images.011"], ["mitos_3D.010", "mitos_3D.011"], "image_folder"),
        (["images.010", "images.011"], ["mitos_3D.010", "mitos_3D.10", "mitos_3D.011"], "label_folder"),
    ],
)
def test_two_files_with_the_same_number_are_ambiguous(images, labels, blamed):
    with pytest.raises(PairingError, match=rf"{blamed}: .*same number.*ambiguous"):
        pair_by_number(images, labels, "image_folder", "label_folder")


def test_pairing_errors_are_input_errors():
    assert issubclass(PairingError, InputError)


def test_a_mask_stack_is_refused_as_the_image_but_a_blank_stack_is_not():
    from emviewer.core.validate import check_volume_image
    from emviewer.core.volume import from_array

    mask = np.zeros((3, 32, 32), np.uint8)
    mask[:, 8:16, 8:16] = 255
    with pytest.raises(ImageContentError, match=r"binary \(values 0, 255\)"):
        check_volume_image(from_array(mask))
    check_volume_image(from_array(np.full((3, 32, 32), 7, np.uint8)))  # blank slices: predicted as background
