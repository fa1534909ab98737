"""The adapt panel on real data: a tiny SBEM model adapted to two corrected FIB-SEM slices.

The source model is trained here on cdeep3m crops (a few seconds' worth of steps); the session
holds Lucchi++ crops whose labels stand in for the user's hand corrections.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from emviewer.core.fine_tune import FineTuneSettings
from emviewer.core.volume import from_array
from emviewer.gui.session import Session

#: Waits for a whole adaptation: on a busy 2-core machine tracing the first step takes ~1.5 min.
ADAPT_MS = 600_000
CROP = np.s_[200:456, 200:456]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def user_dir(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("EMVIEWER_USER_DIR", str(tmp_path / "user"))
    return tmp_path / "user"


@pytest.fixture
def source(sbem_model, user_dir) -> Path:
    """The tiny SBEM model (tests/conftest.py) installed in the test's user model folder (with its card)."""
    folder = user_dir / "models" / "mito"
    folder.mkdir(parents=True)
    for file in (sbem_model, sbem_model.with_suffix(".json")):
        shutil.copy2(file, folder / file.name)
    return folder / sbem_model.name


@pytest.fixture
def lucchi_session(qtbot, lucchi) -> Session:
    """Three 256 px Lucchi++ crops open; nothing corrected yet."""
    images = np.stack([np.asarray(Image.open(lucchi / "images" / f"train_{z:03d}.png"))[CROP] for z in range(3)])
    session = Session()
    session.open(from_array(images, source="lucchi++ crops"))
    return session


def correct(session: Session, lucchi: Path, zs) -> None:
    """Hand-correct slices ``zs`` (0-based): their masks become the expert labels."""
    for z in zs:
        label = np.asarray(Image.open(lucchi / "labels" / f"train_{z:03d}.png"))[CROP] > 0
        session.replace_mask("mito", z, label)


@pytest.fixture
def panel(qtbot, source, lucchi_session):
    from emviewer.gui.tabs.adapt_panel import AdaptPanel

    widget = AdaptPanel(lucchi_session)
    qtbot.addWidget(widget)
    widget.show()
    widget.set_source("mito", source)
    # steps, not the clock, end each phase: the same run on a busy machine
    widget.fine_tune_settings = FineTuneSettings(tile=128, batch_size=4, learning_rate=1e-3, max_steps=60)
    return widget


def new_models(user_dir: Path, source: Path) -> list[Path]:
    return sorted(p for p in (user_dir / "models").rglob("*") if p.is_file() and p.stem != source.stem)


def test_adapting_corrected_slices_scores_before_and_after_and_writes_only_a_better_model(
    panel, qtbot, source, user_dir, lucchi, lucchi_session
):
    correct(lucchi_session, lucchi, [0, 1])
    assert panel.slices.corrections.text() == "2 corrected slices: 1, 2"
    assert panel.adapt_button.isEnabled()
    assert panel.name.text() == f"{source.stem}-adapted-1"
    source_hash = sha256(source)
    panel.minutes.setValue(10)  # max_steps ends it first
    with qtbot.waitSignal(panel.adaptFinished, timeout=ADAPT_MS) as finished:
        qtbot.mouseClick(panel.adapt_button, Qt.MouseButton.LeftButton)
        assert not panel.adapt_button.isEnabled() and panel.cancel_button.isEnabled()
    result = finished.args[0]
    assert result.held_out == ["slice 2"] and result.trained_on == ["slice 1"]
    line = panel.result_label.text()
    assert line.startswith(f"Held-back slice 2: F1 {result.before.f1:.3f} -> {result.after.f1:.3f}, ")
    assert f"IoU {result.before.iou:.3f} -> {result.after.iou:.3f}" in line
    assert sha256(source) == source_hash  # the source is read, never written
    assert panel.adapt_button.isEnabled()
    # The tiny source never saw FIB-SEM: adapting to it must help (else nothing is written, checked below).
    assert result.better, line
    out = user_dir / "models" / "mito" / f"{source.stem}-adapted-1.keras"
    assert result.model_path == out and new_models(user_dir, source) == [out.with_suffix(".json"), out]
    assert "Not better" not in line and panel.use_button.isVisible() and panel.delete_button.isVisible()
    assert panel.source_model.findData(str(out)) >= 0  # the adapted model can be adapted further
    assert panel.name.text() == f"{source.stem}-adapted-2"
    with qtbot.waitSignal(panel.useModelRequested, timeout=1000) as use:
        qtbot.mouseClick(panel.use_button, Qt.MouseButton.LeftButton)
    assert use.args == ["mito", str(out)]
    box = panel.ask_delete()
    assert box is not None and out.name in box.text()
    box.button(QMessageBox.StandardButton.No).click()
    assert out.exists()
    box = panel.ask_delete()
    assert box is not None
    with qtbot.waitSignal(panel.modelDeleted, timeout=1000):
        box.button(QMessageBox.StandardButton.Yes).click()
    assert new_models(user_dir, source) == [] and sha256(source) == source_hash
    assert not panel.delete_button.isVisible() and panel.source_model.findData(str(out)) < 0


