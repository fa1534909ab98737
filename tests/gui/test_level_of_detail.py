"""Large slices in the panes: an overview from the OME-Zarr pyramid, the region in view at full
resolution once zoomed in, masks and hand edits on it (issue 22, part 5)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from PySide6.QtCore import QPointF

from emviewer.core.display_levels import OVERVIEW_SIDE
from emviewer.core.io import open_volume
from emviewer.core.predict import SliceResult
from emviewer.gui.viewer import SideBySideView

HEIGHT, WIDTH = 2 * OVERVIEW_SIDE + 300, 3000  # overview step 4


@pytest.fixture(scope="module")
def stack() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (2, HEIGHT, WIDTH), dtype=np.uint8)


@pytest.fixture(scope="module")
def store(tmp_path_factory, stack):
    from ome_zarr.scale import Methods
    from ome_zarr.writer import write_image

    path = tmp_path_factory.mktemp("lod") / "big.zarr"
    write_image(
        stack, zarr.open_group(str(path), mode="w"), axes="zyx", scale_factors=(2, 4, 8), method=Methods.LOCAL_MEAN
    )
    return path


@pytest.fixture
def big_view(qtbot, session, store):
    session.open(open_volume(store))
    widget = SideBySideView(session)
    qtbot.addWidget(widget)
    widget.resize(900, 500)
    widget.show()
    qtbot.waitExposed(widget)
    qtbot.waitUntil(lambda: widget.raw_view.width() > 100)
    widget.fit()
    widget.update_detail()
    return widget


def test_a_large_slice_opens_as_its_pyramid_level(big_view, session):
    level = np.asarray(session.volume.overviews[1][0])  # 1/4 of the size: the overview's step
    np.testing.assert_array_equal(big_view.raw_item.image, level)
    assert not big_view.raw_detail.isVisible()
    rect = big_view.raw_item.mapRectToView(big_view.raw_item.boundingRect())
    assert (rect.width(), rect.height()) == pytest.approx((level.shape[1] * 4, level.shape[0] * 4))


def test_zooming_in_shows_the_region_in_view_at_full_resolution(qtbot, big_view, session, stack):
    big_view.centre_on(1500.0, 3000.0)
    big_view.one_to_one()
    qtbot.waitUntil(lambda: big_view.raw_detail.isVisible(), timeout=2000)  # read once the view rests
    detail = big_view._detail
    assert detail.step == 1
    y0, y1, x0, x1 = detail.box
    np.testing.assert_array_equal(big_view.raw_detail.image, stack[0, y0:y1, x0:x1])
    (vx0, vx1), (vy0, vy1) = big_view.view_range()
    assert y0 <= max(vy0, 0) and y1 >= min(vy1, HEIGHT) and x0 <= max(vx0, 0) and x1 >= min(vx1, WIDTH)
    assert (y1 - y0) * (x1 - x0) < HEIGHT * WIDTH / 4  # only around the view, not the slice
    scene = big_view.raw_view.mapViewToScene(QPointF(1501.5, 3002.5))
    with qtbot.waitSignal(big_view.cursorMoved, timeout=1000) as blocker:
        big_view._on_mouse_moved(scene)
    assert blocker.args == [1501, 3002, float(stack[0, 3002, 1501])]
    big_view.fit()
    big_view.update_detail()
    assert not big_view.raw_detail.isVisible()


def test_masks_and_a_hand_edit_show_on_the_detail(qtbot, big_view, session, stack):
    from emviewer.gui.viewer.mask_editor import MaskEditor

    probability = (stack[0] > 200).astype(np.float32)
    session.set_result(SliceResult(0, "", {"mito": probability}))
    big_view.centre_on(1000.0, 1000.0)
    big_view.one_to_one()
    big_view.update_detail()
    y0, y1, x0, x1 = big_view._detail.box
    shown = big_view.overlay_detail.image
    assert shown.shape == (y1 - y0, x1 - x0, 3)
    inside = probability[y0:y1, x0:x1] > 0
    assert (shown[inside] != shown[inside][:, :1]).any()  # coloured where a mask is
    assert (shown[~inside] == shown[~inside][:, :1]).all()  # grey elsewhere
    overview = big_view.overlay_item.image
    assert overview.shape[:2] == big_view.raw_item.image.shape  # the overview is coloured too

    editor = MaskEditor(session, big_view)
    editor.set_object("mito")
    editor.set_tool("paint")
    editor.set_brush_size(9)
    session.masks["mito"][0][990:1011, 990:1011] = False
    session.masksChanged.emit(0)
    editor.begin_stroke(1000, 1000)
    preview = big_view.overlay_detail.image[1000 - y0, 1000 - x0]
    assert preview[0] != preview[1] or preview[1] != preview[2]  # painted on the full-resolution detail
    editor.end_stroke()
    assert session.masks["mito"][0][1000, 1000]
    assert not session.masks["mito"][0][1000, 1020]


def test_stored_masks_show_from_the_store_without_reading_whole_slices(qtbot, big_view, session, stack, tmp_path):
    """Masks of a prediction store on a large slice: the overview's come from the store's
    pyramid (a coarse level: an object anywhere in the pixels a shown pixel stands for shows),
    the detail's from the region read at full resolution; no whole slice is read to show them."""
    from emviewer.core.prediction_zarr import PredictionStore, open_store_masks

    probability = (stack[0] > 200).astype(np.float32)
    store = PredictionStore(tmp_path / "pred.zarr", ["mito"], stack.shape, record={"models": {}})
    store.add(SliceResult(0, "", {"mito": probability}))
    masks, done, record = open_store_masks(tmp_path / "pred.zarr")
    session.show_stored_masks(masks, done, record)
    stored = session.masks["mito"]
    overview = big_view.overlay_item.image
    coarse = np.asarray(masks["mito"].overviews[1][0]) > 0  # level 2: every 4 x 4 pixels in one
    assert overview.shape[:2] == coarse.shape
    assert np.array_equal(overview[..., 0] != overview[..., 1], coarse)  # coloured exactly where the level says

    big_view.centre_on(1000.0, 1000.0)
    big_view.one_to_one()
    big_view.update_detail()
    y0, y1, x0, x1 = big_view._detail.box
    shown = big_view.overlay_detail.image
    np.testing.assert_array_equal(shown[..., 0] != shown[..., 1], probability[y0:y1, x0:x1] >= 0.5)
    assert not stored._read  # neither view read the slice whole
    assert stored.window(0, (0, 8, 0, 8), 1).shape == (8, 8)
    with pytest.raises(KeyError):
        stored.window(1, (0, 8, 0, 8), 1)  # slice 1 was not predicted
