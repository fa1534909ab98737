"""Results are kept per object and slice, and nothing is discarded without asking (issue 20, point 1).

Real windows, real (small, untrained but deterministic) models with cards, real stacks written as
PNG slices; the Save / Discard / Cancel question is answered by clicking its real buttons.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from live_server import free_port, save_model_with_card
from PIL import Image
from PySide6.QtWidgets import QMessageBox

Answer = QMessageBox.StandardButton


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A user folder with one mito and one nuclei model (one slice of context each)."""
    root = tmp_path_factory.mktemp("keep_models")
    for name, obj, seed in (("keep-mito", "mito", 3), ("keep-nuclei", "nuclei", 5)):
        save_model_with_card(root / "user" / "models", name, obj, 1, seed=seed)
    (root / "bundled").mkdir()
    return root


@pytest.fixture
def window(qtbot, models, monkeypatch, tmp_path):
    monkeypatch.setenv("EMVIEWER_USER_DIR", str(models / "user"))
    monkeypatch.setenv("EMVIEWER_MODELS_DIR", str(models / "bundled"))
    from PySide6.QtCore import QSettings

    from emviewer.gui.main_window import MainWindow

    win = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    qtbot.addWidget(win)
    win.show()
    return win


def write_stack(folder, planes) -> object:
    """``planes`` as a folder of PNG slices (how a biologist's stack often comes)."""
    folder.mkdir()
    for z, plane in enumerate(planes):
        Image.fromarray(plane).save(folder / f"slice_{z:03d}.png")
    return folder


@pytest.fixture
def stacks(em_stack, tmp_path):
    """Two real 3-slice stacks: the EM crops and the same crops flipped."""
    return write_stack(tmp_path / "first", em_stack), write_stack(tmp_path / "second", em_stack[:, ::-1])


def predict(window, qtbot, *objects: str) -> None:
    window.panel.select_only(list(objects))
    with qtbot.waitSignal(window.predictionFinished, timeout=120_000):
        window.panel.predict_button.click()


def snapshot(session) -> dict:
    """The session's arrays per object and slice (identity shows what a run replaced)."""
    return {key: dict(planes) for key, planes in session.masks.items()}


def assert_same_arrays(now: dict, before: dict) -> None:
    assert set(now) == set(before)
    for key, planes in before.items():
        assert set(now[key]) == set(planes)
        assert all(now[key][z] is plane for z, plane in planes.items()), f"{key} masks were replaced"


def test_predicting_nuclei_after_mito_keeps_the_mito_masks(window, qtbot, stacks):
    assert window.open_path(stacks[0])
    predict(window, qtbot, "mito")
    mito = snapshot(window.session)["mito"]
    predict(window, qtbot, "nuclei")
    assert_same_arrays({"mito": window.session.masks["mito"]}, {"mito": mito})
    assert sorted(window.session.masks["nuclei"]) == [0, 1, 2]
    assert window.session.unsaved == {"mito", "nuclei"}
    assert set(window.session.slice_masks(0)) == {"mito", "nuclei"}  # both on screen, not only kept


