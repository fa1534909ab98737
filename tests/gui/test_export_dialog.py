"""The export dialog on real SBEM crops and their expert labels: every format read back independently."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image
from pypdf import PdfReader
from PySide6.QtCore import Qt

from emviewer.core.objects import OBJECTS
from emviewer.core.predict import SliceResult
from emviewer.gui.export_dialog import ExportDialog, session_masks_volumes

TIMEOUT = 30_000


@pytest.fixture(scope="module")
def labels(cdeep3m) -> np.ndarray:
    """``(3, 256, 256)`` uint8 0/1: the mitochondria labels of the ``em_stack`` crops."""
    paths = [cdeep3m / "validation" / "labels" / f"mitos_3D.05{i}.png" for i in range(3)]
    return np.stack([np.asarray(Image.open(p))[:256, :256] for p in paths])


@pytest.fixture
def predicted(session, labels):
    """The session with a 'prediction' of every slice equal to the expert labels."""
    for z, label in enumerate(labels):
        session.set_result(SliceResult(z, "", {"mito": label.astype(np.float32)}))
    return session


@pytest.fixture
def dialog(qtbot, predicted):
    window = ExportDialog(
        predicted,
        metrics_provider=lambda: {
            "per_image": [],
            "mean": {"name": "mean", "precision": 0.9, "recall": 0.8, "f1": 0.847, "iou": 0.735},
        },
    )
    qtbot.addWidget(window)
    window.show()
    return window


def run_export(qtbot, dialog, path, content=None, slices=None, **kwargs):
    with qtbot.waitSignal(dialog.exportFinished, timeout=TIMEOUT) as blocker:
        dialog.export_to(path, content, slices, **kwargs)
    assert not dialog.isVisible()  # a finished export closes the dialog
    return blocker.args[0]


def test_hdf5_holds_raw_masks_probabilities_and_provenance(qtbot, dialog, tmp_path, em_stack, labels):
    written = run_export(qtbot, dialog, tmp_path / "out.h5", "all")
    assert written == [tmp_path / "out.h5"]
    with h5py.File(written[0], "r") as h5:
        np.testing.assert_array_equal(h5["raw"][:], em_stack)
        np.testing.assert_array_equal(h5["masks/mito"][:], labels * 255)
        assert h5["probabilities/mito"].dtype == np.float32
        np.testing.assert_array_equal(h5["probabilities/mito"][:], labels.astype(np.float32))
        assert json.loads(h5.attrs["parameters"])["content"] == "all" and "created" in h5.attrs


def test_png_masks_one_file_per_slice_named_after_it(qtbot, dialog, tmp_path, labels):
    written = run_export(qtbot, dialog, tmp_path / "m.png", "mask", object_key="mito")
    assert [p.name for p in written] == ["m_images.050.png", "m_images.051.png", "m_images.052.png"]
    for path, label in zip(written, labels, strict=True):  # one file per slice
        np.testing.assert_array_equal(np.asarray(Image.open(path)), label * 255)


def test_jpeg_overlay_colours_the_objects(qtbot, dialog, tmp_path, labels):
    written = run_export(qtbot, dialog, tmp_path / "fig.jpg", "overlay", "2-3")  # numbered as the slider counts
    assert [p.name for p in written] == ["fig_images.051.jpg", "fig_images.052.jpg"]
    overlay = np.asarray(Image.open(written[0])).astype(float)
    assert overlay.shape == (256, 256, 3)
    inside, colour = labels[1] > 0, np.array(OBJECTS["mito"].colour)
    assert np.abs(overlay[inside].mean(0) - colour).sum() < np.abs(overlay[~inside].mean(0) - colour).sum()


def test_tiff_raw_keeps_the_pixels(qtbot, dialog, tmp_path, em_stack):
    written = run_export(qtbot, dialog, tmp_path / "stack.tif", "raw")
    np.testing.assert_array_equal(tifffile.imread(written[0]), em_stack)


def test_raw_writes_bytes_and_a_json_sidecar(qtbot, dialog, tmp_path, labels):
    written = run_export(qtbot, dialog, tmp_path / "m.raw", "mask", "1,3,1")  # a repeated slice is written once
    assert written == [tmp_path / "m.raw", tmp_path / "m.raw.json"]
    meta = json.loads(written[1].read_text())
    assert meta["shape"] == [2, 256, 256] and meta["dtype"] == "uint8" and meta["content"] == "mask"
    pixels = np.fromfile(written[0], dtype=meta["dtype"]).reshape(meta["shape"])
    np.testing.assert_array_equal(pixels, labels[[0, 2]] * 255)


def test_pdf_report_of_the_current_slice_with_metrics(qtbot, dialog, predicted, tmp_path):
    predicted.set_slice(1)
    written = run_export(qtbot, dialog, tmp_path / "report.pdf", "report", "current")
    reader = PdfReader(written[0])
    assert len(reader.pages) == 2  # summary + one slice
    summary, page = reader.pages[0].extract_text(), reader.pages[1].extract_text()
    assert "EMViewer segmentation report" in summary and "0.847" in summary and "mitochondria" in summary
    assert "images.051" in page


def test_contents_follow_the_format(dialog):
    for name, allowed in (
        ("PNG", {"raw", "mask", "overlay"}),
        ("HDF5", {"all"}),
        ("PDF", {"report"}),
        ("RAW", {"raw", "mask", "overlay"}),
    ):
        dialog.format_box.setCurrentText(name)
        enabled = {key for key, button in dialog.content_buttons.items() if button.isEnabled()}
        assert enabled == allowed and dialog.chosen_content() in allowed


def test_format_change_renames_the_file(dialog, tmp_path):
    dialog.path_edit.setText(str(tmp_path / "out.h5"))
    dialog.format_box.setCurrentText("TIFF")
    assert dialog.path_edit.text() == str(tmp_path / "out.tif")


@pytest.mark.parametrize("name", ["c.h5", "c.png", "c.tif", "c.pdf", "c.raw"])
def test_cancel_before_writing_leaves_nothing(qtbot, dialog, tmp_path, name):
    dialog.exportStarted.connect(lambda job: qtbot.mouseClick(dialog.cancel_button, Qt.LeftButton))
    with qtbot.waitSignal(dialog.exportCancelled, timeout=TIMEOUT):
        dialog.export_to(tmp_path / name)
    assert list(tmp_path.iterdir()) == []
    assert dialog.isVisible() and dialog.export_button.isEnabled()


def test_cancel_after_the_first_slice_leaves_nothing(qtbot, dialog, tmp_path):
    """The job is cancelled from its own thread right after reporting slice 1: no file, no temp."""

    def cancel_on_progress(job):
        job.signals.progressed.connect(lambda *args: job.cancel(), Qt.DirectConnection)

    dialog.exportStarted.connect(cancel_on_progress)
    with qtbot.waitSignal(dialog.exportCancelled, timeout=TIMEOUT):
        dialog.export_to(tmp_path / "m.png", "overlay")
    assert list(tmp_path.iterdir()) == []


def test_missing_mask_on_a_slice_is_a_clear_error(qtbot, session, labels, tmp_path):
    for z in (0, 1):
        session.set_result(SliceResult(z, "", {"mito": labels[z].astype(np.float32)}))
    dialog = ExportDialog(session)
    qtbot.addWidget(dialog)
    dialog.show()
    with qtbot.waitSignal(dialog.exportFailed, timeout=TIMEOUT) as blocker:
        dialog.export_to(tmp_path / "out.h5", "all")
    message = blocker.args[0]
    assert "mitochondria" in message and "slice 2 (images.052)" in message
    assert dialog.error_box.text() == message and dialog.isVisible()
    assert list(tmp_path.iterdir()) == []
    run_export(qtbot, dialog, tmp_path / "out.h5", "all", "1-2")  # the slices that have masks export fine
    with h5py.File(tmp_path / "out.h5", "r") as h5:
        assert h5["masks/mito"].shape == (2, 256, 256)


@pytest.mark.parametrize(
    "path, content, slices, expected",
    [
        ("out.png", "all", None, "PNG export holds"),
        ("out.png", "raw", "1-8", "slice 4 is out of range: the stack has slices 1-3"),
        ("out.png", "raw", "0", "slice 0 is out of range"),
        ("out.png", "raw", "two", "not like '1-5,10'"),
        ("out.png", "raw", "2-1", "ranges low to high"),
        ("out.docx", "raw", None, "cannot export to .docx"),
    ],
)
def test_bad_choices_show_the_core_message(qtbot, dialog, tmp_path, path, content, slices, expected):
    with qtbot.waitSignal(dialog.exportFailed, timeout=TIMEOUT) as blocker:
        dialog.export_to(tmp_path / path, content, slices)
    assert expected in blocker.args[0] and expected in dialog.error_box.text()
    assert list(tmp_path.iterdir()) == []


def test_overlay_without_masks_says_predict_first(qtbot, session, tmp_path):
    dialog = ExportDialog(session)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.exportFailed, timeout=TIMEOUT) as blocker:
        dialog.export_to(tmp_path / "o.png", "overlay")
    assert "predict first" in blocker.args[0]


def test_session_masks_are_lazy_volumes_of_the_stack_shape(predicted, labels):
    predicted.set_result(SliceResult(0, "", {"nuclei": np.zeros((256, 256), np.float32)}))
    volumes = session_masks_volumes(predicted, [1, 2])
    assert set(volumes) == {"mito"}  # nuclei has no mask on the exported slices
    mito = volumes["mito"]
    assert mito.shape == (3, 256, 256) and mito.dtype == np.uint8
    np.testing.assert_array_equal(mito.slice(2), labels[2] * 255)


RUN = {
    "mode": "accurate",
    "tta": 8,
    "where": "this computer",
    "models": [{"name": "mito-multiresunet-1fm", "sha256": "5e1f" * 16, "threshold": 0.45}],
}


def test_hdf5_carries_the_runs_and_the_hand_edits(qtbot, dialog, predicted, tmp_path, labels):
    predicted.record_run(["mito"], RUN)
    edited = labels[2].astype(bool).copy()
    edited[:40, :40] = True  # a brush stroke
    predicted.replace_mask("mito", 2, edited)
    written = run_export(qtbot, dialog, tmp_path / "out.h5", "all")
    with h5py.File(written[0], "r") as h5:
        np.testing.assert_array_equal(h5["masks/mito"][2], edited * 255)  # saved as edited
        parameters = json.loads(h5.attrs["parameters"])
        assert "numpy" in json.loads(h5.attrs["software"])
    assert parameters["predictions"]["mito"] == RUN  # models, mode, tta, threshold, where
    assert parameters["edited_slices"] == {"mito": [2]}


def test_pdf_first_page_names_the_model_and_the_edits(qtbot, dialog, predicted, tmp_path):
    predicted.record_run(["mito"], RUN)
    edited = predicted.mask_or_empty("mito", 0)
    edited[:8, :8] = ~edited[:8, :8]  # a hand edit that changes the mask
    predicted.replace_mask("mito", 0, edited)
    written = run_export(qtbot, dialog, tmp_path / "report.pdf", "report")
    summary = " ".join(PdfReader(written[0]).pages[0].extract_text().split())
    for expected in ("mito-multiresunet-1fm", "5e1f5e1f5e1f", "accurate", "0.45", "edited by hand slices 1"):
        assert expected in summary


def test_overlay_uses_the_session_colours(qtbot, dialog, predicted, tmp_path, labels):
    predicted.set_colour("mito", (0, 255, 0))
    predicted.set_opacity("mito", 1.0)
    written = run_export(qtbot, dialog, tmp_path / "o.png", "overlay", "1")  # the first slice, as the slider counts
    overlay = np.asarray(Image.open(written[0]))
    assert np.all(overlay[labels[0] > 0] == (0, 255, 0))
