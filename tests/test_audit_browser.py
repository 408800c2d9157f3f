"""The Audit tab in Chromium, on the planted Clever Hans (tests/planted.py): the audit of the test folder shows
the shirts' watermark cluster, and a prototype's "Explain it" button explains that image in the Explain tab.
Screenshots go to ``$EXPLAIN_SCREENSHOTS`` (default: tmp_path)."""

import os
from pathlib import Path

import pytest
from test_browser import _choose, _launch, _open_dashboard, _settled, playwright, streamlit_server
from test_browser import pytestmark as needs_chromium_and_demo_model

pytestmark = needs_chromium_and_demo_model


@pytest.fixture(scope="module")
def planted_server(planted_clever_hans):
    planted = planted_clever_hans
    with streamlit_server("--model", str(planted.model_path)) as url:
        yield url, planted


def test_the_audit_tab_finds_the_watermark_and_opens_a_prototype(planted_server, tmp_path):
    url, planted = planted_server
    shots = Path(os.environ.get("EXPLAIN_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = _launch(p)
        page, errors = _open_dashboard(browser, url)
        page.get_by_role("tab", name="Audit").click()
        _settled(page)
        _choose(page, "Data", "A folder of class subfolders…")
        _settled(page)
        box = page.get_by_label("Folder (one subfolder per class)", exact=True)
        box.fill(str(planted.test_dir))
        box.press("Enter")
        _settled(page)
        page.get_by_role("button", name="Audit every image").click()
        page.get_by_text("Looking most at the border").wait_for(timeout=180_000)
        _settled(page)
        panel = page.locator('[role="tabpanel"]').filter(has_text="Looking most at the border")
        shown = page.get_by_label("Class", exact=True).input_value()
        page.screenshot(path=shots / "audit_1_clusters.png", full_page=True)
        # the watermark cluster is the shirts' first row: open its first prototype
        opened = panel.get_by_role("button", name="Explain it", exact=True).first
        opened.click()
        _settled(page)
        page.get_by_text("(from the audit) as the model sees it").wait_for(timeout=60_000)
        page.get_by_text("Deletion / insertion AUC").wait_for(timeout=120_000)  # the Explain tab opened
        _settled(page)
        page.screenshot(path=shots / "audit_2_opened_in_explain.png")
        selected = page.get_by_role("tab", selected=True).inner_text()
        body = page.inner_text("body")
        image = page.get_by_label("Image", exact=True).input_value()
        browser.close()
    assert "shirt: 2 clusters" in shown, shown  # the most distinct class is listed first
    assert image.endswith("(from the audit)")
    assert selected == "Explain"
    assert "Traceback" not in body and "Something went wrong" not in body
    assert not errors, errors
