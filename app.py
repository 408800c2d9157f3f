"""Streamlit dashboard: ``streamlit run app.py``, or ``streamlit run app.py -- --model my_model.h5``.

UI only; every computation lives in ``explain/``. Opens on the bundled demo model (or the
``--model`` given) and a sample image. Models are cached with ``st.cache_resource`` keyed by file
path and modification time, or by the SHA-256 of an upload: the cached model is only ever read
(explainers build their own models that share its weights), so one session's actions never change
another's.

What a person waits for is measured in a real browser (``bench/bench_browser.py``); so:

- pictures on screen are composed in NumPy (:mod:`explain.render.pictures`) and encoded once; the titled
  matplotlib figures are only drawn when a download button is pressed;
- only the open tab runs (lazy tabs), and each tab is a fragment that reruns alone;
- stepping through layers and sliding the opacity are answered in the browser, from pictures it
  was sent ahead (``dashboard/components.py``);
- Streamlit's clean-up after every run (a full garbage collection and
  ``keras.backend.clear_session()``) is off: it held the GIL for 100-500 ms per rerun.
"""

from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import streamlit as st

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dashboard.components import Tile, data_uri, prefetch_views, range_control, select_control, show_view, view_key
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
)
from explain.attribution import default_target_layer, methods_for
from explain.cli import add_loading_arguments
from explain.cli import loading_options as cli_loading_options
from explain.dataset.evaluation import load_rows
from explain.features.activations import channel_heatmap
from explain.features.kernels import conv_filters, conv_layers
from explain.features.patterns import StepCost, class_patterns, estimate_seconds, filter_patterns, step_cost
from explain.images import IMAGE_SUFFIXES
from explain.models.preprocessing import DESCRIPTIONS, MODES, saturation_hint
from explain.render.figures import lime_boundaries, pattern_grid
from explain.render.pictures import (
    activation_chart,
    encode_png,
    enlarge,
    heatmap_colors,
    lime_picture,
    mosaic_picture,
    overlay,
    top_k_chart,
)


def _keep_keras_state() -> None:
    """Stop Streamlit from calling ``keras.backend.clear_session()`` after every script run.

    Streamlit does so whenever keras is imported (``script_runner._clean_problem_modules``). That
    runs a full garbage collection and clears TensorFlow's kernel cache: 100-500 ms per rerun, all
    of it holding the GIL, so the browser waits for the new picture. This dashboard never builds
    models in the script (the explainers it caches share the loaded model's weights) and never uses
    pyplot, so there is nothing for that clean-up to do. (``runner.postScriptGC`` is off in
    ``.streamlit/config.toml`` for the same reason.)"""
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
TABS = ["Layers", "Filters", "Explain", "Report"]
LAYER_LABEL = "Layer (index · name (type) output shape)"
#: Window events of the browser-side controls (dashboard/controls.js).
LAYER_EVENT, ALPHA_EVENT = "explain:layer", "explain:alpha"
#: Layers on each side of the one shown whose pictures are always sent ahead; more layers, nearest
#: first, go while making their pictures takes under PREFETCH_SECONDS per run (every layer of a
#: small model after a run or two).
NEIGHBOURS = 1
PREFETCH_SECONDS = 0.25
#: Activations computed in one pass are split into groups of at most this many bytes (a big model).
GROUP_BYTES = 64 * 1024**2


def _startup_args() -> argparse.Namespace:
    """The server's start-up flags: ``streamlit run app.py -- --model PATH --trust-code FILE.py --max-model-mb MB``."""
    parser = argparse.ArgumentParser(prog="streamlit run app.py --", add_help=False)
    parser.add_argument("--model", type=Path, default=None)
    add_loading_arguments(parser)
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args


def startup_model() -> Path | None:
    """The model given on the command line (``streamlit run app.py -- --model PATH``), if any."""
    model = _startup_args().model
    return model.expanduser().resolve() if model else None


def loading_options(upload: bool) -> dict:
    """``load_model``'s options from the start-up flags. Trusted code comes only from the server's own
    ``--trust-code`` (never from an upload); an upload gets its classes but keeps safe mode on, so a
    stranger's Lambda layer never runs."""
    options = cli_loading_options(_startup_args())
    if upload and options["trusted_code"] is not None:
        options["safe_mode"] = True
    return options


# --------------------------------------------------------------------------- caching
@st.cache_resource(max_entries=4, show_spinner="Loading model…")
def _model_file(path: str, mtime: float):
    del mtime  # part of the cache key only: a re-trained file is loaded again
    model = load_model(path, **loading_options(upload=False))
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
            model = load_model(path, **loading_options(upload=True))
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


@st.cache_data(max_entries=256, show_spinner=False)
def _prediction(_model, model_key: str, image_key: str, _pixels: np.ndarray, preprocess: str, names: tuple):
    del model_key, image_key  # the cache key
    return predict(_model, _pixels, names, k=5, preprocess=preprocess)[0]


