"""Online mode in the app: the switch, saved settings (token owner-readable only), Predict
through a real server on loopback, and a refused token shown in a dialog."""

from __future__ import annotations

import stat

import numpy as np
import pytest
from live_server import live_server

from emviewer.core.volume import from_array


@pytest.fixture
def window(qtbot, model_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("EMVIEWER_USER_DIR", str(tmp_path / "user"))
    monkeypatch.setenv("EMVIEWER_MODELS_DIR", str(tmp_path / "no-local-models"))  # online needs none here
    from PySide6.QtCore import QSettings

    from emviewer.gui.main_window import MainWindow

    win = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    qtbot.addWidget(win)
    win.show()
    return win


def test_switch_starts_offline_and_remembers_url_and_token(window, tmp_path):
    from PySide6.QtCore import QSettings

    from emviewer import config
    from emviewer.gui.online_panel import OnlinePanel

    panel = window.online
    assert not panel.is_online() and not panel.url.isEnabled()
    panel.online_button.setChecked(True)
    panel.url.setText("http://lab-gpu:8765")
    panel.token.setText("s3cret")
    assert panel.server() == ("http://lab-gpu:8765", "s3cret")
    token_file = config.server_token_file()
    assert token_file.read_text() == "s3cret" and stat.S_IMODE(token_file.stat().st_mode) == 0o600
    again = OnlinePanel(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    assert again.is_online() and again.url.text() == "http://lab-gpu:8765" and again.token.text() == "s3cret"


def test_predict_online_fills_the_overlay(window, qtbot, model_folder, server_stack, tmp_path):
    with live_server(model_folder, tmp_path / "srv") as live:
        window.session.open(from_array(server_stack, source="crops"))
        window.online.online_button.setChecked(True)
        window.online.url.setText(live.url)
        window.online.token.setText(live.token)
        with qtbot.waitSignal(window.predictionFinished, timeout=120_000):
            window.panel.predict_button.click()
    masks = window.session.masks["mito"]
    assert sorted(masks) == [0, 1, 2, 3] and masks[0].shape == server_stack.shape[1:]
    assert 0 < np.mean([m.mean() for m in masks.values()]) < 1
    assert window.device_label.text().startswith(f"online: {live.url}")


def test_refused_token_is_shown_in_a_dialog_and_the_app_stays_usable(
    window, qtbot, model_folder, server_stack, tmp_path
):
    with live_server(model_folder, tmp_path / "srv") as live:
        window.session.open(from_array(server_stack, source="crops"))
        window.online.online_button.setChecked(True)
        window.online.url.setText(live.url)
        window.online.token.setText("wrong")
        with qtbot.waitSignal(window.predictionStopped, timeout=60_000) as stopped:
            window.panel.predict_button.click()
    assert "refused the token" in stopped.args[0] and "refused the token" in window.last_error
    assert window.panel.predict_button.isEnabled()
