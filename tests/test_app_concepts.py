"""The Concepts tab under AppTest, on the planted stripes/dots model (tests/concepts_planted.py), served with
``--data-root``: TCAV on concept folders under the data root finds that stripes drive "striped"; a concept zip
uploaded is tested too; CRAFT's crops open their image in the Explain tab; bad input is one error line."""

from __future__ import annotations

import io
import zipfile

import pytest
from dashboard_helpers import open_tab
from test_app import _new, _ok

from explain.data import FolderSource


@pytest.fixture(scope="session")
def planted_concepts(planted_concepts):
    """conftest's planted concepts (built once per session), with a concept folder of 3 images
    (``concepts/three``) beside the others; shared with tests/test_concepts_browser.py."""
    three = planted_concepts.stripes.parent / "three"
    if not three.exists():
        three.mkdir()
        for k, path in enumerate(sorted(planted_concepts.stripes.iterdir())[:3]):
            (three / f"{k}.png").write_bytes(path.read_bytes())
    return planted_concepts


@pytest.fixture
def served(planted_concepts, monkeypatch):
    """The dashboard on the planted model, with the planted data set's folder as its data root."""
    root = planted_concepts.model_path.parent
    monkeypatch.setattr("sys.argv", ["app.py", "--model", str(planted_concepts.model_path), "--data-root", str(root)])
    return planted_concepts


def _concepts_tab():
    at = open_tab(_new(), "Concepts")
    at.selectbox(key="report_data").set_value("A folder of class subfolders…").run()
    at.text_input(key="report_folder").input("test").run()
    _ok(at)
    return at


def _tcav(at, concepts: list[str], random: str | None = "concepts/random"):
    at.multiselect(key="concept_folders").set_value(concepts)
    if random is not None:
        at.selectbox(key="concept_random").set_value(random)
    at.multiselect(key="tcav_layers").set_value(["dense"])
    at.multiselect(key="tcav_classes").set_value(["striped"])
    at.number_input(key="tcav_images").set_value(60)
    at.run()
    at.button(key="run_tcav").click().run()
    return at


def test_tcav_on_folders_under_the_data_root_finds_the_stripes(served):
    at = _concepts_tab()
    assert {"concepts/stripes", "concepts/dots", "concepts/random"} <= set(
        at.multiselect(key="concept_folders").options
    )
    _tcav(at, ["concepts/stripes", "concepts/dots"])
    _ok(at)
    assert any("**stripes** drives **striped** at dense" in m.value for m in at.markdown), [
        m.value for m in at.markdown
    ]
    table = at.dataframe[0].value
    row = table[table["concept"] == "stripes"].iloc[0]
    assert row["class"] == "striped" and row["significant"] == "yes: drives"
    assert {"dl_tcav_json", "dl_tcav_png"} <= {b.key for b in at.get("download_button")}


def _zip(folders: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, folder in folders.items():
            for path in sorted(folder.iterdir()):
                z.write(path, f"bundle/{name}/{path.name}")
    return buf.getvalue()


def test_an_uploaded_zip_of_concept_folders(served):
    """One zip holding a folder per concept and a ``random`` folder: unpacked for the session, its random images
    picked as the random folder, its concepts tested."""
    at = _concepts_tab()
    data = _zip({"stripes": served.stripes, "random": served.random})
    at.file_uploader(key="concept_zips").set_value([("bundle.zip", data, "application/zip")]).run()
    _ok(at)
    assert at.selectbox(key="concept_random").value == "random images from bundle.zip"
    _tcav(at, [], random=None)
    _ok(at)
    assert any("**stripes** drives **striped**" in m.value for m in at.markdown)
    (held,) = at.session_state["_concept_zips"].values()
    assert held.tmp not in " ".join(str(v) for v in at.dataframe[0].value.to_numpy().ravel())


def test_craft_crops_open_their_image_in_the_explain_tab(served):
    at = _concepts_tab()
    assert at.selectbox(key="craft_class").value == "dotted"  # no report yet: the first class
    at.selectbox(key="craft_class").set_value("striped")
    at.number_input(key="craft_k").set_value(3)
    at.number_input(key="craft_crops").set_value(4)
    at.number_input(key="craft_images").set_value(60)
    at.selectbox(key="craft_importance").set_value("gradient")
    at.run()
    at.button(key="run_craft").click().run()
    _ok(at)
    assert any(m.value.startswith("**striped** at **pool_2**: 3 concepts") for m in at.markdown)
    opens = [b for b in at.button if b.key.startswith("craft_open_")]
    assert len(opens) == 3 * 6, [b.key for b in opens]
    first = at.session_state["craft_results"]
    (view,) = [v for v, _ in first._items.values()]
    image_id = view.result.concepts[0].top_crops[0][0]
    assert image_id.startswith("striped/")
    opens[0].click().run()
    _ok(at)
    assert at.selectbox(key="image_choice").value == f"{image_id} (from CRAFT)"
    assert at.session_state["tab"] == "Explain"
    picked = at.session_state["map_pick"]
    assert FolderSource(picked["spec"]).image_id(picked["index"]) == image_id  # the crop's own image


def test_bad_concept_input_is_one_error_line(served):
    at = _concepts_tab()
    _tcav(at, ["concepts/three"])
    assert not at.exception
    (error,) = [e.value for e in at.error]
    assert "three" in error and "10" in error and "Traceback" not in error
    assert str(served.model_path.parent) not in error  # no server path
    at.multiselect(key="concept_folders").set_value(["../outside"]).run()
    assert not at.exception
    refused = [e.value for e in at.error if "../outside" in e.value]
    assert refused and refused[0].startswith("../outside leaves the data root"), [e.value for e in at.error]
