"""The dashboard under streamlit.testing.v1.AppTest: every tab and control, bad uploads, no traceback."""

import io
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import DEMO_MODEL, ROOT, tiny_sequential
from dashboard_helpers import (
    component_data,
    layer_options,
    layer_value,
    open_tab,
    picture,
    set_control,
    set_layer,
    view_tiles,
    wait_for_warm_up,
)
from PIL import Image
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.skipif(not DEMO_MODEL.exists(), reason="the bundled demo model is missing")


def _ok(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def _new() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    _ok(at)
    return at


@pytest.fixture(scope="module")
def app():
    return _new()


def _png_bytes(size=(40, 30), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)).convert(mode).save(
        buf, "PNG"
    )
    return buf.getvalue()


def _downloads(at: AppTest) -> set:
    return {b.key for b in at.get("download_button")}


def test_opens_on_demo_model_and_a_fashion_sample(app):
    assert app.selectbox(key="model_choice").value == DEMO_MODEL.name
    assert app.selectbox(key="image_choice").value.startswith("fashion_mnist_")
    assert layer_value(app).startswith("1 · conv2d (Conv2D)")
    assert "fashion_mnist, test accuracy" in app.sidebar.caption[0].value
    assert app.slider(key="max_maps").value == 32  # conv2d has 32 channels
    assert [t.label for t in app.tabs] == ["Layers", "Filters", "Explain", "Report", "Audit", "Concepts"]
    (tile,) = view_tiles(app, "layer_view")
    assert tile["caption"].startswith("Layer 1: conv2d (Conv2D)") and "32 channels" in tile["caption"]
    assert picture(tile["src"]).shape[2] == 3
    # every figure can be downloaded; only the open tab runs
    assert {"dl_grid", "dl_channel"} <= _downloads(app) and "dl_explain" not in _downloads(app)
    open_tab(app, "Filters")
    assert "dl_filters" in _downloads(app) and "dl_grid" not in _downloads(app)
    open_tab(app, "Explain")
    assert "dl_explain" in _downloads(app)
    open_tab(app, "Layers")
    _ok(app)


def test_layer_table_is_drawn_when_opened(app):
    assert not app.dataframe  # closed: no dataframe (its scripts are not needed)
    app.session_state["layer_table"] = True
    app.run()
    _ok(app)
    (frame,) = app.dataframe
    assert list(frame.value["name"])[:2] == ["rescaling", "conv2d"] and len(frame.value) == 11
    app.session_state["layer_table"] = False
    app.run()


def test_closed_tabs_keep_their_choices(app):
    """Only the open tab runs, and Streamlit forgets the value of a widget a run does not draw:
    the layer, the maps shown, the methods and the opacity survive a visit to another tab."""
    labels = layer_options(app)
    set_layer(app, labels[3])
    app.slider(key="max_maps").set_value(12).run()
    open_tab(app, "Explain")
    app.multiselect(key="methods").set_value(["saliency"]).run()
    set_control(app, "alpha", 0.8)
    open_tab(app, "Filters")
    open_tab(app, "Layers")
    _ok(app)
    assert layer_value(app) == labels[3] and app.slider(key="max_maps").value == 12
    open_tab(app, "Explain")
    assert app.multiselect(key="methods").value == ["saliency"]
    assert component_data(app, "explain_view")["alpha"]["value"] == 0.8
    app.multiselect(key="methods").set_value(["gradcam"]).run()
    set_control(app, "alpha", 0.5)
    open_tab(app, "Layers")
    app.slider(key="max_maps").set_value(64).run()
    set_layer(app, labels[1])


def test_the_grid_on_screen_is_the_layers_mosaic(app):
    """The picture the viewer shows is explain.render.pictures.feature_map_mosaic of that layer's
    activations for this image, and its caption names the layer and the scaling."""
    from explain import compute_activations, load_image, load_model
    from explain.render.pictures import feature_map_mosaic

    labels = layer_options(app)
    set_layer(app, labels[3])  # conv2d_1
    _ok(app)
    (tile,) = view_tiles(app, "layer_view")
    model = load_model(DEMO_MODEL)
    pixels = load_image(
        ROOT / "sample_images" / app.selectbox(key="image_choice").value, target_size=(28, 28), channels=1
    )
    acts = compute_activations(model, pixels, ["conv2d_1"])["conv2d_1"][0]
    np.testing.assert_array_equal(picture(tile["src"]), feature_map_mosaic(acts, max_maps=64))
    assert "Layer 3: conv2d_1" in tile["caption"] and "each map scaled to its own min-max" in tile["caption"]
    set_layer(app, labels[1])


