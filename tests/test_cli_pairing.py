"""``evaluate`` and ``train`` never pair image and label slices silently shifted (issue 17, item 7).

The case found: labels as one TIFF stack (its slices get 0-based names ``slice_0000...``) and
masks or images as a 1-based folder (``mask_0001...``). Pairing by the number in the names
would meet each mask with the next slice; both commands refuse, list both sides' numbers and
offer ``--pair-by order``. Files are real crops of cdeep3m slices, written by tifffile and
Pillow at test time. No test here trains a model: ``train`` reads and pairs all its data
before it loads Keras, so a refusal comes first.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SLICES = [f"0{n}" for n in range(50, 55)]
CROP = 128


def crop(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)[:CROP, :CROP]


def save_pngs(folder: Path, arrays, names) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for array, name in zip(arrays, names, strict=True):
        Image.fromarray(array).save(folder / f"{name}.png")
    return folder


@pytest.fixture
def labels(cdeep3m) -> np.ndarray:
    """``(5, 128, 128)`` uint8 0/1: real cdeep3m labels of slices 050-054."""
    return np.stack([crop(cdeep3m / "validation" / "labels" / f"mitos_3D.{n}.png") for n in SLICES])


@pytest.fixture
def label_stack(labels, tmp_path) -> Path:
    """The labels as one TIFF stack: its slices are called slice_0000 ... slice_0004."""
    path = tmp_path / "labels.tif"
    tifffile.imwrite(path, labels)
    return path


@pytest.fixture
def masks(labels, tmp_path) -> Path:
    """Perfect masks (0/255) of the same slices, named from 1: mask_0001 ... mask_0005."""
    return save_pngs(tmp_path / "masks", labels * 255, [f"mask_{z:04d}" for z in range(1, 6)])


@pytest.fixture
def images(cdeep3m, tmp_path) -> Path:
    """The EM crops of the same slices, named from 1: img_0001 ... img_0005."""
    arrays = [crop(cdeep3m / "validation" / "images" / f"images.{n}.png") for n in SLICES]
    return save_pngs(tmp_path / "images", arrays, [f"img_{z:04d}" for z in range(1, 6)])


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------------------- evaluate


def test_evaluate_refuses_a_1_based_folder_against_a_0_based_stack(masks, label_stack, run_cli):
    code, out, err = run_cli("evaluate", "--pred", masks, "--labels", label_stack, "--json")
    message = one_error_line(err)
    assert code == 2 and out == ""
    assert message.startswith(f"emviewer: error: {label_stack}: ") and str(masks) in message
    assert "predictions 1-5, labels 0-4" in message and "--pair-by order" in message


def test_evaluate_by_order_scores_each_mask_against_its_own_label(masks, label_stack, run_cli):
    code, out, err = run_cli("evaluate", "--pred", masks, "--labels", label_stack, "--pair-by", "order", "--json")
    assert code == 0 and err == "", err
    result = json.loads(out)
    assert [row["name"] for row in result["per_image"]] == [f"mask_{z:04d}" for z in range(1, 6)]
    assert all(row["f1"] == 1.0 and row["tp"] > 0 for row in result["per_image"]) and result["mean"]["f1"] == 1.0


def test_evaluate_by_order_needs_as_many_masks_as_labels(masks, label_stack, run_cli):
    (masks / "mask_0005.png").unlink()
    code, _, err = run_cli("evaluate", "--pred", masks, "--labels", label_stack, "--pair-by", "order")
    assert code == 2
    assert (
        f"{label_stack}: pairing by order needs as many labels as predictions: 5 here, 4 in {masks}"
        in one_error_line(err)
    )


def test_evaluate_warns_about_labels_without_a_mask(labels, tmp_path, run_cli):
    """Masks for 3 of 5 labelled slices: a subset pairs by number, the rest is named in a warning."""
    label_dir = save_pngs(tmp_path / "label_pngs", labels, [f"mitos_3D.{n}" for n in SLICES])
    mask_dir = save_pngs(tmp_path / "some_masks", labels[1:4] * 255, [f"pred_{n}" for n in SLICES[1:4]])
    code, out, err = run_cli("evaluate", "--pred", mask_dir, "--labels", label_dir, "--json")
    assert code == 0, err
    assert [row["f1"] for row in json.loads(out)["per_image"]] == [1.0, 1.0, 1.0]
    assert (
        err.strip() == f"warning: {label_dir}: 2 label slice(s) without a partner, skipped: mitos_3D.050, mitos_3D.054"
    )


def test_an_unknown_pairing_is_refused_by_the_parser(masks, label_stack, run_cli):
    code, _, err = run_cli("evaluate", "--pred", masks, "--labels", label_stack, "--pair-by", "position")
    assert code == 2 and "--pair-by: invalid choice: 'position'" in err


# ---------------------------------------------------------------------------- train


def test_train_refuses_shifted_data_before_loading_keras(images, label_stack, tmp_path):
    """A real process: exit 2 with one line, and Keras (so no training) never imported."""
    out = tmp_path / "out"
    out.mkdir()
    argv = [
        "train",
        "--images",
        str(images),
        "--labels",
        str(label_stack),
        "--object",
        "mito",
        "--out",
        str(out / "m.keras"),
    ]
    snippet = (
        "import sys\n"
        "from emviewer.cli import main\n"
        f"code = main({argv!r})\n"
        "print(code, 'keras' in sys.modules, 'tensorflow' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", snippet], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["2", "False", "False"], proc.stdout + proc.stderr
    message = one_error_line(proc.stderr)
    assert (
        message.startswith(f"emviewer: error: {label_stack}: ")
        and "images 1-5, labels 0-4" in message
        and "--pair-by order" in message
    )
    assert list(out.iterdir()) == []


def test_train_warns_about_unpaired_slices_as_each_set_loads(images, label_stack, labels, cdeep3m, tmp_path, run_cli):
    """Training images 051-053 with labels 050-054 warn; the shifted validation set then stops the run."""
    label_dir = save_pngs(tmp_path / "label_pngs", labels, [f"mitos_3D.{n}" for n in SLICES])
    some = save_pngs(
        tmp_path / "some_images",
        [crop(cdeep3m / "validation" / "images" / f"images.{n}.png") for n in SLICES[1:4]],
        [f"images.{n}" for n in SLICES[1:4]],
    )
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = run_cli(
        "train",
        "--images",
        some,
        "--labels",
        label_dir,
        "--val-images",
        images,
        "--val-labels",
        label_stack,
        "--object",
        "mito",
        "--out",
        out / "m.keras",
    )
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 2, err
    assert lines[0] == f"warning: {label_dir}: 2 label slice(s) without a partner, skipped: mitos_3D.050, mitos_3D.054"
    assert lines[1].startswith(f"emviewer: error: {label_stack}: ") and "images 1-5, labels 0-4" in lines[1]
    assert list(out.iterdir()) == []


def test_train_pairs_every_set_by_order_when_asked(images, label_stack, tmp_path, run_cli):
    """``--pair-by order`` reaches the training set (it loads) and the validation set (refused: 4 images, 5 labels)."""
    four = tmp_path / "four_images"
    four.mkdir()
    for path in sorted(images.iterdir())[:4]:
        (four / path.name).write_bytes(path.read_bytes())
    code, _, err = run_cli(
        "train",
        "--images",
        images,
        "--labels",
        label_stack,
        "--val-images",
        four,
        "--val-labels",
        label_stack,
        "--pair-by",
        "order",
        "--object",
        "mito",
        "--out",
        tmp_path / "m.keras",
    )
    assert code == 2
    assert f"{label_stack}: pairing by order needs as many labels as images: 5 here, 4 in {four}" in one_error_line(err)
    assert not (tmp_path / "m.checkpoints").exists()
