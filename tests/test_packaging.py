"""The package as users install it: the wheel carries the models and the sample stack, installs
non-editable and works from any folder; the commands and the server run without Qt (the ``app`` extra)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import venv
import zipfile
from pathlib import Path

import pytest
import requests
import tifffile

from emviewer import config

ROOT = Path(__file__).resolve().parents[1]
QT_MODULES = ("PySide6", "pyqtgraph", "shiboken6")
#: Makes Python refuse Qt as an install without the ``app`` extra would; used as ``python -c``
#: (then runs the CLI with the remaining arguments) and as a module a ``.pth`` file imports.
NO_QT = f"""
import sys

class _NoQt:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {QT_MODULES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (Qt is blocked)", name=name)
        return None

sys.meta_path.insert(0, _NoQt())
"""
RUN_CLI_WITHOUT_QT = NO_QT + "from emviewer.cli import main\nraise SystemExit(main(sys.argv[1:]))\n"
INSTALL_HINT = "pip install 'emviewer[app]'"


def _pyproject() -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pytest brings tomli on 3.10
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _without_qt(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUN_CLI_WITHOUT_QT, *args], capture_output=True, text=True, timeout=300, **kwargs
    )


# ---------------------------------------------------------------- the source tree (fast)


def test_pyproject_names_every_package_and_maps_models_and_resources():
    setuptools = _pyproject()["tool"]["setuptools"]
    on_disk = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "emviewer").rglob("__init__.py")}
    assert set(setuptools["packages"]) == on_disk | {"emviewer.bundled_models", "emviewer.resources"}
    assert setuptools["package-dir"] == {"emviewer.bundled_models": "models", "emviewer.resources": "resources"}


def test_qt_is_only_in_the_app_extra():
    project = _pyproject()["project"]
    names = {dependency.split(">")[0].lower() for dependency in project["dependencies"]}
    assert names.isdisjoint({"pyside6-essentials", "pyqtgraph"})
    assert {d.split(">")[0].lower() for d in project["optional-dependencies"]["app"]} == {
        "pyside6-essentials",
        "pyqtgraph",
    }
    assert "emviewer[app]" in project["optional-dependencies"]["test"]  # the GUI tests need it


def test_config_finds_the_repository_folders_through_the_package(monkeypatch, tmp_path):
    monkeypatch.delenv("EMVIEWER_MODELS_DIR", raising=False)
    assert config.bundled_models_dir().resolve() == (ROOT / "models").resolve()  # editable install
    assert config.sample_stack().resolve() == (ROOT / "resources" / "sample_mito_stack.tif").resolve()
    assert (config.resources_dir() / "icons" / "emviewer.png").is_file()
    monkeypatch.setenv("EMVIEWER_MODELS_DIR", str(tmp_path))
    assert config.bundled_models_dir() == tmp_path


def test_tensorflow_pools_its_cpu_memory_unless_the_user_chose_otherwise():
    """The allocator is set on import of the package, before anything imports TensorFlow."""
    code = "import os, emviewer; print(os.environ['TF_CPU_ALLOCATOR_USE_BFC'])"
    for user_setting, expected in ((None, "true"), ("false", "false")):
        env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
        if user_setting is not None:
            env["TF_CPU_ALLOCATOR_USE_BFC"] = user_setting
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert result.stdout.strip() == expected


# ---------------------------------------------------------------- without Qt


def test_the_app_without_qt_says_how_to_install_it(tmp_path):
    for argv in (["gui"], []):  # "emviewer" alone starts the app
        result = _without_qt(*argv, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and INSTALL_HINT in lines[0], result.stderr


def test_listing_models_needs_no_qt(tmp_path):
    result = _without_qt("models", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "mito-mru-5fm" in result.stdout


@pytest.mark.slow  # starting TensorFlow and the server: 30 s and more
def test_the_server_runs_without_qt(model_folder, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("no-qt-token\n")
    token_file.chmod(0o600)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The tiny models of tests/live_server.py: the server loads every model when it starts.
    env = dict(os.environ, EMVIEWER_MODELS_DIR=str(model_folder), EMVIEWER_USER_DIR=str(tmp_path / "user"))
    argv = ["serve", "--port", str(port), "--token-file", str(token_file)]
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_CLI_WITHOUT_QT, *argv], cwd=tmp_path, env=env, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "server did not start"
            try:
                health = requests.get(f"http://127.0.0.1:{port}/v1/health", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert health.ok and health.json()["version"]
    finally:
        process.terminate()
        process.wait(timeout=30)


# ---------------------------------------------------------------- the wheel (slow)


def _checked(*argv: str) -> str:
    """Run ``argv``; its stdout, or a failure that shows its stderr."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built with ``python -m build`` from a copy of what a clone holds (the checkout stays clean)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("emviewer", "models", "resources"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("dist")
    _checked(sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(source))
    (found,) = out.glob("emviewer-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A new virtual environment with the wheel installed non-editable, its dependencies taken from this
    environment, and Qt blocked as in an install without the ``app`` extra; returns its ``bin`` folder."""
    folder = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(folder)
    python = folder / "bin" / "python"
    _checked(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel))
    site = Path(_checked(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    # Appended after the new site-packages, and its own .pth files (the editable emviewer) are not run.
    ours = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    (site / "zz_dependencies.pth").write_text("".join(f"{path}\n" for path in sorted(ours)))
    (site / "_no_qt.py").write_text(NO_QT)
    (site / "aa_no_qt.pth").write_text("import _no_qt\n")
    return folder / "bin"


def _run(installed: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("EMVIEWER_MODELS_DIR", "PYTHONPATH")}
    return subprocess.run(
        [str(installed / "emviewer"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_the_wheel_carries_the_models_cards_and_sample_stack(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for model in (ROOT / "models").glob("*/*.keras"):
        inside = f"emviewer/bundled_models/{model.parent.name}/{model.name}"
        assert inside in names
        assert inside.replace(".keras", ".json") in names
    assert {"emviewer/bundled_models/README.md", "emviewer/bundled_models/TRAINING.md"} <= names
    assert {"emviewer/resources/sample_mito_stack.tif", "emviewer/resources/icons/emviewer.png"} <= names
    assert not any("__pycache__" in name or name.startswith(("models/", "resources/")) for name in names)


@pytest.mark.slow
def test_the_installed_wheel_lists_its_models_and_predicts_the_sample(installed, tmp_path):
    python = installed / "python"
    where = subprocess.check_output(
        [python, "-c", "import emviewer; print(emviewer.__file__)"], text=True, cwd=tmp_path
    )
    assert Path(where.strip()).is_relative_to(installed.parent), where  # not the editable checkout

    listed = _run(installed, "models", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "mito-mru-5fm" in listed.stdout and str(installed.parent) in listed.stdout

    info = _run(installed, "info", "--json", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    sample = Path(json.loads(info.stdout)["sample_stack"])
    assert sample.is_relative_to(installed.parent) and sample.is_file()

    out = tmp_path / "out"
    predicted = _run(installed, "predict", str(sample), "-o", str(out), "--object", "mito", "--mode", "fast",
                     "--format", "tif", cwd=tmp_path)  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    assert tifffile.imread(out / "mito.tif").shape == tifffile.imread(sample).shape


@pytest.mark.slow
def test_the_installed_wheel_without_qt_says_how_to_get_the_app(installed, tmp_path):
    result = _run(installed, "gui", cwd=tmp_path)
    assert result.returncode == 2
    assert INSTALL_HINT in result.stderr