@st.cache_resource(max_entries=8, show_spinner=False)
def _browsable(_model, model_key: str) -> tuple[list, list[tuple[str, ...]]]:
    """The Layers tab's rows (top-level layers and nested spatial ones) and their activation
    groups: consecutive layers whose activations of one image fit in :data:`GROUP_BYTES`."""
    del model_key  # the cache key
    rows = [r for r in layer_table(_model) if r.index is not None or r.is_spatial]
    groups: list[list[str]] = [[]]
    size = 0
    for r in rows:
        nbytes = 4 * int(np.prod([d or 1 for d in r.output_shape[1:]]))
        if groups[-1] and size + nbytes > GROUP_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(r.name)
        size += nbytes
    return rows, [tuple(g) for g in groups]


@st.cache_resource(max_entries=6, show_spinner="Running the model…")
def _group_activations(_model, model_key: str, image_key: str, _pixels, preprocess: str, names: tuple):
    """One image's activations of a group of layers, from one compiled pass (never mutated)."""
    del model_key, image_key  # the cache key
    return {n: a[0] for n, a in compute_activations(_model, _pixels, list(names), preprocess=preprocess).items()}


@st.cache_data(max_entries=64, show_spinner=False)
def _attribution(
    _model, model_key: str, image_key: str, _image: np.ndarray, method: str, class_index: int, layer, preprocess: str
):
    return _explainer(_model, model_key, method, layer, preprocess)(_image, class_index)


@st.cache_data(max_entries=64, show_spinner=False)
def _faithfulness(_model, model_key: str, image_key: str, _image, method: str, class_index: int, layer, preprocess):
    result = _attribution(_model, model_key, image_key, _image, method, class_index, layer, preprocess)
    return deletion_insertion(_model, _image[None], result.heatmap, result.class_index, preprocess=preprocess)


def _in_dashboard_words(text: str) -> str:
    """A CLI hint (``--preprocess``) as the dashboard says it (the Input scaling menu)."""
    return text.replace("pass --preprocess unit", "choose 'unit' under Input scaling").replace(
        "with --preprocess", "under Input scaling"
    )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return buf.getvalue()


def _download(make_figure, name: str, key: str, label: str = "Download PNG") -> None:
    """A download button for a titled matplotlib figure, drawn only when it is pressed."""
    st.download_button(label, lambda: _png(make_figure()), file_name=name, mime="image/png", key=key, on_click="ignore")


def _show_png(png: bytes, name: str, key: str) -> None:
    st.image(png)
    st.download_button("Download PNG", png, file_name=name, mime="image/png", key=key, on_click="ignore")


@st.cache_data(max_entries=256, show_spinner=False)
def _image_uri(image_key: str, _pixels: np.ndarray) -> str:
    del image_key  # the cache key
    return data_uri(enlarge(_pixels))


@st.cache_data(max_entries=512, show_spinner=False)
def _uri(kind: str, key: str, _make) -> str:
    """A cached ``data:`` URI of ``_make()``'s picture (a uint8 array or PNG bytes), under ``(kind, key)``."""
    del kind, key  # the cache key
    return data_uri(_make())


@st.cache_data(max_entries=256, show_spinner=False)
def _channel_png(model_key, image_key, layer, channel, _acts, _pixels) -> bytes:
    del model_key, image_key, layer  # the cache key
    return encode_png(overlay(_pixels, channel_heatmap(_acts, channel, _pixels.shape[:2]), cmap="viridis", alpha=0.6))


@st.cache_data(max_entries=64, show_spinner=False)
def _top_k_png(model_key, image_key, _probabilities, class_names) -> bytes:
    del model_key, image_key  # the cache key
    return encode_png(top_k_chart(_probabilities, class_names, k=5))


# --------------------------------------------------------------------------- sidebar
def _model_choices() -> tuple[list[str], dict[str, Path], int]:
    """The model menu: the ``--model`` given (if any), the bundled models, then Upload."""
    given = startup_model()
    paths = {p.name: p for p in sorted(MODELS_DIR.glob("*.keras"))}
    if given is not None:
        paths = {given.name: given, **{k: v for k, v in paths.items() if k != given.name}}
    choices = [*paths, UPLOAD]
    if given is not None:
        return choices, paths, 0
    return choices, paths, choices.index(DEMO_MODEL.name) if DEMO_MODEL.name in choices else 0


def _uploaded_model_ui():
    up = st.sidebar.file_uploader(
        f"A model: .keras, .h5 (Keras 2 or 3), or a .zip of a Keras 2 SavedModel folder (at most {MAX_MODEL_MB} MB)",
        type=MODEL_SUFFIXES,
        key="model_upload",
    )
    st.sidebar.caption(_trust_caption())
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


