"""Streamlit dashboard: ``streamlit run app.py``, or ``streamlit run app.py -- --model my_model.h5``.

The frame only: the sidebar gives one :class:`dashboard.context.Ctx` (model, card, image,
prediction), and each tab is a module of ``dashboard/`` with ``render(ctx)``; every computation
lives in ``explain/``. Opens on the bundled demo model (or the ``--model`` given) and a sample image.

What a person waits for is measured in a real browser (``bench/bench_browser.py``); so:

- pictures on screen are composed in NumPy (:mod:`explain.render.pictures`) and encoded once; the titled
  matplotlib figures are only drawn when a download button is pressed;
- only the open tab runs (lazy tabs), and each tab is a fragment that reruns alone;
- stepping through layers and sliding the opacity are answered in the browser, from pictures it
  was sent ahead (``dashboard/components.py``);
- Streamlit's clean-up after every run (a full garbage collection and
  ``keras.backend.clear_session()``) is off: it held the GIL for 100-500 ms per rerun;
- a long job (LIME, patterns, a report, an audit, TCAV, CRAFT) runs in the background, one at a time per session
  (``dashboard/jobs.py``), so a click elsewhere is answered at once.
"""

from __future__ import annotations

import os

import streamlit as st

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dashboard import audit, cache, concepts, filters, layers, report
from dashboard import explain as explain_tab
from dashboard.header import header_ui
from dashboard.sidebar import context_ui
from dashboard.state import TAB, keep_widgets

cache.keep_keras_state()
#: The tabs in order, each a module with ``render(ctx)`` and the ``KEPT_WIDGETS`` it keeps while closed.
TABS = {
    "Layers": layers,
    "Filters": filters,
    "Explain": explain_tab,
    "Report": report,
    "Audit": audit,
    "Concepts": concepts,
}


def main() -> None:
    st.set_page_config(page_title="explain: what does my classifier see?", layout="wide")
    keep_widgets(key for tab in TABS.values() for key in tab.KEPT_WIDGETS)  # only the open tab is drawn
    st.session_state.pop(audit.OPEN_PENDING, None)  # this run is the whole app's already
    st.title("explain: what does my classifier see?")
    ctx = context_ui()
    header_ui(ctx)
    for name, container in zip(TABS, st.tabs(list(TABS), key=TAB, on_change="rerun"), strict=True):
        if container.open:
            with container:
                TABS[name].render(ctx)
    cache.warm_explain_tab(ctx)


try:
    main()
except Exception as e:  # the app never shows a traceback; st.stop() is not an Exception
    st.error(f"Something went wrong: {type(e).__name__}: {e}")
