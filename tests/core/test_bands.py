"""Slices predicted in bands of rows: the same probabilities as whole slices, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from emviewer.core import bands
from emviewer.core.models import build_model
from emviewer.core.models.card import ModelCard
from emviewer.core.models.loading import LoadedModel
from emviewer.core.predict import LocalPredictor
from emviewer.core.volume import from_array


@pytest.fixture(scope="module")
def framed_em(request):
    """Two real SBEM crops (400 x 560, uint8) inside a constant alignment border."""
    from PIL import Image

    root = request.getfixturevalue("cdeep3m")
    files = [root / "training" / "images" / f"images.0{n}.png" for n in (10, 11)]
    framed = np.zeros((2, 470, 600), np.uint8)
    framed[:, 30:430, 20:580] = [np.asarray(Image.open(f))[100:500, 200:760] for f in files]
    return framed


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    keras.utils.set_random_seed(1)
    return LoadedModel("tiny", build_model("deepem3d", context=1, width=4, depth=2), ModelCard(object="mito"))


def echo(limit: float | None) -> LoadedModel:
    """A model answering its input, with a card's length limit."""
    import keras

    network = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Identity()])
    return LoadedModel("echo", network, ModelCard(object="mito", max_object_length_px=limit))


def in_bands(predictor: LocalPredictor, volume, band_rows: int) -> tuple[np.ndarray, list]:
    """``(Z, Y, X)`` probabilities of ``mito`` joined from the bands, and each band's (z, start, rows, last)."""
    results = list(predictor.iter_bands(volume, band_rows=band_rows))
    layout = [(b.index, b.start, len(b.probabilities["mito"]), b.last) for b in results]
    planes = [[b.probabilities["mito"] for b in results if b.index == z] for z in range(len(volume))]
    return np.stack([np.concatenate(p) for p in planes]), layout


@pytest.mark.parametrize("rows_only", [False, True])
def test_bands_equal_whole_slices_bit_for_bit(framed_em, tiny_model, rows_only, monkeypatch):
    """Tiles of 128 px over 64-row bands, a cropped border, and (``rows_only``) the input read a
    tile row at a time instead of whole slices: nothing changes, to the last bit."""
    volume = from_array(framed_em)
    predictor = LocalPredictor({"mito": [tiny_model]}, tile=128, overlap=48)
    whole, one_band = in_bands(predictor, volume, band_rows=10_000)
    assert [(z, start, last) for z, start, _, last in one_band] == [(0, 0, True), (1, 0, True)]
    if rows_only:
        monkeypatch.setattr(bands, "WHOLE_SLICE_BYTES", 0)
    banded, layout = in_bands(predictor, volume, band_rows=64)
    np.testing.assert_array_equal(banded, whole)
    starts = list(range(0, 470, 64))
    assert layout == [(z, s, min(64, 470 - s), s == starts[-1]) for z in range(2) for s in starts]
    assert not whole[:, :30].any() and not whole[:, :, 580:].any()  # the border is background
    slices = [r.probabilities["mito"] for r in predictor.iter_predict(volume)]
    np.testing.assert_array_equal(np.stack(slices), whole)


def test_long_objects_are_found_across_bands(monkeypatch):
    """A bar running down through five bands is longer than the card allows and goes; objects
    cut by a band's edge but short are kept; NaN pixels are background. As for a whole slice."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 3, (1, 160, 96)).astype(np.float32)
    image[0, 8:150, 40:43] = 255  # 142 px long, crosses every band edge
    image[0, 28:36, 70:78] = 255  # 8 x 8, crosses the edge at row 32
    image[0, 60:63, 5:20] = 255
    image[0, 100, 50] = np.nan
    predictor = LocalPredictor({"mito": [echo(limit=100.0)]}, tile=64, overlap=16)
    volume = from_array(image)
    whole, _ = in_bands(predictor, volume, band_rows=1000)
    banded, layout = in_bands(predictor, volume, band_rows=32)
    assert len(layout) == 5
    np.testing.assert_array_equal(banded, whole)
    masks = banded[0] >= 0.5
    assert not masks[8:150, 40:43].any() and masks[28:36, 70:78].all() and masks[60:63, 5:20].all()
    assert banded[0, 100, 50] == 0
    unlimited, _ = in_bands(LocalPredictor({"mito": [echo(limit=None)]}, tile=64, overlap=16), volume, 32)
    assert (unlimited[0] >= 0.5)[8:150, 40:43].all()