def _trust_caption() -> str:
    """What the upload box says about custom layers: code runs only from the server's start-up flag."""
    files = _startup_args().trust_code
    if files:
        names = ", ".join(Path(f).name for f in files)
        return (
            f"Custom layers: the classes of {names}, given when the server started, are available to uploads. "
            "An upload's own code (Lambda layers) never runs."
        )
    return (
        "Custom layers (a Vision Transformer's Patches, ...) load only from code given when the server starts: "
        "`streamlit run app.py -- --trust-code my_layers.py`. An upload never runs code."
    )


def model_ui():
    """Sidebar model picker. Returns ``(model, card, model_key)`` or stops with an error."""
    st.sidebar.header("Model")
    choices, paths, default = _model_choices()
    choice = st.sidebar.selectbox("Model", choices, index=default, key="model_choice")
    try:
        if choice == UPLOAD:
            return _uploaded_model_ui()
        path = paths[choice]
        if not path.exists():
            raise ExplainError(f"No such model file: {path}. Give a .keras, .h5 or SavedModel path after --model.")
        mtime = path.stat().st_mtime
        model, card = _model_file(str(path), mtime)
        return model, card, f"{path}:{mtime}"
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
    picked = st.session_state.get("map_pick")  # a point clicked on the Report tab's map
    names = [p.name for p in samples] + ([picked["label"]] if picked else []) + [UPLOAD]
    # Open on an image from the model's own data set when there is one.
    default = next((i for i, n in enumerate(names) if card.dataset and n.startswith(card.dataset)), 0)
    if st.session_state.pop("image_pending", None) in names:
        st.session_state["image_choice"] = picked["label"]
    choice = st.sidebar.selectbox("Image", names, index=default, key="image_choice")
    if picked and choice == picked["label"]:
        return _data_set_image(picked, card)
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


@st.cache_resource(max_entries=4, show_spinner=False)
def _data_source(spec: str):
    from explain.dataset.evaluation import open_data

    return open_data(spec)


def _data_set_image(picked: dict, card):
    """``(name, pixels, image_key)`` of one image of a data set, by its index there (a map point)."""
    h, w, c = card.input_shape
    try:
        source = _data_source(picked["spec"])
        size = (h, w) if h and w else tuple(source.image_size or (h, w))
        images, kept, failures = source.load([picked["index"]], size, c)
    except ExplainError as e:
        st.error(f"{picked['label']}: {e}")
        st.stop()
    if not len(kept):
        st.error(f"{picked['label']} could not be read: {failures[0][1] if failures else 'no image'}.")
        st.stop()
    return picked["label"], images[0], f"{picked['spec']}#{picked['index']}:{h}x{w}x{c}"


# --------------------------------------------------------------------------- tabs
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


def _safe(name: str) -> str:
    return name.replace("/", "_")


class LayerViews:
    """The Layers tab's pictures of one model and image: what each layer's view shows, its key,
    and its tiles. Each layer remembers its own "Feature maps shown"; the scale and the sort
    order are the tab's."""

    def __init__(self, model, card, model_key: str, image_key: str, pixels: np.ndarray):
        self.model, self.card, self.model_key, self.image_key, self.pixels = model, card, model_key, image_key, pixels
        self.rows, self.groups = _browsable(model, model_key)
        self.labels = [r.label for r in self.rows]
        self.max_maps = st.session_state.setdefault("max_maps_by_layer", {})

    def activations(self, row) -> np.ndarray:
        group = next(g for g in self.groups if row.name in g)
        acts = _group_activations(
            self.model, self.model_key, self.image_key, self.pixels, self.card.preprocessing, group
        )
        return acts[row.name]

    def settings(self, row) -> tuple[int, str, bool]:
        """``(feature maps shown, scale, sort by mean)`` for ``row``."""
        default = int(min(row.channels or 1, 64))
        normalize = st.session_state.get("normalize", "per_map")
        return self.max_maps.get(row.name, default), normalize, bool(st.session_state.get("sort_channels", False))

    def key(self, row) -> str:
        if not row.is_spatial:
            return view_key("bars", self.model_key, self.image_key, row.name)
        return view_key("maps", self.model_key, self.image_key, row.name, *self.settings(row))

    def title(self, row) -> str:
        where = f"Layer {row.index}: " if row.index is not None else "Nested layer "
        return f"{where}{row.name} ({row.type}), output {row.shape_text}"

    def caption(self, row) -> str:
        if not row.is_spatial:
            return "Bars: the strongest units (blue positive, red negative)."
        shown, normalize, _ = self.settings(row)
        total = int(row.channels)
        note = "each map scaled to its own min-max" if normalize == "per_map" else "one scale for the whole layer"
        more = f"showing {min(shown, total)} of {total} channels" if shown < total else f"{total} channels"
        return f"{note}; tile label = channel index; {more}"

    def tiles(self, row) -> list[Tile]:
        a = self.activations(row)
        if row.is_spatial:
            shown, normalize, by_mean = self.settings(row)
            channels = list(np.argsort(-a.mean(axis=(0, 1)), kind="stable")) if by_mean else None
            src = _uri(
                "maps",
                self.key(row),
                lambda: mosaic_picture(a, channels=channels, max_maps=shown, normalize=normalize).png(),
            )
        else:
            flat = a.reshape(-1)
            names = list(self.card.class_names) if flat.size == len(self.card.class_names) else None
            src = _uri("bars", self.key(row), lambda: activation_chart(flat, labels=names))
        alt = f"{self.title(row)}: {self.caption(row)}"
        return [Tile(src=src, caption=f"{self.title(row)}\n{self.caption(row)}", alt=alt)]


