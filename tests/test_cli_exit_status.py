"""Each kind of reported error has its own exit status (core/errors.py): the user's files 2,
training 3, the network or server 4; always one line on stderr."""

from __future__ import annotations

import numpy as np
import tifffile


def test_a_missing_file_exits_2(run_cli, tmp_path):
    code, _, err = run_cli("predict", tmp_path / "nothing.tif", "-o", tmp_path / "out", "--object", "mito")
    assert code == 2 and err.count("\n") == 1 and "nothing.tif" in err


def test_an_unreachable_server_exits_4(run_cli, tmp_path):
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.random.default_rng(0).integers(0, 255, (1, 64, 64), dtype=np.uint8))
    code, _, err = run_cli(
        "predict",
        stack,
        "-o",
        tmp_path / "out",
        "--object",
        "mito",
        "--server",
        "http://127.0.0.1:9",
        "--token",
        "x" * 20,
    )
    assert code == 4 and err.count("\n") == 1 and "cannot reach the server" in err


def test_a_diverging_training_exits_3(run_cli, make_crops, cdeep3m, tmp_path):
    images = sorted((cdeep3m / "training" / "images").glob("*.png"))[:2]
    labels = sorted((cdeep3m / "training" / "labels").glob("*.png"))[:2]
    image_dir, label_dir = make_crops(images, "images"), make_crops(labels, "labels")
    code, _, err = run_cli(
        "train",
        "--images",
        image_dir,
        "--labels",
        label_dir,
        "--object",
        "mito",
        "--arch",
        "deepem3d",
        "--width",
        "8",
        "--tile",
        "64",
        "--batch-size",
        "2",
        "--steps",
        "20",
        "--epochs",
        "1",
        "--lr",
        "1e12",
        "--precision",
        "float32",
        "--out",
        tmp_path / "diverged.keras",
    )
    errors = [line for line in err.splitlines() if line.startswith("emviewer: error:")]  # progress goes to stderr too
    assert code == 3 and len(errors) == 1 and "training diverged" in errors[0], err
