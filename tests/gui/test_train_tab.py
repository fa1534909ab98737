"""The Train tab on real SBEM crops: a tiny run with live curves, Stop and Resume, bad labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emviewer.core.models.registry import list_models

TIMEOUT_MS = 120_000
#: A run small enough for a CI core: a few 128 px steps of a width-8, depth-1 DeepEM3D (tracing
#: its training step dominates: about 12 s on a busy 2-core machine, 20 s at depth 3).
TINY = {
    "arch": "deepem3d",
    "width": 8,
    "depth": 1,
    "tile": 128,
    "batch_size": 2,
    "steps_per_epoch": 3,
    "precision": "float32",
    "epochs": 1,
}


@pytest.fixture(scope="module")
def labelled(cdeep3m, tmp_path_factory) -> dict[str, Path]:
    """Four 256x256 crops of cdeep3m training slices 010-013 and their 0/1 labels."""
    root = tmp_path_factory.mktemp("train_tab_data")
    folders = {}
    for kind, stem in (("images", "images"), ("labels", "mitos_3D")):
        folders[kind] = root / kind
        folders[kind].mkdir()
        for n in range(10, 14):
            array = np.asarray(Image.open(cdeep3m / "training" / kind / f"{stem}.{n:03d}.png"))[:256, :256]
            Image.fromarray(array).save(folders[kind] / f"{stem}.{n:03d}.png")
    return folders


@pytest.fixture
def settings(tmp_path):
    """Settings in a file of the test's own, never the user's."""
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)


@pytest.fixture
def tab(qtbot, monkeypatch, tmp_path, settings):
    monkeypatch.setenv("EMVIEWER_USER_DIR", str(tmp_path / "user"))
    from emviewer.gui.tabs.train_tab import TrainTab

    widget = TrainTab(settings)
    qtbot.addWidget(widget)
    widget.show()
    return widget


def points(curve) -> list[float]:
    _, y = curve.getData()
    return [] if y is None else list(y)


def test_one_tiny_epoch_draws_curves_and_registers_the_model(tab, qtbot, labelled, tmp_path):
    assert tab.name.text() == "mito-multiresunet-1fm"
    with qtbot.waitSignal(tab.modelTrained, timeout=TIMEOUT_MS) as trained:
        assert tab.start_training(images=labelled["images"], labels=labelled["labels"], **TINY) is not None
        assert tab.is_running() and not tab.start_button.isEnabled() and tab.stop_button.isEnabled()
    out = tmp_path / "user" / "models" / "mito" / "mito-deepem3d-1fm.keras"
    assert trained.args == [str(out)]
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert json.loads(out.with_suffix(".json").read_text())["architecture"] == "deepem3d"
    assert len(points(tab.loss_curve)) == 1 and len(points(tab.f1_curve)) == 1
    assert 0.0 <= points(tab.f1_curve)[0] <= 1.0
    assert tab.progress.value() == tab.progress.maximum() == 3
    assert "done" in tab.status.text() and tab.start_button.isEnabled()
    assert [e.name for e in list_models(tmp_path / "none", tmp_path / "user" / "models")] == ["mito-deepem3d-1fm"]
    assert tab.name.text() == "mito-deepem3d-1fm-2", "the default name moves past the finished model"
    with qtbot.waitSignal(tab.trainingFailed) as refused:
        assert tab.start_training(name="mito-deepem3d-1fm") is None
    assert "exists" in refused.args[0] and "Resume" in refused.args[0]

    # Resume (to train it longer) first draws the saved epoch and restores the saved settings;
    # stopped before its first step, it keeps the checkpoint and the finished model. (A second
    # TensorFlow job on a reused Qt pool thread used to crash the process here.)
    with qtbot.waitSignal(tab.trainingStopped, timeout=TIMEOUT_MS) as stopped:
        assert tab.resume_training(epochs=2, width=16) is not None
        assert points(tab.loss_curve) == [pytest.approx(tab.history[0]["loss"])]
        assert tab.spins["width"].value() == 8, "a resumed run keeps the settings its checkpoint was made with"
        tab.stop()
    assert stopped.args == [2]
    assert tab.status.text() == "stopped; Resume continues from epoch 2"
    assert out.is_file() and tab.resume_button.isEnabled()


def test_fine_tuning_an_installed_model_keeps_its_network(tab, qtbot, labelled, tmp_path):
    with qtbot.waitSignal(tab.modelTrained, timeout=TIMEOUT_MS):
        tab.start_training(images=labelled["images"], labels=labelled["labels"], name="first", **TINY)
    assert tab.start_from.findText("first") > 0, "a finished model is offered to fine-tune"
    tab.set_fields(arch="multiresunet", context=3, width=16, start_from="first")
    # the start model's network is shown and locked: its weights only fit that network
    assert tab.combos["arch"].currentData() == "deepem3d" and not tab.combos["arch"].isEnabled()
    assert tab.combos["context"].currentData() == 1 and tab.spins["width"].value() == TINY["width"]
    assert tab.combos["context"].isEnabled(), "the weights can be adapted to another context"
    with qtbot.waitSignal(tab.modelTrained, timeout=TIMEOUT_MS) as trained:
        tab.start_training(name="tuned", context=3)
    card = json.loads(Path(trained.args[0]).with_suffix(".json").read_text())
    first = json.loads((tmp_path / "user" / "models" / "mito" / "first.json").read_text())
    assert card["initialised_from"] == {"name": "first", "sha256": first["sha256"]}
    assert card["architecture"] == "deepem3d" and card["depth"] == TINY["depth"] and card["context"] == 3
    tab.set_fields(start_from=None)
    assert tab.combos["arch"].isEnabled(), "a new network can be chosen again"


def test_stop_during_first_epoch_then_resume_completes(tab, qtbot, labelled, tmp_path):
    tab.progress.valueChanged.connect(lambda value: value > 0 and tab.stop_button.click())
    with qtbot.waitSignal(tab.trainingStopped, timeout=TIMEOUT_MS) as stopped:
        tab.start_training(
            images=labelled["images"], labels=labelled["labels"], name="stopped", **{**TINY, "steps_per_epoch": 4}
        )
    assert stopped.args == [1]
    assert tab.status.text() == "stopped; Resume continues from epoch 1"
    assert not tab.is_running() and tab.start_button.isEnabled() and tab.resume_button.isEnabled()
    assert not tab.stop_button.isEnabled()
    assert tab.folders["images"].text() == str(labelled["images"]), "nothing typed is lost"
    assert not (tmp_path / "user" / "models" / "mito" / "stopped.keras").exists()

    tab.progress.valueChanged.disconnect()
    with qtbot.waitSignal(tab.modelTrained, timeout=TIMEOUT_MS) as trained:
        tab.resume_button.click()
    assert Path(trained.args[0]).name == "stopped.keras" and Path(trained.args[0]).is_file()
    assert len(points(tab.loss_curve)) == 1 and len(points(tab.f1_curve)) == 1
    assert tab.progress.value() == 4 and "done" in tab.status.text()


def test_images_given_as_labels_fail_naming_the_file(tab, qtbot, labelled):
    with qtbot.waitSignal(tab.trainingFailed, timeout=TIMEOUT_MS) as failed:
        tab.start_training(images=labelled["images"], labels=labelled["images"], name="bad", **TINY)
    message = failed.args[0]
    assert "images.010" in message and "not binary" in message
    assert tab.status.text() == f"failed: {message}"
    assert not tab.is_running() and tab.start_button.isEnabled()
    assert tab._error_box is not None and tab._error_box.text() == message
    assert tab.folders["labels"].text() == str(labelled["images"])


def test_last_folders_are_remembered(tab, qtbot, labelled, settings):
    from emviewer.gui.tabs.train_tab import TrainTab

    with qtbot.waitSignal(tab.trainingFailed, timeout=TIMEOUT_MS):
        tab.start_training(images=labelled["images"], labels=labelled["images"], name="bad", **TINY)
    again = TrainTab(settings)
    qtbot.addWidget(again)
    assert again.folders["images"].text() == str(labelled["images"])
    assert again.folders["val_images"].text() == ""


def test_missing_folders_and_bad_fields_are_refused_before_training(tab, qtbot, labelled):
    with qtbot.waitSignal(tab.trainingFailed) as failed:
        assert tab.start_training(images="", labels="") is None
    assert "images folder" in failed.args[0]
    with qtbot.waitSignal(tab.trainingFailed) as failed:
        tab.start_training(images=labelled["images"], labels=labelled["labels"], val_images=labelled["images"])
    assert "validation labels" in failed.args[0]
    with qtbot.waitSignal(tab.trainingFailed) as failed:
        tab.start_training(val_images="", foreground="one")
    assert "foreground 'one'" in failed.args[0]
    with qtbot.waitSignal(tab.trainingFailed) as failed:
        tab.start_training(foreground="1", name="../escape")
    assert "model name" in failed.args[0]
    with qtbot.waitSignal(tab.trainingFailed) as failed:
        tab.resume_training(name="never-trained")
    assert "nothing to resume" in failed.args[0]
    assert not tab.is_running()


def test_fields_follow_object_architecture_and_context(tab):
    assert tab.train_config().hard_mining == 0.0  # off unless asked for
    tab.set_fields(object="nuclei", arch="deepem3d", context=5, hard_mining=0.5)
    assert tab.name.text() == "nuclei-deepem3d-5fm"
    config = tab.train_config()
    assert (config.object, config.arch, config.context, config.hard_mining) == ("nuclei", "deepem3d", 5, 0.5)
    tab.set_fields(name="my-model", context=3)
    assert tab.name.text() == "my-model"
    assert tab.output_path().name == "my-model.keras" and tab.output_path().parent.name == "nuclei"
    with pytest.raises(TypeError):
        tab.set_fields(colour="red")


# ---------------------------------------------------------------------------- pairing (no training: refused first)


@pytest.fixture
def shifted(labelled, tmp_path) -> dict[str, Path]:
    """The crops as a 1-based image folder (img_0001...) and 0-based label folder (label_0000...),
    numbered as a TIFF stack's slices are; and labels 010-014, one more than there are images."""
    folders = {key: tmp_path / key for key in ("images", "labels", "extra_labels")}
    for folder in folders.values():
        folder.mkdir()
    for z, (image, label) in enumerate(
        zip(sorted(labelled["images"].iterdir()), sorted(labelled["labels"].iterdir()), strict=True)
    ):
        (folders["images"] / f"img_{z + 1:04d}.png").write_bytes(image.read_bytes())
        (folders["labels"] / f"label_{z:04d}.png").write_bytes(label.read_bytes())
        (folders["extra_labels"] / label.name).write_bytes(label.read_bytes())
    (folders["extra_labels"] / "mitos_3D.014.png").write_bytes(label.read_bytes())
    return folders


