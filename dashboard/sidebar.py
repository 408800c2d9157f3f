"""The sidebar: the model (bundled, ``--model``, or an upload), its input scaling and class names,
the layer table, and the image. :func:`context_ui` returns them, with the prediction, as one
:class:`~dashboard.context.Ctx`, or stops the run with one clear message."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import cache
from dashboard.context import Ctx
from dashboard.state import IMAGE_PENDING, MAP_PICK, reset_on_change
from dashboard.widgets import digest, in_dashboard_words
from explain import ExplainError, layer_table, load_image
from explain.images import IMAGE_SUFFIXES
from explain.models.preprocessing import DESCRIPTIONS, MODES

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"
SAMPLES_DIR = ROOT / "sample_images"
DEMO_MODEL = MODELS_DIR / "fashion_mnist_cnn.keras"
MAX_MODEL_MB = 200
MODEL_SUFFIXES = ["keras", "h5", "hdf5", "zip"]
UPLOAD = "Upload…"
# The sidebar's widget keys.
MODEL_CHOICE, MODEL_UPLOAD, CARD_UPLOAD = "model_choice", "model_upload", "card_upload"
PREPROCESS, CLASSES_UPLOAD, LAYER_TABLE = "preprocess", "classes_upload", "layer_table"
IMAGE_CHOICE, IMAGE_UPLOAD, UPLOADED_PICK = "image_choice", "image_upload", "uploaded_pick"


def _model_choices() -> tuple[list[str], dict[str, Path], int]:
    """The model menu: the ``--model`` given (if any), the bundled models, then Upload."""
    given = cache.startup_model()
    paths = {p.name: p for p in sorted(MODELS_DIR.glob("*.keras"))}
    if given is not None:
        paths = {given.name: given, **{k: v for k, v in paths.items() if k != given.name}}
    choices = [*paths, UPLOAD]
    if given is not None:
        return choices, paths, 0
    return choices, paths, choices.index(DEMO_MODEL.name) if DEMO_MODEL.name in choices else 0


def _trust_caption() -> str:
    """What the upload box says about custom layers: code runs only from the server's start-up flag."""
    files = cache.startup_args().trust_code
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


def _uploaded_model_ui():
    up = st.sidebar.file_uploader(
        f"A model: .keras, .h5 (Keras 2 or 3), or a .zip of a Keras 2 SavedModel folder (at most {MAX_MODEL_MB} MB)",
        type=MODEL_SUFFIXES,
        key=MODEL_UPLOAD,
    )
    st.sidebar.caption(_trust_caption())
    card_up = st.sidebar.file_uploader("Its model card (.json, optional: class names)", type=["json"], key=CARD_UPLOAD)
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
    key = digest(up.name.encode() + data + (card_bytes or b""))
    model, card = cache.uploaded_model(key, up.name, data, card_bytes)
    return model, card, key


def model_ui():
    """Sidebar model picker. Returns ``(model, card, model_key)`` or stops with an error."""
    st.sidebar.header("Model")
    choices, paths, default = _model_choices()
    choice = st.sidebar.selectbox("Model", choices, index=default, key=MODEL_CHOICE)
    try:
        if choice == UPLOAD:
            return _uploaded_model_ui()
        path = paths[choice]
        if not path.exists():
            raise ExplainError(f"No such model file: {path}. Give a .keras, .h5 or SavedModel path after --model.")
        mtime = path.stat().st_mtime
        model, card = cache.model_file(str(path), mtime)
        return model, card, f"{path}:{mtime}"
    except ExplainError as e:
        st.error(str(e))
        st.stop()


def model_options_ui(card, model_key: str):
    """Sidebar: the model's input scaling and its class names. Returns ``(card, key)``: the card
    with the user's choices, and a cache key for everything computed with them."""
    reset_on_change(PREPROCESS, model_key, card.preprocessing)  # a new model: start on what its card says
    mode = st.sidebar.selectbox(
        "Input scaling (preprocessing)",
        MODES,
        key=PREPROCESS,
        format_func=lambda m: f"{m}: {DESCRIPTIONS[m]}",
        help="How the model's training scaled its pixels. Images, heatmaps and perturbations stay in raw pixels; "
        "this scaling is applied in front of the model only.",
    )
    names_up = st.sidebar.file_uploader("Class names (.txt, one per line; optional)", type=["txt"], key=CLASSES_UPLOAD)
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
        st.sidebar.caption(in_dashboard_words(note))
    return card, f"{model_key}|{mode}|{digest(chr(10).join(card.class_names).encode())[:16]}"


