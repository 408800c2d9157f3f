"""The dashboard in a real browser: Playwright drives Debian's Chromium (headless) against
``streamlit run app.py``. Screenshots go to ``$EXPLAIN_SCREENSHOTS`` (default: tmp_path)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import DEMO_MODEL, ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed (apt-get install chromium)"),
    pytest.mark.skipif(not DEMO_MODEL.exists(), reason="the bundled demo model is missing"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start within 90 s: " + proc.stderr.read().decode()[-2000:])
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def shots(tmp_path) -> Path:
    d = Path(os.environ.get("EXPLAIN_SCREENSHOTS", tmp_path))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _choose(page, label: str, option: str) -> None:
    """Pick an option of the Streamlit selectbox whose label is ``label``."""
    box = page.get_by_label(label, exact=True)
    box.click()
    page.get_by_role("option", name=option, exact=True).click()


def _settled(page) -> None:
    """Wait until the script run is over and no element is stale (faded) any more."""
    page.wait_for_timeout(500)
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
                 && document.querySelectorAll('[data-stale="true"]').length === 0""",
        timeout=120_000,
    )
    page.wait_for_timeout(500)


def test_sample_layers_and_gradcam_in_chromium(server, shots):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server, timeout=60_000)
        page.get_by_text("Top-5 predictions").wait_for(timeout=120_000)
        _settled(page)
        page.screenshot(path=shots / "1_opened.png")

        _choose(page, "Image", "fashion_mnist_7_sneaker.png")
        _settled(page)
        page.get_by_text("fashion_mnist_7_sneaker.png as the model sees it").wait_for(timeout=60_000)

        _choose(page, "Layer (index · name (type) output shape)", "3 · conv2d_1 (Conv2D) (None, 14, 14, 64)")
        _settled(page)
        layer_box = page.get_by_label("Layer (index · name (type) output shape)", exact=True)
        assert layer_box.input_value() == "3 · conv2d_1 (Conv2D) (None, 14, 14, 64)"
        page.get_by_text("One channel, enlarged over the image").scroll_into_view_if_needed()
        page.screenshot(path=shots / "2_layer_conv2d_1.png")

        page.get_by_role("tab", name="Explain").click()
        page.get_by_text("Deletion / insertion AUC").wait_for(timeout=120_000)
        _settled(page)
        page.get_by_text("Deletion / insertion AUC").scroll_into_view_if_needed()
        page.screenshot(path=shots / "3_gradcam.png")
        body = page.inner_text("body")
        browser.close()
    assert "Traceback" not in body and "Something went wrong" not in body
    assert not errors, errors
    for name in ("1_opened.png", "2_layer_conv2d_1.png", "3_gradcam.png"):
        assert (shots / name).stat().st_size > 10_000
