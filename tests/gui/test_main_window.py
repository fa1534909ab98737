"""The main window on real data: open, predict with a small trained model, cancel, errors, screenshot."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from emviewer.core.train import DataSpec, TrainConfig, train


@pytest.fixture(scope="module")
def user_models(cdeep3m, tmp_path_factory):
    """A user folder holding one tiny mito model trained on real crops (about 20 s)."""
    root = tmp_path_factory.mktemp("gui_models")
    for kind, stem in (("images", "images"), ("labels", "mitos_3D")):
        (root / "data" / kind).mkdir(parents=True)
        for n in range(10, 14):
            array = np.asarray(Image.open(cdeep3m / "training" / kind / f"{stem}.{n:03d}.png"))[:256, :256]
            Image.fromarray(array).save(root / "data" / kind / f"{stem}.{n:03d}.png")
    out = root / "user" / "models" / "mito" / "tiny.keras"
    out.parent.mkdir(parents=True)
    spec = DataSpec([str(root / "data" / "images")], [str(root / "data" / "labels")])
    train(
        spec,
        TrainConfig(
            arch="deepem3d", width=8, depth=3, tile=128, batch_size=2, epochs=1, steps_per_epoch=4, precision="float32"
        ),
        out,
    )
    (root / "bundled").mkdir()
    return root


@pytest.fixture
def window(qtbot, user_models, monkeypatch, tmp_path):
    monkeypatch.setenv("EMVIEWER_USER_DIR", str(user_models / "user"))
    monkeypatch.setenv("EMVIEWER_MODELS_DIR", str(user_models / "bundled"))
    from PySide6.QtCore import QSettings

    from emviewer.gui.main_window import MainWindow

    win = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))  # never the user's own settings
    qtbot.addWidget(win)
    win.show()
    return win


def test_opens_real_stack_and_shows_its_size(window, cdeep3m):
    assert window.open_path(cdeep3m / "validation" / "images")
    assert window.session.volume.shape == (10, 1024, 1024)
    assert "1024 x 1024 px, 10 slices" in window.size_label.text()


def test_model_picker_lists_the_trained_model_with_its_figures(window, user_models):
    combo = window.panel.rows["mito"].model
    trained_on = f"{user_models.name}/data/images"  # the card says what the model was trained on
    assert combo.itemText(1) == f"tiny - {trained_on}"
    assert "validation F1" in combo.itemData(1, 3)  # Qt.ToolTipRole


def test_predict_fills_the_overlay_slice_by_slice(window, qtbot, cdeep3m, tmp_path):
    folder = tmp_path / "stack"
    folder.mkdir()
    for n in (50, 51):
        array = np.asarray(Image.open(cdeep3m / "validation" / "images" / f"images.0{n}.png"))[:256, :256]
        Image.fromarray(array).save(folder / f"images.0{n}.png")
    window.open_path(folder)
    finished = []
    window.session.masksChanged.connect(finished.append)
    with qtbot.waitSignal(window.predictionFinished, timeout=120_000):
        window.panel.predict_button.click()
    assert finished == [0, 1]  # each slice as it arrives; nothing else is cleared
    assert set(window.session.masks["mito"]) == {0, 1}
    assert window.session.masks["mito"][0].shape == (256, 256)
    assert window.panel.predict_button.isEnabled() and not window.panel.cancel_button.isEnabled()
    assert "CPU" in window.device_label.text() or "GPU" in window.device_label.text()
    assert window.panel.domain_note.isHidden()  # the model's own kind of image


def _two_slices(cdeep3m, folder):
    folder.mkdir()
    for n in (50, 51):
        array = np.asarray(Image.open(cdeep3m / "validation" / "images" / f"images.0{n}.png"))[:256, :256]
        Image.fromarray(array).save(folder / f"images.0{n}.png")
    return folder


@pytest.mark.parametrize("answer", ["keep", "replace"])
def test_predict_asks_before_replacing_corrected_masks(window, qtbot, cdeep3m, tmp_path, answer):
    window.open_path(_two_slices(cdeep3m, tmp_path / "stack"))
    with qtbot.waitSignal(window.predictionFinished, timeout=120_000):
        window.panel.predict_button.click()
    session = window.session
    corrected = ~session.masks["mito"][1]  # a correction no model would make
    session.replace_mask("mito", 1, corrected)
    window.panel.predict_button.click()
    box = window.corrections_box
    assert box.isVisible() and not window.predicting and "mitochondria on slice 2." in box.text()
    with qtbot.waitSignal(window.predictionFinished, timeout=120_000):
        (box.keep_button if answer == "keep" else box.replace_button).click()
    kept = np.array_equal(session.masks["mito"][1], corrected)
    assert kept == (answer == "keep") and (session.edited["mito"] == {1}) == kept
    window.panel.predict_button.click()
    if answer == "keep":  # still corrected: asked again; Cancel starts nothing
        window.corrections_box.button(window.corrections_box.StandardButton.Cancel).click()
        assert not window.predicting and np.array_equal(session.masks["mito"][1], corrected)
    else:  # nothing corrected any more: no question
        assert window.predicting
        with qtbot.waitSignal(window.predictionFinished, timeout=120_000):
            pass


def test_an_image_from_another_microscope_keeps_a_warning_until_the_next_predict(window, qtbot, isbi, tmp_path):
    path = tmp_path / "isbi-3.png"
    Image.fromarray(np.asarray(Image.open(isbi / "image" / "3.png"))[:256, :256]).save(path)
    window.open_path(path)
    with qtbot.waitSignal(window.predictionFinished, timeout=120_000):
        window.panel.predict_button.click()
    note = window.panel.domain_note
    assert not note.isHidden() and note.text().startswith("Warning: tiny: this image looks unlike its training data")
    window.panel.set_running(True)  # a new run starts clean
    assert note.isHidden() and note.text() == ""


def test_a_mask_opened_as_the_image_is_refused_at_predict(window, qtbot, cdeep3m, tmp_path):
    """The image check runs on the app's local path too: a real label slice is not predicted."""
    path = tmp_path / "mitos_3D.050.png"
    path.write_bytes((cdeep3m / "validation" / "labels" / path.name).read_bytes())
    assert window.open_path(path)
    with qtbot.waitSignal(window.predictionStopped, timeout=120_000) as stopped:
        window.panel.predict_button.click()
    assert "binary" in stopped.args[0] and path.name in stopped.args[0]
    assert window.session.masks == {}


