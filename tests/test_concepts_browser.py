"""The Concepts tab in Chromium, on the planted stripes/dots model (tests/concepts_planted.py): CRAFT on "striped"
(the data a folder under the data root), and a crop's "Explain it" button explains that crop's image in the Explain
tab (TCAV is tested under AppTest, tests/test_app_concepts.py). Screenshots go to ``$EXPLAIN_SCREENSHOTS``
(default: tmp_path)."""

import os
from pathlib import Path

import pytest
from test_app_concepts import planted_concepts  # noqa: F401 (the fixture, built once per session)
from test_browser import _choose, _launch, _open_dashboard, _settled, playwright, streamlit_server
from test_browser import pytestmark as needs_chromium_and_demo_model

pytestmark = needs_chromium_and_demo_model


@pytest.fixture(scope="module")
def concepts_server(planted_concepts):  # noqa: F811
    root = planted_concepts.model_path.parent
    with streamlit_server("--model", str(planted_concepts.model_path), "--data-root", str(root)) as url:
        yield url, planted_concepts


def _menu(page, label: str):
    """The select box whose label is ``label``, its menu open (a click on a box lower on the page
    sometimes only focuses it)."""
    box = page.get_by_label(label, exact=True)
    for _ in range(3):
        box.click()
        page.wait_for_timeout(300)
        if box.get_attribute("aria-expanded") == "true":
            break
    return box


def _choose_in(page, label: str, option: str) -> None:
    _menu(page, label)
    page.get_by_role("option", name=option, exact=True).click()
    _settled(page)


def _number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    _settled(page)


def test_craft_in_the_concepts_tab_opens_a_crop_in_the_explain_tab(concepts_server, tmp_path):
    url, planted = concepts_server
    shots = Path(os.environ.get("EXPLAIN_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = _launch(p)
        page, errors = _open_dashboard(browser, url)
        page.get_by_role("tab", name="Concepts").click()
        _settled(page)
        _choose(page, "Data", "A folder of class subfolders…")
        _settled(page)
        _choose(page, "Data folders under the data root (3)", "test")
        _settled(page)
        _choose_in(page, "Class", "striped")
        _number(page, "Concepts to find", 3)
        _number(page, "Crops per image", 4)
        _number(page, "Images at most", 60)
        page.get_by_role("button", name="Run CRAFT").click()
        page.get_by_role("button", name="Download craft.json").wait_for(timeout=120_000)
        _settled(page)
        page.set_viewport_size({"width": 1400, "height": 2600})  # the whole tab (the app scrolls inside the page)
        page.screenshot(path=shots / "concepts_1_craft.png")
        page.set_viewport_size({"width": 1400, "height": 1100})
        body = page.inner_text("body")
        opened = page.get_by_role("button", name="Explain it", exact=True).first
        shown_id = opened.locator("xpath=ancestor::div[@data-testid='stVerticalBlock'][1]").inner_text()
        opened.click()
        _settled(page)
        page.get_by_text("(from CRAFT) as the model sees it").wait_for(timeout=60_000)
        page.get_by_text("Deletion / insertion AUC").wait_for(timeout=120_000)  # the Explain tab opened
        _settled(page)
        page.screenshot(path=shots / "concepts_2_opened_in_explain.png")
        selected = page.get_by_role("tab", selected=True).inner_text()
        image = page.get_by_label("Image", exact=True).input_value()
        after = page.inner_text("body")
        browser.close()
    assert "striped at pool_2: 3 concepts" in body, body[:3000]
    assert image.endswith("(from CRAFT)") and image.startswith("striped/"), image
    image_id = image.removesuffix(" (from CRAFT)")
    assert image_id in shown_id and (planted.test_dir / image_id).is_file(), (image, shown_id)  # the crop's image
    assert selected == "Explain"
    assert "Traceback" not in body + after and "Something went wrong" not in body + after
    assert not errors, errors
