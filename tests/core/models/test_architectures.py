"""Tests for the segmentation architectures and the build_model dispatcher."""

import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from emviewer.core.models import ARCHITECTURES, build_model  # noqa: E402

RNG = np.random.default_rng(2)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("context", [1, 3, 5])
def test_builds_and_predicts_probabilities(arch, context):
    model = build_model(arch, context=context, width=8, depth=4)
    assert model.input_shape == (None, None, None, context)
    assert model.output_shape == (None, None, None, 1)
    x = RNG.random((2, 64, 64, context), dtype=np.float32)
    y = keras.ops.convert_to_numpy(model(x, training=False))
    assert y.shape == (2, 64, 64, 1) and y.dtype == np.float32
    assert np.all((y >= 0) & (y <= 1))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_any_size_divisible_by_two_to_the_depth(arch):
    model = build_model(arch, context=1, width=8, depth=2)
    y = model(RNG.random((1, 12, 20, 1), dtype=np.float32), training=False)
    assert tuple(y.shape) == (1, 12, 20, 1)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_loaded_model_predicts_tiles_of_changing_shape(arch):
    """Rectangular tiles and their rotations (test-time variants) change one side at a time;
    TensorFlow's relaxed graph of a dilated convolution failed on that before warm-up."""
    from emviewer.core.models.card import ModelCard
    from emviewer.core.models.loading import LoadedModel

    loaded = LoadedModel(arch, build_model(arch, context=1, width=4, depth=2), ModelCard(object="mito"))
    for shape in [(128, 128), (96, 128), (128, 96), (96, 96)]:
        assert loaded.predict(RNG.random((1, *shape, 1), dtype=np.float32)).shape == (1, *shape, 1)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_width_16_stays_small(arch):
    small = build_model(arch, context=1, width=8, depth=4).count_params()
    medium = build_model(arch, context=1, width=16, depth=4).count_params()
    assert small < medium < 2_000_000


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_saved_model_reloads_and_predicts_identically(arch, tmp_path):
    model = build_model(arch, context=3, width=8, depth=3)
    x = RNG.random((2, 64, 64, 3), dtype=np.float32)
    # A forward pass in training mode moves the batch-norm statistics off their defaults,
    # so the comparison also covers non-trainable state.
    model(x, training=True)
    path = tmp_path / f"{arch}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(reloaded(x, training=False)), expected)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_output_is_float32_under_mixed_precision(arch):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_model(arch, context=1, width=8, depth=2)
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.layers[1].compute_dtype == "bfloat16"
    y = model(RNG.random((1, 16, 16, 1), dtype=np.float32), training=False)
    assert keras.backend.standardize_dtype(y.dtype) == "float32"


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown architecture 'unet'.*multiresunet, deepem3d"):
        build_model("unet", context=1, width=8, depth=4)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("setting", [{"context": 0}, {"width": 0}, {"depth": 0}, {"width": 2.5}])
def test_bad_settings_are_refused(arch, setting):
    kwargs = {"context": 1, "width": 8, "depth": 2, **setting}
    with pytest.raises(ValueError, match="positive integer"):
        build_model(arch, **kwargs)


def test_importing_models_does_not_load_the_ml_backend():
    code = "import sys, emviewer.core.models; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
