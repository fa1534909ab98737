"""emviewer.core.evaluate pairs predictions and labels by number only when the numbers line up."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from emviewer.core.errors import PairingError
from emviewer.core.evaluate import evaluate


@pytest.fixture
def stack_and_folder(cdeep3m, tmp_path):
    """Predicted masks as one TIFF stack (slice_0000...) and the labels as a 1-based PNG folder."""
    labels = []
    for n in range(50, 54):
        with Image.open(cdeep3m / "validation" / "labels" / f"mitos_3D.0{n}.png") as image:
            labels.append(np.asarray(image)[:128, :128])
    tifffile.imwrite(tmp_path / "pred.tif", np.stack(labels) * 255, photometric="minisblack")
    folder = tmp_path / "labels"
    folder.mkdir()
    for z, label in enumerate(labels, 1):
        Image.fromarray(label).save(folder / f"label_{z}.png")
    return str(tmp_path / "pred.tif"), str(folder)


def test_a_0_based_stack_against_a_1_based_folder_is_refused(stack_and_folder):
    pred, labels = stack_and_folder
    with pytest.raises(PairingError, match=r"predictions 0-3, labels 1-4.*--pair-by order") as info:
        evaluate(pred, labels)
    assert info.value.path == labels


def test_by_order_each_mask_meets_its_own_label(stack_and_folder):
    result = evaluate(*stack_and_folder, pair_by="order")
    assert result.names == [f"slice_{z:04d}" for z in range(4)] and result.mean.f1 == 1.0
    assert not result.unpaired_predictions and not result.unpaired_labels


def test_predictions_for_some_labelled_slices_list_the_others(cdeep3m, tmp_path):
    labels = cdeep3m / "validation" / "labels"
    folder = tmp_path / "pred"
    folder.mkdir()
    for n in (52, 53):
        with Image.open(labels / f"mitos_3D.0{n}.png") as image:
            Image.fromarray(np.asarray(image) * 255).save(folder / f"pred_0{n}.png")
    result = evaluate(str(folder), str(labels))
    assert result.names == ["pred_052", "pred_053"] and result.mean.f1 == 1.0
    assert (
        result.unpaired_predictions == []
        and len(result.unpaired_labels) == 8
        and "mitos_3D.052" not in result.unpaired_labels
    )
