"""The model cache the app and the server share: one load per file, warmed up, thread-safe."""

from __future__ import annotations

import threading

import pytest

from emviewer.core.errors import InputError
from emviewer.core.models.cache import ModelCache
from emviewer.core.predict import predictor_for


def test_two_threads_get_the_same_model_loaded_once(model_folder):
    path = model_folder / "mito" / "tiny-mito.keras"
    cache = ModelCache()
    start = threading.Barrier(2)
    got = []

    def fetch():
        start.wait()  # both ask before either has loaded it
        got.append(cache.get(path))

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 2 and got[0] is got[1]
    assert len(cache) == 1 and path in cache
    assert cache.get(model_folder / "mito" / ".." / "mito" / "tiny-mito.keras") is got[0]  # same file, same model


def test_first_load_warms_the_model_up(model_folder):
    path = model_folder / "membrane" / "tiny-membrane.keras"
    warm = ModelCache(runtime="keras").get(path)
    cold = ModelCache(warm_up=False, runtime="keras").get(path)
    assert cold is not warm and cold.context == warm.context == 3
    assert cold.model.predict_function is None  # never run
    assert warm.model.predict_function is not None  # run once on tiny inputs


def test_predictors_share_the_cached_models(model_folder):
    cache = ModelCache(warm_up=False)
    files = {"mito": [model_folder / "mito" / "tiny-mito.keras"]}
    fast = predictor_for(files, "fast", cache=cache)
    accurate = predictor_for(files, "accurate", cache=cache)
    assert fast.models["mito"][0] is accurate.models["mito"][0] is cache.get(files["mito"][0])
    assert (fast.tta, accurate.tta) == (1, 16)


def test_a_file_that_fails_to_load_is_not_kept(tmp_path):
    cache = ModelCache()
    with pytest.raises(InputError, match="no such model file"):
        cache.get(tmp_path / "missing.keras")
    assert len(cache) == 0
