"""Shared fixtures: the real labelled EM data, small crops of it made at test time, and an
in-process runner for the command line.

The data lives beside the repository in ``../shared/data`` (see its README for each set's
label convention). It is never copied into the project: tests read it there, or crop a small
piece into ``tmp_path``. When it is missing the tests fail with a clear message, never skip.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emviewer.cli import main

pytest_plugins = ["live_server"]  # the online-mode server fixtures

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# ---------------------------------------------------------------------------- the user's folders


@pytest.fixture(scope="session", autouse=True)
def runtime_cache(tmp_path_factory) -> Iterator[Path]:
    """Models converted for a faster runtime (``$EMVIEWER_CACHE_DIR``) go to a folder of this
    run, shared by its test processes (one converts, the others read), never the user's cache."""
    folder = tmp_path_factory.getbasetemp().parent / "emviewer-cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMVIEWER_CACHE_DIR", str(folder))
        yield folder


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


# ---------------------------------------------------------------------------- adaptation (another microscope)

TINY_SOURCE = {"arch": "deepem3d", "width": 8, "depth": 3, "tile": 128, "batch_size": 4, "precision": "float32"}


@pytest.fixture(scope="session")
def sbem_model(cdeep3m, tmp_path_factory):
    """A tiny mito model trained briefly on SBEM crops only (CDeep3M training slices 010-015)."""
    from emviewer.core.train import DataSpec, TrainConfig, train

    root = tmp_path_factory.mktemp("sbem")
    for kind, stem in (("images", "images"), ("labels", "mitos_3D")):
        (root / kind).mkdir()
        for n in range(10, 16):
            array = np.asarray(Image.open(cdeep3m / "training" / kind / f"{stem}.{n:03d}.png"))
            Image.fromarray(array[:384, :384]).save(root / kind / f"{stem}.{n:03d}.png")
    spec = DataSpec([str(root / "images")], [str(root / "labels")])
    out = tmp_path_factory.mktemp("source") / "sbem-tiny.keras"
    train(spec, TrainConfig(epochs=3, steps_per_epoch=15, learning_rate=3e-3, **TINY_SOURCE), out)
    return out


@pytest.fixture(scope="session")
def fib_sem(lucchi, tmp_path_factory):
    """Three 384 x 384 Lucchi++ crops (FIB-SEM, another microscope): slices 000, 040 and 080."""
    root = tmp_path_factory.mktemp("fibsem")
    for kind in ("images", "labels"):
        (root / kind).mkdir()
        for n in (0, 40, 80):
            array = np.asarray(Image.open(lucchi / kind / f"train_{n:03d}.png"))
            Image.fromarray(array[200:584, 300:684]).save(root / kind / f"train_{n:03d}.png")
    return root / "images", root / "labels"
