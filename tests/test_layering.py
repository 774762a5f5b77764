"""DESIGN §1 layering, checked on the import statements: data moves forward only."""

import ast
from pathlib import Path

import pytest

import tessera

SRC = Path(tessera.__file__).parent

# package -> tessera packages it must not import (module level or inside functions)
FORBIDDEN = {
    "corpus": ("tessera.models", "tessera.train", "tessera.objectives", "tessera.evaluate", "tessera.views"),
    "views": ("tessera.objectives", "tessera.train", "tessera.evaluate"),
    "models": ("tessera.train", "tessera.evaluate"),
    "train": ("tessera.evaluate",),
    "evaluate": ("tessera.train", "tessera.views"),
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0]
    return names + [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_comes_before_it(package):
    bad = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in sorted((SRC / package).rglob("*.py"))
        for name in _imports(path)
        if name.startswith(FORBIDDEN[package])
    ]
    assert not bad, bad


def test_neutral_modules_import_no_tessera_package():
    for name in ("dist.py", "io.py", "dihedral.py", "optimization.py"):
        assert not [m for m in _imports(SRC / name) if m.startswith("tessera")], name