def _prefetched(at: AppTest) -> dict:
    """The views the layer prefetchers sent in the last run, in order."""
    views = {}
    for n in range(64):
        views |= component_data(at, f"layer_prefetch_{n}").get("views", {})
    return views


def test_neighbouring_layers_are_sent_ahead_once():
    """The browser gets the pictures of the layers next to the one shown (then more, nearest first)
    before they are asked for, and every layer's view key, so a switch to them is drawn without the
    server; nothing is sent twice."""
    app = _new()  # a session that has not been sent anything yet, on the default layer 1
    labels = layer_options(app)
    keys = component_data(app, "layer_view")["pick"]["keys"]
    assert set(keys) == set(labels)
    sent = list(_prefetched(app))
    assert set(sent[:2]) == {keys[labels[0]], keys[labels[2]]}  # the neighbours first
    assert keys[labels[1]] not in sent  # the view on screen goes with the viewer
    set_layer(app, labels[2])
    _ok(app)
    again = set(_prefetched(app))
    assert not again & (set(sent) | {keys[labels[1]]})  # nothing already in the browser is sent again


def test_layers_controls(app):
    labels = layer_options(app)
    set_layer(app, labels[3])  # conv2d_1, 64 channels
    _ok(app)
    assert app.slider(key="max_maps").value == 64
    before = component_data(app, "layer_view")["current"]
    app.slider(key="max_maps").set_value(10).run()
    _ok(app)
    assert "showing 10 of 64 channels" in view_tiles(app, "layer_view")[0]["caption"]
    assert component_data(app, "layer_view")["current"] != before
    app.checkbox(key="sort_channels").check().run()
    _ok(app)
    app.radio(key="normalize").set_value("layer").run()
    _ok(app)
    assert "one scale for the whole layer" in view_tiles(app, "layer_view")[0]["caption"]
    app.number_input(key="channel").set_value(5).run()
    _ok(app)
    assert any(c == "conv2d_1, channel 5" for i in app.get("image") for c in i.captions)
    set_layer(app, labels[1])  # each layer keeps its own count: conv2d starts on its 32
    assert app.slider(key="max_maps").value == 32
    set_layer(app, labels[3])
    assert app.slider(key="max_maps").value == 10
    app.radio(key="normalize").set_value("per_map").run()
    app.checkbox(key="sort_channels").uncheck().run()
    set_layer(app, labels[-1])  # the softmax output: a bar chart, no slider
    _ok(app)
    assert not [s for s in app.slider if s.key == "max_maps"]
    assert "dl_bars" in _downloads(app) and view_tiles(app, "layer_view")
    set_layer(app, labels[1])


def test_one_channel_layer_shows_its_map_and_leaves_other_tabs_alone(app):
    """Layer 0 of the demo model is its Rescaling layer, 1 channel: a slider from 1 to 1 used to
    raise inside the Layers fragment and empty every other tab."""
    set_layer(app, layer_options(app)[0])
    _ok(app)
    assert not [s for s in app.slider if s.key == "max_maps"]
    assert not [n for n in app.number_input if n.key == "channel"]
    assert "dl_grid" in _downloads(app) and view_tiles(app, "layer_view")
    assert any("one channel" in c.value for c in app.caption)
    open_tab(app, "Explain")  # that layer still chosen: the other tabs still draw
    _ok(app)
    assert "dl_explain" in _downloads(app)
    open_tab(app, "Layers")
    set_layer(app, layer_options(app)[1])


def test_rgb_photo_into_the_grayscale_model(app):
    app.selectbox(key="image_choice").set_value("photo_chelsea.jpg").run()
    _ok(app)
    app.selectbox(key="image_choice").set_value("fashion_mnist_7_sneaker.png").run()
    _ok(app)


FILTER_LAYERS = [
    "1 · conv2d (Conv2D) (None, 28, 28, 32)",
    "2 · max_pooling2d (MaxPooling2D) (None, 14, 14, 32)",
    "3 · conv2d_1 (Conv2D) (None, 14, 14, 64)",
    "4 · batch_normalization (BatchNormalization) (None, 14, 14, 64)",
    "5 · max_pooling2d_1 (MaxPooling2D) (None, 7, 7, 64)",
    "Output: class patterns",
]


def _captions(at: AppTest, start: str) -> list[str]:
    return [c.value for c in at.caption if c.value.startswith(start)]


