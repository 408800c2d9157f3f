"""Streamlit dashboard: ``streamlit run app.py``.

UI only; every computation lives in ``explain/``. Opens on the bundled demo model and a
sample image. Models are cached with ``st.cache_resource`` keyed by file path and
modification time, or by the SHA-256 of an upload: the cached model is only ever read
(explainers build their own models that share its weights), so one session's actions
never change another's. Arrays (activations, heatmaps) are cached with ``st.cache_data``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from explain import (
    METHODS,
    ExplainError,
    activation_bars,
    attribution_panel,
    compute_activations,
    deletion_insertion,
    feature_map_grid,
    heatmap_overlay,
    layer_table,
    load_image,
    load_model,
    load_model_card,
    predict,
    sanity_check,
    top_k_bars,
)
from explain.activations import channel_heatmap
from explain.attribution import default_target_layer
from explain.feature_visualization import StepCost, class_patterns, estimate_seconds, filter_patterns, step_cost
from explain.filters import conv_filters, conv_layers
from explain.images import IMAGE_SUFFIXES
from explain.plots import lime_boundaries, pattern_grid
from explain.preprocessing import DESCRIPTIONS, MODES, saturation_hint

def _keep_keras_state() -> None:
    """Stop Streamlit from calling ``keras.backend.clear_session()`` after every script run.

    Streamlit does so whenever keras is imported (``script_runner._clean_problem_modules``). That
    runs a full garbage collection and clears TensorFlow's kernel cache: 100-500 ms per rerun, all
    of it holding the GIL, so the browser waits for the new picture. This dashboard never builds
    models in the script (the explainers it caches share the loaded model's weights) and never uses
    pyplot, so there is nothing for that clean-up to do."""
    from streamlit.runtime.scriptrunner import script_runner

    if hasattr(script_runner, "_clean_problem_modules"):
        script_runner._clean_problem_modules = lambda: None


_keep_keras_state()
ROOT = Path(__file__).resolve().parent
MODELS_DIR = ROOT / "models"
SAMPLES_DIR = ROOT / "sample_images"
DEMO_MODEL = MODELS_DIR / "fashion_mnist_cnn.keras"
MAX_MODEL_MB = 200
MODEL_SUFFIXES = ["keras", "h5", "hdf5", "zip"]
UPLOAD = "Upload…"
GRADIENT_METHODS = [m for m in METHODS if m != "lime"]  # LIME runs behind its own button
COLORMAPS = ["jet", "inferno", "viridis", "magma", "turbo"]


# --------------------------------------------------------------------------- caching
@st.cache_resource(max_entries=4, show_spinner="Loading model…")
def _bundled_model(path: str, mtime: float):
    del mtime  # part of the cache key only: a re-trained file is loaded again
    model = load_model(path)
    return model, load_model_card(path, model)


@st.cache_resource(max_entries=4, show_spinner="Loading uploaded model…")
def _uploaded_model(digest: str, name: str, _data: bytes, _card: bytes | None):
    """Load an upload (.keras, .h5, a .zip of a SavedModel) from a temporary folder, under
    the upload's own file name; errors name the upload, not the temporary path."""
    del digest  # the cache key
    safe = Path(name).name or "model.keras"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / safe
        path.write_bytes(_data)
        if _card is not None:
            path.with_suffix(".json").write_bytes(_card)
        try:
            model = load_model(path)
            card = load_model_card(path, model)
        except ExplainError as e:
            raise type(e)(str(e).replace(str(path), safe).replace(tmp + os.sep, "")) from None
    return model, card


@st.cache_resource(max_entries=32, show_spinner="Preparing the explainer…")
def _explainer(_model, model_key: str, method: str, layer: str | None, preprocess: str):
    del model_key  # the cache key
    cls = METHODS[method]
    kwargs = {"layer": layer} if cls.needs_layer else {}
    return cls(_model, preprocess=preprocess, **kwargs)


@st.cache_data(max_entries=64, show_spinner="Running the model…")
def _activations(_model, model_key: str, image_key: str, _image: np.ndarray, preprocess: str) -> dict[str, np.ndarray]:
    del model_key, image_key  # the cache key
    acts = compute_activations(_model, _image, preprocess=preprocess)
    return {name: a[0] for name, a in acts.items()}


@st.cache_data(max_entries=128, show_spinner="Explaining…")
def _attribution(
    _model, model_key: str, image_key: str, _image: np.ndarray, method: str, class_index: int, layer, preprocess: str
):
    result = _explainer(_model, model_key, method, layer, preprocess)(_image, class_index)
    scores = deletion_insertion(_model, _image[None], result.heatmap, result.class_index, preprocess=preprocess)
    return result, scores


def _in_dashboard_words(text: str) -> str:
    """A CLI hint (``--preprocess``) as the dashboard says it (the Input scaling menu)."""
    return text.replace("pass --preprocess unit", "choose 'unit' under Input scaling").replace(
        "with --preprocess", "under Input scaling"
    )


@st.cache_data(max_entries=64, show_spinner=False)
def _top_score(_model, model_key: str, image_key: str, _image: np.ndarray, preprocess: str) -> tuple[float, str]:
    """The top class's score (its pre-softmax logit where the model has one) and its kind."""
    explainer = _explainer(_model, model_key, "saliency", None, preprocess)
    scores = explainer.scores_from_input(_image[None].astype(np.float32)).numpy()[0]
    return float(scores.max() if scores.size > 1 else abs(scores[0])), explainer.score_kind


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return buf.getvalue()


def _figure(fig, name: str, key: str) -> None:
    """Show a figure and offer it as a PNG download (rendered once, for both)."""
    _show_png(_png(fig), name, key)


def _show_png(png: bytes, name: str, key: str) -> None:
    st.image(png)
    st.download_button("Download PNG", png, file_name=name, mime="image/png", key=key)


@st.cache_data(max_entries=256, show_spinner=False)
def _grid_png(model_key, image_key, layer, channels_key, max_maps, normalize, title, _acts, _channels) -> bytes:
    del model_key, image_key, layer, channels_key  # the cache key
    return _png(feature_map_grid(_acts, title=title, channels=_channels, max_maps=max_maps, normalize=normalize))


@st.cache_data(max_entries=256, show_spinner=False)
def _channel_png(model_key, image_key, layer, channel, _acts, _pixels) -> bytes:
    del model_key, image_key  # the cache key
    heat = channel_heatmap(_acts, channel, _pixels.shape[:2])
    return _png(heatmap_overlay(_pixels, heat, title=f"{layer}, channel {channel}", cmap="viridis", alpha=0.6))


@st.cache_data(max_entries=128, show_spinner=False)
def _panel_png(key, _pixels, _panels, title, cmap, alpha) -> bytes:
    del key  # the cache key: model, image, methods, class and layer
    return _png(attribution_panel(_pixels, _panels, title=title, cmap=cmap, alpha=alpha))


@st.cache_data(max_entries=64, show_spinner=False)
def _top_k_png(model_key, image_key, _probabilities, class_names) -> bytes:
    del model_key, image_key  # the cache key
    return _png(top_k_bars(_probabilities, class_names, k=5))


# --------------------------------------------------------------------------- sidebar
def model_ui():
    """Sidebar model picker. Returns ``(model, card, model_key)`` or stops with an error."""
    st.sidebar.header("Model")
    bundled = sorted(MODELS_DIR.glob("*.keras"))
    choices = [p.name for p in bundled] + [UPLOAD]
    default = choices.index(DEMO_MODEL.name) if DEMO_MODEL.name in choices else 0
    choice = st.sidebar.selectbox("Model", choices, index=default, key="model_choice")
    try:
        if choice != UPLOAD:
            path = MODELS_DIR / choice
            model, card = _bundled_model(str(path), path.stat().st_mtime)
            return model, card, f"{path}:{path.stat().st_mtime}"
        up = st.sidebar.file_uploader(
            f"A model: .keras, Keras 2 .h5, or a .zip of a SavedModel folder (at most {MAX_MODEL_MB} MB)",
            type=MODEL_SUFFIXES,
            key="model_upload",
        )
        card_up = st.sidebar.file_uploader(
            "Its model card (.json, optional: class names)", type=["json"], key="card_upload"
        )
        if up is None:
            st.info(
                "Upload a model (`.keras`, `.h5`, or a `.zip` of a SavedModel folder) in the sidebar, "
                "or pick a bundled one."
            )
            st.stop()
        if up.size > MAX_MODEL_MB * 1024**2:
            st.error(f"{up.name} is {up.size / 1024**2:.0f} MB; the limit is {MAX_MODEL_MB} MB.")
            st.stop()
        data = up.getvalue()
        card_bytes = card_up.getvalue() if card_up is not None else None
        key = _digest(up.name.encode() + data + (card_bytes or b""))
        model, card = _uploaded_model(key, up.name, data, card_bytes)
        return model, card, key
    except ExplainError as e:
        st.error(str(e))
        st.stop()


def model_options_ui(card, model_key: str):
    """Sidebar: the model's input scaling and its class names. Returns ``(card, key)``: the card
    with the user's choices, and a cache key for everything computed with them."""
    if st.session_state.get("options_for") != model_key:  # a new model: start on what its card says
        st.session_state["options_for"] = model_key
        st.session_state["preprocess"] = card.preprocessing
    mode = st.sidebar.selectbox(
        "Input scaling (preprocessing)",
        MODES,
        key="preprocess",
        format_func=lambda m: f"{m}: {DESCRIPTIONS[m]}",
        help="How the model's training scaled its pixels. Images, heatmaps and perturbations stay in raw pixels; "
        "this scaling is applied in front of the model only.",
    )
    names_up = st.sidebar.file_uploader(
        "Class names (.txt, one per line; optional)", type=["txt"], key="classes_upload"
    )
    names = None
    if names_up is not None:
        names = names_up.getvalue().decode("utf-8-sig", errors="replace").splitlines()
    chosen = mode if mode != card.preprocessing else None  # the card's own mode keeps its note and origin
    try:
        card = card.with_overrides(preprocess=chosen, classes=names)
    except ExplainError as e:
        st.sidebar.error(f"{names_up.name}: {e}" if names_up is not None else str(e))
        card = card.with_overrides(preprocess=chosen)
    for note in card.notes:  # what was assumed, unless the user chose otherwise
        st.sidebar.caption(_in_dashboard_words(note))
    return card, f"{model_key}|{mode}|{_digest(chr(10).join(card.class_names).encode())[:16]}"


def image_ui(card):
    """Sidebar image picker. Returns ``(name, pixels at the model's size, image_key)``."""
    st.sidebar.header("Image")
    samples = sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix.lower().lstrip(".") in IMAGE_SUFFIXES)
    names = [p.name for p in samples] + [UPLOAD]
    # Open on an image from the model's own data set when there is one.
    default = next((i for i, n in enumerate(names) if card.dataset and n.startswith(card.dataset)), 0)
    choice = st.sidebar.selectbox("Image", names, index=default, key="image_choice")
    if choice == UPLOAD:
        ups = st.sidebar.file_uploader(
            "One or several images", type=list(IMAGE_SUFFIXES), accept_multiple_files=True, key="image_upload"
        )
        if not ups:
            st.info("Upload an image in the sidebar, or pick a sample.")
            st.stop()
        pick = (
            st.sidebar.selectbox("Uploaded image", [u.name for u in ups], key="uploaded_pick")
            if len(ups) > 1
            else ups[0].name
        )
        up = next(u for u in ups if u.name == pick)
        name, data = up.name, up.getvalue()
    else:
        name, data = choice, (SAMPLES_DIR / choice).read_bytes()
    h, w, c = card.input_shape
    try:
        pixels = load_image(data, target_size=(h, w) if h and w else None, channels=c)
    except ExplainError as e:
        st.error(f"{name}: {e}")
        st.stop()
    return name, pixels, f"{_digest(data)}:{h}x{w}x{c}"


