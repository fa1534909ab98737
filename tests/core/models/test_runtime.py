"""Models run by OpenVINO or ONNX Runtime: chosen per machine, converted once into the user's cache,
with the masks of Keras in float32 (issue 23)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from emviewer import config
from emviewer.core.errors import InputError
from emviewer.core.models import runtime
from emviewer.core.models.loading import load_model
from emviewer.core.predict import LocalPredictor, predict_all
from emviewer.core.volume import from_array

#: Issue 23: at most this share of mask pixels may differ from Keras in float32.
MASK_TOLERANCE = 1e-4


def test_auto_is_openvino_on_a_cpu_and_keras_where_an_nvidia_gpu_is(monkeypatch):
    monkeypatch.delenv(runtime.RUNTIME_ENV, raising=False)
    monkeypatch.setattr(runtime, "nvidia_gpu_present", lambda: False)
    assert runtime.choose_runtime()[0] == "openvino"  # a dependency: always installed
    monkeypatch.setattr(runtime, "nvidia_gpu_present", lambda: True)  # no GPU can be made here
    name, why = runtime.choose_runtime("auto")
    assert name == "keras" and "GPU" in why
    monkeypatch.setenv(runtime.RUNTIME_ENV, "ONNX")
    assert runtime.choose_runtime() == ("onnx", "chosen")
    assert runtime.choose_runtime("keras") == ("keras", "chosen")  # the argument beats the environment


def test_an_unknown_or_missing_runtime_is_one_line(monkeypatch):
    with pytest.raises(InputError, match="unknown runtime 'tensorrt'; choose one of auto, keras, openvino, onnx"):
        runtime.choose_runtime("tensorrt")
    monkeypatch.setattr(runtime.importlib.util, "find_spec", lambda name: None)  # uninstalling is not for a test
    with pytest.raises(InputError, match="runtime openvino is not installed"):
        runtime.choose_runtime("openvino")
    assert runtime.choose_runtime("keras")[0] == "keras"


def _real_stack(cdeep3m, side: int = 256) -> np.ndarray:
    """``(5, side, side)`` uint8: five consecutive SBEM test slices."""
    files = sorted((cdeep3m / "testset").glob("*.png"))[:5]
    return np.stack([np.asarray(Image.open(f))[300 : 300 + side, 200 : 200 + side] for f in files])


def test_converted_once_then_read_from_the_cache_and_converted_again_when_damaged(tmp_path, cdeep3m):
    path = config.bundled_models_dir() / "mito" / "mito-mru-5fm.keras"  # trained in float32: runs in float32
    heard: list[str] = []
    first = load_model(path, runtime="openvino", cache=tmp_path, progress=lambda d, t, m: heard.append(m))
    assert first.model is None and first.runtime == "openvino" and first.precision == "float32"
    assert heard[0] == "converting mito-mru-5fm.keras for openvino (first use only)"
    (folder,) = tmp_path.iterdir()  # nothing half-written beside it
    assert folder.name.startswith(f"{first.card.sha256}-openvino-")
    stamp = os.stat(folder / "model.xml").st_mtime_ns

    heard.clear()
    again = load_model(path, runtime="openvino", cache=tmp_path, progress=lambda d, t, m: heard.append(m))
    assert heard == [] and os.stat(folder / "model.xml").st_mtime_ns == stamp
    volume = from_array(_real_stack(cdeep3m, 128))
    expected = predict_all(LocalPredictor({"mito": [first]}), volume)["mito"]
    np.testing.assert_array_equal(predict_all(LocalPredictor({"mito": [again]}), volume)["mito"], expected)

    (folder / "model.xml").write_text("<net>cut short")
    mended = load_model(path, runtime="openvino", cache=tmp_path, progress=lambda d, t, m: heard.append(m))
    assert heard[0].startswith("converting") and [p.name for p in tmp_path.iterdir()] == [folder.name]
    np.testing.assert_array_equal(predict_all(LocalPredictor({"mito": [mended]}), volume)["mito"], expected)

    weights = folder / "model.bin"
    weights.write_bytes(weights.read_bytes()[:100_000])  # cut weights are found at load too
    heard.clear()
    load_model(path, runtime="openvino", cache=tmp_path, progress=lambda d, t, m: heard.append(m))
    assert heard[0].startswith("converting")


def test_openvino_compiles_each_input_shape_and_keeps_the_last_two(cdeep3m):
    """Tiles, rectangles and their turned copies: each shape compiled with its size fixed
    (less memory), the same probabilities as Keras, only the last two shapes kept."""
    path = config.bundled_models_dir() / "mito" / "mito-mru-1fm.keras"
    converted = load_model(path, precision="float32", runtime="openvino")  # the card says bf16: not compared here
    keras = load_model(path, precision="float32")
    image = _real_stack(cdeep3m, 96)[0].astype(np.float32) / 255
    shapes = [(64, 64), (64, 96), (96, 64), (64, 96)]
    for height, width in shapes:
        x = image[None, :height, :width, None]
        np.testing.assert_allclose(converted.predict(x), keras.predict(x), atol=1e-3)
    assert list(converted.runner._requests) == [(1, 96, 64, 1), (1, 64, 96, 1)]


def test_a_model_that_cannot_be_converted_is_one_line(tmp_path, monkeypatch):
    path = config.bundled_models_dir() / "mito" / "mito-mru-1fm.keras"

    def refuse(*args):
        raise RuntimeError("unsupported operation Foo")

    monkeypatch.setattr(runtime, "_convert", refuse)  # a converter failing on a layer: none of our models does
    with pytest.raises(InputError, match=r"cannot convert the model for openvino \(unsupported operation Foo\)"):
        load_model(path, runtime="openvino", cache=tmp_path)
    assert list(tmp_path.iterdir()) == []  # the temporary folder is gone


def _cases():
    """Every bundled model on OpenVINO (the default on CPUs); one on ONNX Runtime, the optional runtime."""
    bundled = [e for e in config.installed_models() if e.bundled]
    cases = [pytest.param(e, "openvino", id=f"{e.name}-openvino") for e in bundled]
    return cases + [pytest.param(e, "onnx", id=f"{e.name}-onnx") for e in bundled if e.name == "mito-mru-1fm"]


def _object_stack(entry, cdeep3m, isbi, hela) -> np.ndarray:
    """Real slices of the kind the model was made for, ``(Z, Y, X)`` uint8."""
    if entry.card.object == "membrane":
        return np.stack([np.asarray(Image.open(isbi / "image" / f"{i}.png"))[:256, :256] for i in range(5)])
    if entry.card.object == "nuclei":  # a mosaic of 64-pixel HeLa patches
        files = sorted((hela / "images").glob("Hela_Data_Slice_176_*.png"))[:16]
        tiles = [np.asarray(Image.open(f).convert("L")) for f in files]
        mosaic = np.vstack([np.hstack(tiles[row * 4 : row * 4 + 4]) for row in range(4)])
        return np.stack([mosaic] * 3)
    return _real_stack(cdeep3m)


@pytest.mark.slow  # converts all eight bundled models (about 8 s each)
@pytest.mark.parametrize(("entry", "name"), _cases())
def test_every_bundled_model_gives_the_masks_of_keras_in_float32(entry, name, cdeep3m, isbi, hela):
    volume = from_array(_object_stack(entry, cdeep3m, isbi, hela))
    reference = predict_all(LocalPredictor({"x": [load_model(entry.path, precision="float32")]}), volume)["x"]
    converted = load_model(entry.path, precision="float32", runtime=name)
    probabilities = predict_all(LocalPredictor({"x": [converted]}), volume)["x"]
    assert np.abs(probabilities - reference).max() < 1e-3
    assert np.mean((probabilities >= 0.5) != (reference >= 0.5)) <= MASK_TOLERANCE
    assert (reference >= 0.5).any()  # the crop holds objects: the comparison means something