def test_a_failed_online_predict_leaves_the_earlier_masks(window, qtbot, stacks):
    assert window.open_path(stacks[0])
    predict(window, qtbot, "mito")
    before = snapshot(window.session)
    window.online.online_button.setChecked(True)
    window.online.url.setText(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with qtbot.waitSignal(window.predictionStopped, timeout=60_000) as stopped:
        window.panel.predict_button.click()
    assert stopped.args[0] != "cancelled" and stopped.args[0] == window.last_error
    assert_same_arrays(window.session.masks, before)
    assert window.panel.predict_button.isEnabled()


def test_cancel_keeps_the_old_masks_of_slices_not_redone(window, qtbot, tmp_path, cdeep3m):
    planes = [np.asarray(Image.open(cdeep3m / "validation" / "images" / f"images.05{i}.png")) for i in range(6)]
    assert window.open_path(write_stack(tmp_path / "big", planes))
    predict(window, qtbot, "mito")
    before = snapshot(window.session)["mito"]
    redone: list[int] = []
    window.session.masksChanged.connect(redone.append)
    window.session.masksChanged.connect(lambda _z: window.panel.cancel_button.click())
    with qtbot.waitSignal(window.predictionStopped, timeout=120_000) as stopped:
        window.panel.predict_button.click()
    assert stopped.args == ["cancelled"]
    masks = window.session.masks["mito"]
    assert sorted(masks) == list(range(6))  # every slice still has a mask
    kept = [z for z in range(6) if masks[z] is before[z]]
    assert kept and sorted(set(kept) | set(redone)) == list(range(6)) and not set(kept) & set(redone)


def test_opening_another_stack_asks_and_cancel_keeps_everything(window, qtbot, stacks):
    assert window.open_path(stacks[0])
    predict(window, qtbot, "mito")
    before, volume = snapshot(window.session), window.session.volume
    assert not window.open_path(stacks[1])
    box = window.discard_box
    assert box.isVisible() and "mitochondria" in box.text()
    assert {box.standardButton(b) for b in box.buttons()} == {Answer.Save, Answer.Discard, Answer.Cancel}
    box.button(Answer.Cancel).click()
    assert window.session.volume is volume and window.session.volume.source == str(stacks[0])
    assert_same_arrays(window.session.masks, before)
    assert not window.open_path(stacks[1])
    window.discard_box.button(Answer.Discard).click()
    assert window.session.volume.source == str(stacks[1]) and window.session.masks == {}
    assert window.open_path(stacks[0])  # nothing unsaved now: no question


def test_closing_with_unsaved_results_asks_cancel_stays_and_save_writes_hdf5(window, qtbot, stacks, tmp_path):
    assert window.open_path(stacks[0])
    predict(window, qtbot, "mito", "nuclei")
    before = snapshot(window.session)
    assert not window.close()
    window.discard_box.button(Answer.Cancel).click()
    assert window.isVisible() and window.session.volume is not None
    assert_same_arrays(window.session.masks, before)
    assert not window.close()
    window.discard_box.button(Answer.Save).click()
    dialog = window.save_dialog
    assert dialog.chosen_format() == "hdf5" and dialog.chosen_content() == "all"
    out = tmp_path / "results.h5"
    with qtbot.waitSignal(dialog.exportFinished, timeout=60_000):
        dialog.export_to(out)
    assert not window.isVisible() and window.session.unsaved == set()
    with h5py.File(out, "r") as f:
        for key in ("mito", "nuclei"):
            saved = np.stack([before[key][z] for z in range(3)])
            np.testing.assert_array_equal(f[f"masks/{key}"][()], np.where(saved, 255, 0))


def test_opening_a_stack_while_predicting_asks_and_discard_stops_the_run(window, qtbot, stacks, tmp_path, cdeep3m):
    planes = [np.asarray(Image.open(cdeep3m / "validation" / "images" / f"images.05{i}.png")) for i in range(6)]
    assert window.open_path(write_stack(tmp_path / "big", planes))
    window.panel.select_only(["mito"])
    window.panel.predict_button.click()
    assert not window.open_path(stacks[1])
    assert Answer.Discard in {window.discard_box.standardButton(b) for b in window.discard_box.buttons()}
    with qtbot.waitSignal(window.predictionStopped, timeout=120_000):
        window.discard_box.button(Answer.Discard).click()
    assert window.session.volume.source == str(stacks[1])
    assert window.session.masks == {} and window.session.unsaved == set()  # the old run's slices went nowhere


def test_the_save_range_counts_as_the_slider_and_reads_back():
    from emviewer.core.export import parse_slices
    from emviewer.gui.unsaved import slices_text

    assert slices_text([5, 0, 1, 2]) == "1-3, 6"
    assert parse_slices(slices_text([0, 1, 2, 5]), 6, first=1) == [0, 1, 2, 5]
