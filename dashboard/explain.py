"""The Explain tab: attribution methods side by side with their faithfulness scores; LIME and the
sanity check on buttons. The heatmaps are laid over the image in the browser, which sets their
opacity itself."""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

from dashboard import cache, jobs, which_method
from dashboard.components import Tile, range_control, show_view, view_key
from dashboard.context import Ctx
from dashboard.state import reset_on_change, session_store
from dashboard.widgets import download, guarded, png, show_png
from explain import ExplainError, NoSpatialLayerError, attribution_panel, layer_table, sanity_check
from explain.attribution import METHODS, default_target_layer, method_label, methods_for
from explain.models.card import names_training_strip
from explain.render import pictures
from explain.render.figures import lime_boundaries

GRADIENT_METHODS = [m for m in METHODS if m != "lime"]  # LIME runs behind its own button
COLORMAPS = ["jet", "inferno", "viridis", "magma", "turbo"]
#: The window event of the opacity slider (dashboard/controls.js).
ALPHA_EVENT = "explain:alpha"
#: This session's LIME results (session state), and how many (and bytes) it keeps.
LIME_RESULTS, LIME_KEPT, LIME_BYTES = "lime_results", 8, 64 * 1024**2
# The tab's widget keys, and those it keeps while closed.
METHODS_KEY, EXPLAIN_CLASS, TARGET_LAYER, CMAP, ALPHA = "methods", "explain_class", "target_layer", "cmap", "alpha"
RUN_LIME, RUN_SANITY, DL_EXPLAIN, DL_LIME, DL_SANITY = "run_lime", "run_sanity", "dl_explain", "dl_lime", "dl_sanity"
MORE_SCORES = "more_scores"
#: The expander of the training strip (drawn only while open) and its download.
TRAINING_STRIP, DL_STRIP = "training_strip", "dl_training_strip"
#: The keys of the viewers (methods side by side, LIME).
EXPLAIN_VIEW, LIME_VIEW = "explain_view", "lime_view"
KEPT_WIDGETS = (METHODS_KEY, EXPLAIN_CLASS, TARGET_LAYER, CMAP, ALPHA)


def _explain_controls(ctx: Ctx):
    """The tab's controls: ``(methods, class_index, target layer or None, cmap, alpha)``."""
    model = ctx.model
    spatial = [r.name for r in layer_table(model) if r.is_spatial and r.type not in ("Rescaling", "InputLayer")]
    try:
        default_layer, no_cam = default_target_layer(model).name, None
    except NoSpatialLayerError as e:  # no spatial layer, or only 1x1 ones: the message says which
        default_layer, no_cam = None, str(e)
    offered = [m for m in methods_for(model) if m in GRADIENT_METHODS]  # attention rollout: transformers only
    if METHODS_KEY in st.session_state:  # a choice kept from another model keeps what this one offers
        st.session_state[METHODS_KEY] = [m for m in st.session_state[METHODS_KEY] if m in offered]
    default = ["gradcam"] if default_layer else ["saliency"]
    methods = st.multiselect("Methods", offered, default=default, key=METHODS_KEY)
    c1, c2, c3, c4 = st.columns(4)
    top, names = ctx.top_class, ctx.class_names
    reset_on_change(EXPLAIN_CLASS, (ctx.model_key, ctx.image_key), top)  # a new model or image: its top prediction
    class_index = c1.selectbox(
        "Class to explain",
        range(len(names)),
        key=EXPLAIN_CLASS,  # its value comes from reset_on_change: an index too would make Streamlit warn
        format_func=lambda k: f"{k}: {names[k]}" + (" (top prediction)" if k == top else ""),
    )
    layer = (
        c2.selectbox("Target layer (CAM methods)", spatial, index=spatial.index(default_layer), key=TARGET_LAYER)
        if default_layer
        else None
    )
    cmap = c3.selectbox("Colormap", COLORMAPS, key=CMAP)
    with c4:
        alpha = range_control("Opacity", 0.0, 1.0, 0.05, 0.5, key=ALPHA, event=ALPHA_EVENT)
    if no_cam:
        st.caption(no_cam)
    return methods, int(class_index), layer, cmap, alpha


def _attributions(ctx: Ctx, methods, class_index: int, layer) -> list:
    """``(method, target layer or None, result)`` per method that runs; errors shown per method."""
    done = []
    for method in methods:
        if cache.takes_layer(method) and layer is None:
            st.warning(f"{method} needs a convolutional layer; skipped.")
            continue
        target = layer if cache.takes_layer(method) else None
        try:
            result = cache.attribution(ctx, method, class_index, target)
        except ExplainError as e:
            st.error(f"{method}: {e}")
            continue
        done.append((method, target, result))
    return done


