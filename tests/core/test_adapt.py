"""Adaptation on real crops: a tiny SBEM model learns FIB-SEM (Lucchi++) from two labelled slices,
scored on a held-back slice before and after; the source model is never written to."""

from __future__ import annotations

import json

import pytest

from emviewer.core.adapt import adapt, default_output, labelled_from_arrays, split_held_out
from emviewer.core.dataset import load_labelled
from emviewer.core.errors import InputError
from emviewer.core.fine_tune import FineTuneSettings, learning_rate, set_trainable, tile_for
from emviewer.core.models import build_model
from emviewer.core.models.loading import load_model, sha256_of
from emviewer.core.models.registry import read_card
from emviewer.core.predict import LocalPredictor
from emviewer.core.progress import Cancelled, CancelToken
from emviewer.core.volume import from_array

#: Steps, not the clock, end each phase here, so the run is the same on a busy machine.
TINY_TUNING = FineTuneSettings(tile=128, batch_size=4, learning_rate=1e-3, max_steps=60)


def test_adaptation_improves_the_held_back_slice_and_leaves_the_source(sbem_model, fib_sem, tmp_path):
    source_hash = sha256_of(sbem_model)
    stack = load_labelled(str(fib_sem[0]), str(fib_sem[1]), reference=read_card(sbem_model).reference)
    out = tmp_path / "adapted.keras"
    seen = []
    result = adapt(stack, sbem_model, out, 600, TINY_TUNING, progress=lambda *a: seen.append(a))
    assert result.held_out == ["train_080"] and result.trained_on == ["train_000", "train_040"]
    assert result.after.f1 > result.before.f1 + 0.05, (result.before, result.after)
    assert result.better and result.model_path == out and result.steps == (60, 60)
    # Lucchi++ mitochondria are about 1.8 times wider in pixels than the SBEM ones the source learnt
    assert 0.4 <= result.zoom <= 0.75 and result.widths[0] < result.widths[1], (result.zoom, result.widths)
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["input_zoom"] == result.zoom and card["adaptation"]["zoom"] == result.zoom
    assert card["object_width_px"] == pytest.approx(result.widths[1] * result.zoom, rel=0.2)
    assert card["adaptation"]["before"]["f1"] == pytest.approx(result.before.f1, abs=1e-4)
    assert card["adaptation"]["after"]["f1"] == pytest.approx(result.after.f1, abs=1e-4)
    assert card["initialised_from"] == {"name": "sbem-tiny", "sha256": source_hash} and card["context"] == 1
    assert card["adaptation"]["slices"] == ["train_000", "train_040", "train_080"]
    assert load_model(out).card.sha256 == sha256_of(out)  # loads, and its card's hash is its own
    # it predicts the user's slices at their own size, and finds them like its training data
    warnings: list[str] = []
    volume = from_array(stack.images, stack.source, slice_names=stack.names)
    results = list(LocalPredictor({"mito": [load_model(out)]}).iter_predict(volume, on_warning=warnings.append))
    assert [r.probabilities["mito"].shape for r in results] == [stack.images.shape[1:]] * 3 and warnings == []
    assert sha256_of(sbem_model) == source_hash
    assert seen and seen[-1][0] == seen[-1][1] and all(done <= total == 600 for done, total, _ in seen)


def test_a_bundled_model_is_never_written(fib_sem, tmp_path, monkeypatch):
    """Adapting the bundled mito model writes only the new file; the bundled one keeps its hash."""
    from emviewer import config

    bundled = next(e for e in config.installed_models() if e.bundled and e.name == "mito-mru-1fm")
    before = {p: sha256_of(p) for p in bundled.path.parent.glob("*")}
    stack = load_labelled(str(fib_sem[0]), str(fib_sem[1]), reference=bundled.card.reference)
    out = default_output(bundled.path, tmp_path, None)
    result = adapt(stack.split([0, 2]), bundled.path, out, 60, FineTuneSettings(tile=128, batch_size=2, max_steps=3))
    assert {p: sha256_of(p) for p in bundled.path.parent.glob("*")} == before
    assert result.model_path in (None, out) and out.parent == tmp_path
    with pytest.raises(InputError, match="never overwrites"):
        default_output(bundled.path, tmp_path, str(bundled.path))  # the source itself, by its path


