"""Issue 19 in a real browser: an upload can never take the dashboard's server down.

One ``streamlit run app.py`` serves two browser sessions (two Chromium contexts). Session B browses
the demo model's Layers tab while session A uploads a 30 KB ``.keras`` file whose config declares a
Dense layer of several GB (``conftest.write_config_bomb``). Session A is told "config bomb" in one
line, no traceback; session B keeps getting new pictures; the server's resident memory (its process
and any children, from ``/proc``) stays under 2 GB during and after the upload; the server lives on.
Session A also sees, next to the upload box, that custom layers load only from ``--trust-code`` given
at start-up, and is told a Git LFS pointer named ``model.keras`` is one.

Reuses the server start and RSS reading of ``bench/bench_browser.py`` and the page helpers of
``test_browser.py``. The screenshot of session A's error goes to ``$EXPLAIN_SCREENSHOTS`` (default:
tmp_path) as ``upload_safety.png``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

import pytest
from conftest import LFS_POINTER, ROOT, tiny_sequential, write_config_bomb
from test_browser import _SHOWN, LAYER, _choose, _launch, _open_dashboard, playwright
from test_browser import pytestmark as pytestmark  # the same skips: no Chromium, no Playwright, no demo model

sys.path.insert(0, str(ROOT / "bench"))
from bench_browser import free_port, rss_mib, settle, start_server

#: The bomb's Dense layer: 5 inputs x 150,000,000 units of float32 = 3.0 GB of kernel (3.6 GB with
#: its bias), in a file of about 30 KB.
UNITS = 150_000_000
RSS_LIMIT_MIB = 2048
UPLOAD = "Upload…"
#: Streamlit gives a keyed widget's container the class ``st-key-<key>``.
MODEL_UPLOAD = ".st-key-model_upload"
#: True once the open tab's first picture differs from ``old`` (its source, from ``_SHOWN``).
_NEW_PICTURE = f"(old) => {{ const s = ({_SHOWN})(); return !!s.src && s.src !== old; }}"


def _tree_rss_mib(pid: int) -> float:
    """Resident memory (MiB) of process ``pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(stat.parent.name))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            rss = rss_mib(p)
        except OSError:
            continue
        total += 0.0 if rss != rss else rss  # a zombie has no VmRSS (NaN)
        todo += children.get(p, [])
    return total