def test_images_and_labels_whose_numbers_differ_are_refused(tab, qtbot, shifted):
    assert tab.pair_by.currentData() == "number"
    with qtbot.waitSignal(tab.trainingFailed, timeout=TIMEOUT_MS) as failed:
        tab.start_training(images=shifted["images"], labels=shifted["labels"], name="shifted", **TINY)
    message = failed.args[0]
    assert str(shifted["labels"]) in message and "images 1-4, labels 0-3" in message and 'Pair by "order"' in message
    assert tab.status.text() == f"failed: {message}" and not tab.is_running()


def test_unpaired_labels_are_shown_before_a_bad_validation_set_is_refused(tab, qtbot, labelled, shifted):
    warned = []
    tab.dataWarned.connect(warned.append)
    with qtbot.waitSignal(tab.trainingFailed, timeout=TIMEOUT_MS) as failed:
        tab.start_training(
            images=labelled["images"],
            labels=shifted["extra_labels"],
            val_images=shifted["images"],
            val_labels=shifted["labels"],
            name="warned",
            **TINY,
        )
    assert warned == [f"{shifted['extra_labels']}: 1 label slice(s) without a partner, skipped: mitos_3D.014"]
    assert tab.warnings.text() == f"warning: {warned[0]}"
    assert str(shifted["labels"]) in failed.args[0] and "images 1-4, labels 0-3" in failed.args[0]


