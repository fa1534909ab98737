"""Issue 20's small things in the real main window: recent files after a restart, slice keys
anywhere in the viewer, 1-based slice counting, the status bar following the online switch,
the export suffix and the Help menu."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tifffile
from PySide6.QtCore import QSettings, Qt

from emviewer.core.volume import from_array
from emviewer.gui.export_dialog import ExportDialog
from emviewer.gui.viewer import SliceSlider


@pytest.fixture
def settings_file(tmp_path):
    return tmp_path / "settings.ini"  # never the user's own settings


@pytest.fixture
def make_window(qtbot, tmp_path, monkeypatch, settings_file):
    """Factory: a shown main window over an INI settings file (by default ``settings_file``)."""
    monkeypatch.setenv("EMVIEWER_USER_DIR", str(tmp_path / "user"))
    monkeypatch.setenv("EMVIEWER_MODELS_DIR", str(tmp_path / "no-models"))
    from emviewer.gui.main_window import MainWindow

    def make(path=settings_file):
        win = MainWindow(QSettings(str(path), QSettings.Format.IniFormat))
        qtbot.addWidget(win)
        win.show()
        win.activateWindow()
        qtbot.waitUntil(win.isActiveWindow, timeout=5000)  # shortcuts fire in the active window only
        # the backend loads in a job whose signals must not outlive the window
        qtbot.waitUntil(lambda: "loading" not in win.device_label.text(), timeout=60_000)
        return win

    return make


@pytest.fixture
def window(make_window):
    return make_window()


def test_recent_files_after_a_restart_show_the_one_remembered_path(make_window, settings_file, em_stack, tmp_path):
    stack = tmp_path / "one, stack & co.tif"  # a comma and an ampersand must survive the round trip
    tifffile.imwrite(stack, em_stack, photometric="minisblack")
    first = make_window()
    assert first.open_path(stack)
    first.close()
    first.settings.sync()
    # Qt caches a settings file per process: a copy is read from disk, as at the next start
    restart = shutil.copy(settings_file, tmp_path / "restart.ini")
    assert isinstance(QSettings(str(restart), QSettings.Format.IniFormat).value("recent"), str)  # the item, not a list
    again = make_window(restart)
    actions = again.recent_menu.actions()
    assert [a.text().replace("&&", "&") for a in actions] == [str(stack)]
    actions[0].trigger()
    assert again.session.volume is not None and again.session.volume.shape == em_stack.shape


def test_slice_counter_counts_from_one(qtbot, session, em_stack):
    slider = SliceSlider(session)
    qtbot.addWidget(slider)
    session.open(from_array(em_stack[[0, 1, 2, 0, 1]]))
    assert slider.spin_box.text() == "1 / 5"
    session.set_slice(4)
    assert slider.spin_box.text() == "5 / 5" and slider.spin_box.value() == 4  # the value stays 0-based
    slider.spin_box.lineEdit().setText("2 / 5")  # typed 1-based
    slider.spin_box.interpretText()
    assert session.z == 1


@pytest.mark.parametrize(
    "key, start, expected",
    [(Qt.Key.Key_Period, 0, 1), (Qt.Key.Key_Right, 0, 1), (Qt.Key.Key_Comma, 2, 1), (Qt.Key.Key_Left, 2, 1)],
)
def test_slice_keys_work_with_the_focus_in_the_panes(qtbot, window, em_volume, key, start, expected):
    window.session.open(em_volume)
    window.session.set_slice(start)
    panes = window.viewer.graphics
    qtbot.mouseClick(panes.viewport(), Qt.MouseButton.LeftButton)  # a click in the image gives it the focus
    qtbot.waitUntil(panes.hasFocus, timeout=5000)
    qtbot.keyClick(panes, key)
    assert window.session.z == expected
    assert window.slider.spin_box.value() == expected


def test_slice_keys_stay_out_of_text_fields(qtbot, window, em_volume):
    window.session.open(em_volume)
    window.session.set_slice(1)
    spin = window.slider.spin_box.lineEdit()  # inside the slider, which has the slice keys
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus, timeout=5000)
    spin.setCursorPosition(1)
    qtbot.keyClick(spin, Qt.Key.Key_Left)
    assert window.session.z == 1 and spin.cursorPosition() == 0  # the arrow moved the text cursor
    window.online.online_button.setChecked(True)
    url = window.online.url
    url.setFocus()
    qtbot.waitUntil(url.hasFocus, timeout=5000)
    qtbot.keyClick(url, Qt.Key.Key_Period)
    assert window.session.z == 1 and url.text().endswith(".")


def test_status_bar_follows_the_online_switch(qtbot, window):
    local = window.device_label.text()
    window.online.url.setText("http://lab-gpu:8765")
    window.online.online_button.setChecked(True)
    assert window.device_label.text() == "online: http://lab-gpu:8765"
    window.online.offline_button.setChecked(True)
    assert window.device_label.text() == local and "online" not in local


@pytest.mark.parametrize("fmt, suffix", [("PDF", ".pdf"), ("TIFF", ".tif"), ("HDF5", ".h5")])
def test_export_adds_the_suffix_when_missing(qtbot, session, tmp_path, fmt, suffix):
    from emviewer.core.predict import SliceResult

    for z in range(len(session.volume)):
        session.set_result(SliceResult(z, "", {"mito": np.zeros(session.volume.shape[1:], np.float32)}))
    dialog = ExportDialog(session)
    qtbot.addWidget(dialog)
    dialog.format_box.setCurrentText(fmt)
    dialog.path_edit.setText(str(tmp_path / "report"))
    with qtbot.waitSignal(dialog.exportFinished, timeout=30_000) as blocker:
        dialog.start_export()
    assert blocker.args[0][0] == tmp_path / f"report{suffix}" and (tmp_path / f"report{suffix}").is_file()
    assert dialog.path_edit.text() == str(tmp_path / f"report{suffix}")


def test_help_menu_lists_the_shortcuts(window):
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    help_menu.actions()[0].trigger()
    text = window.help_box.text()
    for keys, what in ((", or Left", "previous slice"), (". or Right", "next slice"), ("Ctrl+E", "Export...")):
        assert f"{keys}\t{what}" in text


def test_a_restart_brings_back_opacity_colour_contrast_and_size(make_window, settings_file, em_stack, tmp_path):
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, em_stack, photometric="minisblack")
    first = make_window()
    first.resize(760, 520)  # within the offscreen screen, which a restore keeps the window inside
    size = first.size()
    assert first.open_path(stack)
    first.session.set_opacity("nuclei", 0.8)
    first.session.set_colour("mito", (10, 200, 30))
    first.session.set_levels(20.0, 90.0)
    first.close()
    first.settings.sync()
    restart = shutil.copy(settings_file, tmp_path / "restart.ini")  # read from disk, as at the next start
    again = make_window(restart)
    assert again.size() == size
    assert again.session.opacity["nuclei"] == pytest.approx(0.8) and again.session.colours["mito"] == (10, 200, 30)
    assert again.panel.rows["nuclei"].opacity.value() == 80
    assert again.open_path(stack) and again.session.levels == pytest.approx((20.0, 90.0))  # same stack: its contrast