def test_cancel_stops_at_once_and_writes_nothing(panel, qtbot, source, user_dir, lucchi, lucchi_session):
    correct(lucchi_session, lucchi, [0, 1, 2])
    panel.minutes.setValue(0.3)
    job = panel.start_adapting()
    assert job is not None
    with qtbot.waitSignal(panel.adaptCancelled, timeout=ADAPT_MS):
        with qtbot.waitSignal(job.signals.progressed, timeout=ADAPT_MS):
            pass
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
        assert panel.cancel_button.text() == "Cancelling..." and not panel.cancel_button.isEnabled()
    assert new_models(user_dir, source) == []
    assert panel.status.text() == "cancelled; nothing was written" and panel.result_label.text() == ""
    assert panel.adapt_button.isEnabled() and panel.cancel_button.text() == "Cancel"


def test_fewer_than_two_corrected_slices_cannot_be_adapted(panel, qtbot, lucchi, lucchi_session):
    assert not panel.adapt_button.isEnabled() and "0 corrected so far" in panel.adapt_button.toolTip()
    correct(lucchi_session, lucchi, [2])
    assert panel.slices.corrections.text() == "1 corrected slice: 3"
    assert not panel.adapt_button.isEnabled() and "at least 2 slices" in panel.adapt_button.toolTip()
    assert panel.start_adapting() is None and panel.job is None
    correct(lucchi_session, lucchi, [0])  # the session says its masks changed: the panel follows
    assert panel.adapt_button.isEnabled() and panel.slices.corrections.text() == "2 corrected slices: 1, 3"
    panel.set_source("nuclei")  # corrections of another object do not count
    assert not panel.adapt_button.isEnabled() and panel.slices.corrections.text() == "0 corrected slices"


def test_a_labels_folder_that_is_not_there_fails_with_one_line(panel, qtbot, lucchi, tmp_path):
    panel.slices.use_folders(True)
    assert not panel.adapt_button.isEnabled() and "images and labels folder" in panel.adapt_button.toolTip()
    panel.slices.folders["images"].setText(str(lucchi / "images"))
    panel.slices.folders["labels"].setText(str(tmp_path / "no labels here"))
    assert panel.adapt_button.isEnabled()
    with qtbot.waitSignal(panel.adaptFailed, timeout=ADAPT_MS) as failed:
        qtbot.mouseClick(panel.adapt_button, Qt.MouseButton.LeftButton)
    message = failed.args[0]
    assert "no labels here" in message and "\n" not in message
    assert panel._dialog is not None and panel._dialog.text() == message
    assert panel.status.text() == f"failed: {message}" and panel.adapt_button.isEnabled()


def test_segment_panel_asks_for_adaptation_and_the_train_tab_holds_the_panel(qtbot, user_dir, tmp_path, lucchi_session):
    from PySide6.QtCore import QSettings

    from emviewer.gui.predict_panel import PredictPanel
    from emviewer.gui.tabs.train_tab import TrainTab

    predict = PredictPanel(lucchi_session, [])
    qtbot.addWidget(predict)
    with qtbot.waitSignal(predict.adaptRequested, timeout=1000) as asked:
        qtbot.mouseClick(predict.rows["nuclei"].adapt, Qt.MouseButton.LeftButton)
    assert asked.args == ["nuclei"]
    tab = TrainTab(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat), session=lucchi_session)
    qtbot.addWidget(tab)
    assert tab.adapt.session is lucchi_session and tab.adapt.slices.corrections.text() == "0 corrected slices"
