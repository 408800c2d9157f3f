"""Every ``st.cache_*`` of the dashboard, shared by all sessions, and the start-up flags they load with.

Models are cached with ``st.cache_resource`` keyed by file path and modification time, or by the
SHA-256 of an upload: the cached model is only ever read (explainers build their own models that
share its weights), so one session's actions never change another's. Arrays and pictures are
``st.cache_data``, keyed by the :class:`~dashboard.context.Ctx` keys (the model is passed unhashed).
Results a session asked for by a button live in its own store instead (:mod:`dashboard.state`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import streamlit as st

from dashboard.components import data_uri
from dashboard.context import Ctx
from explain import (
    ExplainError,
    NoSpatialLayerError,
    compute_activations,
    deletion_insertion,
    layer_table,
    load_model,
    load_model_card,
)
from explain import predict as predict_image
from explain.attribution import METHODS, LayerAttribution, default_target_layer
from explain.cli import add_loading_arguments
from explain.cli import loading_options as cli_loading_options
from explain.features.activations import channel_heatmap
from explain.features.patterns import StepCost, step_cost
from explain.models.card import training_strip as read_training_strip
from explain.render import pictures

#: Activations computed in one pass are split into groups of at most this many bytes (a big model).
GROUP_BYTES = 64 * 1024**2


def keep_keras_state() -> None:
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


# --------------------------------------------------------------------------- start-up flags
def startup_args() -> argparse.Namespace:
    """The server's start-up flags: ``streamlit run app.py -- --model PATH --data-root DIR --trust-code FILE.py
    --max-model-mb MB``."""
    parser = argparse.ArgumentParser(prog="streamlit run app.py --", add_help=False)
    parser.add_argument("--model", type=Path, default=None, help="a model to offer beside the bundled demo model")
    parser.add_argument(
        "--data-root",
        metavar="DIR",
        type=Path,
        default=None,
        help="the only folder the Report tab reads data folders from (a visitor picks or types a folder under "
        "it); without it, folders are served only when the server listens on localhost",
    )
    add_loading_arguments(parser)
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args


def startup_model() -> Path | None:
    """The model given on the command line (``streamlit run app.py -- --model PATH``), if any."""
    model = startup_args().model
    return model.expanduser().resolve() if model else None


def loading_options(upload: bool) -> dict:
    """``load_model``'s options from the start-up flags. Trusted code comes only from the server's own
    ``--trust-code`` (never from an upload); an upload gets its classes but keeps safe mode on, so a
    stranger's Lambda layer never runs."""
    options = cli_loading_options(startup_args())
    if upload and options["trusted_code"] is not None:
        options["safe_mode"] = True
    return options


# --------------------------------------------------------------------------- models and data
@st.cache_resource(max_entries=4, show_spinner="Loading model…")
def model_file(path: str, mtime: float):
    """``(model, card)`` of a model file; ``mtime`` is part of the key only (a re-trained file is loaded again)."""
    del mtime
    model = load_model(path, **loading_options(upload=False))
    return model, load_model_card(path, model)


@st.cache_resource(max_entries=4, show_spinner="Loading uploaded model…")
def uploaded_model(digest: str, name: str, _data: bytes, _card: bytes | None):
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
    return model, dataclasses.replace(card, path=None)  # its folder is gone: nothing beside it is read


@st.cache_resource(max_entries=4, show_spinner=False)
def data_source(spec: str):
    """The data source of a spec (:func:`explain.dataset.evaluation.open_data`), opened once."""
    from explain.dataset.evaluation import open_data

    return open_data(spec)


@st.cache_data(max_entries=256, show_spinner=False)
def _prediction(_model, model_key: str, image_key: str, _pixels: np.ndarray, preprocess: str, names: tuple):
    del model_key, image_key  # the cache key
    return predict_image(_model, _pixels, names, k=5, preprocess=preprocess)[0]


def prediction(model, model_key: str, card, image_key: str, pixels: np.ndarray):
    """The model's top-5 :class:`~explain.models.predict.Prediction` for one image."""
    return _prediction(model, model_key, image_key, pixels, card.preprocessing, tuple(card.class_names))


@st.cache_data(max_entries=16, ttl=60, show_spinner="Reading the training strip…")
def _training_strip(card_path: str, card_mtime: float, record: str, _card) -> tuple[bytes | None, str]:
    del card_path, card_mtime, record  # the cache key
    strip = read_training_strip(_card)
    if strip is None:
        return None, ""
    if strip.pixels is None:
        return None, strip.note
    return pictures.encode_png(strip.pixels), strip.caption


