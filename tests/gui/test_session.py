"""The session shows the masks the core decided, and keeps the probabilities for export."""

from __future__ import annotations

import numpy as np

from emviewer.core.predict import SliceResult


class StricterResult(SliceResult):
    """A result whose decision rule is not ``>= 0.5``: the session must not decide on its own."""

    def masks(self) -> dict[str, np.ndarray]:
        return {k: p > 0.9 for k, p in self.probabilities.items()}


def test_the_session_stores_the_cores_masks_and_the_probabilities(session):
    probability = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    changed = []
    session.masksChanged.connect(changed.append)
    session.set_result(SliceResult(1, "slice_0001", {"mito": probability}))
    session.set_result(StricterResult(2, "slice_0002", {"mito": probability}))
    np.testing.assert_array_equal(session.masks["mito"][1], probability >= 0.5)
    np.testing.assert_array_equal(session.masks["mito"][2], probability > 0.9)
    assert session.probabilities["mito"][2] is probability and session.predicted_slices("mito") == [1, 2]
    assert changed == [1, 2]


def _result(z: int, **probabilities: np.ndarray) -> SliceResult:
    return SliceResult(z, f"slice_{z:04d}", probabilities)


def test_a_result_replaces_only_its_objects_and_slice(session):
    mito, nuclei = np.full((8, 8), 0.9, np.float32), np.full((8, 8), 0.1, np.float32)
    session.set_result(_result(0, mito=mito))
    session.set_result(_result(1, mito=mito))
    kept = session.masks["mito"][1]
    session.set_result(_result(0, mito=nuclei, nuclei=nuclei))
    assert not session.masks["mito"][0].any() and session.masks["mito"][1] is kept
    assert session.predicted_slices("nuclei") == [0] and session.unsaved == {"mito", "nuclei"}


def test_results_of_a_run_of_an_earlier_stack_are_ignored(session, em_volume):
    probability = np.full((8, 8), 0.9, np.float32)
    run = session.begin_run()
    assert session.set_result(_result(0, mito=probability), run)
    session.open(em_volume)  # another stack while the run is still stopping
    assert not session.set_result(_result(1, mito=probability), run)
    assert session.masks == {} and session.unsaved == set()
    assert session.set_result(_result(1, mito=probability), session.begin_run())


def test_an_export_of_every_predicted_slice_saves_the_object(session):
    probability = np.full((8, 8), 0.9, np.float32)
    for z in (0, 1):
        session.set_result(_result(z, mito=probability, nuclei=probability))
    session.mark_saved(["mito", "nuclei"], [0])  # slice 1 not written
    assert session.unsaved == {"mito", "nuclei"}
    session.mark_saved(["mito"], [0, 1, 2])
    assert session.unsaved == {"nuclei"}
    session.set_result(_result(2, mito=probability))
    assert session.unsaved == {"mito", "nuclei"}


def test_a_run_started_with_kept_slices_leaves_their_masks(session):
    """Corrected by hand and kept: a later Predict replaces the probability, not the mask or its mark."""
    session.set_result(_result(0, mito=np.full((256, 256), 0.9, np.float32)))
    session.set_result(_result(1, mito=np.full((256, 256), 0.9, np.float32)))
    corrected = np.zeros((256, 256), bool)
    session.replace_mask("mito", 0, corrected)
    assert session.corrected_slices(["mito", "nuclei"]) == {"mito": [0]}
    run = session.begin_run(keep=[("mito", 0)])
    again = np.full((256, 256), 0.8, np.float32)
    session.set_result(_result(0, mito=again), run)
    session.set_result(_result(1, mito=np.zeros((256, 256), np.float32)), run)
    assert session.masks["mito"][0] is corrected and session.edited["mito"] == {0}
    assert session.probabilities["mito"][0] is again and not session.masks["mito"][1].any()
    session.set_result(_result(0, mito=again), session.begin_run())  # not kept: predicted anew
    assert session.masks["mito"][0].all() and session.corrected_slices(["mito"]) == {}
