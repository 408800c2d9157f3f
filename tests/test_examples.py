"""examples/quickstart.ipynb runs from top to bottom (nbclient, as CI does) and every result in it shows
itself; it is committed without outputs."""

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def test_the_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def _outputs(nb, marker: str) -> dict:
    """The display data of the code cell whose source contains ``marker``, merged."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and marker in c.source)
    data = {}
    for out in cell.outputs:
        data.update(out.get("data", {}))
    return data


@pytest.mark.skipif(
    not FASHION.exists() and not (Path.home() / ".keras/datasets/fashion-mnist").exists(),
    reason="Fashion-MNIST is not here (apt-get install dataset-fashion-mnist)",
)
def test_the_quickstart_notebook_runs_and_its_results_show_themselves(tmp_path, monkeypatch):
    # A copy beside links to the demo model and the samples, so the report it writes lands in tmp_path.
    (tmp_path / "examples").mkdir()
    shutil.copy(NOTEBOOK, tmp_path / "examples" / NOTEBOOK.name)
    for name in ("models", "sample_images"):
        (tmp_path / name).symlink_to(ROOT / name)
    nb = nbformat.read(tmp_path / "examples" / NOTEBOOK.name, as_version=4)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")  # the kernel inherits this process's environment
    where = {"metadata": {"path": str(tmp_path / "examples")}}
    NotebookClient(nb, timeout=300, kernel_name="python3", resources=where).execute()

    assert "image/png" in _outputs(nb, "prediction = explain.predict")
    assert "image/png" in _outputs(nb, "compute_activations")
    gradcam = _outputs(nb, "explain.show(attribution")
    assert "image/png" in gradcam, "explain.show's Figure is not displayed as a picture in the notebook"
    report = _outputs(nb, "write_report")["text/html"]
    assert "report.html" in report and "<table>" in report
    assert (tmp_path / "examples" / "quickstart_report" / "report.html").is_file()
    assert "image/png" in _outputs(nb, "explain.embed")
