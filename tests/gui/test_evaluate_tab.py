"""The evaluate tab on real SBEM crops scored against their expert labels (0/1 on disk)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from emviewer.core.predict import SliceResult
from emviewer.core.robustness import DEFAULT_LEVELS
from emviewer.gui.tabs import EvaluateTab

TIMEOUT = 30_000
LABELS = [f"mitos_3D.05{i}.png" for i in range(3)]


@pytest.fixture
def label_dir(make_crops, cdeep3m):
    """The labels of the ``em_stack`` crops, as a folder of 256 x 256 PNGs named like the originals."""
    return make_crops([cdeep3m / "validation" / "labels" / name for name in LABELS], "labels", size=(256, 256))


@pytest.fixture
def labels(label_dir) -> np.ndarray:
    return np.stack([np.asarray(Image.open(label_dir / name)) for name in LABELS])


def make_tab(qtbot, session, label_dir, predictor_factory=None) -> EvaluateTab:
    tab = EvaluateTab(session, predictor_factory)
    qtbot.addWidget(tab)
    tab.labels_edit.setText(str(label_dir))
    return tab


def predict_as(session, masks) -> None:
    for z, mask in enumerate(masks):
        session.set_result(SliceResult(z, "", {"mito": mask.astype(np.float32)}))


def evaluate(qtbot, tab) -> dict:
    with qtbot.waitSignal(tab.evaluationFinished, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(tab.evaluate_button, Qt.LeftButton)
    return blocker.args[0]


def test_masks_equal_to_labels_score_one(qtbot, session, label_dir, labels):
    predict_as(session, labels)
    tab = make_tab(qtbot, session, label_dir)
    result = evaluate(qtbot, tab)
    assert result["mean"]["f1"] == 1.0 and result["mean"]["iou"] == 1.0
    assert [row["name"] for row in result["per_image"]] == ["images.050", "images.051", "images.052"]
    x, y = tab.f1_curve.getData()
    assert list(x) == [0, 1, 2] and list(y) == [1.0, 1.0, 1.0]
    assert (
        tab.table.rowCount() == 4 and tab.table.item(3, 0).text() == "mean" and tab.table.item(3, 3).text() == "1.000"
    )
    assert tab.last_metrics() == result


def test_shifted_masks_score_lower(qtbot, session, label_dir, labels):
    assert all(label.any() for label in labels)  # each crop holds mitochondria to miss
    predict_as(session, np.roll(labels, 24, axis=1))
    tab = make_tab(qtbot, session, label_dir)
    result = evaluate(qtbot, tab)
    f1 = [row["f1"] for row in result["per_image"]]
    assert all(value < 0.95 for value in f1) and result["mean"]["f1"] == pytest.approx(np.mean(f1))
    assert result["mean"]["precision"] < 1 and result["mean"]["recall"] < 1
    assert float(tab.table.item(0, 3).text()) == pytest.approx(f1[0], abs=5e-4)


def test_only_predicted_slices_are_scored(qtbot, session, label_dir, labels):
    session.set_result(SliceResult(1, "", {"mito": labels[1].astype(np.float32)}))
    tab = make_tab(qtbot, session, label_dir)
    result = evaluate(qtbot, tab)
    assert [row["name"] for row in result["per_image"]] == ["images.051"]
    assert list(tab.f1_curve.getData()[0]) == [1]


def test_labels_that_do_not_pair_are_reported(qtbot, session, make_crops, cdeep3m, labels):
    predict_as(session, labels)
    wrong = make_crops(
        [cdeep3m / "validation" / "labels" / name for name in LABELS], "wrong", size=(256, 256), name="label_9{num}"
    )
    tab = make_tab(qtbot, session, wrong)
    with qtbot.waitSignal(tab.evaluationFailed, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(tab.evaluate_button, Qt.LeftButton)
    assert "no file pairs" in blocker.args[0] and "images.050" in blocker.args[0]
    assert tab.last_metrics() is None and len(tab.f1_curve.getData()[0] or []) == 0
    assert tab.status.text() == blocker.args[0]


@pytest.mark.parametrize(
    "folder, foreground, expected",
    [
        ("missing", "", "no such file or folder"),
        (None, "7", "no label holds the foreground value(s) 7"),
        (None, "one", "is not a value or a list of values"),
    ],
)
def test_bad_label_choices_give_clear_messages(
    qtbot, session, label_dir, labels, tmp_path, folder, foreground, expected
):
    predict_as(session, labels)
    tab = make_tab(qtbot, session, tmp_path / folder if folder else label_dir)
    tab.foreground_edit.setText(foreground)
    with qtbot.waitSignal(tab.evaluationFailed, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(tab.evaluate_button, Qt.LeftButton)
    assert expected in blocker.args[0]


def test_evaluating_before_predicting_says_predict_first(qtbot, session, label_dir):
    tab = make_tab(qtbot, session, label_dir)
    with qtbot.waitSignal(tab.evaluationFailed) as blocker:
        qtbot.mouseClick(tab.evaluate_button, Qt.LeftButton)
    assert "predict first" in blocker.args[0]


def test_foreground_and_invert_choose_the_object(qtbot, session, label_dir, labels):
    predict_as(session, labels == 0)  # the background predicted as the object
    tab = make_tab(qtbot, session, label_dir)
    tab.foreground_edit.setText("1")
    tab.invert_check.setChecked(True)
    assert evaluate(qtbot, tab)["mean"]["f1"] == 1.0


class DarkPixelPredictor:
    """A stand-in model for the wiring test: calls the darker half of each slice 'mito'."""

    objects = ("mito",)

    def iter_predict(self, volume, slices=None, progress=None, cancel=None):
        for z in range(len(volume)) if slices is None else slices:
            image = volume.slice(z).astype(np.float32)
            yield SliceResult(z, volume.slice_names[z], {"mito": (image < np.median(image)).astype(np.float32)})


def test_robustness_needs_a_predictor(qtbot, session, label_dir):
    assert not make_tab(qtbot, session, label_dir).robustness_button.isEnabled()


def test_robustness_curve_is_plotted(qtbot, session, label_dir):
    asked = []
    tab = make_tab(qtbot, session, label_dir, lambda key: asked.append(key) or DarkPixelPredictor())
    assert tab.robustness_button.isEnabled()
    with qtbot.waitSignal(tab.robustnessFinished, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(tab.robustness_button, Qt.LeftButton)
    points = blocker.args[0]
    assert asked == ["mito"] and [p.level for p in points] == list(DEFAULT_LEVELS)
    assert points[0].relative == 1.0 and all(0 <= p.f1 <= 1 for p in points)
    x, y = tab.robustness_line.getData()
    assert list(x) == [level * 100 for level in DEFAULT_LEVELS] and list(y) == [p.f1 for p in points]


# ---------------------------------------------------------------------------- pairing


@pytest.fixture
def stack_session(qtbot, em_stack, labels, tmp_path):
    """The issue's case in the app: the EM crops as a stack whose slices carry no names of
    their own (as in a TIFF stack: slice_0000...), predicted perfectly, and labels in a folder
    numbered from 1 (mask_0001...)."""
    from emviewer.core.volume import from_array
    from emviewer.gui.session import Session

    state = Session()
    state.open(from_array(em_stack.copy(), source=str(tmp_path / "stack.tif")))
    predict_as(state, labels)
    folder = tmp_path / "one_based"
    folder.mkdir()
    for z, label in enumerate(labels, 1):
        Image.fromarray(label).save(folder / f"mask_{z:04d}.png")
    return state, folder


def test_numbers_that_do_not_line_up_are_refused_offering_pair_by_order(qtbot, stack_session):
    session, folder = stack_session
    tab = make_tab(qtbot, session, folder)
    assert tab.pair_box.currentData() == "number"
    with qtbot.waitSignal(tab.evaluationFailed, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(tab.evaluate_button, Qt.LeftButton)
    message = blocker.args[0]
    assert str(folder) in message and "slices 0-2, labels 1-3" in message and 'Pair by "order"' in message
    assert tab.status.text() == message and tab.last_metrics() is None


def test_pair_by_order_scores_each_slice_against_its_own_label(qtbot, stack_session):
    session, folder = stack_session
    tab = make_tab(qtbot, session, folder)
    tab.pair_box.setCurrentIndex(tab.pair_box.findData("order"))
    result = evaluate(qtbot, tab)
    assert [row["name"] for row in result["per_image"]] == ["slice_0000", "slice_0001", "slice_0002"]
    assert result["mean"]["f1"] == 1.0


def test_pair_by_order_needs_a_label_per_slice(qtbot, stack_session):
    session, folder = stack_session
    (folder / "mask_0003.png").unlink()
    tab = make_tab(qtbot, session, folder)
    tab.pair_box.setCurrentIndex(tab.pair_box.findData("order"))
    with qtbot.waitSignal(tab.evaluationFailed, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(tab.evaluate_button, Qt.LeftButton)
    assert "pairing by order needs as many labels as slices: 2 here, 3 in" in blocker.args[0]