def test_keep_long_objects_box_reaches_the_predictor(window, qtbot, cdeep3m, tmp_path):
    folder = tmp_path / "stack"
    folder.mkdir()
    array = np.asarray(Image.open(cdeep3m / "validation" / "images" / "images.050.png"))[:128, :128]
    Image.fromarray(array).save(folder / "images.050.png")
    window.open_path(folder)
    for keep in (False, True):
        window.panel.keep_long.setChecked(keep)
        with qtbot.waitSignal(window.predictionFinished, timeout=120_000):
            window.panel.predict_button.click()
    used = {key[-1]: p for key, p in window.predictors.made.items() if key[1] == "fast"}
    assert used[False].length_limits["mito"] > 0  # the tiny mito model's card sets a limit
    assert used[True].length_limits["mito"] is None


def test_cancel_mid_prediction_keeps_the_app_usable(window, qtbot, cdeep3m):
    window.open_path(cdeep3m / "validation" / "images")
    window.panel.progress.valueChanged.connect(lambda _v: window.panel.cancel_button.click())
    with qtbot.waitSignal(window.predictionStopped, timeout=120_000) as stopped:
        window.panel.predict_button.click()
    assert stopped.args == ["cancelled"]
    assert len(window.session.masks.get("mito", {})) < 10
    assert window.panel.predict_button.isEnabled()
    window.session.set_slice(3)
    assert window.session.z == 3


def test_bad_file_shows_an_error_dialog_and_keeps_the_stack(window, qtbot, tmp_path, cdeep3m):
    window.open_path(cdeep3m / "validation" / "images" / "images.050.png")
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a tiff at all")
    with qtbot.waitSignal(window.errorShown) as shown:
        assert not window.open_path(bad)
    assert "broken.tif" in shown.args[0]
    assert window.session.volume.shape == (1, 1024, 1024)


def test_screenshot_after_predicting(user_models, tmp_path, cdeep3m):
    out = tmp_path / "shot.png"
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        EMVIEWER_USER_DIR=str(user_models / "user"),
        EMVIEWER_MODELS_DIR=str(user_models / "bundled"),
    )
    image = cdeep3m / "validation" / "images" / "images.050.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "emviewer",
            "gui",
            str(image),
            "--object",
            "mito",
            "--predict",
            "--screenshot",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    shot = np.asarray(Image.open(out).convert("RGB"))
    assert shot.shape[0] > 300 and shot.shape[1] > 600
    magenta = (shot[..., 0] > 150) & (shot[..., 1] < 120) & (shot[..., 2] > 150)
    assert magenta.sum() > 100  # the overlay pane shows predicted mitochondria


