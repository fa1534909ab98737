"""Every bundled model in ``models/``: loads, matches its card's hash, and still scores about
its card's validation figure on its own held-out slices (catches a broken file or a changed
prediction pipeline)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from emviewer.core.metrics import mean_scores, score
from emviewer.core.models.loading import load_model, sha256_of
from emviewer.core.models.registry import list_models
from emviewer.core.predict import LocalPredictor
from emviewer.core.volume import from_array

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import accuracy  # noqa: E402  (the held-out data of each object, shared with the benchmark)

BUNDLED = list_models(ROOT / "models")
#: The card's figure is the mean F1 over the same slices at the same threshold: only float
#: differences (bf16 on the training machine, tiling) separate them.
TOLERANCE = 0.02


def test_models_folder_is_within_its_size_budget():
    total = sum(p.stat().st_size for p in (ROOT / "models").rglob("*") if p.is_file())
    assert total <= 150 * 2**20, f"models/ holds {total / 2**20:.0f} MB, over the 150 MB budget"


def test_there_is_a_bundled_mito_model():
    assert any(entry.card.object == "mito" for entry in BUNDLED), "no mitochondria model in models/"


@pytest.mark.parametrize("entry", BUNDLED, ids=[e.name for e in BUNDLED])
def test_bundled_model_loads_matches_its_hash_and_scores_its_card_figure(entry):
    card = entry.card.to_json()
    assert sha256_of(entry.path) == card["sha256"]
    model = load_model(entry.path)  # refuses a hash mismatch itself
    # the model's own held-out slices, as benchmarks/accuracy.py defines them (first row of its object)
    task = next(t for t in accuracy.TASKS if t.object == card["object"])
    stack = accuracy.held_out(task, None)
    volume = from_array(stack.images, stack.source, slice_names=stack.names)
    results = LocalPredictor({card["object"]: [model]}).iter_predict(volume)
    f1 = mean_scores([score(r.masks()[card["object"]], stack.masks[r.index]) for r in results]).f1
    assert f1 >= card["validation"]["f1"] - TOLERANCE, (
        f"{entry.name}: F1 {f1:.4f}, card says {card['validation']['f1']:.4f}"
    )


def test_mito_length_limit_removes_the_myelin_taken_for_mitochondria():
    """Validation slices 053-055 cross a bundle of myelinated axons that the training slices
    barely show; the fast mito model takes stretches of myelin for mitochondria, and its
    card's length limit (from the training labels) removes them."""
    entry = next(e for e in BUNDLED if e.card.object == "mito" and "fast" in e.card.modes)
    assert entry.card.max_object_length_px > 0
    model = load_model(entry.path)
    stack = accuracy.held_out(accuracy.TASKS[0], None).split([3, 4, 5])
    volume = from_array(stack.images, stack.source, slice_names=stack.names)
    f1 = {}
    for keep in (False, True):
        results = LocalPredictor({"mito": [model]}, keep_long_objects=keep).iter_predict(volume)
        f1[keep] = mean_scores([score(r.masks()["mito"], stack.masks[r.index]) for r in results]).f1
    assert f1[False] > f1[True] + 0.1, f1


def test_new_user_path_app_predicts_the_sample_stack_with_the_bundled_model(tmp_path):
    """What the README promises: the app opens the sample and predicts it with no training."""
    import os
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    out = tmp_path / "shot.png"
    env = {k: v for k, v in os.environ.items() if k != "EMVIEWER_MODELS_DIR"}
    env.update(QT_QPA_PLATFORM="offscreen", EMVIEWER_USER_DIR=str(tmp_path / "no-user-models"))
    cmd = [sys.executable, "-m", "emviewer", "gui", "--object", "mito", "--predict", "--screenshot", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    shot = np.asarray(Image.open(out).convert("RGB")).astype(int)
    magenta = (shot[..., 0] - shot[..., 1] > 60) & (shot[..., 2] - shot[..., 1] > 60)  # tinted, at any grey level
    assert magenta.sum() > 1000  # the overlay pane shows mitochondria found by the bundled model