def _heat_tile(image_uri: str, kind: str, key: str, heatmap: np.ndarray, flat: bool, cmap: str, caption: str) -> Tile:
    """The image with a heatmap laid over it (its opacity set in the browser); none for a flat map."""
    if flat:
        return Tile(src=image_uri, caption=f"{caption}\nflat heatmap (no information)", alt=caption)
    over = cache.uri(kind, f"{key}|{cmap}", lambda: pictures.heatmap_colors(heatmap, cmap))
    return Tile(src=image_uri, over=over, caption=caption, alt=f"{caption}: heatmap over the image")


def _explain_view(ctx: Ctx, done, class_index: int, cmap: str, alpha: float) -> None:
    """Each method's heatmap over the image, side by side; the opacity is applied in the browser."""
    image_uri = cache.image_uri(ctx)
    methods = tuple((m, t) for m, t, _ in done)
    key = view_key("explain", ctx.model_key, ctx.image_key, methods, class_index, cmap)

    def tiles() -> list[Tile]:
        out = [Tile(src=image_uri, caption="image", alt="the image")]
        for method, target, result in done:
            part = view_key(ctx.model_key, ctx.image_key, method, target, class_index)
            label = method_label(method, result.layer)
            out.append(_heat_tile(image_uri, "heat", part, result.heatmap[0], bool(result.flat[0]), cmap, label))
        return out

    show_view(EXPLAIN_VIEW, key, tiles, alpha=(ALPHA_EVENT, alpha))


def _faithfulness_line(ctx: Ctx, done, class_index: int) -> dict:
    """Deletion / insertion AUC per method, under the pictures (computed after they are shown)."""
    scores, parts = {}, []
    for method, target, result in done:
        if result.flat[0]:
            parts.append(method_label(method, scores=(math.nan, math.nan)))
            continue
        s = scores[method] = cache.faithfulness(ctx, method, class_index, target)
        parts.append(method_label(method, scores=s))
    st.caption(
        " · ".join(parts) + ". Deletion / insertion AUC (Petsiuk et al. 2018): lower deletion and higher insertion "
        "mean the map points at pixels the model really uses."
    )
    if st.checkbox("More faithfulness metrics (MuFidelity, ROAD, stability: slower)", key=MORE_SCORES):
        _more_scores_line(ctx, done, class_index)
    return scores


def _more_scores_line(ctx: Ctx, done, class_index: int) -> None:
    """MuFidelity, ROAD and stability per method, when the user asks (many more forward passes)."""
    parts = []
    with st.spinner("Scoring the maps…"):
        for method, target, result in done:
            if result.flat[0]:
                parts.append(f"{method}: flat heatmap")
                continue
            m = cache.more_faithfulness(ctx, method, class_index, target)
            parts.append(
                f"{method}: MuFidelity {m['mufidelity']:.3f} ↑, ROAD {m['road_morf']:.3f} ↓ / {m['road_lerf']:.3f} ↑, "
                f"stability {m['stability']:.3f} ↓"
            )
    st.caption(
        " · ".join(parts) + ". ↑ higher is better, ↓ lower is better. MuFidelity (Bhatt et al. 2020): does the "
        "relevance of random pixel sets predict the score's drop when they are removed; ROAD (Rong et al. 2022): "
        "the probability with the most / least relevant pixels removed and imputed; stability: how far the map "
        "moves when the image moves by an imperceptible amount."
    )


def _panel_download(ctx: Ctx, done, scores: dict, class_index: int, cmap: str, alpha: float) -> None:
    def figure():
        panels = []
        for method, _, result in done:
            s = scores.get(method, (math.nan, math.nan))  # none: a flat heatmap
            label = method_label(method, result.layer, s, sep="\n")
            panels.append((label, result.heatmap[0], bool(result.flat[0])))
        title = f"class {class_index} {ctx.class_names[class_index]!r}"
        return attribution_panel(ctx.pixels, panels, title=title, cmap=cmap, alpha=alpha)

    download(figure, f"explanations_class{class_index}.png", DL_EXPLAIN)


def _lime_job(ctx: Ctx, class_index: int):
    """The job running LIME (in the background, :mod:`dashboard.jobs`); its result is LIME's attribution."""
    model, preprocess, pixels = ctx.model, ctx.preprocess, ctx.pixels

    def run(progress):
        explainer = METHODS["lime"](
            model,
            preprocess=preprocess,
            progress=lambda done, total: progress(done / total, f"LIME: {done}/{total} samples"),
        )
        return explainer(pixels, class_index)

    return run


