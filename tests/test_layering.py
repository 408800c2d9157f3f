"""The import floors of docs/architecture.md ("What may import what"), checked on the source.

A module imports only from its own floor or the floors below; ``explain`` never imports
``training``; ``training`` imports only the low floors of ``explain``. Imports under
``if __name__ == "__main__":`` (thin entry points) are not counted.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FLOORS = {
    "errors": 1,
    "_quiet": 1,
    "_keras_fixes": 1,
    "io": 1,
    "images": 2,
    "preprocessing": 2,
    "layouts": 2,
    "trust": 2,
    "budget": 2,
    "data": 3,
    "models": 3,
    "legacy": 3,
    "config_scan": 3,
    "activations": 4,
    "scores": 4,
    "attribution": 5,
    "predict": 5,
    "evaluation": 5,
    "embedding": 5,
    "metrics": 5,
    "filters": 5,
    "feature_visualization": 5,
    "pictures": 6,
    "plots": 6,
    "report": 7,
    "cli": 7,
    "layers": 7,
    "attribute": 7,
    "convert": 7,
    "__init__": 8,
}

#: What training may use of explain: the decoder, the data layer and other low floors, plus the
#: CLI helpers and evaluation for ``python -m training evaluate``.
TRAINING_MAY_USE = {"images", "data", "io", "_quiet", "errors", "plots", "models", "preprocessing", "evaluation", "cli"}


def _imports(path: Path) -> set[str]:
    """Dotted names a module imports, leaving out what runs only under ``__main__``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    names = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module in ("explain", "training"):  # from explain import legacy
                names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _floor_of(dotted: str) -> int | None:
    parts = dotted.split(".")
    if parts[0] != "explain" or len(parts) < 2:
        return None
    return FLOORS.get(parts[1])


def _module_key(path: Path) -> str:
    rel = path.relative_to(ROOT / "explain").with_suffix("")
    return rel.parts[0]


EXPLAIN_FILES = sorted((ROOT / "explain").rglob("*.py"))


@pytest.mark.parametrize("path", EXPLAIN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_explain_modules_import_only_their_floor_or_below(path):
    key = _module_key(path)
    assert key in FLOORS, f"{key} has no floor: add it to docs/architecture.md and FLOORS"
    own = FLOORS[key]
    for name in _imports(path):
        assert not name.startswith("training"), f"{path.name} imports {name}: explain never imports training"
        floor = _floor_of(name)
        if floor is not None and name.split(".")[1] != key:
            assert floor <= own, f"{path.relative_to(ROOT)} (floor {own}) imports {name} (floor {floor})"


@pytest.mark.parametrize("path", sorted((ROOT / "training").glob("*.py")), ids=lambda p: p.name)
def test_training_uses_only_the_low_floors_of_explain(path):
    used = {n.split(".")[1] for n in _imports(path) if n.startswith("explain.")}
    assert used <= TRAINING_MAY_USE, f"{path.name} imports explain.{sorted(used - TRAINING_MAY_USE)}"


def test_the_floors_are_the_documented_ones():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = doc.split("## What may import what", 1)[1].split("\n## ", 1)[0]
    for module in FLOORS:
        if module != "__init__":
            assert f"`{module}" in section, f"{module} missing from docs/architecture.md's import floors"
