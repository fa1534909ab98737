"""The out-of-domain line: a model's own kind of slice passes, another data set is named.

Real slices (crops of ../shared/data) and the bundled models with the ``training_domain`` that
``benchmarks/card_domains.py`` wrote into their cards.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emviewer import config
from emviewer.core.dataset import load_labelled
from emviewer.core.domain import ADAPT_HINT, domain_warning, slice_statistics, training_domain
from emviewer.core.errors import InputWarning
from emviewer.core.models.loading import LoadedModel, load_model
from emviewer.core.models.registry import models_for
from emviewer.core.noise import box_blur
from emviewer.core.predict import LocalPredictor, calibrate, labelled_predictions
from emviewer.core.volume import from_array


def fast_model(obj: str) -> LoadedModel:
    """The object's bundled fast-mode model (the one `emviewer predict` takes)."""
    return load_model(models_for(obj, "fast", config.installed_models())[0])


@pytest.fixture(scope="module")
def mito() -> LoadedModel:
    return fast_model("mito")


@pytest.fixture(scope="module")
def nuclei() -> LoadedModel:
    return fast_model("nuclei")


@pytest.fixture(scope="module")
def membrane() -> LoadedModel:
    return fast_model("membrane")


def pixels(path: Path, side: int = 512) -> np.ndarray:
    """The central ``side`` x ``side`` of a real slice, uint8."""
    image = np.asarray(Image.open(path))
    y, x = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return image[max(y, 0) : y + side, max(x, 0) : x + side]


def lines_for(model: LoadedModel, image: np.ndarray) -> list[str]:
    """The lines prediction of one slice hands to ``on_warning``."""
    lines: list[str] = []
    for _ in LocalPredictor({model.card.object: [model]}).iter_predict(from_array(image), on_warning=lines.append):
        pass
    return lines


def test_every_bundled_card_keeps_a_training_domain():
    cards = [entry.card for entry in config.installed_models() if entry.bundled]
    assert cards and all(card.training_domain and card.trained_on for card in cards)


def test_own_validation_slices_pass(mito, membrane, cdeep3m, isbi):
    assert lines_for(mito, pixels(cdeep3m / "validation" / "images" / "images.055.png")) == []
    assert lines_for(membrane, pixels(isbi / "image" / "27.png")) == []


def test_a_training_set_the_model_learnt_passes_though_unlike_its_other_one(mito, lucchi):
    """The mito models trained on SBEM and on Lucchi++ FIB-SEM: held-out Lucchi++ slices are theirs."""
    assert lines_for(mito, pixels(lucchi / "images" / "train_150.png")) == []


@pytest.mark.parametrize(
    ("model_name", "data", "path"),
    [
        ("mito", "isbi", "image/3.png"),
        ("membrane", "cdeep3m", "validation/images/images.052.png"),
        ("membrane", "lucchi", "images/train_150.png"),
        ("nuclei", "cdeep3m", "validation/images/images.052.png"),
    ],
)
def test_a_slice_of_another_data_set_is_named(model_name, data, path, request):
    model, root = request.getfixturevalue(model_name), request.getfixturevalue(data)
    lines = lines_for(model, pixels(root / path))
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith(f"{model.name}: this image looks unlike its training data ({model.card.trained_on}): ")
    assert line.endswith(ADAPT_HINT) and "\n" not in line
    assert "texture" in line or "uncertain" in line or "grey levels" in line


def test_hela_patches_of_held_out_slices_pass(nuclei, hela):
    """Patches are independent 64-pixel samples: one slice's patches are measured as a mosaic."""
    stack = load_labelled(str(hela / "images"), str(hela / "labels"), [2], reference=nuclei.reference)
    keep = [i for i, name in enumerate(stack.names) if "Slice_176_" in name][:32]
    patches = stack.split(keep)
    inputs, probabilities = [], []
    for _, z, probability in labelled_predictions(nuclei.model, 1, [patches]):
        inputs.append(patches.model_input(z, 1)[..., 0])
        probabilities.append(calibrate(probability, nuclei.threshold))

    def mosaic(tiles):
        return np.vstack([np.hstack(tiles[row * 8 : row * 8 + 8]) for row in range(4)])

    assert domain_warning(nuclei.card.training_domain, mosaic(inputs), mosaic(probabilities), nuclei.name) is None


def test_old_card_without_a_domain_says_nothing(mito, isbi):
    old = LoadedModel(mito.name, mito.model, mito.card.model_copy(update={"training_domain": None}))
    assert lines_for(old, pixels(isbi / "image" / "3.png")) == []
    assert domain_warning(None, np.zeros((64, 64), np.float32), np.zeros((64, 64), np.float32), "m") is None
    assert domain_warning({}, np.zeros((64, 64), np.float32), np.zeros((64, 64), np.float32), "m") is None


def test_without_on_warning_the_line_is_an_input_warning(mito, isbi):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(LocalPredictor({"mito": [mito]}).iter_predict(from_array(pixels(isbi / "image" / "3.png"))))
    lines = [str(w.message) for w in caught if issubclass(w.category, InputWarning)]
    assert len(lines) == 1 and lines[0].endswith(ADAPT_HINT)


def test_grain_and_blur_are_told_apart(cdeep3m):
    """A domain of four real SBEM crops: its own crops pass, added noise reads as finer, blur as coarser."""
    files = sorted((cdeep3m / "training" / "images").glob("*.png"))[:5]
    crops = [pixels(f, 256).astype(np.float32) / 255 for f in files]
    quiet = [np.zeros_like(c) for c in crops]
    domain = training_domain(crops[:4], quiet[:4], 10.0, "four SBEM crops")
    assert domain["slices"] == 4 and len(domain["sources"][0]["statistics"]["texture"]["std"]) == 4
    assert domain_warning(domain, crops[4], quiet[4], "m") is None
    grainy = np.clip(crops[4] + np.random.default_rng(0).normal(0, 0.05, crops[4].shape), 0, 1).astype(np.float32)
    assert "texture finer or grainier" in (domain_warning(domain, grainy, quiet[4], "m") or "")
    blurred = box_blur(crops[4], 2)
    assert "texture coarser or smoother" in (domain_warning(domain, blurred, quiet[4], "m") or "")
    assert slice_statistics(grainy)["texture"][-1] > slice_statistics(crops[4])["texture"][-1]


def test_predict_on_another_microscope_prints_one_warning_naming_adapt(isbi, make_crops, tmp_path, run_cli):
    folder = make_crops([isbi / "image" / "3.png"], "isbi", size=(256, 256))
    code, _, err = run_cli("predict", folder, "--object", "mito", "-o", tmp_path / "out")
    warned = [line for line in err.splitlines() if "warning:" in line]
    assert code == 0 and len(warned) == 1
    assert warned[0].startswith("emviewer: warning: mito-") and "'emviewer adapt'" in warned[0]
