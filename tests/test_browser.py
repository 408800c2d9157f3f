"""The dashboard in a real browser: Playwright drives Debian's Chromium (headless) against
``streamlit run app.py``. Screenshots go to ``$EXPLAIN_SCREENSHOTS`` (default: tmp_path)."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import DEMO_MODEL, ROOT

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


@contextlib.contextmanager
def streamlit_server(*dashboard_args: str):
    """``streamlit run app.py`` on a free port of 127.0.0.1, with the dashboard's own flags
    (``-- --data-root DIR``...); yields its URL once it answers, and kills it after: a graceful stop costs
    2 s (TensorFlow's exit), and what it would clean up (uploads unpacked to temporary folders) is in a
    scratch TMPDIR of its own, removed here."""
    port = _free_port()
    scratch = tempfile.mkdtemp(prefix="explain-test-server-")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": scratch}
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
            *(["--", *dashboard_args] if dashboard_args else []),
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
            time.sleep(0.1)
    else:
        proc.kill()
        shutil.rmtree(scratch, ignore_errors=True)
        pytest.fail("streamlit did not start within 90 s: " + proc.stderr.read().decode()[-2000:])
    try:
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def server():
    with streamlit_server() as url:
        yield url


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


#: Installed in every page before the dashboard loads: when the page last sent the server a message (a
#: widget's new value asks for a run), when the app's run state last changed, and when the page last changed.
_WATCH = """(() => {
  const t = (window.__xpWatch = {sent: -1, state: -1, changed: 0});
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (...args) {
    t.sent = performance.now();
    return send.apply(this, args);
  };
  new MutationObserver((records) => {
    t.changed = performance.now();
    if (records.some((r) => r.attributeName === "data-test-script-state")) t.state = t.changed;
  }).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
})();"""

#: True once the page has settled: the run that the last message asked for has started (or 0.5 s went by
#: without one: not every message asks for a run) and is over, no element is stale (faded) or waiting for
#: its view, every picture is decoded, and nothing on the page changed for 150 ms (components draw after
#: the run).
_SETTLED = """() => {
  const t = window.__xpWatch, now = performance.now();
  const app = document.querySelector('[data-testid="stApp"]');
  return !!app && app.getAttribute("data-test-script-state") === "notRunning"
    && !(t.sent > t.state && now - t.sent < 500)
    && !document.querySelector('[data-testid="stStatusWidget"], [data-stale="true"], .xp-waiting')
    && [...document.images].every((i) => i.complete)
    && now - t.changed > 150;
}"""


def _settled(page) -> None:
    """Wait until the script run is over and the page is still: no element stale (faded), every picture in."""
    page.wait_for_function(_SETTLED, timeout=120_000, polling=50)


def _launch(p):
    return p.chromium.launch(
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


def _open_dashboard(browser, url: str):
    """A new page on the dashboard, once its first run is on screen; and the list its page errors go to."""
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.add_init_script(_WATCH)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, timeout=60_000)
    page.get_by_text("Top-5 predictions").wait_for(timeout=120_000)
    _settled(page)
    return page, errors


LAYER = "Layer (index · name (type) output shape)"

#: The open tab's first picture and its caption (a viewer tile), and the heatmaps' opacities.
_SHOWN = """() => {
  const vis = (i) => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0;
  const imgs = [...document.querySelectorAll('[role="tabpanel"] img')].filter(vis);
  const first = imgs[0];
  return {src: first ? first.src : null,
          caption: first ? first.closest(".xp-tile")?.querySelector("figcaption")?.textContent : null,
          over: imgs.filter((i) => i.classList.contains("xp-over")).map((i) => Number(i.style.opacity))};
}"""


def test_sample_layers_and_gradcam_in_chromium(server, shots):
    with playwright.sync_playwright() as p:
        browser = _launch(p)
        page, errors = _open_dashboard(browser, server)
        page.screenshot(path=shots / "1_opened.png")

        _choose(page, "Image", "fashion_mnist_7_sneaker.png")
        _settled(page)
        page.get_by_text("fashion_mnist_7_sneaker.png as the model sees it").wait_for(timeout=60_000)

        before = page.evaluate(_SHOWN)
        page.get_by_label(LAYER, exact=True).select_option("3 · conv2d_1 (Conv2D) (None, 14, 14, 64)")
        _settled(page)
        after = page.evaluate(_SHOWN)
        assert page.get_by_label(LAYER, exact=True).input_value() == "3 · conv2d_1 (Conv2D) (None, 14, 14, 64)"
        assert after["src"] and after["src"] != before["src"]  # the grid on screen is another picture
        assert "Layer 3: conv2d_1" in after["caption"] and "Layer 1: conv2d" in before["caption"]
        page.locator(".xp-next").click()  # ▶: the next layer, drawn by the browser from what it was sent
        page.wait_for_function(
            """() => [...document.querySelectorAll('.xp-viewer figcaption')]
                     .some((c) => c.textContent.includes('Layer 4: batch_normalization'))""",
            timeout=5_000,
        )
        _settled(page)
        page.get_by_text("One channel, enlarged over the image").scroll_into_view_if_needed()
        page.screenshot(path=shots / "2_layer_conv2d_1.png")
        with page.expect_download() as download:
            page.get_by_role("button", name="Download PNG").first.click()
        png = download.value.path().read_bytes()

        page.get_by_role("tab", name="Explain").click()
        page.get_by_text("Deletion / insertion AUC").wait_for(timeout=120_000)
        _settled(page)
        assert page.evaluate(_SHOWN)["over"] == [0.5]  # Grad-CAM over the image at the default opacity
        page.locator(".xp-control input[type=range]").press("ArrowLeft")
        page.wait_for_function(f"() => ({_SHOWN})().over[0] === 0.45", timeout=5_000)
        _settled(page)
        page.get_by_text("Deletion / insertion AUC").scroll_into_view_if_needed()
        page.screenshot(path=shots / "3_gradcam.png")
        body = page.inner_text("body")
        browser.close()
    assert "Traceback" not in body and "Something went wrong" not in body
    assert not errors, errors
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # the titled figure, full quality
    for name in ("1_opened.png", "2_layer_conv2d_1.png", "3_gradcam.png"):
        assert (shots / name).stat().st_size > 10_000


def test_keras2_h5_upload_with_input_scaling_in_chromium(server, shots, tmp_path):
    """A Keras 2 .h5 trained on x / 255 (no scaling layer), uploaded as a user would, then 'unit'."""
    import warnings

    import tf_keras

    tf_keras.utils.set_random_seed(0)
    k = tf_keras.layers
    model = tf_keras.Sequential(
        [
            k.Conv2D(8, 3, activation="relu", input_shape=(28, 28, 1), name="k2_conv"),
            k.MaxPooling2D(),
            k.Flatten(),
            k.Dense(10, activation="softmax"),
        ]
    )
    path = tmp_path / "my_keras2_model.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"garment {i}" for i in range(10)))
    with playwright.sync_playwright() as p:
        browser = _launch(p)
        page, errors = _open_dashboard(browser, server)
        _choose(page, "Model", "Upload…")
        _settled(page)
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(path))
        page.get_by_text("Top-5 predictions").wait_for(timeout=120_000)
        _settled(page)
        assert "assuming it takes raw pixels" in page.inner_text("body")
        _choose(page, "Input scaling (preprocessing)", "unit: x / 255, to [0, 1]")
        _settled(page)
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').nth(2).set_input_files(str(names))
        _settled(page)
        layer = page.get_by_label(LAYER, exact=True).input_value()
        page.get_by_role("tab", name="Explain").click()
        page.get_by_text("Deletion / insertion AUC").wait_for(timeout=120_000)
        _settled(page)
        page.screenshot(path=shots / "4_keras2_h5_unit.png", full_page=True)
        body = page.inner_text("body")
        explained = page.get_by_label("Class to explain", exact=True).input_value()
        browser.close()
    assert "Traceback" not in body and "Something went wrong" not in body
    assert "garment" in explained and "(top prediction)" in explained
    assert layer.startswith("0 · k2_conv (Conv2D)")
    assert not errors, errors


def test_report_map_point_opens_its_explanation_in_chromium(server, shots, tmp_path):
    """The Report tab's feature-space map: hover shows the image, a click explains it."""
    from PIL import Image

    from explain.data import load_builtin_split

    split = load_builtin_split("fashion_mnist", "test")
    for name in ("Trouser", "Bag", "Sneaker"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in np.nonzero(split.labels == split.class_names.index(name))[0][:4]:
            Image.fromarray(split.images[i][..., 0]).save(tmp_path / "data" / name / f"{name}_{i}.png")
    with playwright.sync_playwright() as p:
        browser = _launch(p)
        page, errors = _open_dashboard(browser, server)
        page.get_by_role("tab", name="Report").click()
        _settled(page)
        _choose(page, "Data", "A folder of class subfolders…")
        page.get_by_label("Folder (one subfolder per class)").fill(str(tmp_path / "data"))
        page.get_by_label("Folder (one subfolder per class)").press("Enter")
        _settled(page)
        page.get_by_role("button", name="Evaluate and write the report").click()
        points = page.locator(".vega-embed [aria-roledescription=point]")
        points.first.wait_for(timeout=180_000)
        _settled(page)
        assert points.count() == 12
        point = points.last  # drawn on top
        label = point.get_attribute("aria-label")
        point.hover()
        page.locator("#vg-tooltip-element img").wait_for(timeout=10_000)  # the image under the pointer
        page.screenshot(path=shots / "5_map_hover.png")
        point.click()
        page.get_by_text("(from the map) as the model sees it").wait_for(timeout=60_000)
        page.get_by_text("Deletion / insertion AUC").wait_for(timeout=120_000)  # the Explain tab opened
        _settled(page)
        page.screenshot(path=shots / "6_map_click_explained.png")
        body = page.inner_text("body")
        image = page.get_by_label("Image", exact=True).input_value()
        browser.close()
    assert "Traceback" not in body and "Something went wrong" not in body
    assert not errors, errors
    assert image.endswith("(from the map)") and image.split(" (from the map)")[0].split("/")[-1] in label