def _grid_controls(views: LayerViews, row) -> None:
    """The feature-map grid's controls (they change the view's key, so they come before it)."""
    c1, c2, c3 = st.columns(3)
    n = int(row.channels)
    if n > 1:
        if st.session_state.get("max_maps_for") != row.name or "max_maps" not in st.session_state:  # per layer
            st.session_state["max_maps_for"] = row.name
            st.session_state["max_maps"] = views.settings(row)[0]
        views.max_maps[row.name] = c1.slider("Feature maps shown", 1, int(min(n, 256)), key="max_maps")
    else:  # a slider from 1 to 1 is an error in Streamlit (a Rescaling layer of a grayscale model)
        c1.caption("1 feature map (the layer has one channel).")
    c2.radio(
        "Scale",
        ["per_map", "layer"],
        horizontal=True,
        key="normalize",
        format_func=lambda s: "each map alone" if s == "per_map" else "whole layer",
    )
    c3.checkbox("Sort channels by mean activation", key="sort_channels")


def _layer_download(views: LayerViews, row, a: np.ndarray) -> None:
    title = views.title(row)
    if not row.is_spatial:
        flat = a.reshape(-1)
        names = list(views.card.class_names) if flat.size == len(views.card.class_names) else None
        _download(
            lambda: activation_bars(flat, title=title, labels=names), f"{_safe(row.name)}_activations.png", "dl_bars"
        )
        return
    shown, normalize, by_mean = views.settings(row)
    channels = list(np.argsort(-a.mean(axis=(0, 1)), kind="stable")) if by_mean else None
    _download(
        lambda: feature_map_grid(a, title=title, channels=channels, max_maps=shown, normalize=normalize),
        f"{_safe(row.name)}_feature_maps.png",
        "dl_grid",
    )


def _channel_block(views: LayerViews, row, a: np.ndarray, image_name: str) -> None:
    """One channel of a spatial layer, enlarged over the image (default: the strongest channel)."""
    st.markdown("**One channel, enlarged over the image**")
    d1, d2 = st.columns([1, 2])
    n = a.shape[-1]
    strongest = int(np.argmax(a.mean(axis=(0, 1))))
    shown_for = (row.name, image_name)
    if st.session_state.get("channel_for") != shown_for:  # a new layer or image: start on its strongest channel
        st.session_state["channel_for"] = shown_for
        st.session_state["channel"] = strongest
    channel = int(d1.number_input("Channel", 0, n - 1, key="channel")) if n > 1 else 0
    d1.caption(f"Default: the channel with the highest mean activation ({strongest}).")
    pixels = views.pixels
    with d2:
        png = _channel_png(views.model_key, views.image_key, row.name, channel, a, pixels)
        st.image(png, caption=f"{row.name}, channel {channel}")
        heat = lambda: channel_heatmap(a, channel, pixels.shape[:2])  # noqa: E731
        _download(
            lambda: heatmap_overlay(pixels, heat(), title=f"{row.name}, channel {channel}", cmap="viridis", alpha=0.6),
            f"{_safe(row.name)}_channel{channel}.png",
            "dl_channel",
        )


def _first_interesting(rows) -> int:
    """The Layers tab's first layer: the first convolution, else the first layer with feature maps past the
    input (a Vision Transformer's patches), else the first."""
    conv = (i for i, r in enumerate(rows) if r.type.startswith("Conv"))
    maps = (i for i, r in enumerate(rows) if r.is_spatial and r.type not in ("InputLayer", "Rescaling"))
    return next(conv, next(maps, 0))


@st.fragment
@_tab
def layers_ui(model, card, model_key: str, image_key: str, pixels, name: str) -> None:
    """Layer picker (answered in the browser), that layer's feature-map grid (or bar chart), one
    channel enlarged; the neighbouring layers' pictures are sent ahead."""
    views = LayerViews(model, card, model_key, image_key, pixels)
    default = _first_interesting(views.rows)
    label = select_control(LAYER_LABEL, views.labels, key="layer", event=LAYER_EVENT, index=default)
    i = views.labels.index(label)
    row = views.rows[i]
    a = views.activations(row)
    if row.is_spatial:
        _grid_controls(views, row)
    keys = {r.label: views.key(r) for r in views.rows}
    show_view("layer_view", keys[label], lambda: views.tiles(row), pick=(LAYER_EVENT, keys))
    _layer_download(views, row, a)
    if row.is_spatial:
        _channel_block(views, row, a, name)
    order = sorted((j for j in range(len(views.rows)) if j != i), key=lambda j: (abs(j - i), j))
    ahead = ((views.key(views.rows[j]), functools.partial(views.tiles, views.rows[j])) for j in order)
    prefetch_views("layer_prefetch", ahead, first=2 * NEIGHBOURS, budget_s=PREFETCH_SECONDS)


