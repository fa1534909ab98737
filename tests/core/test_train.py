"""Training on real SBEM crops: a tiny model learns, checkpoints resume exactly after a kill."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emviewer.core.dataset import load_labelled
from emviewer.core.length_filter import length_limit
from emviewer.core.metrics import score
from emviewer.core.models.loading import load_model
from emviewer.core.pipeline import parallel_map
from emviewer.core.predict import LocalPredictor, predict_all
from emviewer.core.train import (
    DataSpec,
    TrainConfig,
    checkpoint_dir,
    load_checkpoint,
    load_state,
    object_length_limit,
    train,
    training_batch,
)
from emviewer.core.volume import from_array

TINY = {
    "arch": "deepem3d",
    "width": 8,
    "depth": 3,
    "tile": 128,
    "batch_size": 4,
    "learning_rate": 3e-3,
    "precision": "float32",
}


@pytest.fixture(scope="module")
def crops(cdeep3m, tmp_path_factory):
    """Training crops of slices 010-017, validation crops of 018-019, a held-out test crop of 029."""
    root = tmp_path_factory.mktemp("crops")

    def crop(numbers, folder, box):
        for kind, stem in (("images", "images"), ("labels", "mitos_3D")):
            (root / folder / kind).mkdir(parents=True, exist_ok=True)
            for n in numbers:
                array = np.asarray(Image.open(cdeep3m / "training" / kind / f"{stem}.{n:03d}.png"))
                Image.fromarray(array[box]).save(root / folder / kind / f"{stem}.{n:03d}.png")
        return str(root / folder / "images"), str(root / folder / "labels")

    return {
        "train": crop(range(10, 18), "train", np.s_[:512, :512]),
        "val": crop([18, 19], "val", np.s_[512:768, 512:768]),
        "test": crop([29], "test", np.s_[256:768, 256:768]),
    }


@pytest.fixture(scope="module")
def tiny(crops, tmp_path_factory):
    """One tiny model trained for 4 x 20 steps: its card and file (several tests read it)."""
    out = tmp_path_factory.mktemp("tiny") / "tiny.keras"
    spec = DataSpec([crops["train"][0]], [crops["train"][1]], [crops["val"][0]], [crops["val"][1]])
    return train(spec, TrainConfig(epochs=4, steps_per_epoch=20, **TINY), out).to_json(), out


def test_tiny_model_beats_trivial_baselines(crops, tiny):
    card, out = tiny
    assert out.with_suffix(".json").exists() and card["epochs"] == 4 and card["learning_rate"] == TINY["learning_rate"]
    model = load_model(out)  # also checks the card's SHA-256
    test = load_labelled(*crops["test"])
    probability = predict_all(LocalPredictor({"mito": [model]}, tile=128, overlap=32), from_array(test.images))["mito"][
        0
    ]
    truth = test.masks[0]
    learned = score(probability >= 0.5, truth).f1
    all_foreground = score(np.ones_like(truth), truth).f1
    all_background = score(np.zeros_like(truth), truth).f1
    assert learned > all_foreground + 0.05 and learned > all_background, (learned, all_foreground)
    history = json.loads(out.with_suffix(".history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    # accurate mode has its own threshold, tuned on the same held-out slices with 16x augmentation
    assert card["thresholds"]["1"] == card["threshold"] and 0 < card["thresholds"]["16"] < 1
    assert 0 < card["validation_tta16"]["f1"] <= 1 and model.threshold_for(16) == card["thresholds"]["16"]
    # mitochondria have a bounded size: the card limits object length by the training labels
    assert card["max_object_length_px"] == length_limit(load_labelled(*crops["train"]).masks) > 0


def test_the_card_knows_its_training_data_for_the_out_of_domain_line(crops, tiny, isbi):
    card, out = tiny
    crops_folder = Path(crops["train"][0]).parent.parent.name  # "train" and "images" say nothing alone
    assert card["trained_on"] == f"{crops_folder}/train/images"  # no pixel size in PNGs
    sources = card["training_domain"]["sources"]
    assert [s["name"] for s in sources] == [f"{crops_folder}/train/images", f"{crops_folder}/val/images"]
    assert sources[0]["slices"] == 8
    model = load_model(out)
    own = load_labelled(*crops["test"]).images
    other = np.asarray(Image.open(isbi / "image" / "3.png"))
    lines = {}
    for name, image in (("own", own), ("isbi", other[None])):
        lines[name] = []
        for _ in LocalPredictor({"mito": [model]}).iter_predict(from_array(image), on_warning=lines[name].append):
            pass
    assert lines["own"] == [] and len(lines["isbi"]) == 1 and f"{crops_folder}/train/images" in lines["isbi"][0]


def _train_command(crops, out, epochs, resume=False):
    cmd = [
        sys.executable,
        "-m",
        "emviewer",
        "train",
        "--object",
        "mito",
        "--images",
        crops["train"][0],
        "--labels",
        crops["train"][1],
    ]
    cmd += [
        "--val-images",
        crops["val"][0],
        "--val-labels",
        crops["val"][1],
        "--out",
        str(out),
        "--epochs",
        str(epochs),
    ]
    cmd += [
        "--arch",
        "deepem3d",
        "--width",
        "8",
        "--tile",
        "128",
        "--batch-size",
        "2",
        "--steps",
        "3",
        "--precision",
        "float32",
    ]
    return cmd + (["--resume"] if resume else [])


@pytest.mark.slow  # trains in a process, kills it with SIGKILL, resumes in another
def test_killed_training_resumes_from_its_checkpoint(crops, tmp_path):
    out = tmp_path / "run.keras"
    state_file = checkpoint_dir(out) / "state.json"
    process = subprocess.Popen(
        _train_command(crops, out, epochs=50), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 240
    while not (state_file.exists() and json.loads(state_file.read_text())["epoch"] >= 2):
        assert process.poll() is None and time.monotonic() < deadline, "training did not reach epoch 2"
        time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = json.loads(state_file.read_text())["epoch"]
    assert not out.exists()

    finished = subprocess.run(
        _train_command(crops, out, epochs=killed_at + 1, resume=True), capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    state = json.loads(state_file.read_text())
    assert state["epoch"] == killed_at + 1
    assert [row["epoch"] for row in state["history"]] == list(range(1, killed_at + 2))
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["epochs"] == killed_at + 1


def test_resume_without_checkpoint_is_a_clear_error(crops, tmp_path):
    from emviewer.core.errors import InputError

    spec = DataSpec([crops["train"][0]], [crops["train"][1]])
    with pytest.raises(InputError, match="nothing to resume"):
        train(spec, TrainConfig(**TINY), tmp_path / "none.keras", resume=True)


def test_time_limit_stops_between_epochs_and_resume_finishes(crops, tmp_path):
    spec = DataSpec([crops["train"][0]], [crops["train"][1]], [crops["val"][0]], [crops["val"][1]])
    out = tmp_path / "timed.keras"
    # any epoch takes longer than a millisecond: the run stops after its first epoch
    card = train(spec, TrainConfig(epochs=3, steps_per_epoch=2, **TINY), out, time_limit_s=0.001).to_json()
    assert card["epochs"] == 1 and card["best_epoch"] == 1
    assert _optimizer_steps(out) == 2
    load_model(out)  # a usable model with a matching card, not a half-finished one
    card = train(spec, TrainConfig(epochs=3, steps_per_epoch=2, **TINY), out, resume=True).to_json()
    assert card["epochs"] == 3
    history = json.loads(out.with_suffix(".history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    # the optimizer went on from its saved state (Adam's moments and step count), not from zero
    assert _optimizer_steps(out) == 3 * 2


def _optimizer_steps(out) -> int:
    return int(load_checkpoint(out, load_state(out)).optimizer.iterations.numpy())


def test_diverging_training_stops_with_a_clear_error(crops, tmp_path):
    from emviewer.core.errors import InputError, TrainingError

    spec = DataSpec([crops["train"][0]], [crops["train"][1]], [crops["val"][0]], [crops["val"][1]])
    settings = {**TINY, "learning_rate": 1e12}  # a real divergence, not a planted NaN
    with pytest.raises(TrainingError, match="training diverged") as raised:
        train(spec, TrainConfig(epochs=2, steps_per_epoch=30, **settings), tmp_path / "diverged.keras")
    assert not (tmp_path / "diverged.keras").exists()
    assert not isinstance(raised.value, InputError) and raised.value.exit_status == 3  # not "your files"


def test_fine_tuning_starts_from_the_given_model(crops, tiny, tmp_path):
    spec = DataSpec([crops["train"][0]], [crops["train"][1]], [crops["val"][0]], [crops["val"][1]])
    start, start_file = tiny
    # a learning rate too small to change anything: the tuned weights are the start model's
    settings = {**TINY, "arch": "multiresunet", "width": 16, "learning_rate": 1e-12}
    tuned = train(
        spec, TrainConfig(epochs=1, steps_per_epoch=1, **settings), tmp_path / "tuned.keras", init_from=start_file
    ).to_json()
    assert tuned["architecture"] == "deepem3d" and tuned["width"] == TINY["width"]  # the start model's network
    assert tuned["initialised_from"] == {"name": "tiny", "sha256": start["sha256"]}
    # (the trainable ones only: a training step also moves batch normalisation's running statistics)
    before = load_model(start_file).model.trainable_weights
    after = load_model(tmp_path / "tuned.keras").model.trainable_weights
    assert len(before) == len(after) > 10
    for old, new in zip(before, after, strict=True):
        np.testing.assert_allclose(np.asarray(new), np.asarray(old), atol=1e-6)
    assert start["validation"]["f1"] > 0.3  # the start model has learned something to keep


def test_hard_mining_measures_errors_before_each_epoch(crops, tmp_path):
    spec = DataSpec([crops["train"][0]], [crops["train"][1]], [crops["val"][0]], [crops["val"][1]])
    messages = []
    card = train(
        spec,
        TrainConfig(epochs=2, steps_per_epoch=2, hard_mining=1.0, **TINY),
        tmp_path / "hard.keras",
        progress=lambda done, total, message: messages.append(message),
    ).to_json()
    assert sum("finding where the model errs" in m for m in messages) == 2
    assert card["hard_mining"] == 1.0 and card["epochs"] == 2


def test_length_filter_is_off_for_objects_without_a_bounded_size_or_when_asked(crops):
    train_sets = [load_labelled(*crops["train"])]
    assert object_length_limit(TrainConfig(object="membrane"), train_sets) is None
    assert object_length_limit(TrainConfig(object="nuclei"), train_sets) is None
    assert object_length_limit(TrainConfig(object="mito", length_filter=False), train_sets) is None
    assert object_length_limit(TrainConfig(object="membrane", length_filter=True), train_sets) == length_limit(
        train_sets[0].masks
    )


def test_batches_are_the_same_whichever_threads_make_them(crops):
    """Each batch is seeded by its epoch and step, so resumed or threaded runs see the same data."""
    sets = [load_labelled(*crops["train"])]
    config = TrainConfig(**{**TINY, "context": 3})

    def epoch_batches(workers, epoch):
        return list(parallel_map(lambda step: training_batch(sets, config, epoch, step), 6, workers=workers))

    one, three = epoch_batches(1, epoch=2), epoch_batches(3, epoch=2)
    for (x1, y1), (x3, y3) in zip(one, three, strict=True):
        np.testing.assert_array_equal(x1, x3)
        np.testing.assert_array_equal(y1, y3)
    assert one[0][0].shape == (TINY["batch_size"], TINY["tile"], TINY["tile"], 3)
    assert not np.array_equal(one[0][0], epoch_batches(1, epoch=3)[0][0])  # a new epoch, new crops
