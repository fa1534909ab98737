"""Noise corruption is reproducible and the robustness curve is measured against clean F1."""

from __future__ import annotations

import numpy as np

from emviewer.core.charts import line_chart
from emviewer.core.models import build_model
from emviewer.core.models.card import ModelCard
from emviewer.core.models.loading import LoadedModel
from emviewer.core.predict import LocalPredictor
from emviewer.core.robustness import corrupt, robustness_curve
from emviewer.core.volume import from_array


def test_corruption_is_the_same_on_every_read():
    volume = from_array(np.full((3, 64, 64), 120, np.uint8))
    noisy = corrupt(volume, "salt_and_pepper", 0.1, seed=4)
    np.testing.assert_array_equal(noisy.slice(1), noisy.slice(1))
    assert not np.array_equal(noisy.slice(0), noisy.slice(1))
    assert abs((noisy.slice(2) != 120).mean() - 0.1) < 0.03
    assert corrupt(volume, "gaussian", 0.0) is volume


def test_curve_starts_at_one_and_is_drawn(tmp_path, cdeep3m):
    import keras
    from PIL import Image

    keras.utils.set_random_seed(0)
    image = np.asarray(Image.open(cdeep3m / "validation" / "images" / "images.050.png"))[:128, :128]
    truth = np.asarray(Image.open(cdeep3m / "validation" / "labels" / "mitos_3D.050.png"))[:128, :128] > 0
    model = LoadedModel("tiny", build_model("deepem3d", 1, 4, 2), ModelCard(object="mito"))
    curve = robustness_curve(
        LocalPredictor({"mito": [model]}, tile=128, overlap=0), from_array(image), [truth], (0.0, 0.05, 0.2)
    )
    assert [p.level for p in curve] == [0.0, 0.05, 0.2]
    assert curve[0].relative == 1.0 and all(0 <= p.f1 <= 1 for p in curve)
    chart = line_chart([0, 5, 20], {"tiny": [p.f1 for p in curve]}, "F1", "noise %", "F1")
    assert chart.size == (640, 420) and len(chart.getcolors(maxcolors=1 << 16)) > 3
