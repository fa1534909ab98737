"""The measure tab on real Lucchi++ mitochondria labels (0/255, 255 = mitochondrion) used as the
session's masks, checked against an independent count with scipy."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from scipy import ndimage

from emviewer.core.predict import SliceResult
from emviewer.core.volume import from_array
from emviewer.gui.session import Session
from emviewer.gui.tabs import MeasureTab
from emviewer.gui.tabs.measure_tab import SORT_ROLE, STALE
from emviewer.gui.viewer.panes import SideBySideView

TIMEOUT = 30_000
SLICES = 4  # train_000-003: 22 mitochondria in 3D, one of them a single voxel
MIN_SIZE = 100


@pytest.fixture(scope="module")
def lucchi_stack(lucchi) -> tuple[np.ndarray, np.ndarray]:
    """``(images, masks)``: four consecutive 768 x 1024 slices, uint8 and bool (label 255)."""
    images, labels = [], []
    for z in range(SLICES):
        with Image.open(lucchi / "images" / f"train_{z:03d}.png") as image:
            images.append(np.asarray(image))
        with Image.open(lucchi / "labels" / f"train_{z:03d}.png") as label:
            labels.append(np.asarray(label) == 255)
    return np.stack(images), np.stack(labels)


def open_session(qtbot, images, pixel_size=(5.0, 5.0, 5.0)) -> Session:
    session = Session()
    session.open(from_array(images.copy(), source="lucchi train_000-003", pixel_size=pixel_size))
    return session


def predict_as(session: Session, masks: np.ndarray, slices=None) -> None:
    for z in range(len(masks)) if slices is None else slices:
        session.set_result(SliceResult(z, "", {"mito": masks[z].astype(np.float32)}))


def make_tab(qtbot, session: Session) -> MeasureTab:
    tab = MeasureTab(session)
    qtbot.addWidget(tab)
    tab.resize(900, 600)
    tab.show()
    qtbot.waitExposed(tab)
    return tab


def measure(qtbot, tab: MeasureTab, min_size: int = MIN_SIZE):
    tab.min_size_spin.setValue(min_size)
    with qtbot.waitSignal(tab.measured, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(tab.measure_button, Qt.MouseButton.LeftButton)
    return blocker.args[0]


def kept_sizes(mask: np.ndarray, min_size: int, per_slice: bool = False) -> np.ndarray:
    """Sizes of the objects of ``mask`` with at least ``min_size`` voxels, full connectivity."""
    structure = np.ones((3, 3, 3), bool)
    if per_slice:
        structure[0] = structure[2] = False
    labels, _ = ndimage.label(mask, structure)
    sizes = np.bincount(labels.ravel())[1:]
    return sizes[sizes >= min_size]


def column(tab: MeasureTab, name: str, role=SORT_ROLE) -> list:
    """A column as the view shows it (sorted as the view is), through the proxy."""
    c = tab.model._names.index(name)
    return [tab.proxy.data(tab.proxy.index(r, c), role) for r in range(tab.proxy.rowCount())]


def test_table_counts_objects_as_scipy_does(qtbot, lucchi_stack):
    images, masks = lucchi_stack
    session = open_session(qtbot, images)
    predict_as(session, masks)
    tab = make_tab(qtbot, session)
    assert not tab.per_slice_check.isChecked()  # 3D for a stack
    result = measure(qtbot, tab)
    expected = kept_sizes(masks, MIN_SIZE)
    assert 0 < len(expected) < len(kept_sizes(masks, 0))  # the size filter drops something here
    assert tab.proxy.rowCount() == len(expected) == len(result.table)
    assert sum(column(tab, "voxels")) == expected.sum()
    assert column(tab, "id") == list(range(1, len(expected) + 1))  # shown by id, 1 first
    assert sum(column(tab, "volume_um3")) == pytest.approx(expected.sum() * 0.005**3, rel=1e-4)
    headers = [tab.model.headerData(c, Qt.Orientation.Horizontal) for c in range(tab.model.columnCount())]
    assert headers == list(result.table.columns) and "mean_intensity" in headers
    assert "measured 4 of 4 slices" in tab.status.text()
    assert "µm" in tab.header.text() and f"{len(expected)} objects (3D)" in tab.summary.text()
    assert "volume fraction" in tab.summary.text()


def test_slices_not_predicted_count_as_empty(qtbot, lucchi_stack):
    images, masks = lucchi_stack
    session = open_session(qtbot, images)
    predict_as(session, masks, slices=[1, 3])
    tab = make_tab(qtbot, session)
    measure(qtbot, tab)
    shown = masks.copy()
    shown[[0, 2]] = False
    assert tab.proxy.rowCount() == len(kept_sizes(shown, MIN_SIZE))
    assert "measured 2 of 4 slices" in tab.status.text()
    table = tab.model.table
    assert table is not None and table.z_offset == 1 and table.labels.shape == (3, *masks.shape[1:])
    tab.per_slice_check.setChecked(True)
    result = measure(qtbot, tab)
    assert result.table.dims == 2 and tab.proxy.rowCount() == len(kept_sizes(shown, MIN_SIZE, per_slice=True))
    assert sum(column(tab, "pixels")) == kept_sizes(shown, MIN_SIZE, per_slice=True).sum()
    assert set(column(tab, "first_slice")) == {1.0, 3.0}


def test_sorting_by_size_is_numeric(qtbot, lucchi_stack):
    images, masks = lucchi_stack
    session = open_session(qtbot, images)
    predict_as(session, masks)
    tab = make_tab(qtbot, session)
    measure(qtbot, tab, min_size=0)
    c = tab.model._names.index("voxels")
    tab.view.sortByColumn(c, Qt.SortOrder.AscendingOrder)
    texts = column(tab, "voxels", Qt.ItemDataRole.DisplayRole)
    assert [int(t) for t in texts] == sorted(int(t) for t in texts)
    assert texts != sorted(texts)  # as text, "1" < "10588" < "3030": would fail if sorted as strings
    tab.view.sortByColumn(c, Qt.SortOrder.DescendingOrder)
    assert column(tab, "voxels") == sorted(column(tab, "voxels"), reverse=True)


def test_clicking_a_row_emits_its_centroid(qtbot, lucchi_stack):
    images, masks = lucchi_stack
    session = open_session(qtbot, images)
    predict_as(session, masks)
    tab = make_tab(qtbot, session)
    measure(qtbot, tab)
    tab.view.sortByColumn(tab.model._names.index("voxels"), Qt.SortOrder.DescendingOrder)
    row = 2
    z, y, x = (column(tab, f"centroid_{a}_px")[row] for a in "zyx")
    rect = tab.view.visualRect(tab.proxy.index(row, 1))
    with qtbot.waitSignal(tab.objectChosen, timeout=TIMEOUT) as blocker:
        QTest.mouseClick(tab.view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center())
    assert blocker.args[0] == round(z) and blocker.args[1:] == pytest.approx([y, x])
    # independently: the third largest object's centre of mass, by scipy
    labels, _ = ndimage.label(masks, np.ones((3, 3, 3), bool))
    third = np.argsort(np.bincount(labels.ravel())[1:])[::-1][row] + 1
    cz, cy, cx = ndimage.center_of_mass(labels == third)
    assert blocker.args[0] == round(cz) and blocker.args[1:] == pytest.approx([cy, cx])


def test_export_writes_the_table(qtbot, lucchi_stack, tmp_path):
    images, masks = lucchi_stack
    session = open_session(qtbot, images)
    predict_as(session, masks)
    tab = make_tab(qtbot, session)
    measure(qtbot, tab)
    path = tab.export_csv(tmp_path / "mito_objects")
    assert path == tmp_path / "mito_objects.csv" == tab.last_export_path
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    model = tab.model
    assert rows[0] == [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    shown = [[model.data(model.index(r, c)) for c in range(model.columnCount())] for r in range(model.rowCount())]
    assert rows[1:] == shown and len(shown) == len(kept_sizes(masks, MIN_SIZE))


def test_a_hand_edit_makes_the_table_out_of_date(qtbot, lucchi_stack):
    images, masks = lucchi_stack
    session = open_session(qtbot, images)
    predict_as(session, masks)
    tab = make_tab(qtbot, session)
    measure(qtbot, tab)
    assert STALE not in tab.status.text()
    session.replace_mask("mito", 1, np.zeros(masks.shape[1:], bool))
    assert tab.status.text() == STALE and tab.stale
    measure(qtbot, tab)
    assert not tab.stale and "measured 4 of 4 slices" in tab.status.text()
    session.open(from_array(images[:1].copy(), source="one slice"))
    assert tab.model.rowCount() == 0 and "Measure again" in tab.status.text()
    assert tab.per_slice_check.isChecked() and not tab.per_slice_check.isEnabled()  # 2D for a single image


def test_without_a_voxel_size_sizes_are_in_pixels(qtbot, lucchi_stack):
    images, masks = lucchi_stack
    session = open_session(qtbot, images, pixel_size=None)
    predict_as(session, masks)
    tab = make_tab(qtbot, session)
    result = measure(qtbot, tab)
    assert result.table.unit == "px" and "pixels" in tab.header.text()
    assert "volume_um3" not in tab.model._names and "equivalent_diameter_px" in tab.model._names


def test_a_chosen_object_is_shown_in_the_viewer(qtbot, lucchi_stack):
    """The wiring the main window makes: the slice of the object, centred in the view."""
    images, masks = lucchi_stack
    session = open_session(qtbot, images)
    predict_as(session, masks)
    viewer = SideBySideView(session)
    qtbot.addWidget(viewer)
    viewer.resize(800, 400)
    viewer.show()
    tab = make_tab(qtbot, session)

    def go_to(z: int, y: float, x: float) -> None:
        session.set_slice(z)
        viewer.centre_on(x, y)

    tab.objectChosen.connect(go_to)
    measure(qtbot, tab)
    row = int(np.argmax(column(tab, "centroid_z_px")))  # an object beyond slice 0
    z, y, x = (column(tab, f"centroid_{a}_px")[row] for a in "zyx")
    assert round(z) > 0
    QTest.mouseClick(
        tab.view.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        tab.view.visualRect(tab.proxy.index(row, 0)).center(),
    )
    (x0, x1), (y0, y1) = viewer.view_range()
    assert session.z == round(z) and ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((x, y), abs=1)
