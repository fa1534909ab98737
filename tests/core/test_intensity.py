"""Model-input intensities: the same tissue gives the same input from any microscope."""

from __future__ import annotations

import numpy as np
from PIL import Image
from tissue_variants import banded_with_border, float_with_nan, squeezed

from emviewer.core.intensity import DEFAULT_REFERENCE, model_input, tissue_units
from emviewer.core.intensity_stats import stack_stats
from emviewer.core.preprocess import input_levels
from emviewer.core.volume import from_array


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


def test_levels_are_per_stack_not_per_tile(tissue):
    volume = from_array(tissue)
    whole = input_levels(volume)
    corner = input_levels(from_array(tissue[:, :64, :64]))
    assert whole != corner  # a tile alone would get other levels; the predictor uses the stack's
    assert input_levels(volume) == whole