def _lime_block(ctx: Ctx, class_index: int, cmap: str, alpha: float, run: bool) -> None:
    """LIME's heatmap and superpixels for this model, image and class: only ever this image's."""
    key = (ctx.model_key, ctx.image_key, class_index, ctx.preprocess)
    store = session_store(LIME_RESULTS, LIME_KEPT, LIME_BYTES)
    if run:
        jobs.start("LIME (Explain tab)", key, store, _lime_job(ctx, class_index), "LIME: sampling perturbed images…")
    jobs.follow(key)
    result = store.get(key)
    if result is None:
        return
    image_uri, pixels = cache.image_uri(ctx), ctx.pixels
    lime_key = view_key("lime", *key)
    segments, weights, k = result.segments[0], result.weights[0], result.num_features

    def tiles() -> list[Tile]:
        heat = _heat_tile(image_uri, "lime", lime_key, result.heatmap[0], bool(result.flat[0]), cmap, "LIME heatmap")
        bounds = cache.uri(
            "lime_bounds", lime_key, lambda: pictures.lime_picture(pixels, segments, weights, num_features=k)
        )
        return [heat, Tile(src=bounds, caption="LIME superpixels: green for, red against", alt="LIME superpixels")]

    show_view(LIME_VIEW, view_key(lime_key, cmap), tiles, alpha=(ALPHA_EVENT, alpha))
    download(
        lambda: lime_boundaries(pixels, segments, weights, num_features=k),
        "lime_superpixels.png",
        DL_LIME,
        "Download LIME PNG",
    )


def _sanity_block(ctx: Ctx, method: str, class_index: int, layer, cmap: str, alpha: float) -> None:
    """The sanity check of one method (Adebayo et al. 2018), run on the button's press."""
    with st.spinner("Explaining again with randomised weights…"):
        kwargs = {"layer": layer} if cache.takes_layer(method) else {}
        check = sanity_check(
            METHODS[method], ctx.model, ctx.pixels[None], class_index, preprocess=ctx.preprocess, **kwargs
        )
    (st.success if check.passed else st.warning)(check.verdict)
    fig = attribution_panel(
        ctx.pixels,
        [("trained weights", check.heatmap[0], False), ("random weights", check.random_heatmap[0], False)],
        title=f"{method}: Spearman {check.spearman[0]:.2f}, SSIM {check.ssim[0]:.2f}",
        cmap=cmap,
        alpha=alpha,
    )
    show_png(png(fig), f"sanity_{method}.png", DL_SANITY)


def _training_strip_block(ctx: Ctx) -> None:
    """How the explanation evolved during training: the strip the model card names (``python -m training train
    --explain-every N``), read and decoded only while the expander is open, once per card (:mod:`dashboard.cache`);
    a strip that cannot be shown (missing, outside the model's folder, an upload's, corrupt) is one info line."""
    if not names_training_strip(ctx.card):
        return
    box = st.expander("How the explanation evolved during training", key=TRAINING_STRIP, on_change="rerun")
    if not box.open:
        return
    with box:
        data, caption = cache.training_strip(ctx.card)
        if data is None:
            st.info(caption)
            return
        st.caption(caption)
        st.image(data, output_format="PNG")  # "auto" would send a picture without alpha as a JPEG
        st.download_button(
            "Download PNG", data, file_name="training_strip.png", mime="image/png", key=DL_STRIP, on_click="ignore"
        )


@st.fragment
@guarded
def render(ctx: Ctx) -> None:
    """The Explain tab (a fragment: its controls rerun it alone)."""
    methods, class_index, layer, cmap, alpha = _explain_controls(ctx)
    done = _attributions(ctx, methods, class_index, layer)
    if done:
        _explain_view(ctx, done, class_index, cmap, alpha)
        scores = _faithfulness_line(ctx, done, class_index)
        _panel_download(ctx, done, scores, class_index, cmap, alpha)
    b1, b2 = st.columns(2)
    run_lime = b1.button("Run LIME (1000 samples)", key=RUN_LIME)
    _lime_block(ctx, class_index, cmap, alpha, run_lime)
    method = methods[0] if methods else "gradcam"
    if b2.button(f"Sanity check {method}", key=RUN_SANITY, disabled=not methods):
        _sanity_block(ctx, method, class_index, layer, cmap, alpha)
    which_method.render(ctx, layer)
    _training_strip_block(ctx)
