"""Every layer works in the dashboard: the demo model's and a nested MobileNetV2's (opened with
``streamlit run app.py -- --model PATH``), through the Layers, Filters and Explain controls,
1-channel and 1x1 layers included. Each step raises nothing and shows a picture or a clear message."""

import io
import sys

import keras
import numpy as np
import pytest
from conftest import DEMO_MODEL, ROOT, SAMPLES
from dashboard_helpers import layer_options, layer_value, open_tab, picture, set_layer, view_tiles
from PIL import Image
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.skipif(not DEMO_MODEL.exists(), reason="the bundled demo model is missing")


@pytest.fixture(scope="module")
def mobilenet_path(tmp_path_factory):
    """MobileNetV2 (alpha 0.35, random weights) on 32x32 inputs nested in a Sequential: its last
    blocks are 1x1 maps."""
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10)
    model = keras.Sequential([keras.Input((32, 32, 3)), base], name="nested_mobilenet")
    path = tmp_path_factory.mktemp("mobilenet") / "nested_mobilenet.keras"
    model.save(path)
    return path


def _app(monkeypatch, model_path=None, *flags: str) -> AppTest:
    argv = ["app.py"] + (["--model", str(model_path)] if model_path else []) + list(flags)
    monkeypatch.setattr(sys, "argv", argv)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    assert not at.exception, at.exception
    return at


def _clean(at: AppTest, what: str) -> None:
    assert not at.exception, (what, at.exception)
    assert not [e for e in at.error if "unexpected error" in e.value], (what, [e.value for e in at.error])


def _kind(label: str) -> tuple:
    """What makes a layer's picture different: its type, nesting, and output shape's rank, 1x1 maps and
    one channel."""
    shape = label.rsplit(") (None", 1)[-1]
    dims = [d.strip() for d in shape.rstrip(")").split(",") if d.strip()]
    return (label.split(" (", 1)[-1].split(")")[0], "↳" in label, len(dims), dims[:2] == ["1", "1"], dims[-1:] == ["1"])


def _walk_layers(at: AppTest, every: bool = True) -> int:
    """Layers of the Layers tab (all, or the first of each kind, :func:`_kind`, and the last): a picture
    whose caption names the layer, no error. Returns how many were walked."""
    labels = layer_options(at)
    if not every:
        firsts = {}
        for label in labels:
            firsts.setdefault(_kind(label), label)
        labels = [label for label in labels if label in firsts.values() or label == labels[-1]]
    for label in labels:
        set_layer(at, label)
        _clean(at, label)
        assert not at.error, (label, [e.value for e in at.error])
        assert layer_value(at) == label
        (tile,) = view_tiles(at, "layer_view")
        name = label.split(" · ")[1].split(" (")[0]
        assert name in tile["caption"], (label, tile["caption"])
        assert min(picture(tile["src"]).shape[:2]) > 0
    return len(labels)


def _walk_explain(at: AppTest, pick=lambda targets: targets) -> None:
    """Grad-CAM at each target layer (``pick(options)``): its heatmap over the image, or a clear message."""
    open_tab(at, "Explain")
    _clean(at, "Explain tab")
    for layer in pick(at.selectbox(key="target_layer").options):
        at.selectbox(key="target_layer").set_value(layer).run()
        _clean(at, layer)
        tiles = view_tiles(at, "explain_view")
        messages = [m.value for m in [*at.error, *at.warning]]
        assert (len(tiles) == 2 and layer in tiles[1]["caption"]) or messages, (layer, tiles, messages)


def _one_per_type(options: list[str]) -> list[str]:
    """The first option of each layer type, and the last one (the smallest maps)."""
    seen, out = set(), []
    for option in options:
        kind = option.split(" (", 1)[-1].split(")")[0]
        if kind not in seen:
            seen.add(kind)
            out.append(option)
    return [*out, options[-1]] if options[-1] not in out else out


