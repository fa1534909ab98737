"""The side-by-side raw | overlay panes: linked pan/zoom, rendering, cursor readout."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from emviewer.core.overlay import render_overlay, to_uint8
from emviewer.core.predict import SliceResult
from emviewer.core.volume import LazySlices, Volume, from_array
from emviewer.gui.viewer import SideBySideView

SIZE = 256


@pytest.fixture
def view(qtbot, session) -> SideBySideView:
    widget = SideBySideView(session)
    qtbot.addWidget(widget)
    widget.resize(900, 360)
    widget.show()
    qtbot.waitExposed(widget)
    qtbot.waitUntil(lambda: widget.raw_view.width() > 100 and widget.overlay_view.width() > 100)
    return widget


def dark_regions(image: np.ndarray) -> np.ndarray:
    """A probability map with 1 where the EM slice is dark (membranes, mitochondria)."""
    return (image < np.percentile(image, 20)).astype(np.float32)


def expected_overlay(session, z: int) -> np.ndarray:
    grey = to_uint8(session.volume.slice(z), *session.levels)
    return render_overlay(grey, session.slice_masks(z), session.opacity)


def shown_overlay(view) -> np.ndarray:
    """What the overlay pane shows, as RGB uint8 (a slice without masks is shown grey, as it is)."""
    image = view.overlay_item.image
    if image.ndim == 3:
        return image
    return np.repeat(to_uint8(image, *view.overlay_item.getLevels())[..., None], 3, axis=2)


def assert_same_range(a, b) -> None:
    np.testing.assert_allclose(np.asarray(a.viewRange()), np.asarray(b.viewRange()), atol=1e-6)


def centre(view) -> tuple[float, float]:
    (x0, x1), (y0, y1) = view.view_range()
    return (x0 + x1) / 2, (y0 + y1) / 2


# ------------------------------------------------------------------ panes and linking


def test_panes_are_linked_aspect_locked_and_y_down(view):
    for pane in (view.raw_view, view.overlay_view):
        assert pane.yInverted()
        assert pane.state["aspectLocked"] == 1
        pixel_w, pixel_h = pane.viewPixelSize()
        assert pixel_w == pytest.approx(pixel_h, rel=1e-6)
    assert view.raw_item.axisOrder == view.overlay_item.axisOrder == "row-major"


def test_setting_the_left_range_moves_the_right_pane(view):
    view.raw_view.setRange(xRange=(20, 120), yRange=(30, 130), padding=0)
    assert_same_range(view.raw_view, view.overlay_view)
    assert centre(view) == pytest.approx((70, 80), abs=1e-6)
    _, (y0, y1) = view.view_range()
    assert y1 - y0 == pytest.approx(100, abs=1e-6)  # the panes are wider than tall


def test_setting_the_right_range_moves_the_left_pane(view):
    view.overlay_view.setRange(xRange=(100, 140), yRange=(150, 190), padding=0)
    assert_same_range(view.raw_view, view.overlay_view)
    assert centre(view) == pytest.approx((120, 170), abs=1e-6)


def test_zoom_in_and_out_scale_about_the_centre(view):
    view.raw_view.setRange(xRange=(40, 200), yRange=(40, 200), padding=0)
    (x0, x1), (y0, y1) = view.view_range()
    before_centre = centre(view)
    view.zoom_in()
    (a0, a1), (b0, b1) = view.view_range()
    assert (a1 - a0) == pytest.approx((x1 - x0) / 1.25, rel=1e-6)
    assert (b1 - b0) == pytest.approx((y1 - y0) / 1.25, rel=1e-6)
    assert centre(view) == pytest.approx(before_centre, abs=1e-6)
    assert_same_range(view.raw_view, view.overlay_view)
    view.zoom_out()
    np.testing.assert_allclose(view.view_range(), ((x0, x1), (y0, y1)), atol=1e-6)


def test_fit_shows_the_whole_slice(view):
    view.zoom_in()
    view.zoom_in()
    view.raw_view.translateBy(x=60, y=-30)
    view.fit()
    (x0, x1), (y0, y1) = view.view_range()
    tol = 1e-6
    assert x0 <= tol and x1 >= SIZE - tol and y0 <= tol and y1 >= SIZE - tol
    assert y1 - y0 == pytest.approx(SIZE, abs=1e-6)  # tight along the panes' short side
    assert_same_range(view.raw_view, view.overlay_view)


def test_one_to_one_maps_an_image_pixel_to_a_screen_pixel(view):
    view.fit()
    view.one_to_one()
    for pane in (view.raw_view, view.overlay_view):
        assert tuple(pane.viewPixelSize()) == pytest.approx((1.0, 1.0), rel=1e-6)
    assert centre(view) == pytest.approx((SIZE / 2, SIZE / 2), abs=1e-6)


# ------------------------------------------------------------------ rendering


def test_left_pane_shows_the_raw_slice_with_the_session_levels(view, session, em_stack):
    np.testing.assert_array_equal(view.raw_item.image, em_stack[0])
    assert tuple(view.raw_item.getLevels()) == pytest.approx(session.levels)
    session.set_levels(50, 150)
    assert tuple(view.raw_item.getLevels()) == pytest.approx((50, 150))
    # no masks: the right pane shows the raw slice too, with the same levels (rounding aside)
    np.testing.assert_allclose(shown_overlay(view), expected_overlay(session, 0), atol=1)


def test_right_pane_is_the_shared_overlay_renderer(view, session, em_stack):
    probabilities = {"mito": dark_regions(em_stack[0]), "membrane": 1 - dark_regions(em_stack[0].T)}
    session.set_result(SliceResult(0, "", probabilities))
    image = shown_overlay(view)
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, expected_overlay(session, 0))
    grey = to_uint8(em_stack[0], *session.levels)
    assert not np.array_equal(image, np.repeat(grey[..., None], 3, axis=2))


def test_changing_slice_updates_both_panes(view, session, em_stack):
    session.set_result(SliceResult(2, "", {"mito": dark_regions(em_stack[2])}))
    session.set_slice(2)
    np.testing.assert_array_equal(view.raw_item.image, em_stack[2])
    np.testing.assert_array_equal(shown_overlay(view), expected_overlay(session, 2))


def test_visibility_and_opacity_change_the_right_pane(view, session, em_stack):
    session.set_result(SliceResult(0, "", {"mito": dark_regions(em_stack[0])}))
    shown = shown_overlay(view).copy()
    session.set_opacity("mito", 0.9)
    stronger = shown_overlay(view).copy()
    assert not np.array_equal(stronger, shown)
    np.testing.assert_array_equal(stronger, expected_overlay(session, 0))
    session.set_visible("mito", False)
    grey = to_uint8(em_stack[0], *session.levels)
    np.testing.assert_array_equal(shown_overlay(view), np.repeat(grey[..., None], 3, axis=2))
    session.set_visible("mito", True)
    np.testing.assert_array_equal(shown_overlay(view), stronger)


def test_a_mask_of_slice_one_shows_only_on_slice_one(view, session, em_stack):
    grey_rgb = [np.repeat(to_uint8(s, *session.levels)[..., None], 3, axis=2) for s in em_stack]
    session.set_result(SliceResult(1, "", {"nuclei": dark_regions(em_stack[1])}))
    np.testing.assert_array_equal(shown_overlay(view), grey_rgb[0])
    session.set_slice(1)
    assert not np.array_equal(shown_overlay(view), grey_rgb[1])
    np.testing.assert_array_equal(shown_overlay(view), expected_overlay(session, 1))
    session.set_slice(2)
    np.testing.assert_array_equal(shown_overlay(view), grey_rgb[2])


def test_clearing_masks_redraws_the_plain_slice(view, session, em_stack):
    session.set_result(SliceResult(0, "", {"mito": dark_regions(em_stack[0])}))
    session.clear_masks()
    grey = to_uint8(em_stack[0], *session.levels)
    np.testing.assert_array_equal(shown_overlay(view), np.repeat(grey[..., None], 3, axis=2))


def test_opening_another_stack_redraws_and_fits(view, session, em_stack):
    view.zoom_in()
    wide = np.ascontiguousarray(np.concatenate([em_stack[1], em_stack[2]], axis=1)[:, :400])
    session.open(from_array(wide))
    np.testing.assert_array_equal(view.raw_item.image, wide)
    assert shown_overlay(view).shape == (SIZE, 400, 3)
    (x0, x1), (y0, y1) = view.view_range()
    assert x0 <= 1e-6 and x1 >= 400 - 1e-6 and y0 <= 1e-6 and y1 >= SIZE - 1e-6


class CountingSlices(LazySlices):
    """A lazy stack that counts slice reads, as a file-backed reader would decode them."""

    def __init__(self, stack: np.ndarray) -> None:
        self.stack, self.shape, self.dtype = stack, stack.shape, stack.dtype
        self.reads: list[int] = []

    def _read(self, z: int) -> np.ndarray:
        self.reads.append(z)
        return self.stack[z]


def test_redrawing_reads_only_the_current_slice_once(qtbot, session, em_stack):
    data = CountingSlices(em_stack)
    session.open(Volume(data, "counting"))
    widget = SideBySideView(session)
    qtbot.addWidget(widget)
    data.reads.clear()
    session.set_opacity("mito", 0.2)
    session.set_levels(40, 200)
    session.set_result(SliceResult(0, "", {"mito": dark_regions(em_stack[0])}))
    assert data.reads == []
    session.set_slice(2)
    session.set_visible("mito", False)
    assert data.reads == [2]


# ------------------------------------------------------------------ cursor


@pytest.mark.parametrize("pane", ["raw_view", "overlay_view"])
def test_cursor_reports_the_raw_value_under_the_mouse(qtbot, view, session, em_stack, pane):
    session.set_slice(1)
    scene_pos = getattr(view, pane).mapViewToScene(QPointF(37.6, 201.2))
    with qtbot.waitSignal(view.cursorMoved, timeout=1000) as blocker:
        view._on_mouse_moved(scene_pos)
    assert blocker.args == [37, 201, float(em_stack[1][201, 37])]


def test_cursor_outside_the_image_emits_nothing(qtbot, view):
    view.fit()
    view.zoom_out()
    scene_pos = view.raw_view.mapViewToScene(QPointF(-5.0, 10.0))
    assert view.raw_view.sceneBoundingRect().contains(scene_pos)
    with qtbot.assertNotEmitted(view.cursorMoved):
        view._on_mouse_moved(scene_pos)