@st.cache_data(max_entries=64, show_spinner=False)
def _filters_png(model_key, layer, _kernels) -> bytes:
    del model_key, layer  # the cache key
    return mosaic_picture(_kernels, max_maps=64, cmap="RdBu_r").png()


#: The Filters tab's entry for class patterns (the output logits), after the spatial layers.
CLASS_PATTERNS = "Output: class patterns"
PATTERN_STEPS = {32: "32 (quick sketch)", 128: "128 (default)", 256: "256 (finer)"}
FIRST_CHANNELS = 16
#: Pattern grids kept per session, most recent last.
_PATTERNS_KEPT = 16


@st.cache_data(max_entries=64, show_spinner="Timing a few steps…")
def _step_cost(_model, model_key: str, layer: str | None, preprocess: str) -> StepCost:
    """The layer's measured step cost (explain.features.patterns.step_cost), once per model,
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
    available = len(card.class_names) if layer is None else int(rows[labels.index(label)].channels)
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
        st.image(_filters_png(model_key, layer, kernels))
        _download(
            lambda: feature_map_grid(kernels, title=f"Filters of {layer}", max_maps=64, cmap="RdBu_r"),
            f"{_safe(layer)}_filters.png",
            "dl_filters",
        )


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
        name = "class_patterns.png" if layer is None else f"{_safe(layer)}_patterns.png"
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
    offered = [m for m in methods_for(model) if m in GRADIENT_METHODS]  # attention rollout: transformers only
    if "methods" in st.session_state:  # a choice kept from another model keeps what this one offers
        st.session_state["methods"] = [m for m in st.session_state["methods"] if m in offered]
    methods = st.multiselect("Methods", offered, default=["gradcam"] if default_layer else ["saliency"], key="methods")
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
    with c4:
        alpha = range_control("Opacity", 0.0, 1.0, 0.05, 0.5, key="alpha", event=ALPHA_EVENT)
    if no_cam:
        st.caption(no_cam)
    return methods, int(class_index), layer, cmap, alpha


def _attributions(model, card, model_key, image_key, pixels, methods, class_index, layer) -> list:
    """``(method, target layer or None, result)`` per method that runs; errors shown per method."""
    done = []
    for method in methods:
        if METHODS[method].needs_layer and layer is None:
            st.warning(f"{method} needs a convolutional layer; skipped.")
            continue
        target = layer if METHODS[method].needs_layer else None
        try:
            result = _attribution(model, model_key, image_key, pixels, method, class_index, target, card.preprocessing)
        except ExplainError as e:
            st.error(f"{method}: {e}")
            continue
        done.append((method, target, result))
    return done


def _heat_tile(image_uri: str, kind: str, key: str, heatmap: np.ndarray, flat: bool, cmap: str, caption: str) -> Tile:
    """The image with a heatmap laid over it (its opacity set in the browser); none for a flat map."""
    if flat:
        return Tile(src=image_uri, caption=f"{caption}\nflat heatmap (no information)", alt=caption)
    over = _uri(kind, f"{key}|{cmap}", lambda: heatmap_colors(heatmap, cmap))
    return Tile(src=image_uri, over=over, caption=caption, alt=f"{caption}: heatmap over the image")


def _explain_view(ctx, pixels, done, class_index: int, cmap: str, alpha: float) -> None:
    """Each method's heatmap over the image, side by side; the opacity is applied in the browser."""
    model_key, image_key = ctx
    image_uri = _image_uri(image_key, pixels)
    methods = tuple((m, t) for m, t, _ in done)
    key = view_key("explain", model_key, image_key, methods, class_index, cmap)

    def tiles() -> list[Tile]:
        out = [Tile(src=image_uri, caption="image", alt="the image")]
        for method, target, result in done:
            part = view_key(model_key, image_key, method, target, class_index)
            label = method + (f" @ {result.layer}" if result.layer else "")
            out.append(_heat_tile(image_uri, "heat", part, result.heatmap[0], bool(result.flat[0]), cmap, label))
        return out

    show_view("explain_view", key, tiles, alpha=(ALPHA_EVENT, alpha))


def _faithfulness_line(model, card, ctx, pixels, done, class_index: int) -> dict:
    """Deletion / insertion AUC per method, under the pictures (computed after they are shown)."""
    model_key, image_key = ctx
    scores, parts = {}, []
    for method, target, result in done:
        if result.flat[0]:
            parts.append(f"{method}: flat heatmap")
            continue
        s = _faithfulness(model, model_key, image_key, pixels, method, class_index, target, card.preprocessing)
        scores[method] = s
        parts.append(f"{method}: deletion {s.deletion_auc[0]:.3f}, insertion {s.insertion_auc[0]:.3f}")
    st.caption(
        " · ".join(parts) + ". Deletion / insertion AUC (Petsiuk et al. 2018): lower deletion and higher insertion "
        "mean the map points at pixels the model really uses."
    )
    return scores


