"""Streamlit dashboard: ``streamlit run app.py``.

UI only; every computation lives in ``explain/``. Opens on the bundled demo model and a
sample image. Models are cached with ``st.cache_resource`` (keyed by file path and
modification time, or by the SHA-256 of an upload, so sessions never share a mutable
model under the same key), activations with ``st.cache_data``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from explain import (
    ExplainError,
    activation_bars,
    compute_activations,
    feature_map_grid,
    layer_table,
    load_image,
    load_model,
    load_model_card,
    predict,
    top_k_bars,
)
from explain.images import IMAGE_SUFFIXES

ROOT = Path(__file__).resolve().parent
MODELS_DIR = ROOT / "models"
SAMPLES_DIR = ROOT / "sample_images"
DEMO_MODEL = MODELS_DIR / "fashion_mnist_cnn.keras"
MAX_MODEL_MB = 200
UPLOAD = "Upload…"


# --------------------------------------------------------------------------- caching
@st.cache_resource(max_entries=4, show_spinner="Loading model…")
def _bundled_model(path: str, mtime: float):
    del mtime  # part of the cache key only: a re-trained file is loaded again
    model = load_model(path)
    return model, load_model_card(path, model)


@st.cache_resource(max_entries=4, show_spinner="Loading uploaded model…")
def _uploaded_model(digest: str, _data: bytes, _card: bytes | None):
    del digest  # the cache key
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "uploaded.keras"
        path.write_bytes(_data)
        if _card is not None:
            path.with_suffix(".json").write_bytes(_card)
        model = load_model(path)
        card = load_model_card(path, model)
    return model, card


@st.cache_data(max_entries=64, show_spinner="Running the model…")
def _activations(_model, model_key: str, image_key: str, _image: np.ndarray) -> dict[str, np.ndarray]:
    del model_key, image_key  # the cache key
    acts = compute_activations(_model, _image)
    return {name: a[0] for name, a in acts.items()}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
        up = st.sidebar.file_uploader("A Keras 3 .keras file", type=["keras"], key="model_upload")
        card_up = st.sidebar.file_uploader(
            "Its model card (.json, optional: class names)", type=["json"], key="card_upload"
        )
        if up is None:
            st.info("Upload a `.keras` model in the sidebar, or pick a bundled one.")
            st.stop()
        if up.size > MAX_MODEL_MB * 1024**2:
            st.error(f"{up.name} is {up.size / 1024**2:.0f} MB; the limit is {MAX_MODEL_MB} MB.")
            st.stop()
        data = up.getvalue()
        card_bytes = card_up.getvalue() if card_up is not None else None
        key = _digest(data + (card_bytes or b""))
        model, card = _uploaded_model(key, data, card_bytes)
        return model, card, key
    except ExplainError as e:
        st.error(str(e))
        st.stop()


def image_ui(card):
    """Sidebar image picker. Returns ``(name, pixels at the model's size, image_key)``."""
    st.sidebar.header("Image")
    samples = sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix.lower().lstrip(".") in IMAGE_SUFFIXES)
    names = [p.name for p in samples] + [UPLOAD]
    # Open on an image from the model's own data set when there is one.
    default = next((i for i, n in enumerate(names) if card.dataset and n.startswith(card.dataset)), 0)
    choice = st.sidebar.selectbox("Image", names, index=default, key="image_choice")
    if choice == UPLOAD:
        up = st.sidebar.file_uploader("An image", type=list(IMAGE_SUFFIXES), key="image_upload")
        if up is None:
            st.info("Upload an image in the sidebar, or pick a sample.")
            st.stop()
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


# --------------------------------------------------------------------------- main
def _show_image(name: str, pixels: np.ndarray) -> None:
    img = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    scale = max(1, 224 // max(img.size))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    st.image(img, caption=f"{name} as the model sees it ({pixels.shape[1]}x{pixels.shape[0]})")


def layers_ui(model, card, acts: dict[str, np.ndarray]) -> None:
    """Layer selector and that layer's feature-map grid (or bar chart for flat layers)."""
    st.subheader("Layer activations")
    rows = [r for r in layer_table(model) if r.index is not None]
    labels = [r.label for r in rows]
    default = next((i for i, r in enumerate(rows) if r.type.startswith("Conv")), 0)
    chosen = st.selectbox("Layer (index · name (type) output shape)", labels, index=default, key="layer")
    info = rows[labels.index(chosen)]
    a = acts[info.name]
    where = f"Layer {info.index}: {info.name} ({info.type}), output {info.output_shape}"
    if info.is_spatial:
        c1, c2 = st.columns(2)
        max_maps = c1.slider(
            "Feature maps shown", 1, int(min(a.shape[-1], 256)), int(min(a.shape[-1], 64)), key="max_maps"
        )
        normalize = c2.radio(
            "Scale",
            ["per_map", "layer"],
            horizontal=True,
            key="normalize",
            format_func=lambda s: "each map alone" if s == "per_map" else "whole layer",
        )
        fig = feature_map_grid(a, title=where, max_maps=max_maps, normalize=normalize)
    else:
        flat = a.reshape(-1)
        labels_ = list(card.class_names) if flat.size == len(card.class_names) else None
        fig = activation_bars(flat, title=where, labels=labels_)
    st.pyplot(fig, clear_figure=False)


def main() -> None:
    st.set_page_config(page_title="explain: what does my classifier see?", layout="wide")
    st.title("explain: what does my classifier see?")
    model, card, model_key = model_ui()
    src = (
        f"{card.dataset}, test accuracy {card.test_accuracy:.1%}" if card.test_accuracy is not None else "no model card"
    )
    st.sidebar.caption(f"{model.name}: input {card.input_shape}, {len(card.class_names)} classes ({src}).")
    name, pixels, image_key = image_ui(card)
    try:
        pred = predict(model, pixels, card.class_names, k=5)[0]
        acts = _activations(model, model_key, image_key, pixels)
    except (ExplainError, ValueError) as e:
        st.error(str(e))
        st.stop()
    left, right = st.columns([1, 2])
    with left:
        _show_image(name, pixels)
    with right:
        st.subheader("Top-5 predictions")
        st.pyplot(top_k_bars(pred.probabilities, card.class_names, k=5))
        if not pred.outputs_probabilities:
            st.caption("The model outputs logits; softmax was applied to show probabilities.")
    layers_ui(model, card, acts)


try:
    main()
except Exception as e:  # the app never shows a traceback; st.stop() is not an Exception
    st.error(f"Something went wrong: {type(e).__name__}: {e}")
