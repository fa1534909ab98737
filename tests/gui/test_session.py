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