def _walk_filters(at: AppTest, convolutions_only: bool = False) -> None:
    """Each type of layer in the Filters tab (each estimate times the compiled ascent loop, a few
    seconds), the last spatial layer and class patterns: an estimate or a clear message. With
    ``convolutions_only``, of the types only the convolutions (their kernel weights are drawn too: one code
    path per kernel layout) and the last spatial layer, and no class patterns: the estimate is the same code
    for every other type, and class patterns the same for any model (the model's output: no layer to find,
    nested or not), both walked on the demo model."""
    open_tab(at, "Filters")
    options = at.selectbox(key="filter_layer").options
    assert options[-1] == "Output: class patterns"
    picked = _one_per_type(options[:-1])
    if convolutions_only:
        picked = [o for o in picked if o.split(" (", 1)[-1].split(")")[0].endswith("Conv2D") or o == options[-2]]
    for option in picked if convolutions_only else [*picked, options[-1]]:
        at.selectbox(key="filter_layer").set_value(option).run()
        _clean(at, option)
        assert [c for c in at.caption if c.value.startswith("About ")] or at.error, option


def test_every_layer_of_the_demo_model(monkeypatch):
    at = _app(monkeypatch)
    assert _walk_layers(at) == 11
    set_layer(at, layer_options(at)[1])
    _walk_filters(at)
    _walk_explain(at)


def _draw_every_layer_outside_apptest(monkeypatch, path, labels: list[str], explained: set[str]) -> None:
    """Every layer of the Layers tab (``labels``) drawn as the tab draws it (``dashboard.layers.LayerViews.tiles``:
    the same rows, activations from one pass, ``mosaic_picture`` / ``activation_chart``), and Grad-CAM (the
    Explain tab's default method, built as ``dashboard.cache`` builds it) at each layer of ``explained``:
    the same code as in AppTest, called directly and untraced (AppTest costs a rerun and a trace per layer)."""
    from explain import load_image, load_model, load_model_card
    from explain.attribution import METHODS
    from explain.features import activations as feature_activations
    from explain.models.layers import layer_table
    from explain.render import pictures

    model = load_model(path)
    card = load_model_card(path, model)
    rows = [r for r in layer_table(model) if r.index is not None or r.is_spatial]  # dashboard.cache.browsable
    assert [r.label for r in rows] == labels  # the very layers the dashboard lists
    pixels = load_image(sorted(SAMPLES.glob("*.png"))[0], target_size=(32, 32))
    with monkeypatch.context() as m:  # the feature model's call untraced (AppTest below compiles its own)
        m.setattr(feature_activations, "_compiled", lambda fm: lambda x: fm(x, training=False))
        acts = feature_activations.compute_activations(
            model, pixels, [r.name for r in rows], preprocess=card.preprocessing
        )
    for row in rows:
        a = acts[row.name][0]
        if row.is_spatial:
            shown = int(min(row.channels or 1, 64))
            png = pictures.mosaic_picture(a, max_maps=shown, normalize="per_map").png()
            assert min(Image.open(io.BytesIO(png)).size) > 0, row.label
        else:
            flat = a.reshape(-1)
            names = list(card.class_names) if flat.size == len(card.class_names) else None
            chart = pictures.activation_chart(flat, labels=names)
            assert chart.ndim == 3 and min(chart.shape[:2]) > 0, row.label
    targets = {r.name for r in rows if r.is_spatial and r.type not in ("Rescaling", "InputLayer")}  # the Explain tab's
    assert len(explained & targets) >= 5
    for name in sorted(explained & targets):
        explainer = METHODS["gradcam"](model, layer=name, preprocess=card.preprocessing)
        explainer._compiled = explainer._maps_at_input_size  # untraced, as in tests/test_applications.py
        result = explainer(pixels[None])
        heat = result.heatmap
        assert result.layer == name and heat.shape == (1, 32, 32), (name, heat.shape)
        assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1, name