def test_filters_tab(app):
    """The spatial layers (input scaling left out) and the output; kernel weights only for conv layers."""
    open_tab(app, "Filters")
    box = app.selectbox(key="filter_layer")
    assert box.options == FILTER_LAYERS and box.value == FILTER_LAYERS[0]
    assert "dl_filters" in _downloads(app)
    app.selectbox(key="filter_layer").set_value(FILTER_LAYERS[2]).run()  # conv2d_1: its kernels too
    _ok(app)
    assert "dl_filters" in _downloads(app) and any(e.label == "Kernel weights" for e in app.expander)
    app.selectbox(key="filter_layer").set_value(FILTER_LAYERS[1]).run()  # pooling: no kernel
    _ok(app)
    assert "dl_filters" not in _downloads(app) and not [e for e in app.expander if e.label == "Kernel weights"]
    app.selectbox(key="filter_layer").set_value(FILTER_LAYERS[0]).run()
    open_tab(app, "Layers")


def test_filter_patterns_button_estimate_and_cache():
    at = open_tab(_new(), "Filters")
    at.selectbox(key="pattern_steps").set_value(32).run()
    _ok(at)
    assert at.selectbox(key="pattern_channels").value == "first 16"
    # before the button: an estimate, no patterns
    assert _captions(at, "About ") and "for 16 channels x 32 steps" in _captions(at, "About ")[0]
    assert "dl_patterns" not in _downloads(at) and not _captions(at, "Found in")
    images = len(at.get("image"))
    at.button(key="run_patterns").click().run()
    _ok(at)
    assert "dl_patterns" in _downloads(at)
    assert len(at.get("image")) == images + 1  # the grid
    found = _captions(at, "Found in")
    assert found and "estimated" in found[0] and "channel: its mean activation" in found[0]
    assert len(at.session_state["pattern_results"]) == 1
    # another layer: not computed yet, so its estimate and no picture (never the other layer's)
    at.selectbox(key="filter_layer").set_value(FILTER_LAYERS[2]).run()
    _ok(at)
    assert "dl_patterns" not in _downloads(at) and _captions(at, "About ")
    # back: the kept result, without pressing the button again
    at.selectbox(key="filter_layer").set_value(FILTER_LAYERS[0]).run()
    _ok(at)
    assert "dl_patterns" in _downloads(at) and _captions(at, "Found in")
    # other settings are another result
    at.number_input(key="pattern_seed").set_value(1).run()
    _ok(at)
    assert "dl_patterns" not in _downloads(at)


def test_class_patterns_in_the_filters_tab():
    at = open_tab(_new(), "Filters")
    at.selectbox(key="filter_layer").set_value("Output: class patterns").run()
    at.selectbox(key="pattern_steps").set_value(32).run()
    _ok(at)
    assert "for 10 classes x 32 steps" in _captions(at, "About ")[0]  # "first 16" of 10 classes
    assert "dl_filters" not in _downloads(at)  # no kernel for the output
    at.button(key="run_patterns").click().run()
    _ok(at)
    assert "dl_patterns" in _downloads(at)
    assert "class: its score" in _captions(at, "Found in")[0]


def test_explain_tab_methods_class_and_buttons(app):
    open_tab(app, "Explain")
    app.multiselect(key="methods").set_value(["gradcam", "gradcam++", "saliency"]).run()
    _ok(app)
    tiles = view_tiles(app, "explain_view")
    assert [t["caption"].split(" @ ")[0] for t in tiles] == ["image", "gradcam", "gradcam++", "saliency"]
    assert tiles[0]["over"] is None and all(t["over"] for t in tiles[1:])  # a heatmap over each method's image
    assert picture(tiles[1]["over"]).shape == picture(tiles[1]["src"]).shape  # laid exactly over the image
    app.selectbox(key="explain_class").set_value(5).run()
    _ok(app)
    app.selectbox(key="target_layer").set_value("conv2d_1").run()
    _ok(app)
    assert view_tiles(app, "explain_view")[1]["caption"] == "gradcam @ conv2d_1"
    app.selectbox(key="cmap").set_value("inferno").run()
    set_control(app, "alpha", 0.7)
    _ok(app)
    assert component_data(app, "explain_view")["alpha"]["value"] == 0.7
    app.button(key="run_sanity").click().run()
    _ok(app)
    assert [m for m in [*app.success, *app.warning] if m.value.startswith("gradcam")]  # the verdict
    app.button(key="run_lime").click().run()
    _ok(app)
    assert len(app.session_state["lime_results"]) == 1
    assert "dl_lime" in _downloads(app)
    lime_captions = lambda: [t["caption"] for t in view_tiles(app, "lime_view")]  # noqa: E731
    assert lime_captions() == ["LIME heatmap", "LIME superpixels: green for, red against"]
    # another image: its LIME is not run yet, so no LIME picture at all (never the previous image's)
    choice = app.selectbox(key="image_choice")
    choice.set_value(next(o for o in choice.options if o.endswith(".png") and o != choice.value)).run()
    _ok(app)
    assert "dl_lime" not in _downloads(app) and not lime_captions()
    app.button(key="run_lime").click().run()
    _ok(app)
    assert len(app.session_state["lime_results"]) == 2 and lime_captions()
    open_tab(app, "Layers")