def test_one_labelled_slice_is_refused_and_nothing_is_written(sbem_model, fib_sem, tmp_path):
    stack = load_labelled(str(fib_sem[0]), str(fib_sem[1]))
    with pytest.raises(InputError, match="at least two labelled slices"):
        split_held_out(stack.split([0]))
    with pytest.raises(InputError, match="at least two labelled slices"):
        adapt(stack.split([1]), sbem_model, tmp_path / "one.keras", 10)
    assert list(tmp_path.iterdir()) == []


def test_a_zoom_outside_the_range_is_refused_before_anything_is_written(sbem_model, fib_sem, tmp_path):
    stack = load_labelled(str(fib_sem[0]), str(fib_sem[1]), reference=read_card(sbem_model).reference)
    with pytest.raises(InputError, match="zoom 3 is outside 0.25-2"):
        adapt(stack, sbem_model, tmp_path / "far.keras", 60, TINY_TUNING, zoom=3.0)
    assert list(tmp_path.iterdir()) == []


def test_cancel_writes_nothing(sbem_model, fib_sem, tmp_path):
    stack = load_labelled(str(fib_sem[0]), str(fib_sem[1]), reference=read_card(sbem_model).reference)
    token = CancelToken()

    def progress(done, total, message):
        if "step 3" in message:
            token.cancel()

    with pytest.raises(Cancelled):
        adapt(stack, sbem_model, tmp_path / "cancelled.keras", 600, TINY_TUNING, progress, token)
    assert list(tmp_path.iterdir()) == []


def test_slices_from_memory_need_matching_shapes(tissue):
    masks = tissue > 100
    stack = labelled_from_arrays(tissue, masks, ["a", "b", "c"], "session", (0.2, 0.8))
    assert len(stack) == 3 and stack.levels[0] < stack.levels[1]
    with pytest.raises(InputError, match="do not match"):
        labelled_from_arrays(tissue, masks[:2], ["a", "b", "c"], "session", (0.2, 0.8))


def test_crops_are_about_four_object_widths():
    assert [tile_for(w) for w in (None, 10.0, 27.6, 47.0, 200.0)] == [256, 128, 128, 192, 256]


def test_learning_rate_warms_up_then_decays_with_the_time():
    settings = FineTuneSettings(learning_rate=1e-3, warmup_steps=4, floor=0.1)
    warm = [learning_rate(settings, step, 0.0) for step in range(4)]
    assert warm == sorted(warm) and warm[-1] == pytest.approx(1e-3)
    assert learning_rate(settings, 10, 0.5) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert learning_rate(settings, 10, 1.0) == pytest.approx(1e-4)


def test_fewer_layers_learn_when_asked():
    model = build_model("multiresunet", 1, 8, 2)
    counts = {which: set_trainable(model, which) for which in ("all", "decoder", "normalisation")}
    assert counts["all"] > counts["decoder"] > counts["normalisation"] > 0
    with pytest.raises(ValueError, match="trainable"):
        FineTuneSettings(trainable="encoder")


def test_normalisation_statistics_are_measured_on_whole_slices(fib_sem):
    """After re-measuring, a batch-normalisation layer's running mean is the mean of its input
    over the slices (one batch: exactly), whatever it held before; frozen layers keep theirs."""
    import keras
    import numpy as np

    from emviewer.core.dataset import crop
    from emviewer.core.fine_tune import _crop_places, recalibrate_normalisation

    stack = load_labelled(str(fib_sem[0]), str(fib_sem[1])).split([0])
    model = build_model("deepem3d", context=1, width=4, depth=2)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    first, frozen = norms[0], norms[-1]
    frozen.trainable = False
    for layer in (first, frozen):
        layer.moving_mean.assign(np.full(layer.moving_mean.shape, 7.0, np.float32))
    assert recalibrate_normalisation(model, [stack]) == 1  # one 384-px slice: one crop
    feeding = keras.Model(model.inputs[0], first.input)
    side, places = _crop_places(stack)
    expected = np.asarray(feeding(np.stack([crop(stack, z, y, x, side, 1) for z, y, x in places]))).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(np.asarray(first.moving_mean), expected, rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(frozen.moving_mean) == 7.0) and first.momentum == 0.99
