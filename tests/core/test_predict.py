"""The local predictor: tiled equals untiled (seams included), TTA, ensembles, cancel, reload."""

from __future__ import annotations

import numpy as np
import pytest

from emviewer.core.intensity import DEFAULT_REFERENCE, model_input, tissue_units
from emviewer.core.intensity_stats import stack_stats
from emviewer.core.models import build_model
from emviewer.core.models.card import ModelCard
from emviewer.core.models.loading import LoadedModel, load_model
from emviewer.core.predict import GPU_VARIANT_BATCH, LocalPredictor, calibrate, predict_all, variants_per_call
from emviewer.core.preprocess import input_levels, normalise
from emviewer.core.progress import Cancelled, CancelToken
from emviewer.core.tiling import TileLayout
from emviewer.core.volume import from_array


@pytest.fixture(scope="module")
def em_slices(request):
    """Two real SBEM slices (uint8), 400 x 560 crops, as a stack."""
    from PIL import Image

    root = request.getfixturevalue("cdeep3m")
    files = [root / "training" / "images" / f"images.0{n}.png" for n in (10, 11)]
    return np.stack([np.asarray(Image.open(f))[100:500, 200:760] for f in files])


RNG = np.random.default_rng(1)


@pytest.fixture(scope="module")
def echo():
    """Models that answer their input's centre slice, for 1 and 3 slices of context."""
    import keras

    def model(context: int) -> LoadedModel:
        centre = keras.layers.Lambda(lambda x: x[..., context // 2 : context // 2 + 1])
        network = keras.Sequential([keras.Input((None, None, context)), centre])
        return LoadedModel(f"echo{context}", network, ModelCard(object="mito", context=context))

    return {context: model(context) for context in (1, 3)}


@pytest.fixture(scope="module")
def tiny_model():
    """An untrained but non-trivial model: random weights give a spatially varying output."""
    import keras

    keras.utils.set_random_seed(1)
    return LoadedModel("tiny", build_model("deepem3d", context=1, width=4, depth=2), ModelCard(object="mito"))


def test_tiled_matches_untiled_including_seams(em_slices, tiny_model):
    volume = from_array(em_slices)
    whole = predict_all(LocalPredictor({"mito": [tiny_model]}, tile=576, overlap=0), volume)["mito"]
    tiled = predict_all(LocalPredictor({"mito": [tiny_model]}, tile=128, overlap=48), volume)["mito"]
    assert tiled.shape == whole.shape == em_slices.shape
    difference = np.abs(tiled - whole)
    # Seams would show as lines of large error along tile borders; blending keeps all small.
    assert difference.max() < 0.05, difference.max()
    assert difference.mean() < 0.005


def test_small_image_is_padded_and_cropped_back(em_slices, tiny_model):
    small = from_array(em_slices[:, :37, :50])
    result = predict_all(LocalPredictor({"mito": [tiny_model]}, tile=64, overlap=16), small)["mito"]
    assert result.shape == (2, 37, 50)
    assert result.min() >= 0 and result.max() <= 1


def test_tta_averages_inverted_variants(em_slices, tiny_model):
    volume = from_array(em_slices[:1, :128, :128])
    plain = predict_all(LocalPredictor({"mito": [tiny_model]}, tta=1, tile=128, overlap=0), volume)["mito"][0]
    x = normalise(volume.slice(0), input_levels(volume))  # the model input: tissue levels onto the reference
    turned = [np.rot90(x[None, ..., None], k, axes=(1, 2)) for k in range(4)]
    flipped = [np.rot90(np.fliplr(x)[None, ..., None], k, axes=(1, 2)) for k in range(4)]
    by_hand = np.mean(
        [np.rot90(tiny_model.predict(t)[0, ..., 0], -k) for k, t in enumerate(turned)]
        + [np.fliplr(np.rot90(tiny_model.predict(t)[0, ..., 0], -k)) for k, t in enumerate(flipped)],
        axis=0,
    )
    eight = predict_all(LocalPredictor({"mito": [tiny_model]}, tta=8, tile=128, overlap=0), volume)["mito"][0]
    np.testing.assert_allclose(eight, by_hand, atol=1e-3)
    assert np.abs(eight - plain).max() > 1e-3  # the variants really differ


def test_batched_test_time_variants_give_the_same_probabilities_in_fewer_calls(em_slices, tiny_model):
    volume = from_array(em_slices[:1, :128, :160])  # a rectangle: its tile stays square
    calls, progress = [], []

    class Counting(LoadedModel):
        def predict(self, x):
            calls.append(len(x))
            return super().predict(x)

    counting = Counting("tiny", tiny_model.model, tiny_model.card)
    one = predict_all(LocalPredictor({"mito": [counting]}, tta=8), volume)["mito"]
    assert calls == [1] * 8
    calls.clear()
    batched = LocalPredictor({"mito": [counting]}, tta=8, variant_batch=3)
    three = predict_all(batched, volume, progress=lambda done, total, message: progress.append((done, total)))
    assert calls == [3, 3, 2]  # 8 variants, 3 per call
    assert progress[1:] == [(3, 8), (6, 8), (8, 8)]  # every variant counts as one pass
    np.testing.assert_allclose(three["mito"], one, atol=1e-5)


def test_test_time_variants_are_batched_where_keras_computes_on_a_gpu_only(monkeypatch, tiny_model):
    from emviewer.core import backend

    converted = LoadedModel("tiny", None, tiny_model.card, runner=tiny_model.model, runtime="openvino")
    monkeypatch.setattr(backend, "device_summary", lambda: {"accelerator": True})  # no GPU here
    assert variants_per_call({"mito": [tiny_model]}) == GPU_VARIANT_BATCH
    assert variants_per_call({"mito": [tiny_model, converted]}) == 1  # OpenVINO computes on the CPU
    monkeypatch.setattr(backend, "device_summary", lambda: {"accelerator": False})
    assert variants_per_call({"mito": [tiny_model]}) == 1


def test_ensemble_uses_each_models_threshold(em_slices, tiny_model):
    volume = from_array(em_slices[:1, :128, :128])
    strict = LoadedModel("strict", tiny_model.model, ModelCard(object="mito", threshold=0.9))
    alone = predict_all(LocalPredictor({"mito": [tiny_model]}, tile=128, overlap=0), volume)["mito"]
    both = predict_all(LocalPredictor({"mito": [tiny_model, strict]}, tile=128, overlap=0), volume)["mito"]
    np.testing.assert_allclose(both, (alone + calibrate(alone, 0.9)) / 2, atol=1e-6)


def test_calibrate_maps_threshold_to_half():
    p = np.array([0.0, 0.15, 0.3, 0.65, 1.0], np.float32)
    out = calibrate(p, 0.3)
    np.testing.assert_allclose(out, [0.0, 0.25, 0.5, 0.75, 1.0], atol=1e-6)


def test_context_models_get_their_neighbours(em_slices):
    import keras

    keras.utils.set_random_seed(2)
    card = ModelCard(object="mito", context=3)
    model = LoadedModel("ctx3", build_model("deepem3d", context=3, width=4, depth=2), card)
    volume = from_array(em_slices)
    out = predict_all(LocalPredictor({"mito": [model]}, tile=128, overlap=32), volume)["mito"]
    x = np.stack([em_slices[1], em_slices[0], em_slices[1]], axis=-1)[None, :128, :128] / 255.0  # slice 0, mirrored
    np.testing.assert_allclose(out[0, 40:80, 40:80], model.predict(x)[0, 40:80, 40:80, 0], atol=0.05)


def test_cancel_stops_within_one_batch(em_slices, tiny_model):
    token = CancelToken()
    seen = []

    def progress(done, total, message):
        seen.append(done)
        if done:  # the first report (0 done) comes before any tile
            token.cancel()

    predictor = LocalPredictor({"mito": [tiny_model]}, tile=64, overlap=16, batch_size=1)
    with pytest.raises(Cancelled):
        predict_all(predictor, from_array(em_slices), progress=progress, cancel=token)
    assert seen == [0, 1]


def test_saved_model_reloads_and_predicts_the_same(tmp_path, em_slices, tiny_model):
    import json

    from emviewer.core.models.loading import sha256_of

    path = tmp_path / "tiny.keras"
    tiny_model.model.save(path)
    card = {"object": "mito", "context": 1, "threshold": 0.4, "sha256": sha256_of(path)}
    path.with_suffix(".json").write_text(json.dumps(card))
    loaded = load_model(path)
    x = em_slices[:1, :64, :64, None] / 255.0
    np.testing.assert_array_equal(loaded.predict(x), tiny_model.predict(x))
    assert loaded.threshold == 0.4
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(Exception, match="SHA-256"):
        load_model(path)


def test_accurate_mode_uses_the_cards_own_threshold_for_augmented_answers(em_slices, tiny_model):
    card = ModelCard(object="mito", thresholds={"1": 0.5, "16": 0.3})
    tuned = LoadedModel("tuned", tiny_model.model, card)
    assert (tuned.threshold_for(1), tuned.threshold_for(8), tuned.threshold_for(16)) == (0.5, 0.3, 0.3)
    assert tiny_model.threshold_for(16) == 0.5  # no tuned value: the model's one threshold
    volume = from_array(em_slices[:1, :128, :128])
    raw = predict_all(LocalPredictor({"o": [tiny_model]}, tta=8), volume)["o"]
    calibrated = predict_all(LocalPredictor({"o": [tuned]}, tta=8), volume)["o"]
    np.testing.assert_allclose(calibrated, calibrate(raw, 0.3), atol=1e-6)


def test_objects_longer_than_the_cards_limit_are_removed_unless_kept():
    """A model that answers its input: a long bright bar and a small square both come back
    as objects; the card's length limit removes the bar only."""
    import keras

    image = np.random.default_rng(0).integers(0, 3, (1, 128, 128), dtype=np.uint8)  # not binary: an image
    image[0, 40:44, 4:124] = 255  # 120 px long
    image[0, 90:100, 60:70] = 255  # 10 x 10
    echo = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Identity()])
    limited = LoadedModel("echo", echo, ModelCard(object="mito", max_object_length_px=60))
    volume = from_array(image)
    masks = predict_all(LocalPredictor({"mito": [limited]}, tile=128), volume)["mito"][0] >= 0.5
    assert not masks[40:44, 4:124].any() and masks[90:100, 60:70].all()
    kept = predict_all(LocalPredictor({"mito": [limited]}, tile=128, keep_long_objects=True), volume)["mito"][0] >= 0.5
    assert kept[40:44, 4:124].all() and kept[90:100, 60:70].all()
    unlimited = LoadedModel("echo2", echo, ModelCard(object="mito", max_object_length_px=None))
    ensemble = predict_all(LocalPredictor({"mito": [limited, unlimited]}, tile=128), volume)["mito"][0] >= 0.5
    assert ensemble[40:44, 4:124].all()  # one model without a limit: the ensemble keeps all


