"""The Audit tab under AppTest: the audit of a folder runs in the background, shows each class's clusters
as rows, and an image's "Explain it" button makes it the sidebar's image with the Explain tab open."""

from __future__ import annotations

import pytest
from dashboard_helpers import open_tab
from test_app import _class_folder, _new, _ok


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["app.py", "--data-root", str(tmp_path)])
    return tmp_path


def _audited(tmp_path):
    _class_folder(tmp_path, {"Trouser": "1_trouser", "Bag": "8_bag"}, 14)
    at = open_tab(_new(), "Audit")
    at.selectbox(key="report_data").set_value("A folder of class subfolders…").run()
    at.text_input(key="report_folder").input(str(tmp_path)).run()
    at.button(key="run_audit").click().run()
    _ok(at)
    return at


def test_the_audit_tab_shows_clusters_and_opens_an_image(tmp_path, data_root):
    at = _audited(tmp_path)
    assert any("Looking most at the border" in m.value for m in at.markdown)
    box = at.selectbox(key="audit_class")
    assert len(box.options) == 2 and all("clusters" in o for o in box.options)
    opens = [b for b in at.button if b.key.startswith("audit_open_")]
    assert opens, "no prototype buttons"
    opens[0].click().run()
    _ok(at)
    assert at.selectbox(key="image_choice").value.endswith("(from the audit)")
    assert at.session_state["tab"] == "Explain"
