"""Above the tabs: the image as the model sees it, its top-5 predictions, the input-scaling hint."""

from __future__ import annotations

import streamlit as st

from dashboard import cache
from dashboard.context import Ctx
from dashboard.widgets import in_dashboard_words
from explain.models.preprocessing import saturation_hint


def header_ui(ctx: Ctx) -> None:
    """The image, its top-5 predictions, and a warning when the assumed input scaling looks wrong."""
    left, right = st.columns([1, 2])
    with left:
        caption = f"{ctx.image_name} as the model sees it ({ctx.pixels.shape[1]}x{ctx.pixels.shape[0]})"
        st.image(cache.image_uri(ctx), caption=caption)
    with right:
        st.subheader("Top-5 predictions")
        st.image(cache.top_k_png(ctx))
        pred, card = ctx.pred, ctx.card
        if not pred.outputs_probabilities:
            st.caption("The model outputs logits; softmax was applied to show probabilities.")
        hint = saturation_hint(pred.top_score, card.preprocessing) if pred.score_kind == "logit" else None
        if hint and card.preprocessing_from == "assumed":
            st.warning(in_dashboard_words(hint))