def test_a_constant_border_is_not_predicted_and_changes_nothing_inside(em_slices, tiny_model):
    tissue = em_slices[:, :128, :160].astype(np.uint16) * 16 + 30000
    framed = np.zeros((2, 256, 288), np.uint16)  # an alignment border of zeros around the data
    framed[:, 64:192, 64:224] = tissue
    predictor = LocalPredictor({"mito": [tiny_model]}, tile=256, overlap=0)
    alone = predict_all(predictor, from_array(tissue))["mito"]
    with_border = predict_all(predictor, from_array(framed))["mito"]
    np.testing.assert_allclose(with_border[:, 64:192, 64:224], alone, atol=1e-5)
    assert not with_border[:, :64].any() and not with_border[:, :, 224:].any()


@pytest.mark.parametrize("shape", [(1, 1), (5, 20), (20, 5), (31, 33), (64, 64), (100, 37), (129, 200)])
@pytest.mark.parametrize("context", [1, 3])
def test_tiles_of_a_model_answering_its_input_reconstruct_the_input(shape, context, echo):
    """Tiling, mirrored padding and blending add nothing: what comes back is the model input."""
    images = RNG.random((3, *shape), dtype=np.float32)
    volume = from_array(images)
    predictor = LocalPredictor({"mito": [echo[context]]}, tile=32, overlap=8, batch_size=3)
    result = predict_all(predictor, volume)["mito"]
    expected = model_input(tissue_units(images, stack_stats(volume)), DEFAULT_REFERENCE)
    assert result.shape == images.shape and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, atol=1e-6)