def test_pair_by_order_applies_to_training_and_validation_sets(tab, qtbot, shifted):
    """By order the shifted training set loads; the validation set (4 images, 5 labels) is refused."""
    tab.set_fields(pair_by="order", images=shifted["images"], labels=shifted["labels"])
    assert tab.data_spec().pair_by == "order"
    with qtbot.waitSignal(tab.trainingFailed, timeout=TIMEOUT_MS) as failed:
        tab.start_training(val_images=shifted["images"], val_labels=shifted["extra_labels"], name="ordered", **TINY)
    assert (
        f"{shifted['extra_labels']}: pairing by order needs as many labels as images: 5 here, 4 in {shifted['images']}"
        in failed.args[0]
    )
    with pytest.raises(ValueError, match="pair_by"):
        tab.set_fields(pair_by="position")


def test_settings_are_readable_at_the_default_window_size(qtbot, monkeypatch, tmp_path, settings):
    """In the side panel of a 1400x800 main window no field is squeezed or cut off at the right
    (the forms wrap instead of scrolling sideways), and the settings get most of the height."""
    from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QLineEdit, QScrollArea

    from emviewer.gui.main_window import MainWindow

    monkeypatch.setenv("EMVIEWER_USER_DIR", str(tmp_path / "user"))
    monkeypatch.setenv("EMVIEWER_MODELS_DIR", str(tmp_path / "no-models"))
    window = MainWindow(settings)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: "loading" not in window.device_label.text(), timeout=60_000)  # its job ends first
    window.tabs.setCurrentWidget(window.train_tab)
    tab = window.train_tab
    tab.advanced.setChecked(True)
    qtbot.waitExposed(tab)
    assert (window.width(), window.height()) == (1400, 800)
    scroll = tab.findChild(QScrollArea)
    viewport = scroll.viewport()
    assert scroll.horizontalScrollBar().maximum() == 0
    assert viewport.height() >= 300  # not a sliver above the curves
    fields = [
        widget
        for kind in (QLineEdit, QAbstractSpinBox, QComboBox)
        for widget in tab.fields.findChildren(kind)
        if not isinstance(widget.parent(), QAbstractSpinBox)  # a spin box's own line edit
    ]
    assert len(fields) == 6 + 6 + 8  # line edits (folders, foreground, name), combo boxes, spin boxes
    for widget in fields:
        assert widget.isVisibleTo(tab)
        assert widget.width() >= widget.minimumSizeHint().width()
        right = widget.mapTo(viewport, widget.rect().topRight()).x()
        assert right < viewport.width(), f"{widget} ends at {right}, past the panel's {viewport.width()} px"
    assert tab.curves.height() >= 200