def test_opacity_and_colormap_need_no_model_call(monkeypatch):
    """Moving the opacity reruns the Explain tab without calling the model: the heatmap comes from
    the cache and the blend is done in the browser (the viewer only gets the new opacity)."""
    from explain.attribution.base import AttributionMethod
    from explain.models.scores import ScoreHead

    at = open_tab(_new(), "Explain")
    wait_for_warm_up()  # the background warm-up explains too
    calls = []

    def counting(name: str, original):
        def counted(self, *a, **k):
            calls.append(name)
            return original(self, *a, **k)

        return counted

    for cls, name in ((AttributionMethod, "__call__"), (ScoreHead, "predict_scores")):
        monkeypatch.setattr(cls, name, counting(name, getattr(cls, name)))
    before = component_data(at, "explain_view")["current"]
    set_control(at, "alpha", 0.3)
    _ok(at)
    assert calls == [] and component_data(at, "explain_view")["alpha"]["value"] == 0.3
    assert component_data(at, "explain_view")["current"] == before  # the same pictures: only the opacity changed


def test_upload_choice_without_a_file_asks_for_one():
    at = _new()
    at.selectbox(key="image_choice").set_value("Upload…").run()
    assert not at.exception
    assert any("Upload an image" in i.value for i in at.info)


def test_several_uploaded_images_and_bad_ones():
    at = _new()
    at.selectbox(key="image_choice").set_value("Upload…").run()
    good = ("a.png", _png_bytes(), "image/png")
    rgba = ("b.png", _png_bytes(mode="RGBA"), "image/png")
    at.file_uploader(key="image_upload").set_value([good, rgba]).run()
    _ok(at)
    at.selectbox(key="uploaded_pick").set_value("b.png").run()
    _ok(at)
    for name, data, message in [
        ("empty.png", b"", "empty"),
        ("notes.jpg", b"hello, not an image", "not an image"),
        ("cut.png", _png_bytes()[:60], "truncated"),
    ]:
        at.file_uploader(key="image_upload").set_value((name, data, "image/png")).run()
        assert not at.exception
        assert at.error and message in at.error[0].value, [e.value for e in at.error]


def test_bad_model_uploads_give_errors_not_tracebacks(tmp_path):
    at = _new()
    at.selectbox(key="model_choice").set_value("Upload…").run()
    assert any("Upload a model (`.keras`, `.h5`" in i.value for i in at.info)
    inp = keras.Input((8, 8, 1))
    lam = tmp_path / "lambda.keras"
    keras.Model(inp, keras.layers.Lambda(lambda t: t * 2)(inp)).save(lam)
    for name, data, message in [
        ("empty.keras", b"", "empty"),
        ("text.keras", b"not a zip file", "not a '.keras' archive"),
        ("lambda.keras", lam.read_bytes(), "Lambda"),
    ]:
        at.file_uploader(key="model_upload").set_value((name, data, "application/octet-stream")).run()
        assert not at.exception
        assert at.error and message in at.error[0].value, [e.value for e in at.error]
        assert name in at.error[0].value and "/tmp" not in at.error[0].value  # the upload's name, not the server's path


def test_uploaded_model_works_and_sessions_stay_apart(tmp_path):
    path = tmp_path / "tiny.keras"
    tiny_sequential(channels=3, size=16).save(path)
    a, b = _new(), _new()
    a.selectbox(key="model_choice").set_value("Upload…").run()
    a.file_uploader(key="model_upload").set_value(("tiny.keras", path.read_bytes(), "application/octet-stream")).run()
    _ok(a)
    assert layer_value(a).startswith("1 · conv_a")
    b.run()  # the other session still has the demo model
    _ok(b)
    assert layer_value(b).startswith("1 · conv2d (Conv2D)")