def _panel_download(pixels, done, scores: dict, class_index: int, card, cmap: str, alpha: float) -> None:
    def figure():
        panels = []
        for method, _, result in done:
            label = method + (f"\n@ {result.layer}" if result.layer else "")
            s = scores.get(method)
            label += (
                "\nflat heatmap"
                if s is None
                else f"\ndeletion {s.deletion_auc[0]:.3f} insertion {s.insertion_auc[0]:.3f}"
            )
            panels.append((label, result.heatmap[0], bool(result.flat[0])))
        title = f"class {class_index} {card.class_names[class_index]!r}"
        return attribution_panel(pixels, panels, title=title, cmap=cmap, alpha=alpha)

    _download(figure, f"explanations_class{class_index}.png", "dl_explain")


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
    image_uri = _image_uri(key[1], pixels)
    lime_key = view_key("lime", *key)
    segments, weights, k = result.segments[0], result.weights[0], result.num_features

    def tiles() -> list[Tile]:
        heat = _heat_tile(image_uri, "lime", lime_key, result.heatmap[0], bool(result.flat[0]), cmap, "LIME heatmap")
        bounds = _uri("lime_bounds", lime_key, lambda: lime_picture(pixels, segments, weights, num_features=k))
        return [heat, Tile(src=bounds, caption="LIME superpixels: green for, red against", alt="LIME superpixels")]

    show_view("lime_view", view_key(lime_key, cmap), tiles, alpha=(ALPHA_EVENT, alpha))
    _download(
        lambda: lime_boundaries(pixels, segments, weights, num_features=k),
        "lime_superpixels.png",
        "dl_lime",
        "Download LIME PNG",
    )


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
    _show_png(_png(fig), f"sanity_{method}.png", "dl_sanity")


@st.fragment
@_tab
def explain_ui(model, card, model_key: str, image_key: str, pixels: np.ndarray, pred) -> None:
    """Methods side by side with faithfulness scores; LIME and the sanity check on buttons."""
    methods, class_index, layer, cmap, alpha = _explain_controls(model, card, model_key, image_key, pred)
    done = _attributions(model, card, model_key, image_key, pixels, methods, class_index, layer)
    if done:
        _explain_view((model_key, image_key), pixels, done, class_index, cmap, alpha)
        scores = _faithfulness_line(model, card, (model_key, image_key), pixels, done, class_index)
        _panel_download(pixels, done, scores, class_index, card, cmap, alpha)
    b1, b2 = st.columns(2)
    run_lime = b1.button("Run LIME (1000 samples)", key="run_lime")
    lime_key = (model_key, image_key, class_index, card.preprocessing)
    _lime_block(model, card, lime_key, pixels, class_index, cmap, alpha, run_lime)
    method = methods[0] if methods else "gradcam"
    if b2.button(f"Sanity check {method}", key="run_sanity", disabled=not methods):
        _sanity_block(model, card, pixels, method, class_index, layer, cmap, alpha)


#: Reports computed by this server, by (model key, data), the latest last: a report takes a
#: minute, and its progress bar cannot be drawn inside ``st.cache_data`` (which replays elements).
_REPORTS: collections.OrderedDict = collections.OrderedDict()
_REPORTS_LOCK = threading.Lock()
MAX_REPORTS = 8


def _report(model, model_key: str, spec: str, card, progress) -> dict:
    """The model report on ``spec``, computed once per model and data (:func:`_compute_report`)."""
    key = (model_key, spec)
    with _REPORTS_LOCK:
        if key in _REPORTS:
            _REPORTS.move_to_end(key)
            return _REPORTS[key]
    rep = _compute_report(model, spec, card, progress)
    with _REPORTS_LOCK:
        _REPORTS[key] = rep
        while len(_REPORTS) > MAX_REPORTS:
            _REPORTS.popitem(last=False)
    return rep


def _compute_report(model, spec: str, card, progress) -> dict:
    """Compute and render the model report in memory; keep its files' bytes and the map's points."""
    from explain.dataset.report import compute_report, render_report

    source = _data_source(spec)  # the one a map point is read from again
    data = compute_report(model, source, card=card, progress=progress, examples=6)
    rendered = render_report(data, model_name=model.name, command=f"dashboard report on {spec}")
    return {
        "map": map_points(data.embedding, source, data.input_size) if data.embedding else None,
        "files": rendered.files,
        "accuracy": data.evaluation.accuracy,
        "images": data.evaluation.num_images,
        "confusions": [(str(g.confusion), f) for g, f in zip(data.galleries, rendered.galleries, strict=True) if f],
        "notes": list(rendered.notes),
    }


#: Points drawn on the dashboard's map at most: every mistake, then a seeded sample of the rest.
MAP_POINTS = 4000


