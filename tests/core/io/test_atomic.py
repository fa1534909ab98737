"""A write that fails midway leaves neither the file nor a temporary file; old files survive."""

from __future__ import annotations

import numpy as np
import pytest

from emviewer.core.io.atomic import atomic_path, atomic_paths
from emviewer.core.io.tiff import write_tiff


def test_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_existing_file_survives_a_failed_rewrite(tmp_path):
    target = tmp_path / "stack.tif"
    target.write_bytes(b"old")

    def slices():
        yield np.zeros((8, 8), np.uint8)
        raise OSError("reader broke at slice 2")

    with pytest.raises(OSError):
        write_tiff(target, slices(), (3, 8, 8), np.uint8)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["stack.tif"]


def test_all_or_nothing_for_several_files(tmp_path):
    targets = [tmp_path / f"s{i}.png" for i in range(3)]
    with pytest.raises(ValueError), atomic_paths(targets) as temps:
        temps[0].write_bytes(b"one")
        raise ValueError("slice 2 is corrupt")
    assert list(tmp_path.iterdir()) == []
    with atomic_paths(targets) as temps:
        for tmp in temps:
            tmp.write_bytes(b"ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s0.png", "s1.png", "s2.png"]
