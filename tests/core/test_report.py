"""The PDF report on real SBEM slices: what its first page says, read back with pypdf."""

from __future__ import annotations

import numpy as np
import pytest
from pypdf import PdfReader

from emviewer.core.export import export
from emviewer.core.io import open_volume
from emviewer.core.measure import measure_objects
from emviewer.core.provenance import provenance
from emviewer.core.report_summary import NOT_RECORDED, object_run, slice_ranges
from emviewer.core.volume import from_array

PIXEL = (50.0, 10.0, 10.0)
MODEL = {"name": "mito-multiresunet-1fm", "threshold": 0.45, "sha256": "9f2c4e1a7b3d" + "0" * 52}


@pytest.fixture
def stack(cdeep3m):
    """Three real slices (cut to 512 x 512) with a pixel size, and their mitochondria labels as 0/255."""
    images = open_volume(cdeep3m / "validation" / "images").read()[:3, :512, :512]
    labels = open_volume(cdeep3m / "validation" / "labels").read()[:3, :512, :512]
    names = ["images.050", "images.051", "images.052"]
    volume = from_array(images, "cdeep3m validation", slice_names=names, pixel_size=PIXEL)
    masks = from_array(np.where(labels > 0, 255, 0).astype(np.uint8), "labels", slice_names=names)
    return volume, masks


def _first_page(path) -> str:
    return " ".join(PdfReader(path).pages[0].extract_text().split())


def test_first_page_gives_model_mode_threshold_and_the_measured_count(tmp_path, stack):
    volume, masks = stack
    record = provenance(command="predict", input="stack.tif", mode="accurate", tta=8, models={"mito": [MODEL]})
    export(tmp_path / "r.pdf", volume, masks={"mito": masks}, provenance=record)
    text = _first_page(tmp_path / "r.pdf")
    table = measure_objects(masks.read() > 0, pixel_size=PIXEL)  # the count the report must agree with
    assert len(table) > 3
    for expected in ("mito-multiresunet-1fm", "9f2c4e1a7b3d", "accurate", "0.45", "this computer", "numpy"):
        assert expected in text
    assert f"objects {len(table)}" in text
    fraction = 100 * (masks.read() > 0).mean()
    assert f"volume fraction {fraction:.2f} %" in text
    assert f"Sizes of the {len(table)} objects" in text and "volume (µm³" in text
    assert len(PdfReader(tmp_path / "r.pdf").pages) == 1 + 3  # the summary fits on one page


def test_app_record_with_edits_and_missing_keys_says_not_recorded(tmp_path, stack):
    volume, masks = stack
    runs = {"mito": {"mode": "fast", "tta": 1, "where": "this computer", "models": [MODEL]}, "nuclei": {}}
    record = provenance(source="x", content="report", predictions=runs, edited_slices={"mito": [0, 1, 2, 7]})
    nuclei = from_array(np.zeros(volume.shape, np.uint8), "none")
    export(tmp_path / "r.pdf", volume, masks={"mito": masks, "nuclei": nuclei}, provenance=record)
    text = _first_page(tmp_path / "r.pdf")
    assert "edited by hand slices 1-3, 8" in text and "fast" in text and "nuclei" in text
    assert object_run(record, "nuclei").models == NOT_RECORDED and f"threshold {NOT_RECORDED}" in text
    assert "objects 0" in text


def test_without_provenance_nothing_breaks(tmp_path, stack):
    volume, masks = stack
    export(tmp_path / "r.pdf", volume, masks={"mito": masks}, slices=[1])
    reader = PdfReader(tmp_path / "r.pdf")
    assert len(reader.pages) == 2
    assert "model not recorded" in _first_page(tmp_path / "r.pdf")
    assert "images.051, slice 2" in reader.pages[1].extract_text()  # numbered in the whole stack


def _lower_left(path, page=1) -> np.ndarray:
    image = np.asarray(PdfReader(path).pages[page].images[0].image.convert("L")).astype(int)
    return image[-image.shape[0] // 8 :, : image.shape[1] // 3]


def test_every_slice_image_carries_a_scale_bar(tmp_path, stack):
    volume, masks = stack
    export(tmp_path / "bar.pdf", volume, masks={"mito": masks})
    export(tmp_path / "none.pdf", volume, masks={"mito": masks}, scale_bar=False)
    reader = PdfReader(tmp_path / "bar.pdf")
    assert all(len(page.images) == 2 for page in reader.pages[1:])  # raw | overlay on every slice page
    with_bar, without = _lower_left(tmp_path / "bar.pdf"), _lower_left(tmp_path / "none.pdf")
    assert (with_bar >= 245).sum() > (without >= 245).sum() + 100  # the white bar and its label


def test_report_size_stays_sensible(tmp_path, stack):
    volume, masks = stack
    export(tmp_path / "r.pdf", volume, masks={"mito": masks})
    assert (tmp_path / "r.pdf").stat().st_size < 3 * 2 * 400_000  # JPEG images, not Flate


def test_slice_ranges_are_numbered_from_one():
    assert slice_ranges([4, 0, 1, 2]) == "1-3, 5" and slice_ranges([3], base=0) == "3"


def test_objects_are_counted_a_slice_at_a_time_as_when_labelled_whole(stack):
    from emviewer.core import report_summary
    from emviewer.core.measure import measure_objects

    volume, masks = stack
    counts = report_summary.object_counts(masks, PIXEL)
    table = measure_objects(masks.read() > 0, pixel_size=PIXEL)
    assert counts.count == len(table) and counts.fraction == pytest.approx((masks.read() > 0).mean())
    np.testing.assert_allclose(sorted(counts.sizes), sorted(table.columns["volume_um3"]))
    assert counts.rows()[0] == ("objects", str(len(table)))