def map_points(emb, source, size: tuple[int, int, int]) -> dict:
    """The map's points as chart columns (x, y, classes, a thumbnail data URI each), at most
    :data:`MAP_POINTS`: every misclassified image first, then a seeded sample of the others."""
    wrong = np.nonzero(emb.misclassified)[0]
    right = np.nonzero(~emb.misclassified)[0]
    room = max(MAP_POINTS - len(wrong), 0)
    rows = np.sort(np.concatenate([wrong[:MAP_POINTS], np.random.default_rng(0).permutation(right)[:room]]))
    images, kept = load_rows(source, emb.source_indices, rows, size)
    rows = np.array(kept, np.int64)
    names = emb.class_names
    shown = np.where(emb.misclassified[rows], emb.y_pred[rows], emb.y_true[rows])
    return {
        "x": emb.coordinates[rows, 0].tolist(),
        "y": emb.coordinates[rows, 1].tolist(),
        "row": rows.tolist(),
        "index": emb.source_indices[rows].tolist(),
        "id": [emb.image_ids[r] for r in rows],
        "true": [names[t] for t in emb.y_true[rows]],
        "predicted": [f"{names[p]} ({c:.0%})" for p, c in zip(emb.y_pred[rows], emb.confidence[rows], strict=True)],
        "colour": [names[k] for k in shown],
        "mark": np.where(emb.misclassified[rows], "misclassified", "correct").tolist(),
        "image": [data_uri(enlarge(img, 84, rgb=False)) for img in images],  # a tooltip's picture
        "names": list(names),
        "caption": (
            f"{emb.num_images:,} images in the features of layer {emb.layer!r} ({emb.method.upper()})"
            + (f"; {len(rows):,} shown, every mistake among them" if len(rows) < emb.num_images else "")
            + ". Dots: true class; crosses: misclassified, in the colour of the predicted class."
        ),
    }


def _map_chart(points: dict):
    import altair as alt
    import pandas as pd
    from matplotlib.colors import to_hex

    from explain.render.figures import class_colors

    names = points["names"]
    table = pd.DataFrame({k: v for k, v in points.items() if k not in ("names", "caption")})
    pick = alt.selection_point(name="pick", fields=["row"], on="click")
    colours = alt.Scale(domain=names, range=[to_hex(c) for c in class_colors(len(names))])
    return (
        alt.Chart(table, height=560)
        .mark_point(filled=True, size=36, opacity=0.8)
        .encode(
            x=alt.X("x:Q", axis=None),
            y=alt.Y("y:Q", axis=None),
            color=alt.Color("colour:N", scale=colours, title="class"),
            shape=alt.Shape("mark:N", scale=alt.Scale(domain=["correct", "misclassified"], range=["circle", "cross"])),
            tooltip=["image", "id", "true", "predicted"],
        )
        .add_params(pick)
        .properties(usermeta={"embedOptions": {"renderer": "svg"}})  # marks are elements: clickable in tests
    )


def _embedding_ui(points: dict, spec: str) -> None:
    """The interactive map: hover a point for its image, click it to explain that image."""
    st.subheader("Feature-space map")
    st.caption(points["caption"] + " Click a point to open that image in the Layers and Explain tabs.")
    event = st.altair_chart(
        _map_chart(points), on_select="rerun", selection_mode="pick", key="embedding_map", width="stretch"
    )
    chosen = (event.selection.get("pick") or [{}])[0].get("row") if event else None
    if chosen is None or chosen == st.session_state.get("map_row"):
        return
    i = points["row"].index(chosen)
    label = f"{points['id'][i]} (from the map)"
    st.session_state["map_row"] = chosen
    st.session_state["map_pick"] = {"spec": spec, "index": int(points["index"][i]), "label": label}
    st.session_state["image_pending"] = label
    st.session_state["tab"] = "Explain"
    st.rerun(scope="app")


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
    bar = st.empty()

    def progress(stage: str, fraction: float) -> None:
        bar.progress(min(max(fraction, 0.0), 1.0), text=f"{stage}…")

    try:
        rep = _report(model, model_key, spec, card, progress)
    except ExplainError as e:
        st.error(str(e))
        return
    finally:
        bar.empty()
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
    if rep["map"] is not None:
        _embedding_ui(rep["map"], spec)
        _show_png(files["embedding.png"], "embedding.png", "dl_embedding")
        if "look_alikes.png" in files:
            st.caption("The images that look most like another class to the model, explained:")
            _show_png(files["look_alikes.png"], "look_alikes.png", "dl_look_alikes")
    st.download_button(
        "Download the report (one HTML file, images embedded)",
        files["report.html"],
        file_name="report.html",
        mime="text/html",
        key="dl_report",
        on_click="ignore",
    )


#: Models whose Explain tab has been prepared in the background (model keys).
_WARMED: set[str] = set()
_WARMED_LOCK = threading.Lock()


