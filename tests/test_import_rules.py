"""The import rules of DESIGN.md section 2, checked statically and at run time."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from import_scan import imported_names

PACKAGE = Path(__file__).resolve().parents[1] / "emviewer"

# layer -> first-party layers and third-party packages it must never import
FORBIDDEN = {
    "core": {
        "emviewer.cli",
        "emviewer.remote",
        "emviewer.server",
        "emviewer.gui",
        "PySide6",
        "pyqtgraph",
        "fastapi",
        "uvicorn",
        "requests",
    },
    "remote": {"emviewer.cli", "emviewer.server", "emviewer.gui", "PySide6", "pyqtgraph", "fastapi"},
    "server": {"emviewer.cli", "emviewer.gui", "emviewer.remote.client", "PySide6", "pyqtgraph"},
    "gui": {"emviewer.cli", "emviewer.server"},
}
HEAVY = ("tensorflow", "keras", "PySide6", "pyqtgraph", "fastapi", "torch", "jax")


def _imports(path: Path) -> set[str]:
    """Absolute names of every module a file imports (relative imports resolved)."""
    return imported_names(path, ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))


def _violations(layer: str) -> list[str]:
    found = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for name in _imports(path):
            for banned in FORBIDDEN[layer]:
                if name == banned or name.startswith(banned + "."):
                    found.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_follow_design(layer):
    assert _violations(layer) == []


def test_nothing_but_cli_imports_gui():
    offenders = [
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if "gui" not in path.relative_to(PACKAGE).parts[:1]
        and path.name != "cli.py"
        and any(n == "emviewer.gui" or n.startswith("emviewer.gui.") for n in _imports(path))
    ]
    assert offenders == []


def test_checker_catches_a_violation(tmp_path, monkeypatch):
    """The static check must be able to fail: plant a forbidden import and expect it found."""
    fake = tmp_path / "emviewer"
    (fake / "core").mkdir(parents=True)
    (fake / "core" / "bad.py").write_text("from ..gui import window\nimport PySide6.QtCore\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert len(_violations("core")) >= 2


def test_importing_core_loads_no_heavy_library():
    modules = [f"emviewer.core.{p.stem}" for p in (PACKAGE / "core").glob("*.py") if p.stem != "__init__"]
    modules += ["emviewer.core.io", "emviewer.core.models", "emviewer.cli", "emviewer.config"]
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules)
    code += f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_import_linter_contracts_are_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is part of the test extras"
    result = subprocess.run([lint], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stdout[-2000:]
