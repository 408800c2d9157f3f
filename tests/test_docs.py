"""The claims of docs/architecture.md that code can check: the folder list, the import floors, and
which modules import matplotlib."""

import ast
import re
from pathlib import Path

from tests.test_layering import FLOORS

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    return DOC.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _entries(folder: Path) -> set[str]:
    """A folder's modules and subfolders as the doc names them: ``explain/io.py``, ``explain/models/``."""
    rel = folder.relative_to(ROOT)
    names = {f"{rel}/{p.name}" for p in folder.glob("*.py")}
    names |= {f"{rel}/{p.name}/" for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    return names


def test_every_folder_and_module_of_explain_is_in_the_map():
    section = _section("Folders and modules")
    listed = set(re.findall(r"`((?:explain|dashboard|training)/[\w/.]*)`", section))
    listed |= {p for group in re.findall(r"`(explain/[\w]+\.py)`, `(explain/[\w]+\.py)`", section) for p in group}
    missing = sorted(_entries(ROOT / "explain") - listed - {"explain/py.typed"})
    assert not missing, f"docs/architecture.md's 'Folders and modules' does not list {missing}"


def test_every_module_of_a_documented_folder_is_in_its_table():
    for folder, title in (("models", "`explain/models/`"), ("dashboard", "`dashboard/`")):
        table = DOC.split(f"### {title}", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
        modules = {p.name for p in (ROOT if folder == "dashboard" else ROOT / "explain").joinpath(folder).glob("*.py")}
        missing = sorted(m for m in modules - {"__init__.py"} if f"`{m}`" not in table)
        assert not missing, f"docs/architecture.md's {title} section does not name {missing}"


def test_every_path_the_doc_names_exists():
    named = set(re.findall(r"`((?:explain|dashboard|training|tests|bench|docs)/[\w/.-]+)`", DOC))
    assert named, "the doc names no paths: the pattern is wrong"
    absent = sorted(p for p in named if not (ROOT / p).exists())
    assert not absent, f"docs/architecture.md names paths that do not exist: {absent}"


def test_the_floors_are_the_documented_ones():
    section = _section("What may import what")
    documented = {}
    for number, line in re.findall(r"^(\d+)\. (.+)$", section, flags=re.M):
        for name in re.findall(r"`(\w+)`", line):
            documented[name] = int(number)
    assert documented == FLOORS, "docs/architecture.md's floors differ from tests/test_layering.py's FLOORS"


def _imports_matplotlib(path: Path) -> bool:
    """Whether a module imports matplotlib anywhere (functions included; ``if TYPE_CHECKING:`` not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded = [n for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)]
    typing_only = {id(n) for node in guarded for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        if any(n.split(".")[0] == "matplotlib" for n in names):
            return True
    return False


def test_the_modules_importing_matplotlib_are_the_documented_ones():
    line = next(p for p in DOC.split("\n\n") if p.startswith("matplotlib is imported by"))
    documented = set(re.findall(r"`([\w/.]+\.py)`", line))
    files = [*(ROOT / "explain").rglob("*.py"), *(ROOT / "dashboard").rglob("*.py"), *(ROOT / "training").glob("*.py")]
    actual = {str(p.relative_to(ROOT)) for p in [*files, ROOT / "app.py"] if _imports_matplotlib(p)}
    assert actual == documented, f"modules importing matplotlib: {sorted(actual)}; the doc says {sorted(documented)}"
