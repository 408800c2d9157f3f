"""The Streamlit dashboard (``streamlit run app.py``): one module per tab, each with ``render(ctx)``
and the ``KEPT_WIDGETS`` it keeps while closed; the sidebar, the shared context, the caches, the
session's store and jobs; and the browser-side pieces (``components.py``, ``controls.js``,
``viewer.js``, ``style.css``). UI only: every computation lives in ``explain/``."""