def test_every_layer_of_a_nested_mobilenetv2(monkeypatch, mobilenet_path):
    """Every layer's picture (all 155) and Grad-CAM at one layer of each type (and the last, 1x1 maps), drawn
    by the dashboard's own functions outside AppTest (:func:`_draw_every_layer_outside_apptest`); in AppTest,
    one layer of each kind in the Layers tab (type, nesting, rank, 1x1 maps, one channel: the pictures' code
    paths), in the Filters tab the first layer of each convolution type (a nested layer, its kernels) and the
    last (1x1 maps; class patterns are walked on the demo model), and in the Explain tab a layer with
    maps and the last (1x1 maps: a message), where each layer costs seconds of tracing."""
    at = _app(monkeypatch, mobilenet_path)
    assert at.selectbox(key="model_choice").value == "nested_mobilenet.keras"
    labels = layer_options(at)
    assert any(lab.startswith("  ↳") or "↳" in lab for lab in labels) and any("(None, 1, 1," in lab for lab in labels)
    assert len(labels) > 150 and 10 < _walk_layers(at, every=False) < 60  # each kind of layer, not all 155
    _walk_filters(at, convolutions_only=True)
    kinds = {
        lab.split(" · ")[1].split(" (")[0]
        for lab in _one_per_type([lab for lab in labels if lab.rsplit("(None", 1)[-1].count(",") == 3])
    }
    assert any("(None, 1, 1," in lab for lab in labels if lab.split(" · ")[1].split(" (")[0] in kinds)  # 1x1 maps
    one_by_one = {lab.split(" · ")[1].split(" (")[0]: "(None, 1, 1," in lab for lab in labels}

    def a_layer_with_maps_and_the_last(targets):
        picked = [t for t in targets if t in kinds]
        assert one_by_one[picked[-1]]  # the last: 1x1 maps
        return [next(t for t in picked if not one_by_one[t]), picked[-1]]

    _walk_explain(at, a_layer_with_maps_and_the_last)
    _draw_every_layer_outside_apptest(monkeypatch, mobilenet_path, labels, kinds)


def test_a_missing_startup_model_is_one_clear_message(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["app.py", "--model", str(tmp_path / "nope.h5")])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    assert not at.exception
    assert at.error and "No such model file" in at.error[0].value and "nope.h5" in at.error[0].value


def _other_files(folder) -> dict:
    """A file of each kind issue 19 names, as their authors made them: HDF5 written by Keras 3,
    TensorFlow's beginner tutorial model (28, 28), a channels-first CNN, the keras.io ViT."""
    import warnings

    from test_layouts import _channels_first, _plane
    from test_vit import TRUSTED, vit_layers

    L = keras.layers
    files = {}
    keras.utils.set_random_seed(0)
    h5 = keras.Sequential([keras.Input((16, 16, 3)), L.Conv2D(4, 3, name="conv"), L.Flatten(), L.Dense(3)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h5.save(folder / "keras3.h5")
    files["keras3_h5"] = (folder / "keras3.h5", ())
    for name, build in (("tutorial", _plane), ("channels_first", _channels_first)):
        build(keras).save(folder / f"{name}.keras")
        files[name] = (folder / f"{name}.keras", ())
    vit_layers.vit_classifier().save(folder / "vit.keras")
    files["vit"] = (folder / "vit.keras", ("--trust-code", str(TRUSTED)))
    return files


@pytest.mark.parametrize("kind", ["keras3_h5", "tutorial", "channels_first", "vit"])
def test_every_layer_of_other_model_files(monkeypatch, tmp_path, kind):
    """Each opens at start-up (the ViT with --trust-code), every layer draws, the Explain tab explains."""
    path, flags = _other_files(tmp_path)[kind]
    at = _app(monkeypatch, path, *flags)
    assert at.selectbox(key="model_choice").value == path.name and not at.error
    assert _walk_layers(at) == len(layer_options(at)) >= 3
    if kind == "vit":
        assert any("tokens, 4x4 grid" in label for label in layer_options(at))
    if kind == "tutorial":  # no spatial layer: a gradient method by default, and a message
        open_tab(at, "Explain")
        _clean(at, "Explain tab")
        assert at.multiselect(key="methods").value == ["saliency"] and len(view_tiles(at, "explain_view")) == 2
    else:
        _walk_explain(at, lambda targets: targets[-2:])
    if kind == "vit":
        assert "attention_rollout" in at.multiselect(key="methods").options