def _class_folder(root, samples: dict[str, str], copies: int) -> None:
    """One subfolder per class of ``root``, each holding ``copies`` copies of a bundled sample
    (``"1_trouser"`` for ``sample_images/fashion_mnist_1_trouser.png``)."""
    import shutil

    from conftest import SAMPLES

    for cls, sample in samples.items():
        (root / cls).mkdir()
        for i in range(copies):
            shutil.copy(SAMPLES / f"fashion_mnist_{sample}.png", root / cls / f"{i}.png")


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """The dashboard started with ``-- --data-root tmp_path``: folders under it are served (docs/deploy.md)."""
    monkeypatch.setattr("sys.argv", ["app.py", "--data-root", str(tmp_path)])
    return tmp_path


def test_report_tab_on_a_folder(tmp_path, data_root):
    _class_folder(tmp_path, {"Trouser": "1_trouser", "Bag": "8_bag", "Shirt": "0_t_shirt_top"}, 3)
    at = open_tab(_new(), "Report")
    at.selectbox(key="report_data").set_value("A folder of class subfolders…").run()
    at.text_input(key="report_folder").input(str(tmp_path)).run()
    at.button(key="run_report").click().run()
    _ok(at)
    assert any("9 images, accuracy" in m.value for m in at.markdown)
    keys = {b.key for b in at.get("download_button")}
    assert {"dl_per_class", "dl_confusion", "dl_report"} <= keys
    assert at.selectbox(key="confusion_pick").value.startswith("Shirt predicted as T-shirt/top")


def test_report_map_and_a_picked_point_becomes_the_image(tmp_path, data_root):
    """The Report tab draws the map for 10+ images; a point picked on it (what a click on the chart
    stores) becomes the sidebar's image, read from the data set, and the Explain tab opens."""
    _class_folder(tmp_path, {"Trouser": "1_trouser", "Bag": "8_bag"}, 6)
    at = open_tab(_new(), "Report")
    at.selectbox(key="report_data").set_value("A folder of class subfolders…").run()
    at.text_input(key="report_folder").input(str(tmp_path)).run()
    at.button(key="run_report").click().run()
    _ok(at)
    assert any(s.value == "Feature-space map" for s in at.subheader)
    assert "dl_embedding" in {b.key for b in at.get("download_button")}
    label = "Bag/3.png (from the map)"
    at.session_state["map_pick"] = {"spec": str(tmp_path), "index": 3, "label": label}  # Bag/3.png: sorted order
    at.session_state["image_pending"] = label
    at.session_state["tab"] = "Explain"
    at.run()
    _ok(at)
    assert at.selectbox(key="image_choice").value == label
    # The Explain tab is open on the bag (the default image was a T-shirt).
    box = at.selectbox(key="explain_class")
    assert box.options[box.value] == "8: Bag (top prediction)"


def test_report_tab_bad_folder_gives_an_error(tmp_path, data_root):
    at = open_tab(_new(), "Report")
    at.selectbox(key="report_data").set_value("A folder of class subfolders…").run()
    at.text_input(key="report_folder").input(str(tmp_path / "nope")).run()
    at.button(key="run_report").click().run()
    assert not at.exception
    assert at.error


def test_input_scaling_and_class_names_controls(tmp_path):
    """A model trained on x / 255 without a scaling layer: the dashboard says it assumes raw pixels,
    warns about the huge logit, and explains it properly once 'unit' is chosen; a class-names file
    names the classes, and one of the wrong length is an error that leaves the app up."""
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            layers.Conv2D(2, 3, name="conv"),
            layers.Flatten(),
            layers.Dense(3, name="logits"),
            layers.Activation("softmax"),
        ]
    )
    model.get_layer("conv").set_weights([np.full((3, 3, 1, 2), 0.1, np.float32), np.zeros(2, np.float32)])
    kernel = np.zeros((14 * 14 * 2, 3), np.float32)
    kernel[:, 2] = 0.01
    model.get_layer("logits").set_weights([kernel, np.zeros(3, np.float32)])
    path = tmp_path / "unit.keras"
    model.save(path)
    at = _new()
    at.selectbox(key="model_choice").set_value("Upload…").run()
    at.file_uploader(key="model_upload").set_value(("unit.keras", path.read_bytes(), "application/octet-stream")).run()
    _ok(at)
    assert at.selectbox(key="preprocess").value == "raw"
    assert any("assuming it takes raw pixels" in c.value for c in at.sidebar.caption)
    assert any("top logit" in w.value and "Input scaling" in w.value for w in at.warning), [w.value for w in at.warning]
    at.selectbox(key="preprocess").set_value("unit").run()
    _ok(at)
    assert not any("top logit" in w.value for w in at.warning)
    open_tab(at, "Explain")
    at.file_uploader(key="classes_upload").set_value(("names.txt", b"cat\ndog\nbird\n", "text/plain")).run()
    _ok(at)
    assert "2: bird (top prediction)" in at.selectbox(key="explain_class").options
    at.file_uploader(key="classes_upload").set_value(("names.txt", b"cat\ndog\n", "text/plain")).run()
    assert not at.exception
    assert any("names.txt" in e.value and "2 class names given" in e.value for e in at.sidebar.error)
    assert "2: class 2 (top prediction)" in at.selectbox(key="explain_class").options


