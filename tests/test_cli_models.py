"""The model commands end to end: train -> models -> predict -> evaluate, on real SBEM crops."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image

from emviewer.core.io import open_volume


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


def test_predict_to_ome_zarr_equals_the_png_masks(trained, env, tmp_path, run_cli):
    code, out, err = run_cli(
        "predict", env / "val" / "images", "-o", tmp_path / "pred.zarr", "--object", "mito", "--model", trained
    )
    assert code == 0, err
    assert "2 of 2 slices" in out
    assert (
        run_cli("predict", env / "val" / "images", "-o", tmp_path / "png", "--object", "mito", "--model", trained)[0]
        == 0
    )
    masks = open_volume(f"{tmp_path / 'pred.zarr'}:mito/0")
    for z, name in enumerate(("images.050", "images.051")):
        np.testing.assert_array_equal(masks.slice(z), np.asarray(Image.open(tmp_path / "png" / f"{name}.png")))
    code, _, err = run_cli(
        "predict", env / "val" / "images", "-o", tmp_path / "png", "--object", "mito", "--model", trained, "--resume"
    )
    assert code == 2 and "--resume continues an OME-Zarr prediction" in err


def test_a_killed_ome_zarr_prediction_resumes_to_the_same_store(trained, env, tmp_path, run_cli):
    """A real kill (SIGKILL) after a random number of slices, then --resume: the store equals an unbroken run's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    planes = [np.asarray(Image.open(p)) for p in sorted((env / "val" / "images").glob("*.png"))]
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.stack([np.roll(planes[z % 2], 7 * z, axis=1) for z in range(24)]))
    args = ["predict", stack, "--object", "mito", "--model", trained, "--save-probabilities", "-o"]
    killed, whole = tmp_path / "killed.zarr", tmp_path / "whole.zarr"
    cmd = [sys.executable, "-m", "emviewer", *map(str, args), str(killed)]
    process = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    after = int(np.random.default_rng().integers(1, 12))  # slices written before the kill
    done = killed / ".emviewer" / "done"
    while process.poll() is None and not (done.is_dir() and len(os.listdir(done)) >= after):
        time.sleep(0.01)
    assert process.poll() is None, f"the run ended before the kill: {process.stderr.read()[-500:]}"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert 0 < len(os.listdir(done)) < 24
    code, out, err = run_cli(*args, killed, "--resume")
    assert code == 0, err
    assert "resuming" in out and "24 of 24 slices" in out
    code, out, _ = run_cli(*args, killed, "--resume")  # nothing left to do: nothing predicted
    assert code == 0 and "24 of 24 slices already written" in out
    assert run_cli(*args, whole)[0] == 0
    for name in ("mito", "mito_probabilities"):  # level 0 of each image (256 x 256: no other level)
        a, b = open_volume(f"{killed}:{name}"), open_volume(f"{whole}:{name}")
        np.testing.assert_array_equal(np.asarray(a.data[:]), np.asarray(b.data[:]))


def test_a_two_worker_local_cluster_gives_the_single_process_masks(trained, env, tmp_path, run_cli):
    planes = [np.asarray(Image.open(p)) for p in sorted((env / "val" / "images").glob("*.png"))]
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.stack([np.roll(planes[z % 2], 11 * z, axis=0) for z in range(6)]))
    args = ["predict", stack, "--object", "mito", "--model", trained, "--save-probabilities", "-o"]
    code, out, err = run_cli(*args, tmp_path / "cluster.zarr", "--cluster", "local:2")
    assert code == 0, err
    assert "6 of 6 slices" in out
    assert run_cli(*args, tmp_path / "single.zarr")[0] == 0
    one, two = (open_volume(f"{tmp_path / name}:mito") for name in ("single.zarr", "cluster.zarr"))
    differ = np.count_nonzero(np.asarray(one.data[:]) != np.asarray(two.data[:]))
    assert differ <= 1e-4 * np.prod(one.shape)  # TensorFlow's thread count may change the last bits
    p1, p2 = (open_volume(f"{tmp_path / n}:mito_probabilities") for n in ("single.zarr", "cluster.zarr"))
    np.testing.assert_allclose(np.asarray(p1.data[:]), np.asarray(p2.data[:]), atol=1e-4)
    assert run_cli(*args, tmp_path / "x.zarr", "--cluster", "remote:2")[0] == 2
