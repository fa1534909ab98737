"""The Predict / Cancel controls: Cancel answers at once, a failure shows no full bar."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from emviewer.core.progress import ESTIMATING
from emviewer.gui.predict_panel import PredictPanel


@pytest.fixture
def panel(qtbot, session):
    widget = PredictPanel(session, [])
    qtbot.addWidget(widget)
    widget.show()
    widget.set_running(True)
    return widget


def test_cancel_says_cancelling_at_once_and_cannot_be_pressed_twice(panel, qtbot):
    with qtbot.waitSignal(panel.cancelRequested, timeout=1000):
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    assert panel.cancel_button.text() == "Cancelling..."
    assert not panel.cancel_button.isEnabled()
    with qtbot.assertNotEmitted(panel.cancelRequested):
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    panel.set_running(False)  # the job said it stopped
    assert panel.cancel_button.text() == "Cancel" and not panel.cancel_button.isEnabled()
    panel.set_running(True)
    assert panel.cancel_button.text() == "Cancel" and panel.cancel_button.isEnabled()


def test_failure_after_a_full_upload_shows_no_100_percent(panel):
    panel.show_progress(10, 10, "uploading", -1.0)
    assert panel.progress.text() == "100%"
    panel.show_failed()
    assert panel.progress.value() < panel.progress.maximum()
    assert "100" not in panel.progress.text()
    assert panel.eta.text() == "failed" and panel.predict_button.isEnabled()


def test_the_cores_estimate_is_shown_rather_than_the_jobs(panel):
    panel.show_progress(0, 4, f"measuring the stack's intensities; {ESTIMATING}", -1.0)
    assert panel.eta.text().endswith(ESTIMATING)
    panel.show_progress(1, 4, "slice 1 of 2, 3 s elapsed, about 9 s left", 20.0)
    assert panel.eta.text() == "slice 1 of 2, 3 s elapsed, about 9 s left"
    panel.show_progress(1, 4, "uploading", 20.0)  # a message without one: the job's guess
    assert panel.eta.text() == "uploading, about 20 s left"