def test_keras2_h5_and_zipped_savedmodel_uploads(tmp_path):
    """What a user of the R / Keras 2 tutorials has: an .h5 file and a zipped SavedModel folder."""
    import shutil
    import warnings

    import tf_keras

    tf_keras.utils.set_random_seed(0)
    k = tf_keras.layers
    model = tf_keras.Sequential(
        [
            k.Input((16, 16, 3)),
            k.Rescaling(1 / 255),
            k.Conv2D(4, 3, activation="relu", name="k2_conv"),
            k.GlobalAveragePooling2D(),
            k.Dense(3, activation="softmax"),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(tmp_path / "tutorial.h5")
        model.save(tmp_path / "saved" / "tutorial", save_format="tf")
    archive = shutil.make_archive(str(tmp_path / "tutorial"), "zip", tmp_path / "saved")
    at = _new()
    at.selectbox(key="model_choice").set_value("Upload…").run()
    for name, path in (("tutorial.h5", tmp_path / "tutorial.h5"), ("tutorial.zip", Path(archive))):
        at.file_uploader(key="model_upload").set_value((name, path.read_bytes(), "application/octet-stream")).run()
        _ok(at)
        assert layer_value(at).startswith("1 · k2_conv (Conv2D)")
        assert "dl_grid" in _downloads(at)
        open_tab(at, "Explain")
        assert at.multiselect(key="methods").value == ["gradcam"]
        assert "dl_explain" in _downloads(at)  # a Grad-CAM
        open_tab(at, "Layers")
    at.file_uploader(key="model_upload").set_value(("broken.h5", b"\x89HDF\r\n\x1a\n" + b"0" * 64, "x")).run()
    assert not at.exception and at.error and "broken.h5" in at.error[0].value


def test_an_unexpected_error_stays_in_its_tab(monkeypatch):
    """A bug in one tab is one line in that tab; the page around it and the other tabs still work."""
    import explain.render.pictures

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    import streamlit as st

    monkeypatch.setattr(explain.render.pictures, "activation_chart", broken)  # app.py takes it from there
    st.cache_data.clear()  # the bars may be cached by an earlier test
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    set_layer(at, layer_options(at)[-1])  # the output layer: drawn with activation_chart
    assert not at.exception
    assert any("RuntimeError: boom" in e.value for e in at.error)
    assert at.get("image")  # the image and its top-5 still show
    open_tab(at, "Explain")
    assert not at.exception and not at.error
    assert "dl_explain" in _downloads(at)


def test_which_method_panel_ranks_the_methods_on_the_image(monkeypatch):
    import explain.attribution

    monkeypatch.setattr(explain.attribution, "methods_for", lambda model: ["gradcam", "saliency", "hirescam"])
    at = _new()
    open_tab(at, "Explain")
    at.button(key="run_ranking").click().run()
    _ok(at)
    ((result, _),) = at.session_state["method_rankings"]._items.values()
    assert sorted(s.method for s in result.scores) == ["gradcam", "hirescam", "saliency"]
    table = at.dataframe[0].value
    assert list(table["method"]) == [s.method for s in result.scores] and list(table["rank"]) == [1, 2, 3]
    assert {"deletion ↓", "insertion ↑", "mufidelity ↑", "road_morf ↓", "road_lerf ↑", "stability ↓"} <= set(table)
    assert any(s.value.startswith("Trust first on this image: ") for s in at.success)
    assert "dl_ranking" in _downloads(at)
    at.checkbox(key="more_scores").check().run()  # the other metrics beside the deletion / insertion line
    _ok(at)
    assert any("MuFidelity" in c.value and "stability" in c.value for c in at.caption)
