"""Every layer works in the dashboard: the demo model's and a nested MobileNetV2's (opened with
``streamlit run app.py -- --model PATH``), through the Layers, Filters and Explain controls,
1-channel and 1x1 layers included. Each step raises nothing and shows a picture or a clear message."""

import sys

import keras
import pytest
from conftest import DEMO_MODEL, ROOT
from dashboard_helpers import layer_options, layer_value, open_tab, picture, set_layer, view_tiles
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


def _walk_filters(at: AppTest) -> None:
    """Each type of layer in the Filters tab (each estimate times the compiled ascent loop, a few
    seconds), the last spatial layer and class patterns: an estimate or a clear message."""
    open_tab(at, "Filters")
    options = at.selectbox(key="filter_layer").options
    for option in [*_one_per_type(options[:-1]), options[-1]]:
        at.selectbox(key="filter_layer").set_value(option).run()
        _clean(at, option)
        assert [c for c in at.caption if c.value.startswith("About ")] or at.error, option


def test_every_layer_of_the_demo_model(monkeypatch):
    at = _app(monkeypatch)
    assert _walk_layers(at) == 11
    set_layer(at, layer_options(at)[1])
    _walk_filters(at)
    _walk_explain(at)


def test_every_layer_of_a_nested_mobilenetv2(monkeypatch, mobilenet_path):
    """One layer of each kind in the Layers tab (type, nesting, rank, 1x1 maps, one channel: the
    pictures' code paths; walking all 155 took 70 s); one layer of each type (and the last, 1x1
    maps) in the Filters and Explain tabs, where each layer costs seconds of tracing."""
    at = _app(monkeypatch, mobilenet_path)
    assert at.selectbox(key="model_choice").value == "nested_mobilenet.keras"
    labels = layer_options(at)
    assert any(lab.startswith("  ↳") or "↳" in lab for lab in labels) and any("(None, 1, 1," in lab for lab in labels)
    assert len(labels) > 150 and 10 < _walk_layers(at, every=False) < 60  # each kind of layer, not all 155
    _walk_filters(at)
    kinds = {
        lab.split(" · ")[1].split(" (")[0]
        for lab in _one_per_type([lab for lab in labels if lab.rsplit("(None", 1)[-1].count(",") == 3])
    }
    assert any("(None, 1, 1," in lab for lab in labels if lab.split(" · ")[1].split(" (")[0] in kinds)  # 1x1 maps
    _walk_explain(at, lambda targets: [t for t in targets if t in kinds])


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
