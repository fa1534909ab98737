"""Correcting masks by hand: brush, eraser and fill on either pane, the keys, and undo/redo.

Real widgets and synthetic mouse events on the panes' viewport; image pixels are mapped to
widget positions through the ViewBox, at a zoom where one image pixel is several screen pixels.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLineEdit, QMainWindow, QVBoxLayout, QWidget
from scipy import ndimage

from emviewer.core.overlay import render_overlay, to_uint8
from emviewer.core.predict import SliceResult
from emviewer.core.volume import from_array
from emviewer.gui.viewer import EditToolbar, MaskEditor, SideBySideView, SliceSlider
from emviewer.gui.viewer.brush import background_region, capsule


class Workbench(QMainWindow):
    """The viewer, the slice slider, a text field and the Edit toolbar in one window, as in the app."""

    def __init__(self, session) -> None:
        super().__init__()
        self.view = SideBySideView(session)
        self.slider = SliceSlider(session)
        self.text = QLineEdit()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.slider)
        layout.addWidget(self.text)
        self.setCentralWidget(central)
        self.editor = MaskEditor(session, self.view, self)
        self.toolbar = EditToolbar(self.editor, self)
        self.addToolBar(self.toolbar)


@pytest.fixture
def bench(qtbot, session) -> Workbench:
    window = Workbench(session)
    qtbot.addWidget(window)
    window.resize(1000, 700)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(lambda: window.view.overlay_view.width() > 200)
    window.view.raw_view.setRange(xRange=(0, 128), yRange=(0, 128), padding=0)  # several screen pixels a pixel
    window.view.setFocus()
    return window


def at(bench, x: int, y: int, pane: str = "overlay_view") -> QPoint:
    """The viewport position over the centre of image pixel ``(x, y)`` of a pane."""
    scene = getattr(bench.view, pane).mapViewToScene(QPointF(x + 0.5, y + 0.5))
    return bench.view.graphics.mapFromScene(scene)


def press(bench, x, y, pane="overlay_view") -> None:
    QTest.mousePress(bench.view.graphics.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     at(bench, x, y, pane))  # fmt: skip


def move(bench, x, y, pane="overlay_view") -> None:
    QTest.mouseMove(bench.view.graphics.viewport(), at(bench, x, y, pane))


def release(bench, x, y, pane="overlay_view") -> None:
    QTest.mouseRelease(bench.view.graphics.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       at(bench, x, y, pane))  # fmt: skip


def drag(bench, points, pane="overlay_view") -> None:
    press(bench, *points[0], pane)
    for point in points[1:]:
        move(bench, *point, pane)
    release(bench, *points[-1], pane)


def key(bench, key, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    QTest.keyClick(bench.view, key, modifiers)


def along(x0: int, x1: int, y: int, step: int = 7) -> list[tuple[int, int]]:
    """Mouse positions along row ``y`` from ``x0`` to ``x1`` (a drag sends one every few pixels)."""
    return [(x, y) for x in range(x0, x1, step)] + [(x1, y)]


def brushed(shape, x0: int, x1: int, y: int, diameter: float) -> np.ndarray:
    """Independently: the pixels within ``diameter / 2`` of the pixels of a horizontal segment."""
    line = np.ones(shape, bool)
    line[y, x0 : x1 + 1] = False
    return ndimage.distance_transform_edt(line) <= diameter / 2


def shown(bench) -> np.ndarray:
    return bench.view.overlay_item.image


def expected_overlay(session, masks) -> np.ndarray:
    grey = to_uint8(session.volume.slice(session.z), *session.levels)
    return render_overlay(grey, masks, session.opacity, session.colours)


# ------------------------------------------------------------------ brush, eraser, fill


def test_the_mapping_hits_the_intended_pixels(bench):
    view = bench.view
    for x, y in [(0, 0), (37, 90), (127, 127)]:
        point = view.overlay_view.mapSceneToView(view.graphics.mapToScene(at(bench, x, y)))
        assert (int(np.floor(point.x())), int(np.floor(point.y()))) == (x, y)


def test_a_stroke_paints_the_object_along_the_path_with_the_brush_diameter(bench, session):
    key(bench, Qt.Key.Key_P)
    assert bench.editor.tool == "paint" and bench.toolbar.tool_actions["paint"].isChecked()
    drag(bench, along(40, 100, 60))
    mask = session.masks["mito"][0]
    np.testing.assert_array_equal(mask, brushed(mask.shape, 40, 100, 60, 15))
    assert np.flatnonzero(mask[:, 70]).tolist() == list(range(53, 68))  # 15 pixels across
    assert bench.editor.undo_stack.count() == 1  # the whole drag is one step
    np.testing.assert_array_equal(shown(bench), expected_overlay(session, {"mito": mask}))


def test_the_stroke_is_drawn_while_dragging(bench, session):
    key(bench, Qt.Key.Key_P)
    press(bench, 20, 30)
    for x in (30, 40, 50):
        move(bench, x, 30)
    painted = brushed(session.volume.shape[1:], 20, 50, 30, 15)
    assert "mito" not in session.masks  # stored on release
    np.testing.assert_array_equal(shown(bench), expected_overlay(session, {"mito": painted}))
    release(bench, 50, 30)
    np.testing.assert_array_equal(session.masks["mito"][0], painted)


def test_painting_marks_the_slice_edited_and_the_object_unsaved(bench, session):
    key(bench, Qt.Key.Key_P)
    assert bench.slider.spin_box.text() == "1 / 3"
    drag(bench, along(10, 30, 10))
    assert session.edited["mito"] == {0} and "mito" in session.unsaved
    assert bench.slider.spin_box.text() == "1 / 3 (edited)"
    session.set_slice(1)
    assert bench.slider.spin_box.text() == "2 / 3"


def test_undoing_every_stroke_of_a_slice_leaves_it_unedited(bench, session):
    before = np.zeros(session.volume.shape[1:], bool)
    before[40:90, 10:120] = True
    session.set_result(SliceResult(0, "", {"mito": before.astype(np.float32)}))
    key(bench, Qt.Key.Key_P)
    drag(bench, along(10, 30, 10))
    drag(bench, along(10, 30, 20))
    bench.editor.undo_stack.undo()
    assert session.edited["mito"] == {0}  # one stroke is still there
    bench.editor.undo_stack.undo()
    assert session.edited["mito"] == set() and bench.slider.spin_box.text() == "1 / 3"
    np.testing.assert_array_equal(session.masks["mito"][0], before)
    bench.editor.undo_stack.redo()
    assert session.edited["mito"] == {0}


def test_undoing_a_stroke_on_a_slice_without_a_mask_leaves_none(bench, session):
    key(bench, Qt.Key.Key_P)
    drag(bench, along(10, 30, 10))
    bench.editor.undo_stack.undo()
    assert 0 not in session.masks.get("mito", {}) and not session.edited["mito"]


def test_painting_without_a_mask_creates_one_for_the_chosen_object(bench, session, em_stack):
    session.set_result(SliceResult(0, "", {"mito": (em_stack[0] < 60).astype(np.float32)}))
    bench.toolbar.object_box.setCurrentIndex(bench.toolbar.object_box.findData("nuclei"))
    assert bench.editor.object == "nuclei"
    key(bench, Qt.Key.Key_P)
    drag(bench, along(60, 90, 80))
    assert session.masks["nuclei"][0].shape == em_stack[0].shape
    np.testing.assert_array_equal(session.masks["nuclei"][0], brushed(em_stack[0].shape, 60, 90, 80, 15))
    np.testing.assert_array_equal(session.masks["mito"][0], em_stack[0] < 60)  # the other object is untouched


def test_painting_on_the_raw_pane_edits_the_mask(bench, session):
    key(bench, Qt.Key.Key_P)
    drag(bench, along(20, 60, 100), pane="raw_view")
    np.testing.assert_array_equal(session.masks["mito"][0], brushed(session.volume.shape[1:], 20, 60, 100, 15))


def test_the_eraser_removes_only_the_object_under_the_brush(bench, session):
    before = np.zeros(session.volume.shape[1:], bool)
    before[40:90, 10:120] = True
    session.set_result(SliceResult(0, "", {"mito": before.astype(np.float32)}))
    key(bench, Qt.Key.Key_E)
    bench.toolbar.size_box.setValue(9)
    drag(bench, along(0, 127, 65))
    np.testing.assert_array_equal(session.masks["mito"][0], before & ~brushed(before.shape, 0, 127, 65, 9))
    assert session.masks["mito"][0][61:70, 10:120].sum() == 0 and session.masks["mito"][0][40:60, 10:120].all()


def test_fill_fills_the_closed_region_and_not_outside_it(bench, session):
    ring = np.zeros(session.volume.shape[1:], bool)
    ring[30:90, 30:90] = True
    ring[32:88, 32:88] = False  # a closed two-pixel wall around (32..87, 32..87)
    session.set_result(SliceResult(0, "", {"mito": ring.astype(np.float32)}))
    key(bench, Qt.Key.Key_F)
    assert bench.editor.tool == "fill"
    press(bench, 60, 50)
    release(bench, 60, 50)
    filled = session.masks["mito"][0]
    expected = ring.copy()
    expected[32:88, 32:88] = True
    np.testing.assert_array_equal(filled, expected)
    assert bench.editor.undo_stack.count() == 1
    press(bench, 60, 50)  # inside the object now: nothing to fill, no step
    release(bench, 60, 50)
    assert bench.editor.undo_stack.count() == 1


def test_navigate_pans_and_does_not_paint(bench, session):
    key(bench, Qt.Key.Key_P)
    key(bench, Qt.Key.Key_Z)
    assert bench.editor.tool == "navigate" and bench.toolbar.tool_actions["navigate"].isChecked()
    before = bench.view.view_range()
    drag(bench, along(40, 100, 60))
    assert "mito" not in session.masks and bench.editor.undo_stack.count() == 0
    assert bench.view.view_range() != before  # the left button pans


def test_painting_does_not_pan(bench):
    key(bench, Qt.Key.Key_P)
    before = bench.view.view_range()
    drag(bench, along(40, 100, 60))
    assert bench.view.view_range() == before


# ------------------------------------------------------------------ keys and undo


def test_brackets_change_the_brush_size(bench):
    assert bench.editor.brush_size == bench.toolbar.size_box.value() == 15
    key(bench, Qt.Key.Key_BracketRight)
    assert bench.editor.brush_size == bench.toolbar.size_box.value() == 18
    for _ in range(3):
        key(bench, Qt.Key.Key_BracketLeft)
    assert bench.editor.brush_size == bench.toolbar.size_box.value() < 15
    bench.toolbar.size_box.setValue(1)
    key(bench, Qt.Key.Key_BracketLeft)
    assert bench.editor.brush_size == 1


def test_a_text_field_still_receives_the_letters(qtbot, bench):
    bench.text.setFocus()
    qtbot.waitUntil(bench.text.hasFocus)
    QTest.keyClicks(bench.text, "pef[]z")
    assert bench.text.text() == "pef[]z"
    assert bench.editor.tool == "navigate" and bench.editor.brush_size == 15


def test_ctrl_z_undoes_a_stroke_and_ctrl_shift_z_redoes_it(bench, session):
    key(bench, Qt.Key.Key_P)
    drag(bench, along(40, 100, 60))
    first = session.masks["mito"][0].copy()
    drag(bench, along(40, 100, 90))
    second = session.masks["mito"][0].copy()
    assert bench.editor.undo_stack.count() == 2
    key(bench, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(session.masks["mito"][0], first)
    np.testing.assert_array_equal(shown(bench), expected_overlay(session, {"mito": first}))
    key(bench, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert 0 not in session.masks["mito"]  # back to no mask at all
    key(bench, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    np.testing.assert_array_equal(session.masks["mito"][0], first)
    bench.toolbar.redo_action.trigger()
    np.testing.assert_array_equal(session.masks["mito"][0], second)


def test_a_command_stores_only_the_changed_box(bench, session):
    key(bench, Qt.Key.Key_P)
    drag(bench, along(40, 100, 60))
    command = bench.editor.undo_stack.command(0)
    assert command.box == (53, 68, 33, 108)
    assert command.before.shape == command.after.shape == (15, 75)


def test_undo_never_pastes_over_a_newer_prediction(qtbot, bench, session, em_stack):
    key(bench, Qt.Key.Key_P)
    drag(bench, along(40, 100, 60))
    predicted = em_stack[0] < 80
    session.set_result(SliceResult(0, "", {"mito": predicted.astype(np.float32)}))
    with qtbot.waitSignal(bench.editor.message, timeout=1000):
        key(bench, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(session.masks["mito"][0], predicted)
    assert bench.editor.undo_stack.count() == 0  # that slice's step is dropped


def test_a_prediction_of_another_object_keeps_the_undo_step(bench, session, em_stack):
    key(bench, Qt.Key.Key_P)
    drag(bench, along(40, 100, 60))
    session.set_result(SliceResult(0, "", {"nuclei": (em_stack[0] < 80).astype(np.float32)}))
    key(bench, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert 0 not in session.masks["mito"]  # undone: no mito mask, as before the stroke
    np.testing.assert_array_equal(session.masks["nuclei"][0], em_stack[0] < 80)


def test_undo_checks_the_patch_still_holds(bench, session):
    key(bench, Qt.Key.Key_P)
    drag(bench, along(40, 100, 60))
    changed = session.mask_or_empty("mito", 0)
    changed[60, 70] = False  # changed behind the editor's back
    session.masks["mito"][0] = changed
    bench.editor.undo_stack.undo()
    np.testing.assert_array_equal(session.masks["mito"][0], changed)
    assert bench.editor.undo_stack.count() == 0


def test_opening_another_stack_clears_the_history(bench, session, em_stack):
    key(bench, Qt.Key.Key_P)
    drag(bench, along(40, 100, 60))
    assert bench.toolbar.undo_action.isEnabled()
    session.open(from_array(em_stack.copy()))
    assert bench.editor.undo_stack.count() == 0 and not bench.toolbar.undo_action.isEnabled()


def test_a_prediction_of_the_slice_during_a_stroke_drops_the_stroke(qtbot, bench, session, em_stack):
    key(bench, Qt.Key.Key_P)
    press(bench, 20, 30)
    move(bench, 40, 30)
    predicted = em_stack[0] < 80
    with qtbot.waitSignal(bench.editor.message, timeout=1000):
        session.set_result(SliceResult(0, "", {"mito": predicted.astype(np.float32)}))
    move(bench, 60, 30)
    release(bench, 60, 30)
    np.testing.assert_array_equal(session.masks["mito"][0], predicted)
    assert bench.editor.undo_stack.count() == 0


def test_a_prediction_of_another_object_during_a_stroke_keeps_it(bench, session, em_stack):
    session.set_result(SliceResult(0, "", {"mito": np.zeros(em_stack[0].shape, np.float32)}))
    key(bench, Qt.Key.Key_P)
    press(bench, 20, 30)
    move(bench, 40, 30)
    session.set_result(SliceResult(0, "", {"nuclei": (em_stack[0] < 80).astype(np.float32)}))
    move(bench, 60, 30)
    painted = brushed(em_stack[0].shape, 20, 60, 30, 15)
    masks = {"mito": painted, "nuclei": em_stack[0] < 80}
    np.testing.assert_array_equal(shown(bench), expected_overlay(session, masks))  # the stroke is still shown
    release(bench, 60, 30)
    np.testing.assert_array_equal(session.masks["mito"][0], painted)


# ------------------------------------------------------------------ brush geometry


def test_a_one_pixel_brush_covers_the_pixel_under_it_and_clips_at_the_edge():
    box, inside = capsule((10, 12), (3, 4), (3, 4), 1)
    assert box == (4, 5, 3, 4) and inside.tolist() == [[True]]
    box, inside = capsule((10, 12), (0, 0), (0, 0), 5)  # a corner: only the quarter inside the slice
    assert box == (0, 3, 0, 3) and inside.sum() == 8
    assert capsule((10, 12), (-20, 5), (-30, 5), 5) is None


def test_fill_finds_the_four_connected_background_region():
    mask = np.zeros((7, 7), bool)
    mask[1:6, 1:6] = True
    mask[2:5, 2:5] = False
    mask[1, 1] = False  # a diagonal gap only: the inside stays closed for 4-connectivity
    region = background_region(mask, 3, 3)
    assert region.sum() == 9 and region[2:5, 2:5].all()
    assert background_region(mask, 1, 2) is None  # on the object: nothing to fill
