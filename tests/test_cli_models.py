"""The model commands end to end: train -> models -> predict -> evaluate, on real SBEM crops."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image


@pytest.fixture(scope="module")
def workspace(cdeep3m, tmp_path_factory):
    """Crops of real slices, an empty bundled-models folder and a user folder."""
    root = tmp_path_factory.mktemp("cli_models")
    for split, numbers, box in (("train", range(10, 16), np.s_[:384, :384]), ("val", [50, 51], np.s_[:256, :256])):
        source = cdeep3m / ("training" if split == "train" else "validation")
        for kind, stem in (("images", "images"), ("labels", "mitos_3D")):
            folder = root / split / kind
            folder.mkdir(parents=True)
            for n in numbers:
                array = np.asarray(Image.open(source / kind / f"{stem}.{n:03d}.png"))[box]
                Image.fromarray(array).save(folder / f"{stem}.{n:03d}.png")
    (root / "bundled").mkdir()
    return root


@pytest.fixture(scope="module")
def trained(workspace):
    """``emviewer train`` of a tiny model into the user folder (the path a user takes)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, EMVIEWER_USER_DIR=str(workspace / "user"), EMVIEWER_MODELS_DIR=str(workspace / "bundled"))
    cmd = [
        sys.executable,
        "-m",
        "emviewer",
        "train",
        "--object",
        "mito",
        "--arch",
        "deepem3d",
        "--width",
        "8",
        "--epochs",
        "2",
    ]
    cmd += [
        "--steps",
        "5",
        "--batch-size",
        "2",
        "--tile",
        "128",
        "--precision",
        "float32",
        "--out",
        str(workspace / "user" / "models" / "mito" / "tiny.keras"),
    ]
    cmd += ["--images", str(workspace / "train" / "images"), "--labels", str(workspace / "train" / "labels")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "validation F1" in result.stdout
    return workspace / "user" / "models" / "mito" / "tiny.keras"


@pytest.fixture
def env(workspace, monkeypatch):
    monkeypatch.setenv("EMVIEWER_USER_DIR", str(workspace / "user"))
    monkeypatch.setenv("EMVIEWER_MODELS_DIR", str(workspace / "bundled"))
    return workspace


def test_models_lists_the_trained_model_with_its_card(trained, env, run_cli):
    code, out, _ = run_cli("models", "--json")
    assert code == 0
    entries = json.loads(out)
    assert [e["name"] for e in entries] == ["tiny"]
    card = entries[0]["card"]
    assert card["object"] == "mito" and card["architecture"] == "deepem3d" and 0 < card["threshold"] < 1
    assert card["validation"]["f1"] >= 0 and len(card["sha256"]) == 64 and card["training_time_s"] > 0
    assert run_cli("models")[1].splitlines()[1].startswith("tiny ")


def test_predict_writes_masks_named_after_slices_and_evaluates(trained, env, tmp_path, run_cli):
    out = tmp_path / "pred"
    code, _, err = run_cli(
        "predict", env / "val" / "images", "-o", out, "--object", "mito", "--model", trained, "--save-probabilities"
    )
    assert code == 0, err
    assert sorted(p.name for p in out.glob("*.png")) == ["images.050.png", "images.051.png"]
    mask = np.asarray(Image.open(out / "images.050.png"))
    assert mask.shape == (256, 256) and set(np.unique(mask)) <= {0, 255}
    probability = np.asarray(Image.open(out / "probabilities" / "images.050.png"))
    np.testing.assert_array_equal(mask == 255, probability >= 128)
    code, report, _ = run_cli("evaluate", "--pred", out, "--labels", env / "val" / "labels", "--json")
    assert code == 0 and len(json.loads(report)["per_image"]) == 2


def test_several_objects_and_stack_formats(trained, env, tmp_path, run_cli):
    out = tmp_path / "multi"
    # One model serves as both objects here: the command's plumbing is what is tested.
    code, _, err = run_cli(
        "predict", env / "val" / "images", "-o", out, "--object", "mito,membrane", "--model", trained
    )
    assert code == 0, err
    assert sorted(p.name for p in (out / "mito").iterdir()) == sorted(p.name for p in (out / "membrane").iterdir())
    code, _, err = run_cli(
        "predict",
        env / "val" / "images",
        "-o",
        tmp_path / "tif",
        "--object",
        "mito",
        "--model",
        trained,
        "--format",
        "tif",
        "--save-probabilities",
    )
    assert code == 0, err
    assert tifffile.imread(tmp_path / "tif" / "mito.tif").shape == (2, 256, 256)
    assert tifffile.imread(tmp_path / "tif" / "mito_probabilities.tif").dtype == np.float32
    code, _, err = run_cli(
        "predict",
        env / "val" / "images",
        "-o",
        tmp_path / "h5",
        "--object",
        "mito",
        "--model",
        trained,
        "--format",
        "h5",
    )
    assert code == 0, err
    with h5py.File(tmp_path / "h5" / "prediction.h5") as h5:
        assert h5["masks/mito"].shape == h5["raw"].shape == (2, 256, 256)
        assert "tiny" in h5.attrs["parameters"]


def test_accurate_mode_ensembles_and_augments(trained, env, tmp_path, run_cli):
    code, _, err = run_cli(
        "predict",
        env / "val" / "images",
        "-o",
        tmp_path / "acc",
        "--object",
        "mito",
        "--model",
        f"{trained},tiny",
        "--mode",
        "accurate",
    )
    assert code == 0, err
    assert len(list((tmp_path / "acc").glob("*.png"))) == 2


def test_default_model_missing_is_a_clear_error(env, tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("EMVIEWER_USER_DIR", str(tmp_path / "nobody"))
    code, _, err = run_cli("predict", env / "val" / "images", "-o", tmp_path / "x", "--object", "nuclei")
    assert code == 2 and "no fast model for 'nuclei'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_trained_model_is_the_default_for_its_object(trained, env, tmp_path, run_cli):
    for mode in ("fast", "accurate"):
        code, _, err = run_cli(
            "predict",
            env / "val" / "images" / "images.050.png",
            "-o",
            tmp_path / mode,
            "--object",
            "mito",
            "--mode",
            mode,
        )
        assert code == 0, err
        assert (tmp_path / mode / "images.050.png").exists()