def test_progress_counts_tiles_batch_by_batch(echo):
    volume = from_array(RNG.random((2, 100, 70), dtype=np.float32))
    calls = []
    predictor = LocalPredictor({"mito": [echo[1]]}, tile=32, overlap=0, batch_size=5)
    predict_all(predictor, volume, progress=lambda done, total, message: calls.append((done, total)))
    per_slice = len(TileLayout.for_slice(100, 70, max_tile=32, overlap=0).regions)
    assert per_slice == 12  # 4 rows x 3 columns of 32 x 32 tiles
    batches = [min(end, per_slice) for end in range(5, per_slice + 5, 5)]  # 5, 10, 12
    assert calls[0] == (0, 2)  # measuring the stack, before any tile
    assert calls[1:] == [(z * per_slice + done, 2 * per_slice) for z in range(2) for done in batches]


def test_large_slices_get_larger_tiles_unless_very_wide(tiny_model):
    """Tiles up to split_tile (1024) on large slices; at most 768 on slices wider than 16384 px,
    whose stitched rows take the memory (see LocalPredictor's split_tile)."""
    predictor = LocalPredictor({"mito": [tiny_model]})
    assert predictor._layout(1024, 768).tile == (1024, 1024)  # one tile: square, mirrored out
    assert predictor._layout(10000, 16000).tile == (992, 1024)
    assert max(predictor._layout(4096, 32768).tile) <= 768
    accurate = LocalPredictor({"mito": [tiny_model]}, tta=8)  # turned variants keep a square tile's shape
    assert accurate._layout(10000, 16000).tile == (1024, 1024)
