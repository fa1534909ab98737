"""Model-input intensities: the same tissue gives the same input from any microscope."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from emviewer.core.intensity import DEFAULT_REFERENCE, model_input, stack_stats, tissue_stats, tissue_units
from emviewer.core.preprocess import input_levels
from emviewer.core.volume import from_array


@pytest.fixture(scope="module")
def tissue(request) -> np.ndarray:
    """Three real SBEM slices (uint8), 384 x 384 crops of the CDeep3M validation set."""
    root = request.getfixturevalue("cdeep3m")
    files = [root / "validation" / "images" / f"images.0{n}.png" for n in (50, 51, 52)]
    return np.stack([np.asarray(Image.open(f))[200:584, 300:684] for f in files])


def squeezed(images):
    return np.rint(100 + images * (50 / 255)).astype(np.uint8)


def banded_with_border(images, pad=190):
    """uint16 in a 4096-wide band inside a zero border covering 60 % of the canvas."""
    z, y, x = images.shape
    canvas = np.zeros((z, y + 2 * pad, x + 2 * pad), np.uint16)
    canvas[:, pad:-pad, pad:-pad] = 30000 + images.astype(np.uint16) * 16
    return canvas, (slice(None), slice(pad, -pad), slice(pad, -pad))


def float_with_nan(images, fraction=0.01):
    values = images.astype(np.float32) / 255 * 3.7 - 1.2
    values[np.random.default_rng(0).random(values.shape) < fraction] = np.nan
    return values


def inputs(images) -> np.ndarray:
    """What a model with the default reference levels sees, for the whole stack."""
    stats = stack_stats(from_array(images))
    return model_input(tissue_units(images, stats), DEFAULT_REFERENCE)


def test_one_tissue_from_three_microscopes_gives_one_model_input(tissue):
    original = inputs(tissue)
    canvas, inside = banded_with_border(tissue)
    assert (canvas == 0).mean() > 0.55
    nan_copy = float_with_nan(tissue)
    finite = np.isfinite(nan_copy)
    # 8-bit squeezed to 51 grey levels keeps only quantisation error (50 / 255 of a level).
    assert np.abs(inputs(squeezed(tissue)) - original).mean() < 0.02
    assert np.abs(inputs(canvas)[inside] - original).mean() < 0.005
    assert np.abs(inputs(nan_copy)[finite] - original[finite]).mean() < 0.005
    assert np.all(inputs(canvas)[:, :10, :10] == 0)  # the border stays black


def test_bundled_models_see_their_8_bit_training_data_unchanged(cdeep3m):
    files = sorted((cdeep3m / "training" / "images").glob("images.0*.png"))
    stack = np.stack([np.asarray(Image.open(f)) for f in files])
    low, high = input_levels(from_array(stack), DEFAULT_REFERENCE)
    assert abs(low) < 1.5 and abs(high - 255) < 1.5  # within about one grey level of uint8 / 255


def test_nan_inf_border_and_saturation_are_left_out(tissue):
    plain = tissue_stats(list(tissue))
    holes = float_with_nan(tissue.astype(np.float32), fraction=0.016)
    holes[0, :5, :5] = np.inf
    stats = tissue_stats(list(holes))
    assert np.isfinite([stats.low, stats.high]).all()
    assert 0.014 < stats.nonfinite_fraction < 0.018
    saturated = tissue.copy()
    saturated[:, 100:160, 100:160] = 255  # a blown-out run inside the tissue
    sat = tissue_stats(list(saturated))
    assert abs(sat.high - plain.high) <= 2 and abs(sat.low - plain.low) <= 2
    _, inside = banded_with_border(tissue)
    bordered = tissue_stats(list(banded_with_border(tissue)[0]))
    assert bordered.low >= 30000 and bordered.excluded_fraction > 0.55


def test_levels_are_per_stack_not_per_tile(tissue):
    volume = from_array(tissue)
    whole = input_levels(volume)
    corner = input_levels(from_array(tissue[:, :64, :64]))
    assert whole != corner  # a tile alone would get other levels; the predictor uses the stack's
    assert input_levels(volume) == whole


def test_blank_and_all_nan_stacks_do_not_break():
    assert tissue_stats([np.zeros((32, 32), np.uint8)]).high > tissue_stats([np.zeros((32, 32), np.uint8)]).low
    stats = tissue_stats([np.full((32, 32), np.nan, np.float32)])
    assert (stats.low, stats.high, stats.nonfinite_fraction) == (0.0, 1.0, 1.0)


def test_the_data_rectangle_is_found_exactly_even_on_large_strided_slices(tissue):
    canvas = np.zeros((1700, 1500), np.uint16)  # more than SAMPLE_PIXELS: statistics are strided
    canvas[301:685, 517:901] = 30000 + tissue[0].astype(np.uint16) * 16
    assert tissue_stats([canvas]).box == (301, 685, 517, 901)
    holes = np.full((1700, 1500), np.nan, np.float32)  # a NaN frame, as aligned float stacks have
    holes[100:1600, 200:1400] = np.resize(tissue[0], (1500, 1200))
    assert tissue_stats([holes]).box == (100, 1600, 200, 1400)
    assert tissue_stats([tissue[0]]).box == (0, 384, 0, 384)
