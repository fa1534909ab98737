"""The slice slider: slider, spin box and session stay in step without feedback loops."""

from __future__ import annotations

import pytest

from emviewer.core.volume import from_array
from emviewer.gui.session import Session
from emviewer.gui.viewer import SliceSlider


@pytest.fixture
def slider(qtbot, session) -> SliceSlider:
    widget = SliceSlider(session)
    qtbot.addWidget(widget)
    return widget


def test_starts_at_the_sessions_slice(slider, session):
    assert slider.isEnabled()
    assert (slider.slider.minimum(), slider.slider.maximum()) == (0, 2)
    assert (slider.spin_box.minimum(), slider.spin_box.maximum()) == (0, 2)
    assert slider.slider.value() == slider.spin_box.value() == session.z == 0
    assert slider.label.text() == "images.050"


def test_moving_the_slider_sets_the_slice_and_the_spin_box(qtbot, slider, session):
    with qtbot.waitSignal(session.sliceChanged, timeout=1000) as blocker:
        slider.slider.setValue(2)
    assert blocker.args == [2]
    assert session.z == 2
    assert slider.spin_box.value() == 2
    assert slider.label.text() == "images.052"


def test_the_spin_box_sets_the_slice_and_the_slider(qtbot, slider, session):
    with qtbot.waitSignal(session.sliceChanged, timeout=1000):
        slider.spin_box.setValue(1)
    assert session.z == 1
    assert slider.slider.value() == 1


def test_session_set_slice_moves_both_without_feedback(qtbot, slider, session):
    seen = []
    session.sliceChanged.connect(seen.append)
    session.set_slice(2)
    assert slider.slider.value() == slider.spin_box.value() == 2
    assert seen == [2]  # the controls did not call set_slice again


def test_a_single_slice_volume_disables_it(slider, session, em_stack):
    session.open(from_array(em_stack[0]))
    assert not slider.isEnabled()
    assert slider.slider.maximum() == 0 and slider.spin_box.maximum() == 0
    assert slider.label.text() == "slice_0000"


def test_opening_a_longer_stack_widens_the_range(slider, session, em_stack):
    session.set_slice(2)
    session.open(from_array(em_stack[[0, 1, 2, 0, 1]]))
    assert slider.isEnabled()
    assert slider.slider.maximum() == 4
    assert slider.slider.value() == slider.spin_box.value() == 0


def test_without_a_volume_it_is_disabled(qtbot):
    widget = SliceSlider(Session())
    qtbot.addWidget(widget)
    assert not widget.isEnabled()
