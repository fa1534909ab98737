"""What a file does not say, asked in the app: the channel to read and the voxel size."""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import tifffile


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("EMVIEWER_USER_DIR", str(tmp_path / "user"))
    monkeypatch.setenv("EMVIEWER_MODELS_DIR", str(tmp_path / "no_models"))
    from PySide6.QtCore import QSettings

    from emviewer.gui.main_window import MainWindow

    win = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.backendLoaded, timeout=120_000):  # its loader thread ends before the window does
        win.show()
    return win


def test_a_file_with_two_channels_asks_which_and_opens_it(window, em_stack, tmp_path, qtbot):
    path = tmp_path / "two_channels.h5"
    channels = np.stack([em_stack, 255 - em_stack])  # (C, Z, Y, X)
    with h5py.File(path, "w") as f:
        f["data"] = channels
    assert not window.open_path(path)
    dialog = window.file_dialog
    assert dialog.isVisible() and "2 channels" in dialog.findChild(type(dialog.layout().itemAt(0).widget())).text()
    dialog.channel.setValue(1)
    dialog.accept()
    qtbot.waitUntil(lambda: window.session.volume is not None)
    assert window.session.volume.shape == em_stack.shape
    np.testing.assert_array_equal(window.session.volume.slice(2), 255 - em_stack[2])


def test_voxel_size_is_read_shown_and_can_be_set(window, em_stack, tmp_path):
    path = tmp_path / "fiji.tif"
    tifffile.imwrite(
        path,
        em_stack,
        imagej=True,
        resolution=(1 / 0.007, 1 / 0.007),
        metadata={"spacing": 0.05, "unit": "um", "axes": "ZYX"},
    )
    assert window.open_path(path)
    assert window.session.volume.pixel_size == pytest.approx((50, 7, 7))
    assert "50 x 7 x 7 nm (z, y, x)" in window.voxel_label.text()
    dialog = window._on_pixel_size()
    dialog.z_nm.setValue(30), dialog.y_nm.setValue(4), dialog.x_nm.setValue(4)
    dialog.accept()
    assert window.session.volume.pixel_size == (30, 4, 4)
    assert "30 x 4 x 4 nm (z, y, x)" in window.voxel_label.text()


def test_nan_pixels_are_reported_once_on_opening(window, em_stack, tmp_path):
    values = em_stack.astype(np.float32)
    values[:, ::10, ::10] = np.nan
    path = tmp_path / "holes.tif"
    tifffile.imwrite(path, values)
    assert window.open_path(path)
    assert "1.0% of the pixels are NaN" in window.statusBar().currentMessage()
    assert window.session.levels[1] > window.session.levels[0] and np.isfinite(window.session.levels).all()


_QUIT_WITH_AN_HDF5_OPEN = """
import os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
app = QApplication([])
from emviewer.core.io import ReadOptions
from emviewer.gui.main_window import MainWindow
window = MainWindow(QSettings(sys.argv[2], QSettings.IniFormat))
window.show()
assert window.open_path(sys.argv[1], ReadOptions(channel=1))
app.processEvents()
"""


def test_quitting_with_an_hdf5_stack_open_exits_cleanly(em_stack, tmp_path):
    """HDF5 files are read through a Python file object; left open, they crashed the app on exit."""
    path = tmp_path / "two_channels.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.stack([em_stack, 255 - em_stack])
    env = {**os.environ, "EMVIEWER_USER_DIR": str(tmp_path / "user"), "EMVIEWER_MODELS_DIR": str(tmp_path / "none")}
    result = subprocess.run(
        [sys.executable, "-c", _QUIT_WITH_AN_HDF5_OPEN, str(path), str(tmp_path / "s.ini")],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
