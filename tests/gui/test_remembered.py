"""What the app remembers between starts: window, opacity, colours, contrast, last folder and export
format, restored from a real INI file after a restart; malformed values fall back to the defaults."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tifffile
from PySide6.QtCore import QSettings

from emviewer.core.io import open_volume
from emviewer.core.objects import OBJECTS
from emviewer.core.predict import SliceResult
from emviewer.gui import remembered
from emviewer.gui.export_dialog import ExportDialog
from emviewer.gui.session import Session


def ini(path) -> QSettings:
    return QSettings(str(path), QSettings.Format.IniFormat)  # never the user's own settings


def restart(settings: QSettings, tmp_path, name="restart.ini") -> QSettings:
    """The settings as the next start reads them: Qt caches a file per process, so a copy is read."""
    settings.sync()
    return ini(shutil.copy(settings.fileName(), tmp_path / name))


@pytest.fixture
def make_window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("EMVIEWER_USER_DIR", str(tmp_path / "user"))
    monkeypatch.setenv("EMVIEWER_MODELS_DIR", str(tmp_path / "no-models"))
    from emviewer.gui.main_window import MainWindow

    def make(settings: QSettings):
        win = MainWindow(settings)
        qtbot.addWidget(win)
        # the backend loads in a job whose signals must not outlive the window
        qtbot.waitUntil(lambda: "loading" not in win.device_label.text(), timeout=60_000)
        return win

    return make


def test_a_restart_restores_geometry_opacity_colour_and_last_folder(make_window, qtbot, tmp_path):
    first = make_window(ini(tmp_path / "settings.ini"))
    first.resize(760, 540)  # within the offscreen screen (800 x 600), which a restore keeps to
    first.show()
    qtbot.waitUntil(lambda: first.width() == 760)
    size = (first.width(), first.height())  # the height as the window's minimum allows
    first.session.set_opacity("nuclei", 0.8)
    first.session.set_colour("mito", (12, 200, 34))
    remembered.remember_folder(first.settings, tmp_path / "stack.tif")  # a file: its folder is remembered
    remembered.save_window(first, first.settings)
    remembered.save_display(first.session, first.settings)

    settings = restart(first.settings, tmp_path)
    again = make_window(settings)
    assert remembered.restore_window(again, settings)
    remembered.restore_display(again.session, settings)
    again.show()
    assert (again.width(), again.height()) == size != (1400, 800)
    assert again.session.opacity["nuclei"] == pytest.approx(0.8)
    assert again.session.colours["mito"] == (12, 200, 34)
    assert again.panel.rows["nuclei"].opacity.value() == 80  # the panel follows
    assert "rgb(12, 200, 34)" in again.panel.rows["mito"].swatch.styleSheet()
    assert remembered.last_folder(settings) == str(tmp_path)


def test_contrast_comes_back_for_the_same_stack_only(qtbot, tmp_path, em_stack):
    settings = ini(tmp_path / "settings.ini")
    paths = [tmp_path / "a.tif", tmp_path / "b.tif"]
    for path, stack in zip(paths, (em_stack, em_stack[::-1]), strict=True):
        tifffile.imwrite(path, stack, photometric="minisblack")
    session = Session()
    session.open(open_volume(paths[0]))
    session.set_levels(30.0, 140.5)
    remembered.save_display(session, settings)
    settings = restart(settings, tmp_path)

    again = Session()
    again.volumeChanged.connect(lambda: remembered.restore_levels(again, settings))
    again.open(open_volume(paths[1]))
    auto = again.levels
    assert auto != (30.0, 140.5)  # another stack: its own percentiles
    again.open(open_volume(paths[0]))
    assert again.levels == (30.0, 140.5)
    again.open(open_volume(paths[1]))
    assert again.levels == auto


def test_the_export_dialog_opens_at_the_format_last_written(qtbot, session, tmp_path):
    settings = ini(tmp_path / "settings.ini")
    session.set_result(SliceResult(0, "", {"mito": np.ones(session.volume.shape[1:], np.float32)}))
    dialog = ExportDialog(session, settings=settings)
    qtbot.addWidget(dialog)
    assert dialog.chosen_format() == "hdf5"  # the first format: nothing remembered yet
    out = tmp_path / "exports"
    out.mkdir()
    with qtbot.waitSignal(dialog.exportFinished, timeout=30_000):
        dialog.export_to(out / "masks.tif", "mask", "1")
    settings = restart(settings, tmp_path)
    reopened = ExportDialog(session, settings=settings)
    qtbot.addWidget(reopened)
    assert reopened.chosen_format() == "tiff"
    assert remembered.last_folder(settings) == str(out)
    plain = ExportDialog(session)  # without settings nothing is remembered
    qtbot.addWidget(plain)
    assert plain.chosen_format() == "hdf5"


MALFORMED = """\
[window]
geometry=garbage
state=12

[display]
mito\\opacity=abc
nuclei\\opacity=7
membrane\\opacity=0.2, 0.4
mito\\colour=#zzzzzz
nuclei\\colour=12
membrane\\colour=1, 2

[contrast]
source=cdeep3m validation crops
levels=5

[files]
last_folder=a, b

[export]
format=nonsense
"""


def test_malformed_values_fall_back_to_the_defaults(qtbot, session, tmp_path):
    path = tmp_path / "bad.ini"
    path.write_text(MALFORMED)
    settings = ini(path)
    from PySide6.QtWidgets import QMainWindow

    window = QMainWindow()
    qtbot.addWidget(window)
    window.resize(640, 480)
    assert not remembered.restore_window(window, settings)
    assert (window.width(), window.height()) == (640, 480)
    levels = session.levels
    remembered.restore_display(session, settings)
    assert not remembered.restore_levels(session, settings)  # the same stack, but no two numbers
    assert session.levels == levels
    assert session.opacity == dict.fromkeys(OBJECTS, 0.45)
    assert session.colours == {key: kind.colour for key, kind in OBJECTS.items()}
    assert remembered.last_folder(settings) == ""
    assert remembered.last_export_format(settings, ("hdf5", "tiff")) is None


def test_values_read_back_as_text_or_one_item_lists_are_converted(qtbot, session, tmp_path):
    path = tmp_path / "text.ini"
    path.write_text(f"[display]\nmito\\opacity=0.25\nnuclei\\colour=10, 20, 30\n[files]\nlast_folder={tmp_path}\n")
    settings = ini(path)
    assert isinstance(settings.value("display/mito/opacity"), str)
    remembered.restore_display(session, settings)
    assert session.opacity["mito"] == pytest.approx(0.25)
    assert session.colours["nuclei"] == (10, 20, 30)
    assert remembered.last_folder(settings) == str(tmp_path)
    assert remembered.read_float(["0.5"], 0.0) == 0.5
    assert remembered.read_float("nan", 1.0) == 1.0
    assert remembered.read_colour(["1", "2", "300"]) is None
    assert remembered.read_colour("#0A0b0C") == (10, 11, 12)
