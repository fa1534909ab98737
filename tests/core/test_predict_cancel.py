"""Cancel and progress inside a slice: checked before every model call, counted in tile passes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from emviewer.core.models import build_model
from emviewer.core.models.card import ModelCard
from emviewer.core.models.loading import LoadedModel, load_model
from emviewer.core.predict import LocalPredictor, predict_all
from emviewer.core.progress import ESTIMATING, Cancelled, CancelToken, Estimate, carries_estimate, duration_text
from emviewer.core.volume import from_array


@dataclass
class CountingModel(LoadedModel):
    """A real model that also counts its calls and may run a hook at the start of one."""

    calls: int = 0
    seconds: list = field(default_factory=list)
    on_call: dict[int, Callable[[], object]] = field(default_factory=dict)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls in self.on_call:
            self.on_call[self.calls]()
        start = time.perf_counter()
        out = super().predict(batch)
        self.seconds.append(time.perf_counter() - start)
        return out


@pytest.fixture(scope="module")
def tiny_keras():
    import keras

    keras.utils.set_random_seed(3)
    return build_model("deepem3d", context=3, width=4, depth=2)


def counting(model, context: int = 3, name: str = "tiny") -> CountingModel:
    return CountingModel(name, model, ModelCard(object="mito", context=context))


def stack(size: int, depth: int = 3) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (depth, size, size), dtype=np.uint8)


def test_cancel_between_variants_stops_before_the_next_model_call(tiny_keras):
    model, token = counting(tiny_keras), CancelToken()
    reports = []

    def progress(done, total, message):
        reports.append((done, total))
        if len(reports) == 4:  # after the third call of the first tile's 16 variants
            token.cancel()

    with pytest.raises(Cancelled):
        predict_all(
            LocalPredictor({"mito": [model]}, tta=16, tile=64), from_array(stack(64)), progress=progress, cancel=token
        )
    assert model.calls == 3  # not one call more, although the tile has 13 variants to go
    assert reports[1:] == [(1, 48), (2, 48), (3, 48)]  # 3 slices x 1 tile x 16 variants


def cancel_and_hold(token: CancelToken, release: threading.Event) -> Callable[[], None]:
    """A model call during which the user cancels, and which then lasts until ``release``."""

    def hook() -> None:
        token.cancel()
        release.wait(timeout=30)

    return hook


def let_the_abandoned_call_end(model: CountingModel, release: threading.Event) -> None:
    """Release the held call and wait for it, so its work does not run on into the next test
    (whose memory or time it would count)."""
    release.set()
    deadline = time.monotonic() + 60
    while len(model.seconds) < model.calls and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_cancel_during_a_call_does_not_wait_for_it(tiny_keras):
    model, token, release = counting(tiny_keras), CancelToken(), threading.Event()
    model.on_call[5] = cancel_and_hold(token, release)
    predictor = LocalPredictor({"mito": [model, counting(tiny_keras, name="second")]}, tta=8, tile=32, overlap=8)
    with pytest.raises(Cancelled):
        predict_all(predictor, from_array(stack(80)), cancel=token)
    running = len(model.seconds) == 4  # the fifth call has not ended: it was not waited for
    let_the_abandoned_call_end(model, release)
    assert running and model.calls == 5  # and no call started after the cancel


def test_progress_moves_with_every_call_and_estimates_the_time(tiny_keras):
    model = counting(tiny_keras)
    seen = []
    volume = from_array(stack(64, depth=2))
    predict_all(
        LocalPredictor({"mito": [model]}, tta=16, tile=32, overlap=0, batch_size=4),
        volume,
        progress=lambda *r: seen.append(r),
    )
    assert ESTIMATING in seen[0][2]  # before any model call: no figure yet
    passes = [done for done, _, _ in seen[1:]]
    assert passes == [4 * n for n in range(1, 33)]  # 4 tiles per call, 16 variants, 2 slices
    assert {total for _, total, _ in seen[1:]} == {2 * 4 * 16}
    assert all(carries_estimate(message) and "elapsed" in message for _, _, message in seen[1:])
    assert seen[1][2].startswith("slice 1 of 2") and seen[-1][2].startswith("slice 2 of 2")
    assert model.calls == 32


def test_estimate_is_time_per_unit_times_units_left():
    now = [100.0]
    estimate = Estimate(clock=lambda: now[0])
    assert estimate.text(0, 10) == ESTIMATING
    estimate.start()
    now[0] += 4.0
    assert estimate.text(1, 10) == "4 s elapsed, about 36 s left"
    now[0] += 596.0
    assert estimate.text(5, 10) == "10 min elapsed, about 10 min left"
    assert duration_text(2 * 3600 + 5 * 60) == "2 h 05 min"
    assert not carries_estimate("uploading")


def test_bundled_model_on_a_large_slice_stops_during_the_running_call():
    """A 1024-pixel slice in accurate mode takes 16 calls of about a second each on a CPU; a
    cancel during the second ends the run before that call does, and starts no other."""
    from emviewer import config

    loaded = load_model(config.bundled_models_dir() / "mito" / "mito-mru-5fm.keras")
    model, token, release = CountingModel(loaded.name, loaded.model, loaded.card), CancelToken(), threading.Event()
    model.on_call[2] = cancel_and_hold(token, release)
    totals = []
    volume = from_array(stack(1024, depth=5))
    with pytest.raises(Cancelled):
        predict_all(
            LocalPredictor({"mito": [model]}, tta=16), volume, progress=lambda *r: totals.append(r[1]), cancel=token
        )
    running = len(model.seconds) == 1
    let_the_abandoned_call_end(model, release)
    assert totals[-1] == 5 * 16  # 5 slices of one 1024-pixel tile, 16 variants each
    assert running and model.calls == 2
