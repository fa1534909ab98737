"""RemotePredictor against the real server: same results as local, progress, cancel, errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from live_server import live_server
from PIL import Image

from emviewer.core.models.loading import load_model
from emviewer.core.models.runtime import choose_runtime
from emviewer.core.predict import LocalPredictor, predict_all
from emviewer.core.progress import Cancelled, CancelToken
from emviewer.core.volume import from_array
from emviewer.remote.client import RemoteError, RemotePredictor


@pytest.fixture(scope="module")
def local_models(model_folder):
    """The server's models run here by the runtime the server chose (auto), so untrained models
    answering near 0.5 everywhere cut the same way on both sides."""
    runtime = choose_runtime()[0]
    return {
        "mito": [load_model(model_folder / "mito" / "tiny-mito.keras", runtime=runtime)],
        "membrane": [load_model(model_folder / "membrane" / "tiny-membrane.keras", runtime=runtime)],
    }


def remote(server, objects=("mito", "membrane"), **kwargs) -> RemotePredictor:
    return RemotePredictor(server.url, server.token, list(objects), poll_interval=0.05, **kwargs)


def test_remote_and_local_predictions_agree(server, server_stack, local_models):
    volume = from_array(server_stack, slice_names=[f"s{i}" for i in range(len(server_stack))])
    local = predict_all(LocalPredictor(local_models), volume)
    results = list(remote(server).iter_predict(volume))
    assert [r.index for r in results] == [0, 1, 2, 3] and [r.name for r in results] == ["s0", "s1", "s2", "s3"]
    for obj in ("mito", "membrane"):
        online = np.stack([r.probabilities[obj] for r in results])
        assert online.dtype == np.float32 and online.shape == server_stack.shape
        np.testing.assert_allclose(online, local[obj], atol=1e-5)
        # untrained models answer near 0.5 everywhere: cut at the local median, so the masks
        # compared are never blank or full, whatever the random weights came out as
        cut = float(np.median(local[obj]))
        np.testing.assert_array_equal(online >= cut, local[obj] >= cut)
        assert 0.1 < (online >= cut).mean() < 0.9


def test_some_slices_with_test_time_augmentation_agree_with_local(server, server_stack, local_models):
    volume = from_array(server_stack)
    local = list(LocalPredictor(local_models, tta=8).iter_predict(volume, slices=[3, 1]))
    online = list(remote(server, tta=8).iter_predict(volume, slices=[3, 1]))
    assert [r.index for r in online] == [3, 1]
    for a, b in zip(local, online, strict=True):
        for obj in ("mito", "membrane"):
            np.testing.assert_allclose(b.probabilities[obj], a.probabilities[obj], atol=1e-5)


def test_keeping_long_objects_reaches_the_server(server, server_stack, model_folder):
    volume = from_array(server_stack[:1])
    short = {"mito": [load_model(model_folder / "mito" / "short-mito.keras", runtime=choose_runtime()[0])]}
    masks = {}
    for keep in (False, True):
        local = predict_all(LocalPredictor(short, keep_long_objects=keep), volume)["mito"]
        online_predictor = remote(server, objects=["mito"], models={"mito": ["short-mito"]}, keep_long_objects=keep)
        online = np.stack([r.probabilities["mito"] for r in online_predictor.iter_predict(volume)])
        np.testing.assert_allclose(online, local, atol=1e-5)
        masks[keep] = online >= 0.5
    assert masks[True].sum() > masks[False].sum()  # the model's card drops objects over 20 px


def test_progress_covers_upload_and_prediction(server, server_stack):
    seen = []
    list(
        remote(server, objects=["mito"]).iter_predict(
            from_array(server_stack), progress=lambda d, t, m: seen.append((d, t, m))
        )
    )
    messages = [m for _, _, m in seen]
    assert "uploading" in messages and messages[-1] == "done"
    assert seen[-1][0] == seen[-1][1]


def test_cancel_stops_the_server_job_and_deletes_its_files(model_folder, slow_tiff, tmp_path):
    from emviewer.core.io import open_volume

    cancel = CancelToken()

    def progress(done, total, message):
        if message.startswith("slice"):  # the server is predicting
            cancel.cancel()

    with live_server(model_folder, tmp_path) as live:
        with pytest.raises(Cancelled):
            list(
                remote(live, objects=["mito"], mode="accurate").iter_predict(
                    open_volume(slow_tiff), progress=progress, cancel=cancel
                )
            )
        (job,) = live.app.state.jobs._jobs.values()
        assert job.cancel.cancelled
        for _ in range(600):  # the worker stops at its next tile, deletes the files, then says so
            if not job.folder.exists() and job.state.value == "cancelled":
                break
            threading.Event().wait(0.05)
        assert not job.folder.exists() and job.state.value == "cancelled" and job.done < job.total


def test_wrong_token_and_unreachable_server_give_clear_errors(server, server_stack):
    volume = from_array(server_stack)
    with pytest.raises(RemoteError, match="refused the token"):
        list(RemotePredictor(server.url, "wrong", ["mito"]).iter_predict(volume))
    with pytest.raises(RemoteError, match="cannot reach the server"):
        list(RemotePredictor("http://127.0.0.1:9", "t", ["mito"], retries=1).iter_predict(volume))


def test_stack_over_the_upload_limit_is_refused_before_sending(server, slow_tiff):
    from emviewer.core.io import open_volume

    with pytest.raises(RemoteError, match=r"MiB as sent \(uncompressed\), over the server's upload limit of 4.0 MiB"):
        list(remote(server, objects=["mito"]).iter_predict(open_volume(slow_tiff)))


def test_server_that_goes_away_mid_job_gives_an_error_not_a_hang(model_folder, slow_tiff, tmp_path):
    from emviewer.core.io import open_volume

    with live_server(model_folder, tmp_path) as live:
        stopping = threading.Thread(target=live.stop)

        def progress(done, total, message):
            if message.startswith("slice") and not stopping.is_alive() and stopping.ident is None:
                stopping.start()

        predictor = RemotePredictor(
            live.url, live.token, ["mito"], mode="accurate", poll_interval=0.05, retries=2, timeout=10
        )
        with pytest.raises(RemoteError, match="cannot reach the server"):
            list(predictor.iter_predict(open_volume(slow_tiff), progress=progress))
        stopping.join(timeout=30)


def test_the_servers_out_of_domain_line_reaches_the_client(isbi, tmp_path):
    """A bundled mito model served, an ssTEM slice sent: its line comes back, named as the server's."""
    from emviewer import config
    from emviewer.core.models.registry import models_for

    folder = tmp_path / "models"
    (folder / "mito").mkdir(parents=True)
    fast = models_for("mito", "fast", config.installed_models())[0]
    for path in (fast, fast.with_suffix(".json")):
        (folder / "mito" / path.name).symlink_to(path)
    image = np.asarray(Image.open(isbi / "image" / "3.png"))[:256, :256]
    lines: list[str] = []
    with live_server(folder, tmp_path) as live:
        predictor = RemotePredictor(live.url, live.token, ["mito"], poll_interval=0.05)
        results = list(predictor.iter_predict(from_array(image), on_warning=lines.append))
    assert len(results) == 1 and len(lines) == 1
    assert lines[0].startswith(f"server: {fast.stem}: this image looks unlike its training data")
    assert "adapt" in lines[0]
