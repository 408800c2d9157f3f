"""examples/explain_from_r.R's bad input: a Python without explain gets one how-to line and exit status 2.

The whole script (a Keras 2 model made and saved as R's ``save_model_hdf5()`` saves it, its top-5, Grad-CAM and
report) runs in CI from ``.ci/run``, not here: it takes about 25 s."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

SCRIPT = ROOT / "examples" / "explain_from_r.R"
RSCRIPT = shutil.which("Rscript")

pytestmark = pytest.mark.skipif(RSCRIPT is None, reason="R is not installed (Rscript)")


@pytest.fixture(scope="module")
def has_reticulate():
    check = subprocess.run([RSCRIPT, "-e", 'quit(status = !requireNamespace("reticulate", quietly = TRUE))'])
    if check.returncode:
        pytest.skip("the R package reticulate is not installed")


def _run(python: str, tmp_path):
    env = {**os.environ, "RETICULATE_PYTHON": python, "TF_CPP_MIN_LOG_LEVEL": "2"}
    args = [RSCRIPT, str(SCRIPT), "", str(tmp_path / "out")]
    return subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def _assert_how_to(result, python_named: str, tmp_path):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one message, no R traceback ("Error in", "Calls:", "Execution halted")
    assert python_named in lines[0] and "RETICULATE_PYTHON" in lines[0]
    assert "pip install -e ." in lines[0] and "RETICULATE_PYTHON=/path/to/python" in lines[0]
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_a_python_without_explain_gets_the_how_to(tmp_path, has_reticulate):
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    result = _run(str(venv / "bin" / "python"), tmp_path)
    _assert_how_to(result, str(venv), tmp_path)
    assert "has no module explain" in result.stderr


def test_a_python_that_is_not_there_gets_the_how_to(tmp_path, has_reticulate):
    missing = str(tmp_path / "no" / "python")
    result = _run(missing, tmp_path)
    _assert_how_to(result, missing, tmp_path)
    assert "does not run as Python" in result.stderr
