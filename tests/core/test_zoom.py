"""Zoom: object widths, the matched zoom, resizing, and a model that takes its slices at half size."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage.draw import ellipse

from emviewer import config
from emviewer.core.models.loading import LoadedModel, load_model
from emviewer.core.models.registry import models_for
from emviewer.core.predict import LocalPredictor, length_limit_of
from emviewer.core.volume import from_array
from emviewer.core.zoom import matched_zoom, object_width, resize, zoomed_masks, zoomed_shape


def test_object_width_is_the_median_short_axis():
    mask = np.zeros((200, 300), bool)
    for row, col, half_width in ((40, 60, 10), (120, 150, 12), (160, 250, 14)):
        rr, cc = ellipse(row, col, half_width, 3 * half_width, mask.shape)
        mask[rr, cc] = True
    mask[5, 5] = True  # a speck is not an object
    assert object_width([mask]) == pytest.approx(24, abs=1)
    assert object_width([np.zeros((10, 10), bool)]) is None


@pytest.mark.parametrize(
    ("model", "user", "zoom"),
    [(27, 48, 0.56), (27, 29, 1.0), (30, 10, 2.0), (10, 80, 0.25), (None, 48, 1.0), (27, None, 1.0)],
)
def test_matched_zoom(model, user, zoom):
    assert matched_zoom(model, user) == zoom


def test_zoomed_shapes_and_resizing():
    assert zoomed_shape((1024, 768), 0.56, 32) == (576, 448)
    assert zoomed_shape((10, 10), 0.3) == (3, 3) and zoomed_shape((2, 2), 0.25) == (1, 1)
    tiles = np.random.default_rng(0).random((2, 64, 64, 3), np.float32)
    small = resize(tiles, (32, 32))
    assert small.shape == (2, 32, 32, 3) and small.dtype == np.float32
    # smoothing stays within each tile and channel: a constant channel stays constant
    tiles[1, ..., 2] = 0.25
    assert np.allclose(resize(tiles, (32, 32))[1, ..., 2], 0.25)
    masks = np.zeros((1, 100, 100), bool)
    masks[0, 20:60, 30:70] = True
    half = zoomed_masks(masks, 0.5)
    assert half.shape == (1, 50, 50) and abs(int(half.sum()) - 400) <= 40


def test_the_length_limit_is_in_the_slices_pixels():
    model = load_model(models_for("mito", "fast", config.installed_models())[0])
    half = LoadedModel("half", model.model, model.card.model_copy(update={"input_zoom": 0.5}))
    assert length_limit_of([half]) == pytest.approx(2 * model.card.max_object_length_px)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a == b).mean())


def test_a_model_at_half_zoom_predicts_the_halved_slice_at_the_slices_size(cdeep3m):
    """Zoom inside the predictor equals halving the slice by hand, predicting and enlarging."""
    model = load_model(models_for("mito", "fast", config.installed_models())[0])
    half = LoadedModel("half", model.model, model.card.model_copy(update={"input_zoom": 0.5}))
    image = np.asarray(Image.open(cdeep3m / "validation" / "images" / "images.050.png"))[:512, :512]
    zoomed = next(LocalPredictor({"mito": [half]}).iter_predict(from_array(image[None]), on_warning=print))
    assert zoomed.probabilities["mito"].shape == (512, 512)
    by_hand_small = np.rint(resize(image, (256, 256))).astype(np.uint8)
    small = next(LocalPredictor({"mito": [model]}).iter_predict(from_array(by_hand_small[None]), on_warning=print))
    by_hand = resize(small.probabilities["mito"], (512, 512)) >= 0.5
    plain = next(LocalPredictor({"mito": [model]}).iter_predict(from_array(image[None]))).masks()["mito"]
    same = agreement(zoomed.masks()["mito"], by_hand)
    assert same >= 0.99 and same > agreement(plain, by_hand), (same, agreement(plain, by_hand))
