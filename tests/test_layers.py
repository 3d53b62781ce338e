"""The package's import direction: each subpackage imports only from those before it in the data
flow (core -> data -> metrics -> models -> runs -> analysis -> viz -> qupath); the faces (app,
cli) may import anything and nothing imports them. Checked on the source (AST), lazy imports
inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cellbench

PKG = Path(cellbench.__file__).resolve().parent
LAYERS = ["core", "data", "metrics", "models", "runs", "analysis", "viz", "qupath"]
FACES = ["app", "cli"]


def imported_modules(source: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every ``cellbench`` import in a module's source."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "cellbench":  # from cellbench import data, runs ...
                out += [(node.lineno, f"cellbench.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module))
    return [(ln, m) for ln, m in out if m == "cellbench" or m.startswith("cellbench.")]


def violations(pkg: Path = PKG) -> list[str]:
    """Every import that goes against the flow, as ``file:line: A imports B``."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    bad = []
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg)
        # cellbench/__init__.py holds the docstring and the version only
        owner = None if len(rel.parts) == 1 else rel.parts[0]
        for line, mod in imported_modules(path.read_text()):
            parts = mod.split(".")
            target = parts[1] if len(parts) > 1 else None
            if owner is None or target is None or target == owner:
                continue
            where = f"{rel}:{line}: {owner} imports {mod}"
            if target in FACES:
                bad.append(where + " (nothing imports a face)")
            elif owner in FACES:
                continue
            elif target not in rank or owner not in rank:
                bad.append(where + " (module outside the layers)")
            elif rank[target] > rank[owner]:
                bad.append(where + f" ({target} comes after {owner})")
    return bad


def test_every_module_lives_in_a_layer_or_face():
    tops = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert tops == set(LAYERS) | set(FACES)
    loose = [p.name for p in PKG.glob("*.py") if p.name != "__init__.py"]
    assert loose == [], f"modules outside a subpackage: {loose}"


def test_imports_follow_the_flow():
    assert violations() == []


def test_each_subpackage_says_what_it_owns_and_may_use():
    for name in LAYERS + FACES:
        doc = ast.get_docstring(ast.parse((PKG / name / "__init__.py").read_text()))
        assert doc, f"cellbench.{name} has no docstring"
        if name != "core":
            assert "import" in doc, f"cellbench.{name}'s docstring does not say what it may import"


@pytest.mark.parametrize(
    "owner, line, reason",
    [
        ("data", "from cellbench.runs.store import Store", "runs comes after data"),
        ("metrics", "    from cellbench.models import nets", "models comes after metrics"),
        ("viz", "from cellbench.cli import app", "nothing imports a face"),
        ("runs", "from cellbench import viz", "viz comes after runs"),
        ("analysis", "import cellbench.app.ui", "nothing imports a face"),
    ],
)
def test_the_check_catches_a_backward_import(tmp_path, owner, line, reason):
    """A copy of the package with one bad import added fails the check, naming it."""
    for name in LAYERS + FACES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text('"""May import nothing."""\n')
    body = f"def f():\n{line}\n" if line.startswith(" ") else line + "\n"
    (tmp_path / owner / "bad.py").write_text(body)
    found = violations(tmp_path)
    assert len(found) == 1 and reason in found[0] and f"{owner}/bad.py" in found[0]
