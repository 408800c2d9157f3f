"""The public API documents itself: every name in ``explain.__all__`` has a docstring with
Args / Returns / Raises where they apply, and every attribution method names its paper and
documents its parameters."""

import ast
import inspect
import os
import re
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

import explain
from explain.attribution import METHODS

PUBLIC = sorted(explain.__all__)


def _raises(func) -> bool:
    """Whether the function's own body has a ``raise`` statement."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError):
        return False
    return any(isinstance(n, ast.Raise) for n in ast.walk(tree))


def _returns_value(func) -> bool:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError):
        return False
    return any(isinstance(n, ast.Return) and n.value is not None for n in ast.walk(tree))


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_has_a_docstring(name):
    obj = getattr(explain, name)
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        return  # constants: METHODS, PREPROCESSING_MODES
    doc = inspect.getdoc(obj) or ""
    assert len(doc) > 40, f"{name} needs a docstring"
    if not inspect.isfunction(obj):
        return
    params = [p for p in inspect.signature(obj).parameters.values() if p.kind is not p.VAR_KEYWORD]
    if params:
        assert "Args:" in doc, f"{name} takes {len(params)} parameters but its docstring has no Args:"
        for p in params:
            assert p.name in doc, f"{name}'s docstring does not describe its parameter {p.name!r}"
    if _returns_value(obj):
        assert "Returns:" in doc, f"{name} returns a value but its docstring has no Returns:"
    if _raises(obj):
        assert "Raises:" in doc, f"{name} raises but its docstring has no Raises:"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_names_its_paper_and_parameters(name):
    cls = METHODS[name]
    doc = inspect.getdoc(cls) or ""
    module_doc = inspect.getdoc(inspect.getmodule(cls)) or ""
    assert cls.reference and ("arxiv.org" in cls.reference or "doi" in cls.reference), cls.reference
    text = doc + module_doc
    assert re.search(r"[A-Z][a-z]+ (et al\.|& [A-Z][a-z]+) \d{4}", text) and ("arxiv.org" in text or "doi.org" in text)
    # "Parameters and errors: as :class:`GradCAM`" refers to the parent's docstring
    documented = doc
    if "as :class:" in doc:
        documented += "".join(inspect.getdoc(base) or "" for base in cls.__mro__[1:])
    own = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "model")]
    for p in own:
        assert p in documented, f"{cls.__name__}'s docstring does not describe its parameter {p!r}"
    assert "Raises:" in documented, f"{cls.__name__}'s docstring does not list the errors it raises"