def training_strip(card) -> tuple[bytes | None, str]:
    """The training strip the model card names (:func:`explain.models.card.training_strip`: only from inside the
    model's folder, through the one decoder) as ``(PNG bytes, caption)``, or ``(None, the line saying why it cannot
    be shown)``; decoded once per card file and contents (and again after a minute: training rewrites it)."""
    try:
        mtime = card.path.stat().st_mtime if card.path is not None else 0.0
    except OSError:
        mtime = 0.0
    record = json.dumps(card.raw.get("explain"), sort_keys=True, default=str)
    return _training_strip(str(card.path), mtime, record, card)


# --------------------------------------------------------------------------- layers
@st.cache_resource(max_entries=8, show_spinner=False)
def _browsable(_model, model_key: str) -> tuple[list, list[tuple[str, ...]]]:
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


def browsable(ctx: Ctx) -> tuple[list, list[tuple[str, ...]]]:
    """The Layers tab's rows (top-level layers and nested spatial ones) and their activation
    groups: consecutive layers whose activations of one image fit in :data:`GROUP_BYTES`."""
    return _browsable(ctx.model, ctx.model_key)


@st.cache_resource(max_entries=6, show_spinner="Running the model…")
def _group_activations(_model, model_key: str, image_key: str, _pixels, preprocess: str, names: tuple):
    del model_key, image_key  # the cache key
    return {n: a[0] for n, a in compute_activations(_model, _pixels, list(names), preprocess=preprocess).items()}