def layer_table_ui(model) -> None:
    """The layer table in a sidebar expander, drawn only while it is open: a dataframe needs 1.6 MB
    of Streamlit's scripts, which every new page would otherwise fetch and compile before the first
    picture (about 1 s of a 3 s first render in Chromium on 2 cores)."""
    table = st.sidebar.expander("Layer table", key=LAYER_TABLE, on_change="rerun")
    if table.open:
        rows = [
            {"index": r.index, "name": r.name, "type": r.type, "output shape": str(r.output_shape), "params": r.params}
            for r in layer_table(model)
        ]
        table.dataframe(rows, hide_index=True)


def _upload_image_ui() -> tuple[str, bytes]:
    ups = st.sidebar.file_uploader(
        "One or several images", type=list(IMAGE_SUFFIXES), accept_multiple_files=True, key=IMAGE_UPLOAD
    )
    if not ups:
        st.info("Upload an image in the sidebar, or pick a sample.")
        st.stop()
    pick = (
        st.sidebar.selectbox("Uploaded image", [u.name for u in ups], key=UPLOADED_PICK)
        if len(ups) > 1
        else ups[0].name
    )
    up = next(u for u in ups if u.name == pick)
    return up.name, up.getvalue()


def image_ui(card):
    """Sidebar image picker. Returns ``(name, pixels at the model's size, image_key)``."""
    st.sidebar.header("Image")
    samples = sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix.lower().lstrip(".") in IMAGE_SUFFIXES)
    picked = st.session_state.get(MAP_PICK)  # a point clicked on the Report tab's map
    names = [p.name for p in samples] + ([picked["label"]] if picked else []) + [UPLOAD]
    # Open on an image from the model's own data set when there is one.
    default = next((i for i, n in enumerate(names) if card.dataset and n.startswith(card.dataset)), 0)
    if st.session_state.pop(IMAGE_PENDING, None) in names:
        st.session_state[IMAGE_CHOICE] = picked["label"]
    choice = st.sidebar.selectbox("Image", names, index=default, key=IMAGE_CHOICE)
    if picked and choice == picked["label"]:
        return _data_set_image(picked, card)
    name, data = _upload_image_ui() if choice == UPLOAD else (choice, (SAMPLES_DIR / choice).read_bytes())
    h, w, c = card.input_shape
    try:
        pixels = load_image(data, target_size=(h, w) if h and w else None, channels=c)
    except ExplainError as e:
        st.error(f"{name}: {e}")
        st.stop()
    return name, pixels, f"{digest(data)}:{h}x{w}x{c}"


def _data_set_image(picked: dict, card):
    """``(name, pixels, image_key)`` of one image of a data set, by its index there (a map point)."""
    h, w, c = card.input_shape
    try:
        source = cache.data_source(picked["spec"])
        size = (h, w) if h and w else tuple(source.image_size or (h, w))
        images, kept, failures = source.load([picked["index"]], size, c)
    except ExplainError as e:
        st.error(f"{picked['label']}: {e}")
        st.stop()
    if not len(kept):
        st.error(f"{picked['label']} could not be read: {failures[0][1] if failures else 'no image'}.")
        st.stop()
    return picked["label"], images[0], f"{picked['spec']}#{picked['index']}:{h}x{w}x{c}"


def context_ui() -> Ctx:
    """The whole sidebar, then the prediction: what every tab gets. Stops the run with one message
    when the model, the image or the prediction fails."""
    model, card, model_key = model_ui()
    card, model_key = model_options_ui(card, model_key)
    src = (
        f"{card.dataset}, test accuracy {card.test_accuracy:.1%}" if card.test_accuracy is not None else "no model card"
    )
    st.sidebar.caption(f"{model.name}: input {card.input_shape}, {len(card.class_names)} classes ({src}).")
    layer_table_ui(model)
    name, pixels, image_key = image_ui(card)
    try:
        pred = cache.prediction(model, model_key, card, image_key, pixels)
    except (ExplainError, ValueError) as e:
        st.error(str(e))
        st.stop()
    return Ctx(model, model_key, card, pixels, image_key, name, pred)
