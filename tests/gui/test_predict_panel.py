"""The Predict / Cancel controls: Cancel answers at once, a failure shows no full bar."""

from __future__ import annotations

import numpy as np
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


# ------------------------------------------------------------------ colour picker


def test_the_swatch_opens_a_colour_picker_whose_choice_recolours_the_overlay(qtbot, session):
    from PySide6.QtGui import QColor

    from emviewer.core.overlay import render_overlay, to_uint8
    from emviewer.gui.viewer import SideBySideView

    panel, view = PredictPanel(session, []), SideBySideView(session)
    for widget in (panel, view):
        qtbot.addWidget(widget)
        widget.show()
    mask = np.zeros(session.volume.shape[1:], bool)
    mask[40:80, 100:150] = True
    session.replace_mask("mito", 0, mask)
    before = view.overlay_item.image[60, 120].copy()
    row = panel.rows["mito"]
    qtbot.mouseClick(row.swatch, Qt.MouseButton.LeftButton)
    assert row.colour_dialog is not None and row.colour_dialog.isVisible()
    assert row.colour_dialog.currentColor() == QColor(*session.colours["mito"])
    row.colour_dialog.setCurrentColor(QColor(0, 0, 255))
    with qtbot.waitSignal(session.displayChanged, timeout=1000):
        row.colour_dialog.accept()
    assert session.colours["mito"] == (0, 0, 255)
    assert "rgb(0, 0, 255)" in row.swatch.styleSheet()
    after = view.overlay_item.image[60, 120]
    assert after[2] > before[2] and after[0] < before[0]  # bluer than the default mito colour
    grey = to_uint8(session.volume.slice(0), *session.levels)
    expected = render_overlay(grey, {"mito": mask}, session.opacity, {"mito": (0, 0, 255)})
    np.testing.assert_array_equal(view.overlay_item.image, expected)


def test_a_cancelled_colour_picker_changes_nothing(qtbot, session):
    from PySide6.QtGui import QColor

    panel = PredictPanel(session, [])
    qtbot.addWidget(panel)
    colour = session.colours["nuclei"]
    dialog = panel.rows["nuclei"].choose_colour()
    dialog.setCurrentColor(QColor(1, 2, 3))
    dialog.reject()
    assert session.colours["nuclei"] == colour
    assert f"rgb({colour[0]}, {colour[1]}, {colour[2]})" in panel.rows["nuclei"].swatch.styleSheet()


def test_swatches_follow_colours_set_elsewhere(qtbot, session):
    panel = PredictPanel(session, [])
    qtbot.addWidget(panel)
    session.set_colour("membrane", (10, 20, 30))
    assert "rgb(10, 20, 30)" in panel.rows["membrane"].swatch.styleSheet()


def test_predict_and_show_are_separate_boxes(qtbot, session):
    """Unticking an object for the next Predict keeps its masks on screen; "show" hides them."""
    panel = PredictPanel(session, [])
    qtbot.addWidget(panel)
    mito = panel.rows["mito"]
    mito.check.setChecked(False)
    assert session.visible["mito"] and "mito" not in panel.selected_objects()
    mito.shown.setChecked(False)
    assert not session.visible["mito"]
    session.set_visible("mito", True)  # e.g. the mask editor shows the object it paints
    assert mito.shown.isChecked()


def test_the_tooltip_says_when_a_model_takes_its_slices_at_another_zoom(tmp_path):
    from emviewer.core.models.card import ModelCard
    from emviewer.core.models.registry import ModelEntry
    from emviewer.gui.predict_panel import card_tooltip

    def tooltip(**fields) -> str:
        return card_tooltip(ModelEntry("m", tmp_path / "m.keras", ModelCard(object="mito", **fields), False))

    assert "slices taken at zoom 0.59" in tooltip(input_zoom=0.59)
    assert "zoom" not in tooltip()
