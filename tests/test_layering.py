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
    "archives": 1,
    "images": 2,
    "render": 2,
    "data": 3,
    "models": 3,
    "features": 4,
    "attribution": 5,
    "metrics": 6,
    "concepts": 6,
    "callbacks": 6,
    "dataset": 7,
    "cli": 8,
    "__init__": 9,
    "__main__": 9,
}

#: What training may use of explain: the decoder, the data layer and other low floors, model loading,
#: figures of training curves, plus the CLI helpers and evaluation for ``python -m training evaluate``.
TRAINING_MAY_USE = {"images", "data", "io", "_quiet", "errors", "render", "models", "dataset", "cli", "callbacks"}


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


# -- no import cycles, lazy imports included ---------------------------------------------------
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in EXPLAIN_FILES}


def _module_imports(path: Path) -> set[str]:
    """The explain modules a module imports anywhere in it (functions included, ``__main__`` blocks not):
    ``from a.b import c`` is an import of ``a.b.c`` when that is a module, else of ``a.b``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
            for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in MODULES else node.module)
    return {m for m in found if m in MODULES}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_import_cycle():
    graph = {name: _module_imports(path) - {name} for name, path in MODULES.items()}
    assert _cycle(graph) is None, "import cycle: " + " -> ".join(_cycle(graph))


def test_no_import_cycle_between_capabilities():
    """The folders and top-level modules of ``explain`` (``models``, ``features``, ...) import each other
    in one direction only."""
    key = lambda m: m.split(".")[1] if m.count(".") else "__init__"  # noqa: E731
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        graph.setdefault(key(name), set()).update(key(m) for m in _module_imports(path) if key(m) != key(name))
    graph.pop("__init__", None)  # the public API imports everything; nothing imports it back (checked above)
    assert _cycle(graph) is None, "import cycle between capabilities: " + " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