def group_activations(ctx: Ctx, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """One image's activations of a group of layers, from one compiled pass (never mutated)."""
    return _group_activations(ctx.model, ctx.model_key, ctx.image_key, ctx.pixels, ctx.preprocess, names)


@st.cache_data(max_entries=256, show_spinner=False)
def _channel_png(model_key, image_key, layer, channel, _acts, _pixels) -> bytes:
    del model_key, image_key, layer  # the cache key
    heat = channel_heatmap(_acts, channel, _pixels.shape[:2])
    return pictures.encode_png(pictures.overlay(_pixels, heat, cmap="viridis", alpha=0.6))


def channel_png(ctx: Ctx, layer: str, channel: int, acts: np.ndarray) -> bytes:
    """PNG of one channel of ``layer`` (activations ``acts``) over the image."""
    return _channel_png(ctx.model_key, ctx.image_key, layer, channel, acts, ctx.pixels)


# --------------------------------------------------------------------------- pictures
@st.cache_data(max_entries=256, show_spinner=False)
def _image_uri(image_key: str, _pixels: np.ndarray) -> str:
    del image_key  # the cache key
    return data_uri(pictures.enlarge(_pixels))


def image_uri(ctx: Ctx) -> str:
    """A ``data:`` URI of the image, enlarged for the screen."""
    return _image_uri(ctx.image_key, ctx.pixels)


@st.cache_data(max_entries=512, show_spinner=False)
def uri(kind: str, key: str, _make) -> str:
    """A cached ``data:`` URI of ``_make()``'s picture (a uint8 array or PNG bytes), under ``(kind, key)``."""
    del kind, key  # the cache key
    return data_uri(_make())


@st.cache_data(max_entries=64, show_spinner=False)
def _top_k_png(model_key, image_key, _probabilities, class_names) -> bytes:
    del model_key, image_key  # the cache key
    return pictures.encode_png(pictures.top_k_chart(_probabilities, class_names, k=5))


def top_k_png(ctx: Ctx) -> bytes:
    """PNG of the top-5 predictions' bars."""
    return _top_k_png(ctx.model_key, ctx.image_key, ctx.pred.probabilities, ctx.class_names)


@st.cache_data(max_entries=64, show_spinner=False)
def filters_png(model_key, layer, _kernels) -> bytes:
    """PNG of a convolution's kernels (``_kernels`` ``(h, w, n)``), at most 64, blue to red."""
    del model_key, layer  # the cache key
    return pictures.mosaic_picture(_kernels, max_maps=64, cmap="RdBu_r").png()


@st.cache_data(max_entries=64, show_spinner="Timing a few steps…")
def _step_cost(_model, model_key: str, layer: str | None, preprocess: str) -> StepCost:
    del model_key  # the cache key
    return step_cost(_model, layer, preprocess=preprocess)


def pattern_step_cost(ctx: Ctx, layer: str | None) -> StepCost:
    """The layer's measured step cost (:func:`explain.features.patterns.step_cost`), once per model,
    layer and input scaling."""
    return _step_cost(ctx.model, ctx.model_key, layer, ctx.preprocess)


# --------------------------------------------------------------------------- attributions
def takes_layer(method: str) -> bool:
    """Whether ``method`` explains at a target layer (a class activation map)."""
    return issubclass(METHODS[method], LayerAttribution)


@st.cache_resource(max_entries=32, show_spinner="Preparing the explainer…")
def _explainer(_model, model_key: str, method: str, layer: str | None, preprocess: str):
    del model_key  # the cache key
    kwargs = {"layer": layer} if takes_layer(method) else {}
    return METHODS[method](_model, preprocess=preprocess, **kwargs)


@st.cache_data(max_entries=64, show_spinner=False)
def _attribution(_model, model_key: str, image_key: str, _image, method: str, class_index: int, layer, preprocess: str):
    return _explainer(_model, model_key, method, layer, preprocess)(_image, class_index)


@st.cache_data(max_entries=64, show_spinner=False)
def _faithfulness(_model, model_key: str, image_key: str, _image, method: str, class_index: int, layer, preprocess):
    result = _attribution(_model, model_key, image_key, _image, method, class_index, layer, preprocess)
    return deletion_insertion(_model, _image[None], result.heatmap, result.class_index, preprocess=preprocess)


@st.cache_data(max_entries=64, show_spinner=False)
def _more_faithfulness(
    _model, model_key: str, image_key: str, _image, method: str, class_index: int, layer, preprocess
):
    from explain.dataset.compare import faithfulness_scores

    result = _attribution(_model, model_key, image_key, _image, method, class_index, layer, preprocess)
    explainer = _explainer(_model, model_key, method, layer, preprocess)
    x = np.asarray(_image, np.float32)[None]
    return faithfulness_scores(
        _model, explainer, x, result.heatmap, result.class_index, preprocess=preprocess, deletion=False
    )


def more_faithfulness(ctx: Ctx, method: str, class_index: int, layer: str | None) -> dict:
    """MuFidelity, ROAD (most / least relevant first) and stability of ``method``'s heatmap
    (:func:`explain.dataset.compare.faithfulness_scores`); the heatmap must not be flat."""
    return _more_faithfulness(
        ctx.model, ctx.model_key, ctx.image_key, ctx.pixels, method, class_index, layer, ctx.preprocess
    )


def attribution(ctx: Ctx, method: str, class_index: int, layer: str | None):
    """``method``'s :class:`~explain.attribution.base.Attribution` of the image for ``class_index``."""
    return _attribution(ctx.model, ctx.model_key, ctx.image_key, ctx.pixels, method, class_index, layer, ctx.preprocess)


def faithfulness(ctx: Ctx, method: str, class_index: int, layer: str | None):
    """Deletion / insertion AUC (:func:`explain.deletion_insertion`) of ``method``'s heatmap."""
    return _faithfulness(
        ctx.model, ctx.model_key, ctx.image_key, ctx.pixels, method, class_index, layer, ctx.preprocess
    )


#: The (model, image) pairs whose Explain tab has been prepared in the background, for this server.
_WARMED: set[tuple[str, str]] = set()
_WARMED_KEPT = 4096
_WARMED_LOCK = threading.Lock()


def warm_explain_tab(ctx: Ctx) -> None:
    """Build (and trace) the Explain tab's default explainer and explain this image with it, in a
    background thread, once per model and image: the first Grad-CAM of a model otherwise takes 1 s
    (demo model) to 5 s (MobileNetV2) when the tab is opened. No Streamlit call is made from the thread
    (it has no script context): it only fills the caches the tab reads."""
    with _WARMED_LOCK:
        if (ctx.model_key, ctx.image_key) in _WARMED:
            return
        if len(_WARMED) >= _WARMED_KEPT:
            _WARMED.clear()
        _WARMED.add((ctx.model_key, ctx.image_key))
    try:
        method, layer = "gradcam", default_target_layer(ctx.model).name
    except NoSpatialLayerError:  # no spatial layer: the tab opens on saliency
        method, layer = "saliency", None

    def warm() -> None:
        try:
            faithfulness(ctx, method, ctx.top_class, layer)
        except Exception:  # the tab shows any error itself when it is opened
            pass

    # not a daemon: a daemon thread stopped inside TensorFlow at exit aborts the process
    threading.Thread(target=warm, name="explain-warm-up", daemon=False).start()
