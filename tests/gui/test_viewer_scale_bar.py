"""The viewer's scale bar: a round length at the current zoom, lower left, hidden without a pixel size."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from emviewer.core.scale_bar import scale_bar_length
from emviewer.core.volume import from_array
from emviewer.gui.viewer import SideBySideView
from emviewer.gui.viewer.scale_bar import BAR_HEIGHT, MARGIN, ViewerScaleBar


@pytest.fixture
def view(qtbot, session) -> SideBySideView:
    widget = SideBySideView(session)
    qtbot.addWidget(widget)
    widget.resize(900, 420)
    widget.show()
    qtbot.waitExposed(widget)
    qtbot.waitUntil(lambda: widget.raw_view.width() > 100)
    return widget


@pytest.fixture
def bar(view, session) -> ViewerScaleBar:
    return ViewerScaleBar(view.raw_view, session)


def screen_nm(view, pixel_nm: float) -> float:
    """nm per screen pixel in the left pane now."""
    (x0, x1), _ = view.raw_view.viewRange()
    return (x1 - x0) * pixel_nm / view.raw_view.width()


def test_hidden_until_the_pixel_size_is_known(bar, session):
    assert session.volume.pixel_size is None and not bar.isVisible()
    session.set_pixel_size((50.0, 10.0, 10.0))
    assert bar.isVisible() and bar.label.endswith(("nm", "µm"))
    session.set_pixel_size(None)
    assert not bar.isVisible()


def test_length_follows_the_zoom_and_the_bar_its_screen_size(qtbot, view, bar, session):
    session.set_pixel_size((50.0, 10.0, 10.0))
    fitted = bar.length_nm
    pane_nm = view.raw_view.width() * screen_nm(view, 10.0)
    assert fitted == scale_bar_length(pane_nm) and pane_nm / 10 <= fitted <= pane_nm / 5
    for _ in range(4):
        view.zoom_in()
    zoomed = bar.length_nm
    assert zoomed < fitted / 2  # 2.4x magnified: a shorter round length
    assert zoomed / screen_nm(view, 10.0) == pytest.approx(bar.boundingRect().width() - 4, abs=1e-6)


def test_sits_in_the_lower_left_corner_and_shows_there(qtbot, view, bar, session):
    session.set_pixel_size((50.0, 10.0, 10.0))
    pos, height = bar.pos(), bar.boundingRect().height()
    assert pos.x() == MARGIN and pos.y() + height + MARGIN == pytest.approx(view.raw_view.height())
    image = view.graphics.grab().toImage()
    middle = bar.boundingRect().bottom() - 2 - BAR_HEIGHT / 2  # half way down the bar
    points = [view.graphics.mapFromScene(bar.mapToScene(QPointF(x, middle))) for x in range(3, 40)]
    white = [image.pixelColor(p.x(), p.y()).lightness() for p in points]
    assert np.mean(np.asarray(white) > 245) > 0.8  # the white bar, drawn over the EM image


def test_a_new_stack_without_a_pixel_size_hides_it(bar, session, em_stack):
    session.set_pixel_size((50.0, 10.0, 10.0))
    session.open(from_array(em_stack.copy(), "another stack"))
    assert session.volume.pixel_size is None and not bar.isVisible()


def test_the_panes_have_one_on_each_side(view, session):
    session.set_pixel_size((50.0, 5.0, 5.0))
    assert [b.isVisible() for b in view.scale_bars] == [True, True]
