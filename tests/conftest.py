"""Shared fixtures: the real labelled EM data, small crops of it made at test time, and an
in-process runner for the command line.

The data lives beside the repository in ``../shared/data`` (see its README for each set's
label convention). It is never copied into the project: tests read it there, or crop a small
piece into ``tmp_path``. When it is missing the tests fail with a clear message, never skip.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emviewer.cli import main

pytest_plugins = ["live_server"]  # the online-mode server fixtures

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# ---------------------------------------------------------------------------- real data


def _data_folder(root: Path, name: str) -> Path:
    folder = root / name
    if not folder.is_dir():
        pytest.fail(f"test data set {name!r} is missing: expected the folder {folder}", pytrace=False)
    return folder


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data`` beside the repository: the real labelled EM sets."""
    if not DATA_DIR.is_dir():
        pytest.fail(
            f"real EM test data not found at {DATA_DIR}; the tests need ../shared/data beside the "
            "repository (cdeep3m_mito, lucchi_pp_train, isbi2012_membrane, hela_nuclei_patches)",
            pytrace=False,
        )
    return DATA_DIR


@pytest.fixture(scope="session")
def cdeep3m(data_dir: Path) -> Path:
    """SBEM mitochondria: ``training|validation/{images,labels}``, labels 0/1, 1024x1024."""
    return _data_folder(data_dir, "cdeep3m_mito")


@pytest.fixture(scope="session")
def lucchi(data_dir: Path) -> Path:
    """FIB-SEM mitochondria: ``images/train_NNN.png``, ``labels/train_NNN.png`` 0/255, 768x1024."""
    return _data_folder(data_dir, "lucchi_pp_train")


@pytest.fixture(scope="session")
def isbi(data_dir: Path) -> Path:
    """ssTEM membranes: ``image/N.png``, ``label/N.png`` 0/255 with 0 = membrane, 512x512."""
    return _data_folder(data_dir, "isbi2012_membrane")


@pytest.fixture(scope="session")
def hela(data_dir: Path) -> Path:
    """HeLa 64x64 patches: ``labels`` hold 1 = envelope, 2 = nucleus, 3 = everything else."""
    return _data_folder(data_dir, "hela_nuclei_patches")


# ---------------------------------------------------------------------------- crops


def read_png(path: Path) -> np.ndarray:
    """Pixels of an image file as stored (palette images keep their indices)."""
    with Image.open(path) as img:
        return np.asarray(img)


@pytest.fixture
def make_crops(tmp_path: Path) -> Callable[..., Path]:
    """Factory: crop real images into ``tmp_path/<folder>`` as PNG and return the folder.

    ``make_crops(sources, folder, size=(128, 128), offset=(0, 0), name="{stem}", transform=None)``;
    ``size=None`` keeps the whole image, ``name`` may use ``{stem}``, ``{num}`` (the last run
    of digits in the stem) and ``{nums}`` (all runs), ``transform`` maps the cropped array.
    """

    def make(
        sources: Iterable[Path],
        folder: str,
        size: tuple[int, int] | None = (128, 128),
        offset: tuple[int, int] = (0, 0),
        name: str = "{stem}",
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> Path:
        out = tmp_path / folder
        out.mkdir(parents=True, exist_ok=True)
        for src in map(Path, sources):
            array = read_png(src)
            if size is not None:
                array = array[offset[0] : offset[0] + size[0], offset[1] : offset[1] + size[1]]
            if transform is not None:
                array = transform(array)
            nums = re.findall(r"\d+", src.stem)
            stem = name.format(stem=src.stem, num=nums[-1] if nums else "", nums=nums)
            Image.fromarray(np.ascontiguousarray(array)).save(out / f"{stem}.png")
        return out

    return make


# ---------------------------------------------------------------------------- command line


@pytest.fixture
def run_cli(capsys, monkeypatch) -> Callable[..., tuple[int, str, str]]:
    """Run ``emviewer.cli.main(argv)`` in-process; returns ``(exit_code, stdout, stderr)``.

    Arguments may be strings or paths. ``--help`` and argparse errors exit through
    ``SystemExit``, whose code is returned like any other.
    """
    monkeypatch.delenv("EMVIEWER_DEBUG", raising=False)

    def run(*argv) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run
