"""The served dashboard in Chromium (docs/deploy.md): started with ``-- --data-root DIR``, its Report
tab refuses a folder outside the root and a symbolic link leading out, and reports on an uploaded zip
of class folders. Screenshots go to ``$EXPLAIN_SCREENSHOTS`` (default: tmp_path)."""

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_browser import _choose, _launch, _open_dashboard, _settled, playwright, streamlit_server
from test_browser import pytestmark as needs_chromium_and_demo_model

pytestmark = needs_chromium_and_demo_model

FOLDER_BOX = "Folder (one subfolder per class), relative to the data root"


def _class_folders(folder: Path) -> Path:
    """Two of the demo model's classes, three generated 28x28 gray images each (its input): dark, bright."""
    rng = np.random.default_rng(0)
    for cls, level in (("Bag", 40), ("Trouser", 200)):
        (folder / cls).mkdir(parents=True)
        for i in range(3):
            pixels = np.clip(rng.normal(level, 30, (28, 28)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "L").save(folder / cls / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The dashboard with ``--data-root <tmp>/root`` (holding ``shapes/test``); ``<tmp>/outside`` holds
    data that is not served, and ``root/escape`` links to it."""
    tmp = tmp_path_factory.mktemp("served")
    root = tmp / "root"
    _class_folders(root / "shapes" / "test")
    _class_folders(tmp / "outside")
    (root / "escape").symlink_to(tmp / "outside", target_is_directory=True)
    with streamlit_server("--data-root", str(root)) as url:
        yield url, tmp


def _type_folder(page, text: str) -> None:
    box = page.get_by_label(FOLDER_BOX, exact=True)
    box.fill(text)
    box.press("Enter")
    _settled(page)


def test_data_root_refusals_and_a_zip_report_in_chromium(served, tmp_path):
    url, tmp = served
    shots = Path(os.environ.get("EXPLAIN_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path in sorted(_class_folders(tmp_path / "clothes").rglob("*.png")):
            z.write(path, f"clothes/{path.relative_to(tmp_path / 'clothes').as_posix()}")
    (tmp_path / "clothes.zip").write_bytes(buf.getvalue())
    with playwright.sync_playwright() as p:
        browser = _launch(p)
        page, errors = _open_dashboard(browser, url)
        page.get_by_role("tab", name="Report").click()
        _settled(page)
        _choose(page, "Data", "A folder of class subfolders…")
        _settled(page)
        _choose(page, "Data folders under the data root (1)", "shapes/test")  # the link out is not listed
        _settled(page)
        picked = page.get_by_label(FOLDER_BOX, exact=True).input_value()

        _type_folder(page, str(tmp / "outside"))
        outside = page.get_by_text("is outside the data root: only folders under it are served.")
        outside.wait_for(timeout=30_000)
        page.screenshot(path=shots / "serving_1_outside_refused.png")
        _type_folder(page, "escape")
        page.get_by_text("escape leads outside the data root through a symbolic link").wait_for(timeout=30_000)
        page.screenshot(path=shots / "serving_2_symlink_refused.png")

        _choose(page, "Data", "A .zip of class folders (upload)…")
        _settled(page)
        page.locator('[role="tabpanel"] [data-testid="stFileUploaderDropzoneInput"]').set_input_files(
            str(tmp_path / "clothes.zip")
        )
        _settled(page)
        page.get_by_role("button", name="Evaluate and write the report").click()
        page.get_by_text("6 images, accuracy").wait_for(timeout=180_000)
        _settled(page)
        page.locator('[role="tabpanel"] img').first.scroll_into_view_if_needed()  # the per-class chart
        page.screenshot(path=shots / "serving_3_zip_report.png")
        tab = page.locator('[role="tabpanel"]').filter(has_text="6 images, accuracy").inner_text()
        body = page.inner_text("body")
        browser.close()
    assert picked == "shapes/test"
    assert "clothes.zip: 6 images, accuracy" in tab and "explain-data-zip" not in body  # no server path shown
    assert "Traceback" not in body and "Something went wrong" not in body
    assert not errors, errors
