"""Fixtures shared by the core tests."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def tissue(request) -> np.ndarray:
    """Three real SBEM slices (uint8), 384 x 384 crops of the CDeep3M validation set."""
    root = request.getfixturevalue("cdeep3m")
    files = [root / "validation" / "images" / f"images.0{n}.png" for n in (50, 51, 52)]
    return np.stack([np.asarray(Image.open(f))[200:584, 300:684] for f in files])
