"""One scorer for the CLI and the app: masks in memory (the Evaluate tab) score exactly as the
same masks written to files (``emviewer evaluate``), with progress, cancel and unpaired slices."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from emviewer.core.evaluate import evaluate, evaluate_masks
from emviewer.core.progress import Cancelled, CancelToken
from emviewer.core.volume import from_array

NUMBERS = (50, 51, 52, 53)


@pytest.fixture
def labelled(cdeep3m, tmp_path):
    """Four real 192 x 192 label crops (0/1) as a PNG folder named like the originals, the
    images' slice names, and masks that miss part of each label (shifted)."""
    folder = tmp_path / "labels"
    folder.mkdir()
    labels = []
    for n in NUMBERS:
        with Image.open(cdeep3m / "validation" / "labels" / f"mitos_3D.0{n}.png") as image:
            labels.append(np.asarray(image)[300:492, 300:492])
        Image.fromarray(labels[-1]).save(folder / f"mitos_3D.0{n}.png")
    masks = np.roll(np.stack(labels), 16, axis=2).astype(bool)
    return folder, [f"images.0{n}" for n in NUMBERS], masks


def test_masks_in_memory_score_as_the_same_masks_on_disk(labelled, tmp_path):
    folder, names, masks = labelled
    assert masks.any() and not masks.all()
    predictions = tmp_path / "pred"
    predictions.mkdir()
    for name, mask in zip(names, masks, strict=True):
        Image.fromarray(mask.astype(np.uint8) * 255).save(predictions / f"{name}.png")
    on_disk = evaluate(str(predictions), str(folder))
    stack = from_array(masks.astype(np.uint8), source="stack", slice_names=names)
    in_memory = evaluate_masks(dict(enumerate(masks)), stack, str(folder))
    assert in_memory.as_dict() == on_disk.as_dict() and 0 < in_memory.mean.f1 < 1
    assert in_memory.slices == on_disk.slices == [0, 1, 2, 3]


def test_only_masked_slices_are_scored_and_the_rest_listed(labelled):
    folder, names, masks = labelled
    stack = from_array(masks.astype(np.uint8), source="stack", slice_names=names)
    steps = []
    result = evaluate_masks({3: masks[3], 1: masks[1]}, stack, str(folder), progress=lambda *a: steps.append(a))
    assert result.names == ["images.051", "images.053"] and result.slices == [1, 3]
    assert result.unpaired_labels == ["mitos_3D.050", "mitos_3D.052"] and result.unpaired_predictions == []
    assert steps[-1] == (2, 2, "done")


def test_a_cancelled_evaluation_stops(labelled):
    folder, names, masks = labelled
    stack = from_array(masks.astype(np.uint8), source="stack", slice_names=names)
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        evaluate_masks(dict(enumerate(masks)), stack, str(folder), cancel=cancel)


def test_a_stack_file_scores_with_its_slice_indices(labelled, tmp_path):
    folder, _, masks = labelled
    tifffile.imwrite(tmp_path / "pred.tif", masks.astype(np.uint8) * 255, photometric="minisblack")
    result = evaluate(str(tmp_path / "pred.tif"), str(folder), pair_by="order")
    assert result.slices == [0, 1, 2, 3] and result.names == [f"slice_{z:04d}" for z in range(4)]
