"""The served dashboard's Report tab under AppTest (docs/deploy.md): folders only under ``--data-root``,
none on a server listening beyond this machine without one, and uploaded zips of class folders
unpacked per session and removed with it."""

import gc
import io
import shutil
import zipfile
from pathlib import Path

import pytest
from conftest import DEMO_MODEL, ROOT, SAMPLES
from dashboard_helpers import open_tab
from streamlit import config
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.skipif(not DEMO_MODEL.exists(), reason="the bundled demo model is missing")

FOLDER, ZIP = "A folder of class subfolders…", "A .zip of class folders (upload)…"
CLASSES = {"Trouser": "1_trouser", "Bag": "8_bag"}


def _data_set(folder: Path, copies: int = 2) -> Path:
    """``folder/<class>/<i>.png``: copies of the bundled samples (28x28 gray, the demo model's)."""
    for cls, sample in CLASSES.items():
        (folder / cls).mkdir(parents=True)
        for i in range(copies):
            shutil.copy(SAMPLES / f"fashion_mnist_{sample}.png", folder / cls / f"{i}.png")
    return folder


def _zip(folder: Path) -> bytes:
    """A zip of ``folder``'s class folders, wrapped in one folder (``zip -r clothes.zip clothes``)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path in sorted(folder.rglob("*.png")):
            z.write(path, f"clothes/{path.relative_to(folder).as_posix()}")
    return buf.getvalue()


@pytest.fixture
def served(monkeypatch):
    """A dashboard started without ``--data-root`` and without ``server.address`` (every interface)."""
    monkeypatch.setattr("sys.argv", ["app.py"])
    config.set_option("server.address", None)


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """A dashboard started with ``-- --data-root <tmp>/root`` holding ``clothes/test``; ``<tmp>/outside``
    holds another data set, and ``root/escape`` is a symbolic link to it."""
    root = tmp_path / "root"
    _data_set(root / "clothes" / "test")
    _data_set(tmp_path / "outside")
    (root / "escape").symlink_to(tmp_path / "outside", target_is_directory=True)
    monkeypatch.setattr("sys.argv", ["app.py", "--data-root", str(root)])
    return root


def _report_tab(choice: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at = open_tab(at, "Report")
    at.selectbox(key="report_data").set_value(choice).run()
    assert not at.exception, at.exception
    return at


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_folders_are_off_when_served_without_a_data_root(served):
    at = _report_tab(FOLDER)
    assert not at.error and not at.text_input
    (info,) = [i.value for i in at.info]
    assert "Folders on the server are off" in info
    assert "--data-root DIR" in info and "--server.address localhost" in info
    assert ZIP in at.selectbox(key="report_data").options  # an upload stays available
    assert at.button(key="run_report").disabled


def test_folders_typed_freely_on_localhost(served, tmp_path):
    config.set_option("server.address", "localhost")
    try:
        at = _report_tab(FOLDER)
        at.text_input(key="report_folder").input(str(_data_set(tmp_path / "mine"))).run()
        assert not at.info and not at.error and not at.button(key="run_report").disabled
    finally:
        config.set_option("server.address", None)


def test_data_root_lists_its_folders_and_refuses_the_way_out(root):
    at = _report_tab(FOLDER)
    pick = at.selectbox(key="report_folder_pick")
    assert pick.options == ["clothes/test"]  # the link leading out is not listed
    pick.set_value("clothes/test").run()
    assert at.text_input(key="report_folder").value == "clothes/test" and not at.error
    assert not at.button(key="run_report").disabled
    for typed, message in [
        ("../outside", "leaves the data root through '..'"),
        (str(root.parent / "outside"), "is outside the data root"),
        ("escape", "leads outside the data root through a symbolic link"),
        ("clothes/nope", "No such folder under the data root: clothes/nope"),
    ]:
        at.text_input(key="report_folder").input(typed).run()
        assert not at.exception, at.exception
        assert at.selectbox(key="report_folder_pick").value is None  # typed over the pick
        (error,) = _errors(at)
        assert message in error and "Traceback" not in error
        at.button(key="run_report").click().run()  # checked again as the report would start: still refused
        assert _errors(at) == [error] and not any("images, accuracy" in m.value for m in at.markdown)


def test_a_missing_data_root_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["app.py", "--data-root", str(tmp_path / "gone")])
    at = _report_tab(FOLDER)
    (error,) = _errors(at)
    assert "is not an existing folder" in error and "--data-root DIR" in error
    assert ZIP in at.selectbox(key="report_data").options


def test_a_folder_under_the_data_root_is_reported(root):
    at = _report_tab(FOLDER)
    at.text_input(key="report_folder").input("clothes/test").run()
    at.button(key="run_report").click().run()
    assert not at.exception and not at.error, _errors(at)
    assert any(m.value.startswith("**clothes/test**: 4 images, accuracy") for m in at.markdown)


def test_an_uploaded_zip_is_reported_and_removed_with_the_session(served, tmp_path):
    at = _report_tab(ZIP)
    at.file_uploader(key="report_zip").set_value(("clothes.zip", _zip(_data_set(tmp_path / "c")), "application/zip"))
    at.run()
    held = at.session_state["_report_zip"]
    first = Path(held.tmp)
    assert held.folder == first / "clothes" and (first / "clothes" / "Bag" / "0.png").is_file()
    at.button(key="run_report").click().run()
    assert not at.exception and not at.error, _errors(at)
    assert any(m.value.startswith("**clothes.zip**: 4 images, accuracy") for m in at.markdown)
    assert {"dl_per_class", "dl_confusion", "dl_report"} <= {b.key for b in at.get("download_button")}
    (report,) = [value for value, _ in at.session_state["report_results"]._items.values()]
    page = report.files["report.html"].decode()
    assert "clothes.zip" in page and held.tmp not in page  # named as uploaded, not by the server's folder
    at.run()  # a rerun does not unpack again
    assert at.session_state["_report_zip"] is held

    one_class = io.BytesIO()
    with zipfile.ZipFile(one_class, "w") as z:
        z.write(SAMPLES / "fashion_mnist_8_bag.png", "Bag/0.png")
    at.file_uploader(key="report_zip").set_value(("bags.zip", one_class.getvalue(), "application/zip")).run()
    assert not first.exists()  # replaced: the last zip's folder is gone, and its report with it
    (error,) = _errors(at)
    assert error.startswith("bags.zip holds 1 class folder with images ('Bag'); at least 2 are needed.")
    assert not any("images, accuracy" in m.value for m in at.markdown)
    second = Path(at.session_state["_report_zip"].tmp)
    assert not second.exists()  # nothing is kept of a refused zip

    at.file_uploader(key="report_zip").set_value(("clothes.zip", _zip(tmp_path / "c"), "application/zip")).run()
    third = Path(at.session_state["_report_zip"].tmp)
    assert third.is_dir()
    del at, held
    gc.collect()
    assert not third.exists()  # the session is gone: so is its folder


def test_sweep_removes_the_zips_of_sessions_long_gone(served, tmp_path, monkeypatch):
    """Streamlit forgets a closed session without shutting it down: the sweep removes its zip once
    the session has been inactive for GONE_S seconds, and keeps those of active sessions."""
    from streamlit.runtime import Runtime

    from dashboard import served as serving

    at = _report_tab(ZIP)
    at.file_uploader(key="report_zip").set_value(("clothes.zip", _zip(_data_set(tmp_path / "c")), "application/zip"))
    at.run()
    tmp = at.session_state["_report_zip"].tmp
    assert tmp in serving._HELD  # registered with this session's id
    active = {serving._HELD[tmp][0]}

    class FakeRuntime:
        def is_active_session(self, session_id):
            return session_id in active

    monkeypatch.setattr(Runtime, "exists", staticmethod(lambda: True))
    monkeypatch.setattr(Runtime, "instance", staticmethod(lambda: FakeRuntime()))
    serving._HELD[tmp][1] -= 2 * serving.GONE_S
    serving.sweep()
    assert Path(tmp).is_dir()  # still connected: kept, and seen now
    active.clear()
    serving.sweep()
    assert Path(tmp).is_dir()  # gone for less than GONE_S: a reconnect may still come
    serving._HELD[tmp][1] -= serving.GONE_S + 1
    serving.sweep()
    assert not Path(tmp).exists() and tmp not in serving._HELD