class _RssSampler(threading.Thread):
    """Samples :func:`_tree_rss_mib` every ``every`` seconds while in a ``with`` block."""

    def __init__(self, pid: int, every: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[float] = []
        self._done = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append(_tree_rss_mib(self.pid))
            if self._done.wait(self.every):
                return

    def __enter__(self) -> _RssSampler:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self.join()


@pytest.fixture(scope="module")
def served():
    """``(process, url)`` of one headless ``streamlit run app.py`` on a free port."""
    try:
        proc, url = start_server(free_port())
    except SystemExit as e:  # bench_browser's way of saying it did not start
        pytest.fail(str(e))
    yield proc, url
    proc.kill()  # not stop_server's graceful stop: 2 s of TensorFlow's exit, and nothing of this test to clean up
    proc.wait(timeout=30)


@pytest.fixture
def shots(tmp_path) -> Path:
    d = Path(os.environ.get("EXPLAIN_SCREENSHOTS", tmp_path))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _show_image(page, name: str) -> None:
    """Pick sample image ``name`` and wait until the Layers tab shows a new picture for it."""
    old = page.evaluate(_SHOWN)["src"]
    _choose(page, "Image", name)
    page.get_by_text(f"{name} as the model sees it").wait_for(timeout=60_000)
    page.wait_for_function(_NEW_PICTURE, arg=old, timeout=60_000)


def _error(page, rss: _RssSampler, text: str = "") -> str:
    """The text of the first ``st.error`` box (containing ``text``), once it is on screen; fails with
    what the page shows instead and the server's memory meanwhile."""
    box = page.locator('[data-testid="stAlertContentError"]').filter(has_text=text).first
    try:
        box.wait_for(timeout=60_000)
    except playwright.TimeoutError:
        pytest.fail(
            f"no error {text or 'at all'!r} within 60 s; the page ends: {page.inner_text('body')[-1500:]!r}; "
            f"server RSS max {max(rss.samples):.0f} MiB (last {rss.samples[-1]:.0f} MiB)"
        )
    return box.inner_text()


def _no_traceback(page) -> None:
    body = page.inner_text("body")
    assert "Traceback" not in body and "Something went wrong" not in body, body[-2000:]
    assert page.locator('[data-testid="stException"]').count() == 0


def test_config_bomb_upload_leaves_server_and_other_session_alone(served, shots, tmp_path):
    proc, url = served
    tiny = tmp_path / "tiny.keras"
    tiny_sequential(channels=1, size=28).save(tiny)
    bomb = write_config_bomb(tiny, tmp_path / "huge_dense.keras", units=UNITS)
    assert bomb.stat().st_size < 100_000
    pointer = tmp_path / "lfs" / "model.keras"
    pointer.parent.mkdir()
    pointer.write_text(LFS_POINTER)

    with playwright.sync_playwright() as p:
        browser = _launch(p)
        b, b_errors = _open_dashboard(browser, url)  # session B: the demo model's Layers tab
        a, a_errors = _open_dashboard(browser, url)  # session A: a second browser context
        assert a.context is not b.context
        rss_start = _tree_rss_mib(proc.pid)

        # Session A: "Upload…"; the caption about --trust-code sits right under the upload box.
        _choose(a, "Model", UPLOAD)
        upload_box = a.locator(f"{MODEL_UPLOAD} [data-testid='stFileUploader']")
        caption = a.locator('[data-testid="stSidebar"] [data-testid="stCaptionContainer"]').filter(
            has_text="--trust-code"
        )
        caption.wait_for(timeout=60_000)
        caption_text = caption.inner_text()
        assert "streamlit run app.py -- --trust-code my_layers.py" in caption_text
        assert "An upload never runs code" in caption_text
        box, cap = upload_box.bounding_box(), caption.bounding_box()
        assert 0 <= cap["y"] - (box["y"] + box["height"]) < 40, (box, cap)  # just below it, nothing between
        settle(a)

        # A uploads the bomb while B switches image; memory is sampled all along.
        with _RssSampler(proc.pid) as during:
            a.locator(f"{MODEL_UPLOAD} input[type=file]").set_input_files(bomb)
            _show_image(b, "fashion_mnist_7_sneaker.png")
            message = _error(a, during)
            settle(a)
        assert max(during.samples) < RSS_LIMIT_MIB, f"server RSS during the upload (MiB): {during.samples}"
        assert "config bomb" in message, f"{message} (server RSS max {max(during.samples):.0f} MiB)"
        a.screenshot(path=shots / "upload_safety.png")
        _no_traceback(a)
        assert message.startswith("huge_dense.keras: its config declares 3.6 GB of weights"), message
        assert "\n" not in message.strip()  # one line
        assert tempfile.gettempdir() not in message  # it names the upload, not the temporary copy

        # B still works: a further image gets a new picture, then a further layer does.
        with _RssSampler(proc.pid) as after:
            _show_image(b, "fashion_mnist_9_ankle_boot.png")
            settle(b)
            layer = b.get_by_label(LAYER, exact=True)
            options = [o.strip() for o in layer.locator("option").all_inner_texts()]
            old = b.evaluate(_SHOWN)["src"]
            layer.select_option(options[3])
            b.wait_for_function(_NEW_PICTURE, arg=old, timeout=60_000)
            assert options[3].split(" (")[0].replace(" · ", ": ") in b.evaluate(_SHOWN)["caption"]
            _no_traceback(b)

            # A: a Git LFS pointer named model.keras is named as one.
            a.locator(f"{MODEL_UPLOAD} input[type=file]").set_input_files(pointer)
            lfs = _error(a, after, "Git LFS pointer")
            _no_traceback(a)
        browser.close()

    print(
        f"server RSS: {rss_start:.0f} MiB before, max {max(during.samples):.0f} MiB during the upload "
        f"({len(during.samples)} samples), max {max(after.samples):.0f} MiB after ({len(after.samples)} samples)"
    )
    assert len(during.samples) >= 2 and len(after.samples) >= 2
    assert max(after.samples) < RSS_LIMIT_MIB, f"server RSS after the upload (MiB): {after.samples}"
    assert lfs.startswith("model.keras is a Git LFS pointer"), lfs
    assert not a_errors and not b_errors, (a_errors, b_errors)
    assert proc.poll() is None, "the server died"
    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=10) as health:
        assert health.status == 200
    os.set_blocking(proc.stderr.fileno(), False)  # what the server logged so far, without waiting
    log = (proc.stderr.read() or b"").decode(errors="replace")
    assert "Traceback" not in log, log[-3000:]
