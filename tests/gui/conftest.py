"""GUI fixtures: offscreen Qt and a session holding a small real EM stack."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emviewer.core.volume import Volume, from_array
from emviewer.gui.session import Session

CROP = 256


@pytest.fixture(scope="package", autouse=True)
def collect_on_the_gui_thread(qapp):
    """As in the app: cycles (Qt objects among them) are freed on the GUI thread only."""
    from emviewer.gui.main_thread_gc import MainThreadCollector

    collector = MainThreadCollector(qapp)
    yield
    collector.stop()


@pytest.fixture(scope="session")
def em_stack(cdeep3m: Path) -> np.ndarray:
    """``(3, 256, 256)`` uint8: top-left crops of three consecutive cdeep3m validation slices."""
    paths = [cdeep3m / "validation" / "images" / f"images.05{i}.png" for i in range(3)]
    crops = []
    for path in paths:
        with Image.open(path) as image:
            crops.append(np.asarray(image)[:CROP, :CROP])
    return np.stack(crops)


@pytest.fixture
def em_volume(em_stack: np.ndarray) -> Volume:
    names = [f"images.05{i}" for i in range(len(em_stack))]
    return from_array(em_stack.copy(), source="cdeep3m validation crops", slice_names=names)


@pytest.fixture
def session(qtbot, em_volume: Volume) -> Session:
    """A session with the three-slice real EM stack open at slice 0."""
    state = Session()
    state.open(em_volume)
    return state