def _warm_explain_tab(model, card, model_key: str, image_key: str, pixels: np.ndarray, pred) -> None:
    """Build (and trace) the Explain tab's default explainer and explain this image with it, in a
    background thread, once per model: the first Grad-CAM of a model otherwise takes 1 s (demo
    model) to 5 s (MobileNetV2) when the tab is opened. No Streamlit call is made from the thread
    (it has no script context): it only fills the caches the tab reads."""
    with _WARMED_LOCK:
        if model_key in _WARMED:
            return
        _WARMED.add(model_key)
    try:
        method, layer = "gradcam", default_target_layer(model).name
    except ExplainError:  # no spatial layer: the tab opens on saliency
        method, layer = "saliency", None
    top, mode = pred.top_k[0][0], card.preprocessing

    def warm() -> None:
        try:
            _faithfulness(model, model_key, image_key, pixels, method, top, layer, mode)
        except Exception:  # the tab shows any error itself when it is opened
            pass

    # not a daemon: a daemon thread stopped inside TensorFlow at exit aborts the process
    threading.Thread(target=warm, name="explain-warm-up", daemon=False).start()


# --------------------------------------------------------------------------- page
def _layer_table_ui(model) -> None:
    """The layer table in a sidebar expander, drawn only while it is open: a dataframe needs 1.6 MB
    of Streamlit's scripts, which every new page would otherwise fetch and compile before the first
    picture (about 1 s of a 3 s first render in Chromium on 2 cores)."""
    table = st.sidebar.expander("Layer table", key="layer_table", on_change="rerun")
    if table.open:
        rows = layer_table(model)
        table.dataframe(
            [
                {
                    "index": r.index,
                    "name": r.name,
                    "type": r.type,
                    "output shape": str(r.output_shape),
                    "params": r.params,
                }
                for r in rows
            ],
            hide_index=True,
        )


def _header_ui(card, model_key: str, image_key: str, name: str, pixels: np.ndarray, pred) -> None:
    """The image as the model sees it, its top-5 predictions, and the input-scaling hint."""
    left, right = st.columns([1, 2])
    with left:
        caption = f"{name} as the model sees it ({pixels.shape[1]}x{pixels.shape[0]})"
        st.image(_image_uri(image_key, pixels), caption=caption)
    with right:
        st.subheader("Top-5 predictions")
        st.image(_top_k_png(model_key, image_key, pred.probabilities, tuple(card.class_names)))
        if not pred.outputs_probabilities:
            st.caption("The model outputs logits; softmax was applied to show probabilities.")
        hint = saturation_hint(pred.top_score, card.preprocessing) if pred.score_kind == "logit" else None
        if hint and card.preprocessing_from == "assumed":
            st.warning(_in_dashboard_words(hint))


#: The tabs' widgets, kept while their tab is closed (Streamlit forgets a widget's value when a
#: run does not draw it, and only the open tab is drawn).
KEPT_WIDGETS = (
    "layer", "max_maps", "normalize", "sort_channels", "channel",
    "filter_layer", "pattern_steps", "pattern_channels", "pattern_seed",
    "methods", "explain_class", "target_layer", "cmap", "alpha",
    "report_data", "report_folder", "confusion_pick",
)  # fmt: skip


def _keep_closed_tabs_widgets() -> None:
    for key in KEPT_WIDGETS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def main() -> None:
    st.set_page_config(page_title="explain: what does my classifier see?", layout="wide")
    _keep_closed_tabs_widgets()
    st.title("explain: what does my classifier see?")
    model, card, model_key = model_ui()
    card, model_key = model_options_ui(card, model_key)
    src = (
        f"{card.dataset}, test accuracy {card.test_accuracy:.1%}" if card.test_accuracy is not None else "no model card"
    )
    st.sidebar.caption(f"{model.name}: input {card.input_shape}, {len(card.class_names)} classes ({src}).")
    _layer_table_ui(model)
    name, pixels, image_key = image_ui(card)
    try:
        pred = _prediction(model, model_key, image_key, pixels, card.preprocessing, tuple(card.class_names))
    except (ExplainError, ValueError) as e:
        st.error(str(e))
        st.stop()
    _header_ui(card, model_key, image_key, name, pixels, pred)
    tabs = dict(zip(TABS, st.tabs(TABS, key="tab", on_change="rerun"), strict=True))
    if tabs["Layers"].open:
        with tabs["Layers"]:
            layers_ui(model, card, model_key, image_key, pixels, name)
    if tabs["Filters"].open:
        with tabs["Filters"]:
            filters_ui(model, card, model_key)
    if tabs["Explain"].open:
        with tabs["Explain"]:
            explain_ui(model, card, model_key, image_key, pixels, pred)
    if tabs["Report"].open:
        with tabs["Report"]:
            report_ui(model, card, model_key)
    _warm_explain_tab(model, card, model_key, image_key, pixels, pred)


try:
    main()
except Exception as e:  # the app never shows a traceback; st.stop() is not an Exception
    st.error(f"Something went wrong: {type(e).__name__}: {e}")
