"""Saving a model atomically: it reloads the same, replaces an old file, and a failed save leaves nothing."""

from __future__ import annotations

import numpy as np
import pytest

from emviewer.core.models import build_model
from emviewer.core.models.saving import save_model_atomically


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(3)
    return build_model("deepem3d", context=1, width=4, depth=2)


def test_the_saved_model_reloads_with_the_same_answers_and_replaces_an_old_file(tmp_path, model):
    import keras

    path = tmp_path / "sub" / "tiny.keras"  # the folder does not exist yet
    save_model_atomically(model, path)
    first = path.read_bytes()
    save_model_atomically(model, path)  # over an existing file
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.keras"]  # no temporary left
    x = np.random.default_rng(0).random((1, 32, 32, 1), np.float32)
    reloaded = keras.saving.load_model(path, compile=False)
    np.testing.assert_array_equal(reloaded.predict_on_batch(x), model.predict_on_batch(x))
    assert len(path.read_bytes()) == len(first)


def test_a_failed_save_keeps_the_old_file_and_leaves_nothing_else(tmp_path, model):
    path = tmp_path / "tiny.keras"
    save_model_atomically(model, path)
    before = path.read_bytes()
    with pytest.raises(AttributeError):
        save_model_atomically(object(), path)  # not a model: fails inside the save
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.keras"]
