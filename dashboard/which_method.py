"""The Explain tab's "Which method?" panel: every attribution method run on this image, scored by the same
faithfulness metrics (:mod:`explain.dataset.compare`) and ranked, as a background job with its progress.

One image is a small sample: the panel says so and gives the command that ranks the methods on a data set.
"""

from __future__ import annotations

import math

import streamlit as st

from dashboard import jobs
from dashboard.context import Ctx
from dashboard.state import session_store
from dashboard.widgets import png, show_png

#: This session's rankings (session state), and how many it keeps.
RANKINGS, RANKINGS_KEPT = "method_rankings", 4
RUN_RANKING, DL_RANKING = "run_ranking", "dl_ranking"


def _job(ctx: Ctx, layer):
    """The job: :func:`~explain.dataset.compare.compare_images` on this image, its progress per method."""
    model, preprocess, pixels, names = ctx.model, ctx.preprocess, ctx.pixels, ctx.class_names

    def run(progress):
        from explain.dataset.compare import compare_images

        def tick(method: str, done: int, total: int) -> None:
            progress(done / max(total, 1), f"Ranking the methods: {method or 'done'} ({done}/{total})")

        return compare_images(
            model, pixels[None], ["this image"], layer=layer, preprocess=preprocess, class_names=names,
            check_images=1, progress=tick,
        )  # fmt: skip

    return run


def _table(result) -> list[dict]:
    """One row per method for ``st.dataframe``: its rank, the metrics (arrows say which way is better)."""
    from explain.dataset.compare import BETTER

    rows = []
    for s in result.scores:
        row = {"rank": s.rank if s.error is None else None, "method": s.method}
        for metric, better in BETTER.items():
            value = getattr(s, metric)
            row[f"{metric} {'↓' if better == 'lower' else '↑'}"] = None if math.isnan(value) else round(value, 3)
        row["sanity check"] = {True: "passes", False: "fails", None: "–"}[s.sanity_passed]
        row["s / image"] = None if math.isnan(s.seconds_per_image) else round(s.seconds_per_image, 4)
        row["note"] = s.error or ""
        rows.append(row)
    return rows


def render(ctx: Ctx, layer) -> None:
    """The panel: a button that starts the ranking, then the table and the ranking figure."""
    key = (ctx.model_key, ctx.image_key, ctx.preprocess, layer)
    store = session_store(RANKINGS, RANKINGS_KEPT)
    with st.expander("Which method? Rank every method on this image", expanded=store.get(key) is not None):
        st.caption(
            "Runs every attribution method on this image and scores each map the same way: deletion and "
            "insertion, MuFidelity, ROAD (most / least relevant first), stability, and the sanity check. "
            "↓ lower is better, ↑ higher is better; a method failing the sanity check is ranked after those "
            "passing. One image is a small sample: `python -m explain.compare MODEL DATA --images 100` ranks "
            "them on a data set."
        )
        if st.button("Rank the methods on this image", key=RUN_RANKING):
            jobs.start("Ranking the methods", key, store, _job(ctx, layer), "Ranking the methods…")
        jobs.follow(key)
        result = store.get(key)
        if result is None:
            return
        best = result.best()
        st.success(f"Trust first on this image: {best.method}.")
        st.dataframe(_table(result), hide_index=True, use_container_width=True)
        from explain.dataset.compare import ranking_figure

        if any(s.error is None for s in result.scores):
            show_png(png(ranking_figure(result)), "methods_ranking.png", DL_RANKING)
