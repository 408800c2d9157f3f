"""One heavy job at a time per session: while one runs (LIME in the Explain tab, say), another
(patterns, a report) does not start but says it must wait, and the rest of the dashboard answers."""

import sys
import threading

import pytest
from conftest import DEMO_MODEL, ROOT
from dashboard_helpers import layer_options, layer_value, open_tab, set_layer
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.skipif(not DEMO_MODEL.exists(), reason="the bundled demo model is missing")

if str(ROOT) not in sys.path:  # the dashboard package, as `streamlit run app.py` finds it
    sys.path.insert(0, str(ROOT))


def _ok(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def _downloads(at: AppTest) -> set:
    return {b.key for b in at.get("download_button")}


def test_a_second_heavy_job_waits_for_the_first():
    from dashboard import jobs
    from dashboard.state import SessionStore

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    _ok(at)
    # A job of this session still running: LIME, started in the Explain tab, the user now elsewhere.
    release = threading.Event()
    lime = jobs.Job("LIME (Explain tab)", ("lime", "elsewhere"), SessionStore(1), lambda progress: release.wait(120))
    worker = threading.Thread(target=lime._work, name="test-job")
    worker.start()
    try:
        at.session_state[jobs.JOB] = lime
        open_tab(at, "Filters")
        at.selectbox(key="pattern_steps").set_value(32).run()
        at.button(key="run_patterns").click().run()
        _ok(at)
        waits = [i.value for i in at.info if "LIME (Explain tab) is still running" in i.value]
        assert waits and "must wait" in waits[0], [i.value for i in at.info]
        assert "dl_patterns" not in _downloads(at)  # not started
        assert len(at.session_state["pattern_results"]) == 0
        # the rest of the dashboard answers meanwhile
        open_tab(at, "Layers")
        labels = layer_options(at)
        set_layer(at, labels[3])
        _ok(at)
        assert layer_value(at) == labels[3]
    finally:
        release.set()
        worker.join(120)
    # the first is done: now the patterns start, and run to the end
    open_tab(at, "Filters")
    at.button(key="run_patterns").click().run()
    _ok(at)
    assert not [i for i in at.info if "still running" in i.value]
    assert "dl_patterns" in _downloads(at) and len(at.session_state["pattern_results"]) == 1


def test_session_store_keeps_the_most_recent_within_its_caps():
    import numpy as np

    from dashboard.state import SessionStore

    store = SessionStore(max_entries=3, max_bytes=10_000)
    for k in range(4):
        store.put(("lime", k), np.zeros(100, np.float32))  # 400 bytes each
    assert len(store) == 3 and ("lime", 0) not in store  # the oldest went first
    assert store.get(("lime", 1)) is not None  # now the most recently used
    store.put(("lime", 4), np.zeros(100, np.float32))
    assert ("lime", 1) in store and ("lime", 2) not in store
    store.put(("report", 0), {"files": {"a.png": b"x" * 9_000}})  # bytes count too: 10,200 > 10,000
    assert len(store) == 3 and ("lime", 3) not in store and ("report", 0) in store
    store.put(("report", 1), b"y" * 20_000)  # larger than the cap alone: kept, alone
    assert len(store) == 1 and store.get(("report", 1)) is not None