# --------------------------------------------------------------------------- tabs
def _show_image(name: str, pixels: np.ndarray) -> None:
    img = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    scale = max(1, 224 // max(img.size))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    st.image(img, caption=f"{name} as the model sees it ({pixels.shape[1]}x{pixels.shape[0]})")


def _tab(ui):
    """A tab's body, run so that an error it did not expect is shown in that tab, in one line
    without a traceback, and the other tabs still draw (a full rerun would otherwise stop at it)."""

    @functools.wraps(ui)
    def guarded(*args, **kwargs):
        try:
            ui(*args, **kwargs)
        except Exception as e:  # st.rerun() / st.stop() are BaseExceptions and pass through
            st.error(f"This tab hit an unexpected error ({type(e).__name__}: {e}); the other tabs still work.")

    return guarded


@st.fragment
@_tab
def layers_ui(model, card, model_key: str, image_key: str, acts: dict[str, np.ndarray], pixels, name: str) -> None:
    """Layer selector, that layer's feature-map grid (or bar chart), one channel enlarged."""
    rows = [r for r in layer_table(model) if r.index is not None or r.is_spatial]
    labels = [r.label for r in rows]
    default = next((i for i, r in enumerate(rows) if r.type.startswith("Conv")), 0)
    chosen = st.selectbox("Layer (index · name (type) output shape)", labels, index=default, key="layer")
    info = rows[labels.index(chosen)]
    if info.name not in acts:
        acts = {**acts, **_nested_activations(model, info.name, pixels, card.preprocessing)}
    a = acts[info.name]
    where = f"Layer {info.index}: " if info.index is not None else "Nested layer "
    title = f"{where}{info.name} ({info.type}), output {info.output_shape}"
    if not info.is_spatial:
        flat = a.reshape(-1)
        names = list(card.class_names) if flat.size == len(card.class_names) else None
        _figure(activation_bars(flat, title=title, labels=names), f"{info.name}_activations.png", "dl_bars")
        return
    c1, c2, c3 = st.columns(3)
    n = a.shape[-1]
    if n > 1:
        max_maps = c1.slider("Feature maps shown", 1, int(min(n, 256)), int(min(n, 64)), key="max_maps")
    else:  # a slider from 1 to 1 is an error in Streamlit (a Rescaling layer of a grayscale model)
        max_maps = 1
        c1.caption("1 feature map (the layer has one channel).")
    normalize = c2.radio(
        "Scale",
        ["per_map", "layer"],
        horizontal=True,
        key="normalize",
        format_func=lambda s: "each map alone" if s == "per_map" else "whole layer",
    )
    by_mean = c3.checkbox("Sort channels by mean activation", key="sort_channels")
    channels = list(np.argsort(-a.mean(axis=(0, 1)), kind="stable")) if by_mean else None
    png = _grid_png(model_key, image_key, info.name, by_mean, max_maps, normalize, title, a, channels)
    _show_png(png, f"{info.name.replace('/', '_')}_feature_maps.png", "dl_grid")
    st.markdown("**One channel, enlarged over the image**")
    d1, d2 = st.columns([1, 2])
    strongest = int(np.argmax(a.mean(axis=(0, 1))))
    shown_for = (info.name, name)
    if st.session_state.get("channel_for") != shown_for:  # a new layer or image: start on its strongest channel
        st.session_state["channel_for"] = shown_for
        st.session_state["channel"] = strongest
    channel = d1.number_input("Channel", 0, n - 1, key="channel") if n > 1 else 0
    d1.caption(f"Default: the channel with the highest mean activation ({strongest}).")
    with d2:
        _show_png(
            _channel_png(model_key, image_key, info.name, int(channel), a, pixels),
            f"{info.name.replace('/', '_')}_channel{channel}.png",
            "dl_channel",
        )


def _nested_activations(model, name: str, pixels: np.ndarray, preprocess: str) -> dict[str, np.ndarray]:
    return {k: v[0] for k, v in compute_activations(model, pixels, [name], preprocess=preprocess).items()}


@st.cache_data(max_entries=64, show_spinner=False)
def _filters_png(model_key, layer, _kernels) -> bytes:
    del model_key  # the cache key
    return _png(feature_map_grid(_kernels, title=f"Filters of {layer}", max_maps=64, cmap="RdBu_r"))


#: The Filters tab's entry for class patterns (the output logits), after the spatial layers.
CLASS_PATTERNS = "Output: class patterns"
PATTERN_STEPS = {32: "32 (quick sketch)", 128: "128 (default)", 256: "256 (finer)"}
FIRST_CHANNELS = 16
#: Pattern grids kept per session, most recent last.
_PATTERNS_KEPT = 16


@st.cache_data(max_entries=64, show_spinner="Timing a few steps…")
def _step_cost(_model, model_key: str, layer: str | None, preprocess: str) -> StepCost:
    """The layer's measured step cost (explain.feature_visualization.step_cost), once per model,
    layer and input scaling."""
    del model_key  # the cache key
    return step_cost(_model, layer, preprocess=preprocess)


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"


def _pattern_layers(model) -> list:
    """The layers patterns can be drawn for: spatial ones (nested included), input and scaling excluded."""
    return [r for r in layer_table(model) if r.is_spatial and r.type not in ("InputLayer", "Rescaling")]


def _pattern_controls(card, rows) -> tuple[str | None, list[int], int, int]:
    """The Filters tab's controls: ``(layer name or None for classes, channels, steps, seed)``."""
    labels = [r.label for r in rows] + [CLASS_PATTERNS]
    default = next((i for i, r in enumerate(rows) if r.type.startswith("Conv")), 0)
    label = st.selectbox("Layer (or the output, for class patterns)", labels, index=default, key="filter_layer")
    layer = None if label == CLASS_PATTERNS else rows[labels.index(label)].name
    available = len(card.class_names) if layer is None else int(rows[labels.index(label)].output_shape[-1])
    c1, c2, c3 = st.columns(3)
    steps = c1.selectbox("Steps", list(PATTERN_STEPS), index=1, format_func=PATTERN_STEPS.get, key="pattern_steps")
    which = c2.selectbox(
        "Channels (classes, for the output)",
        [f"first {FIRST_CHANNELS}", "all"],
        key="pattern_channels",
        help=f"This one has {available}.",
    )
    seed = c3.number_input("Seed", 0, 2**31 - 1, 0, key="pattern_seed")
    count = available if which == "all" else min(FIRST_CHANNELS, available)
    return layer, list(range(count)), int(steps), int(seed)


def _find_patterns(model, card, layer: str | None, channels: list[int], steps: int, seed: int):
    """Run filter (or class) patterns with a progress bar; the patterns and the seconds they took."""
    bar = st.progress(0.0, text="Finding patterns…")
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        bar.progress(done / total, text=f"Step {done} of {total}, {time.perf_counter() - start:.0f} s")

    kwargs = {"steps": steps, "seed": seed, "preprocess": card.preprocessing, "progress": progress}
    try:
        if layer is None:
            patterns = class_patterns(model, channels, **kwargs)
        else:
            patterns = filter_patterns(model, layer, channels, **kwargs)
    finally:
        bar.empty()
    return patterns, time.perf_counter() - start


def _patterns_png(patterns, card) -> bytes:
    """The grid of patterns, each tile labelled "channel: activation" (class name for classes)."""
    names = card.class_names
    labels = [
        f"{names[k] if patterns.kind == 'class' and k < len(names) else k}: {a:.3g}"
        for k, a in zip(patterns.channels.tolist(), patterns.activation.tolist(), strict=True)
    ]
    if patterns.kind == "class":
        title = f"Class patterns ({patterns.steps} steps, seed {patterns.seed}): class: score"
    else:
        title = f"Patterns of {patterns.layer} ({patterns.steps} steps, seed {patterns.seed}): channel: mean activation"
    return _png(pattern_grid(patterns.images, labels, title=title))


def _keep_patterns(key: tuple, entry: dict) -> None:
    kept = st.session_state.setdefault("pattern_results", {})
    kept.pop(key, None)
    kept[key] = entry
    while len(kept) > _PATTERNS_KEPT:
        kept.pop(next(iter(kept)))


def _kernel_block(model, model_key: str, layer: str) -> None:
    """Today's view of a convolution layer's kernel weights, in an expander."""
    with st.expander("Kernel weights"):
        kernels = conv_filters(model, layer)
        st.caption(
            f"{kernels.shape[-1]} filters of {kernels.shape[0]}x{kernels.shape[1]} weights, averaged over the "
            "input channels; each scaled to its own min-max (blue: most negative, red: most positive)."
        )
        _show_png(_filters_png(model_key, layer, kernels), f"{layer.replace('/', '_')}_filters.png", "dl_filters")


@st.fragment
@_tab
def filters_ui(model, card, model_key: str) -> None:
    """Filter patterns (activation maximisation) of a chosen layer, or class patterns, behind a
    button with a time estimate and a progress bar; kept per session. Kernel weights for conv layers."""
    rows = _pattern_layers(model)
    layer, channels, steps, seed = _pattern_controls(card, rows)
    key = (model_key, layer, tuple(channels), steps, seed, card.preprocessing)
    what = "classes" if layer is None else "channels"
    try:
        run = st.button("Find patterns", key="run_patterns", type="primary")
        kept = st.session_state.get("pattern_results", {}).get(key)
        if kept is None or run:
            cost = _step_cost(model, model_key, layer, card.preprocessing)
            estimate = estimate_seconds(cost, len(channels), steps)
            st.caption(
                f"About {_seconds(estimate)} for {len(channels)} {what} x {steps} steps (from a few timed "
                "steps of this layer on this machine)."
            )
        if run:
            patterns, took = _find_patterns(model, card, layer, channels, steps, seed)
            kept = {"png": _patterns_png(patterns, card), "seconds": took, "estimate": estimate}
            _keep_patterns(key, kept)
    except (ExplainError, ValueError) as e:  # LayerError too: bad layer, channel, size, no gradient
        st.error(str(e))
        kept = None
    if kept is not None:
        label = "class: its score (logit, if any)" if layer is None else "channel: its mean activation"
        st.caption(
            f"Found in {_seconds(kept['seconds'])} (estimated {_seconds(kept['estimate'])}). Each tile is the image "
            f"that excites one {what[:-2] if layer is None else what[:-1]} most (gradient ascent from noise), "
            f"labelled {label} on it."
        )
        name = "class_patterns.png" if layer is None else f"{layer.replace('/', '_')}_patterns.png"
        _show_png(kept["png"], name, "dl_patterns")
    if layer is not None and layer in conv_layers(model):
        _kernel_block(model, model_key, layer)


def _explain_controls(model, card, model_key: str, image_key: str, pred):
    """The Explain tab's controls: ``(methods, class_index, target layer or None, cmap, alpha)``."""
    spatial = [r.name for r in layer_table(model) if r.is_spatial and r.type not in ("Rescaling", "InputLayer")]
    try:
        default_layer, no_cam = default_target_layer(model).name, None
    except ExplainError as e:  # no spatial layer, or only 1x1 ones: the message says which
        default_layer, no_cam = None, str(e)
    methods = st.multiselect(
        "Methods", GRADIENT_METHODS, default=["gradcam"] if default_layer else ["saliency"], key="methods"
    )
    c1, c2, c3, c4 = st.columns(4)
    top = pred.top_k[0][0]
    if st.session_state.get("class_for") != (model_key, image_key):  # a new model or image: its top prediction
        st.session_state["class_for"] = (model_key, image_key)
        st.session_state["explain_class"] = top
    class_index = c1.selectbox(
        "Class to explain",
        range(len(card.class_names)),
        index=top,
        key="explain_class",
        format_func=lambda k: f"{k}: {card.class_names[k]}" + (" (top prediction)" if k == top else ""),
    )
    layer = (
        c2.selectbox("Target layer (CAM methods)", spatial, index=spatial.index(default_layer), key="target_layer")
        if default_layer
        else None
    )
    cmap = c3.selectbox("Colormap", COLORMAPS, key="cmap")
    alpha = c4.slider("Opacity", 0.0, 1.0, 0.5, 0.05, key="alpha")
    if no_cam:
        st.caption(no_cam)
    return methods, int(class_index), layer, cmap, alpha


def _method_panels(model, card, model_key, image_key, pixels, methods, class_index, layer) -> list:
    """One ``(label, heatmap, flat)`` panel per method that runs; errors shown per method."""
    panels = []
    for method in methods:
        if METHODS[method].needs_layer and layer is None:
            st.warning(f"{method} needs a convolutional layer; skipped.")
            continue
        target = layer if METHODS[method].needs_layer else None
        try:
            result, scores = _attribution(
                model, model_key, image_key, pixels, method, class_index, target, card.preprocessing
            )
        except ExplainError as e:
            st.error(f"{method}: {e}")
            continue
        label = method + (f"\n@ {result.layer}" if result.layer else "")
        label += (
            "\nflat heatmap"
            if result.flat[0]
            else (f"\ndeletion {scores.deletion_auc[0]:.3f} insertion {scores.insertion_auc[0]:.3f}")
        )
        panels.append((label, result.heatmap[0], bool(result.flat[0])))
    return panels


#: LIME results kept per session, most recent last: (model, image, class, preprocessing) -> result.
_LIME_KEPT = 8


def _run_lime(model, card, pixels, class_index: int, key: tuple) -> None:
    """Run LIME with a progress bar and keep its result under ``key`` in this session."""
    bar = st.progress(0.0, text="LIME: sampling perturbed images…")
    explainer = METHODS["lime"](
        model,
        preprocess=card.preprocessing,
        progress=lambda done, total: bar.progress(done / total, text=f"LIME: {done}/{total} samples"),
    )
    result = explainer(pixels, class_index)
    bar.empty()
    kept = st.session_state.setdefault("lime_results", {})
    kept.pop(key, None)
    kept[key] = result
    while len(kept) > _LIME_KEPT:
        kept.pop(next(iter(kept)))


def _lime_block(model, card, key: tuple, pixels, class_index: int, cmap: str, alpha: float, run: bool) -> None:
    """LIME's heatmap and superpixels for this model, image and class: only ever this image's."""
    if run:
        _run_lime(model, card, pixels, class_index, key)
    result = st.session_state.get("lime_results", {}).get(key)
    if result is None:
        return
    overlay = _png(
        attribution_panel(pixels, [("lime", result.heatmap[0], bool(result.flat[0]))], cmap=cmap, alpha=alpha)
    )
    bounds = _png(lime_boundaries(pixels, result.segments[0], result.weights[0], num_features=result.num_features))
    l1, l2 = st.columns(2)
    l1.image(overlay, caption="LIME heatmap")
    l2.image(bounds, caption="LIME superpixels")
    st.download_button("Download LIME PNG", bounds, file_name="lime_superpixels.png", mime="image/png", key="dl_lime")


def _sanity_block(model, card, pixels, method: str, class_index: int, layer, cmap: str, alpha: float) -> None:
    """The sanity check of one method (Adebayo et al. 2018), run on the button's press."""
    with st.spinner("Explaining again with randomised weights…"):
        kwargs = {"layer": layer} if METHODS[method].needs_layer else {}
        check = sanity_check(METHODS[method], model, pixels[None], class_index, preprocess=card.preprocessing, **kwargs)
    (st.success if check.passed else st.warning)(check.verdict)
    fig = attribution_panel(
        pixels,
        [("trained weights", check.heatmap[0], False), ("random weights", check.random_heatmap[0], False)],
        title=f"{method}: Spearman {check.spearman[0]:.2f}, SSIM {check.ssim[0]:.2f}",
        cmap=cmap,
        alpha=alpha,
    )
    _figure(fig, f"sanity_{method}.png", "dl_sanity")


@st.fragment
@_tab
def explain_ui(model, card, model_key: str, image_key: str, pixels: np.ndarray, pred) -> None:
    """Methods side by side with faithfulness scores; LIME and the sanity check on buttons."""
    methods, class_index, layer, cmap, alpha = _explain_controls(model, card, model_key, image_key, pred)
    panels = _method_panels(model, card, model_key, image_key, pixels, methods, class_index, layer)
    if panels:
        title = f"class {class_index} {card.class_names[class_index]!r}"
        key = (model_key, image_key, tuple(methods), class_index, layer)
        png = _panel_png(key, pixels, panels, title, cmap, alpha)
        _show_png(png, f"explanations_class{class_index}.png", "dl_explain")
        st.caption(
            "Deletion / insertion AUC (Petsiuk et al. 2018): lower deletion and higher insertion mean the map "
            "points at pixels the model really uses."
        )
    b1, b2 = st.columns(2)
    run_lime = b1.button("Run LIME (1000 samples)", key="run_lime")
    lime_key = (model_key, image_key, class_index, card.preprocessing)
    _lime_block(model, card, lime_key, pixels, class_index, cmap, alpha, run_lime)
    method = methods[0] if methods else "gradcam"
    if b2.button(f"Sanity check {method}", key="run_sanity", disabled=not methods):
        _sanity_block(model, card, pixels, method, class_index, layer, cmap, alpha)


@st.cache_data(max_entries=8, show_spinner=False)
def _report(_model, model_key: str, spec: str, _card) -> dict:
    """Compute and render the model report in memory; keep its files' bytes."""
    from explain.evaluation import open_data
    from explain.report import compute_report, render_report

    del model_key  # the cache key, with spec
    data = compute_report(_model, open_data(spec), card=_card, progress=False, examples=6)
    rendered = render_report(data, model_name=_model.name, command=f"dashboard report on {spec}")
    return {
        "files": rendered.files,
        "accuracy": data.evaluation.accuracy,
        "images": data.evaluation.num_images,
        "confusions": [(str(g.confusion), f) for g, f in zip(data.galleries, rendered.galleries, strict=True) if f],
        "notes": list(rendered.notes),
    }


@st.fragment
@_tab
def report_ui(model, card, model_key: str) -> None:
    """Per-class accuracy and the confusion matrix on a data set; a confusion's images explained."""
    builtin = [f"{card.dataset}:test"] if card.dataset in ("fashion_mnist", "mnist", "cifar10") else []
    choice = st.selectbox("Data", [*builtin, "A folder of class subfolders…"], key="report_data")
    spec = choice
    if not builtin or choice != builtin[0]:
        spec = st.text_input("Folder (one subfolder per class)", key="report_folder").strip()
    if st.button("Evaluate and write the report", key="run_report", disabled=not spec):
        st.session_state["report_spec"] = spec
    spec = st.session_state.get("report_spec")
    if not spec:
        st.caption(
            "Predicts every image of the data set (in batches, never shuffled) and explains the most frequent "
            "confusions with Grad-CAM for the true and the predicted class."
        )
        return
    try:
        with st.spinner(f"Evaluating {spec}…"):
            rep = _report(model, model_key, spec, card)
    except ExplainError as e:
        st.error(str(e))
        return
    st.markdown(f"**{spec}**: {rep['images']:,} images, accuracy **{rep['accuracy']:.2%}**")
    for note in rep["notes"]:
        st.caption(note)
    files = rep["files"]
    c1, c2 = st.columns(2)
    with c1:
        _show_png(files["per_class_accuracy.png"], "per_class_accuracy.png", "dl_per_class")
    with c2:
        _show_png(files["confusion_matrix.png"], "confusion_matrix.png", "dl_confusion")
    if rep["confusions"]:
        labels = [label for label, _ in rep["confusions"]]
        pick = st.selectbox("Most frequent confusions", labels, key="confusion_pick")
        gallery = dict(rep["confusions"])[pick]
        _show_png(files[gallery], gallery, "dl_gallery")
    st.download_button(
        "Download the report (one HTML file, images embedded)",
        files["report.html"],
        file_name="report.html",
        mime="text/html",
        key="dl_report",
    )


def main() -> None:
    st.set_page_config(page_title="explain: what does my classifier see?", layout="wide")
    st.title("explain: what does my classifier see?")
    model, card, model_key = model_ui()
    card, model_key = model_options_ui(card, model_key)
    src = (
        f"{card.dataset}, test accuracy {card.test_accuracy:.1%}" if card.test_accuracy is not None else "no model card"
    )
    st.sidebar.caption(f"{model.name}: input {card.input_shape}, {len(card.class_names)} classes ({src}).")
    with st.sidebar.expander("Layer table"):
        st.dataframe(
            [
                {
                    "index": r.index,
                    "name": r.name,
                    "type": r.type,
                    "output shape": str(r.output_shape),
                    "params": r.params,
                }
                for r in layer_table(model)
            ],
            hide_index=True,
        )
    name, pixels, image_key = image_ui(card)
    try:
        pred = predict(model, pixels, card.class_names, k=5, preprocess=card.preprocessing)[0]
        acts = _activations(model, model_key, image_key, pixels, card.preprocessing)
    except (ExplainError, ValueError) as e:
        st.error(str(e))
        st.stop()
    left, right = st.columns([1, 2])
    with left:
        _show_image(name, pixels)
    with right:
        st.subheader("Top-5 predictions")
        st.image(_top_k_png(model_key, image_key, pred.probabilities, tuple(card.class_names)))
        if not pred.outputs_probabilities:
            st.caption("The model outputs logits; softmax was applied to show probabilities.")
        score, kind = _top_score(model, model_key, image_key, pixels, card.preprocessing)
        hint = saturation_hint(score, card.preprocessing) if kind == "logit" else None
        if hint and card.preprocessing_from == "assumed":
            st.warning(_in_dashboard_words(hint))
    tab_layers, tab_filters, tab_explain, tab_report = st.tabs(["Layers", "Filters", "Explain", "Report"])
    with tab_layers:
        layers_ui(model, card, model_key, image_key, acts, pixels, name)
    with tab_filters:
        filters_ui(model, card, model_key)
    with tab_explain:
        explain_ui(model, card, model_key, image_key, pixels, pred)
    with tab_report:
        report_ui(model, card, model_key)


try:
    main()
except Exception as e:  # the app never shows a traceback; st.stop() is not an Exception
    st.error(f"Something went wrong: {type(e).__name__}: {e}")
