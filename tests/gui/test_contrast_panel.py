"""Contrast limits: the spin boxes set the session's levels, the raw pane follows, Auto restores."""

from __future__ import annotations

import numpy as np
import pytest

from emviewer.core.volume import from_array
from emviewer.gui.viewer import ContrastPanel, SideBySideView


@pytest.fixture
def contrast(qtbot, session) -> ContrastPanel:
    widget = ContrastPanel(session)
    qtbot.addWidget(widget)
    return widget


def test_shows_the_auto_levels_of_the_opened_stack(contrast, session, em_stack):
    low, high = np.percentile(em_stack[:, ::1, ::1], (0.5, 99.5))
    assert contrast.isEnabled() and contrast.low.decimals() == 0 and contrast.high.maximum() == 255
    assert (contrast.low.value(), contrast.high.value()) == pytest.approx(session.levels)
    assert session.levels == pytest.approx((low, high), abs=2)


def test_editing_the_limits_changes_the_raw_pane(qtbot, contrast, session):
    view = SideBySideView(session)
    qtbot.addWidget(view)
    with qtbot.waitSignal(session.displayChanged, timeout=1000):
        contrast.high.setValue(100)
    with qtbot.waitSignal(session.displayChanged, timeout=1000):
        contrast.low.setValue(20)
    assert session.levels == (20.0, 100.0)
    assert tuple(view.raw_item.levels) == (20.0, 100.0)
    with qtbot.waitSignal(session.displayChanged, timeout=1000):
        contrast.auto_button.click()
    assert session.levels != (20.0, 100.0) and (contrast.low.value(), contrast.high.value()) == pytest.approx(
        session.levels
    )


def test_float_stacks_get_decimals_and_an_open_range(contrast, session):
    session.open(from_array(np.linspace(-1.5, 2.5, 3 * 32 * 32, dtype=np.float32).reshape(3, 32, 32)))
    assert contrast.low.decimals() == 4 and contrast.low.minimum() < -1.5 and contrast.high.maximum() > 2.5
    assert contrast.low.value() == pytest.approx(session.levels[0], abs=1e-4)
