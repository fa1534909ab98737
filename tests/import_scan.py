"""What a Python file imports, read from its syntax tree (nothing is imported): used by the
layer rules (test_import_rules.py) and the container's package list (test_cli_server.py)."""

from __future__ import annotations

import ast
from pathlib import Path


def imported_names(path: Path, module: str, top_level_only: bool = False) -> set[str]:
    """Absolute names ``module`` (the file ``path``) imports, relative imports resolved;
    ``from a import b`` gives ``a`` and ``a.b``. Function-level imports are included unless
    ``top_level_only``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            target = ".".join(part for part in (base, node.module or "") if part)
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names