def test_predict_then_export_a_pdf_report(window, qtbot, cdeep3m, tmp_path):
    from pypdf import PdfReader

    window.open_path(cdeep3m / "validation" / "images" / "images.051.png")
    with qtbot.waitSignal(window.predictionFinished, timeout=120_000):
        window.panel.predict_button.click()
    dialog = window._on_export()
    with qtbot.waitSignal(dialog.exportFinished, timeout=60_000):
        dialog.export_to(tmp_path / "report.pdf", "report")
    pages = PdfReader(tmp_path / "report.pdf").pages
    assert len(pages) == 2 and len(pages[1].images) == 2  # summary, then raw | overlay
    assert "mitochondria" in pages[0].extract_text()


def test_a_model_trained_in_the_app_joins_the_picker(window, user_models, qtbot):
    import shutil

    new = user_models / "user" / "models" / "mito" / "tiny_copy.keras"
    shutil.copyfile(user_models / "user" / "models" / "mito" / "tiny.keras", new)
    shutil.copyfile(user_models / "user" / "models" / "mito" / "tiny.json", new.with_suffix(".json"))
    try:
        window.train_tab.modelTrained.emit(str(new))
        combo = window.panel.rows["mito"].model
        names = [combo.itemText(i).split(" - ")[0] for i in range(combo.count())]
        assert names == ["automatic", "tiny", "tiny_copy"]
    finally:
        new.unlink()
        new.with_suffix(".json").unlink()


def test_masks_of_an_ome_zarr_prediction_store_open_over_the_stack(window, qtbot, em_stack, tmp_path):
    """A store predicted elsewhere (the CLI, a cluster), two of three slices done: its masks
    show on those slices, read from the store; one of another shape is refused in a dialog."""
    import tifffile

    from emviewer.core.predict import SliceResult
    from emviewer.core.prediction_zarr import PredictionStore

    tifffile.imwrite(tmp_path / "stack.tif", em_stack)
    assert window.open_path(tmp_path / "stack.tif")
    dark = 1 - em_stack.astype(np.float32) / 255  # "mitochondria": the dark pixels
    store = PredictionStore(tmp_path / "pred.zarr", ["mito"], em_stack.shape, record={"models": {}, "mode": "fast"})
    for z in (0, 2):
        store.add(SliceResult(z, f"slice_{z}", {"mito": dark[z]}))
    assert window.open_masks(tmp_path / "pred.zarr")
    session = window.session
    assert sorted(session.masks["mito"]) == [0, 2] and not session.unsaved
    np.testing.assert_array_equal(session.slice_masks(0)["mito"], dark[0] >= 0.5)
    session.set_slice(1)
    assert "mito" not in session.slice_masks()
    assert session.runs["mito"]["mode"] == "fast"
    other = PredictionStore(tmp_path / "other.zarr", ["mito"], (3, 100, 100), record={})
    with qtbot.waitSignal(window.errorShown) as shown:
        assert not window.open_masks(tmp_path / "other.zarr")
    assert "3 x 100 x 100" in shown.args[0] and "3 x 256 x 256" in shown.args[0]
    with qtbot.waitSignal(window.errorShown) as shown:
        assert not window.open_masks(tmp_path)
    assert "not an EMViewer prediction store" in shown.args[0]
    del other


def test_predict_region_in_view_predicts_just_that_rectangle(window, qtbot, cdeep3m, tmp_path):
    window.open_path(_two_slices(cdeep3m, tmp_path / "stack"))
    session = window.session
    session.set_slice(1)
    window.viewer.raw_view.setRange(xRange=(40, 200), yRange=(60, 180), padding=0)
    box = window.viewer.box_in_view()
    y0, y1, x0, x1 = box
    assert 0 < y0 < y1 < 256 or 0 < x0 < x1 < 256  # a part of the slice, not all of it
    changed = []
    session.masksChanged.connect(changed.append)
    with qtbot.waitSignal(window.predictionFinished, timeout=120_000):
        window.panel.region_button.click()
    assert changed == [1] and set(session.masks["mito"]) == {1}
    region = session.masks["mito"][1]
    assert region.shape == (256, 256) and not region[:y0].any() and not region[:, x1:].any()
    assert 1 not in session.probabilities.get("mito", {})  # they would cover only the region

    cropped = tmp_path / "cropped"  # the same rectangle as a stack of its own, predicted whole
    cropped.mkdir()
    for path in sorted((tmp_path / "stack").glob("*.png")):
        Image.fromarray(np.asarray(Image.open(path))[y0:y1, x0:x1]).save(cropped / path.name)
    session.unsaved.clear()  # as after a save: opening asks nothing
    assert window.open_path(cropped) and window.session.volume.shape == (2, y1 - y0, x1 - x0)
    with qtbot.waitSignal(window.predictionFinished, timeout=120_000):
        window.panel.predict_button.click()
    np.testing.assert_array_equal(region[y0:y1, x0:x1], window.session.masks["mito"][1])
    assert window.session.masks["mito"][1].any()
