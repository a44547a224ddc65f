"""The top-level packages are layers: ``hw < golden < sw < verif < gen``.

A module may import its own package and any lower one, never a higher one, at module level or
inside a function. Every import statement of every module is parsed (``ast``), so a lazy import
cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("hw", "golden", "sw", "verif", "gen")
RANK = {name: rank for rank, name in enumerate(LAYERS)}


def imported_packages(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value.split(".")[0]))
    return found


def upward_imports(root: Path = ROOT) -> list[str]:
    """``file:line: package imports higher_package`` for every import against the layer order."""
    problems = []
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            for line, package in imported_packages(ast.parse(path.read_text(), str(path))):
                if package in RANK and RANK[package] > RANK[layer]:
                    problems.append(f"{path.relative_to(root)}:{line}: {layer} imports {package} "
                                    f"(layers: {' < '.join(LAYERS)})")
    return problems


def test_no_upward_imports():
    problems = upward_imports()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("source, expected", [
    ("import gen.cli\n", ["hw/bad.py:1: hw imports gen"]),
    ("def f():\n    from verif.sims import run_tiles\n", ["hw/bad.py:2: hw imports verif"]),
    ("import importlib\nimportlib.import_module('sw.packer')\n", ["hw/bad.py:2: hw imports sw"]),
    ("from hw.config import MixPEConfig\nimport torch\n", []),
])
def test_layer_check_catches_upward_imports(tmp_path, source, expected):
    for layer in LAYERS:
        (tmp_path / layer).mkdir()
    (tmp_path / "hw" / "bad.py").write_text(source)
    found = [p.split(" (layers")[0] for p in upward_imports(tmp_path)]
    assert found == expected
