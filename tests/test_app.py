"""The dashboard under streamlit.testing.v1.AppTest: every tab and control, bad uploads, no traceback."""

import io
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import DEMO_MODEL, ROOT, tiny_sequential
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


def test_opens_on_demo_model_and_a_fashion_sample(app):
    assert app.selectbox(key="model_choice").value == DEMO_MODEL.name
    assert app.selectbox(key="image_choice").value.startswith("fashion_mnist_")
    assert app.selectbox(key="layer").value.startswith("1 · conv2d (Conv2D)")
    assert "fashion_mnist, test accuracy" in app.sidebar.caption[0].value
    assert app.slider(key="max_maps").value == 32  # conv2d has 32 channels
    assert [t.label for t in app.tabs] == ["Layers", "Filters", "Explain", "Report"]
    # every figure can be downloaded
    keys = {b.key for b in app.get("download_button")}
    assert {"dl_grid", "dl_channel", "dl_filters", "dl_explain"} <= keys


def test_layers_controls(app):
    labels = app.selectbox(key="layer").options
    app.selectbox(key="layer").set_value(labels[3]).run()  # conv2d_1, 64 channels
    _ok(app)
    assert app.slider(key="max_maps").value == 64
    app.checkbox(key="sort_channels").check().run()
    _ok(app)
    app.radio(key="normalize").set_value("layer").run()
    _ok(app)
    app.number_input(key="channel").set_value(5).run()
    _ok(app)
    app.selectbox(key="layer").set_value(labels[-1]).run()  # the softmax output: a bar chart, no slider
    _ok(app)
    assert not [s for s in app.slider if s.key == "max_maps"]
    app.selectbox(key="layer").set_value(labels[1]).run()


def test_one_channel_layer_shows_its_map_and_leaves_other_tabs_alone(app):
    """Layer 0 of the demo model is its Rescaling layer, 1 channel: a slider from 1 to 1 used to
    raise inside the Layers fragment and empty every other tab."""
    labels = app.selectbox(key="layer").options
    app.selectbox(key="layer").set_value(labels[0]).run()
    _ok(app)
    assert not [s for s in app.slider if s.key == "max_maps"]
    assert not [n for n in app.number_input if n.key == "channel"]
    assert "dl_grid" in {b.key for b in app.get("download_button")}
    assert any("one channel" in c.value for c in app.caption)
    app.run()  # a full rerun with that layer still chosen: the other tabs still draw
    _ok(app)
    assert {"dl_grid", "dl_explain"} <= {b.key for b in app.get("download_button")}
    app.selectbox(key="layer").set_value(labels[3]).run()


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


def _downloads(at: AppTest) -> set:
    return {b.key for b in at.get("download_button")}


def _captions(at: AppTest, start: str) -> list[str]:
    return [c.value for c in at.caption if c.value.startswith(start)]


def test_filters_tab(app):
    """The spatial layers (input scaling left out) and the output; kernel weights only for conv layers."""
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


def test_filter_patterns_button_estimate_and_cache():
    at = _new()
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
    at = _new()
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
    app.multiselect(key="methods").set_value(["gradcam", "gradcam++", "saliency"]).run()
    _ok(app)
    app.selectbox(key="explain_class").set_value(5).run()
    _ok(app)
    app.selectbox(key="target_layer").set_value("conv2d_1").run()
    _ok(app)
    app.selectbox(key="cmap").set_value("inferno").run()
    app.slider(key="alpha").set_value(0.7).run()
    _ok(app)
    app.button(key="run_sanity").click().run()
    _ok(app)
    assert [m for m in [*app.success, *app.warning] if m.value.startswith("gradcam")]  # the verdict
    app.button(key="run_lime").click().run()
    _ok(app)
    assert len(app.session_state["lime_results"]) == 1
    assert "dl_lime" in {b.key for b in app.get("download_button")}
    lime_captions = lambda: [c for i in app.get("image") for c in i.captions if "LIME" in c]  # noqa: E731
    assert lime_captions()
    # another image: its LIME is not run yet, so no LIME picture at all (never the previous image's)
    choice = app.selectbox(key="image_choice")
    choice.set_value(next(o for o in choice.options if o.endswith(".png") and o != choice.value)).run()
    _ok(app)
    assert "dl_lime" not in {b.key for b in app.get("download_button")} and not lime_captions()
    app.button(key="run_lime").click().run()
    _ok(app)
    assert len(app.session_state["lime_results"]) == 2 and lime_captions()


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
    assert a.selectbox(key="layer").value.startswith("1 · conv_a")
    b.run()  # the other session still has the demo model
    _ok(b)
    assert b.selectbox(key="layer").value.startswith("1 · conv2d (Conv2D)")


def test_report_tab_on_a_folder(tmp_path):
    import shutil

    from conftest import SAMPLES

    for cls, sample in (
        ("Trouser", "fashion_mnist_1_trouser.png"),
        ("Bag", "fashion_mnist_8_bag.png"),
        ("Shirt", "fashion_mnist_0_t_shirt_top.png"),
    ):
        (tmp_path / cls).mkdir()
        for i in range(3):
            shutil.copy(SAMPLES / sample, tmp_path / cls / f"{i}.png")
    at = _new()
    at.selectbox(key="report_data").set_value("A folder of class subfolders…").run()
    at.text_input(key="report_folder").input(str(tmp_path)).run()
    at.button(key="run_report").click().run()
    _ok(at)
    assert any("9 images, accuracy" in m.value for m in at.markdown)
    keys = {b.key for b in at.get("download_button")}
    assert {"dl_per_class", "dl_confusion", "dl_report"} <= keys
    assert at.selectbox(key="confusion_pick").value.startswith("Shirt predicted as T-shirt/top")


def test_report_tab_bad_folder_gives_an_error(tmp_path):
    at = _new()
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
        assert at.selectbox(key="layer").value.startswith("1 · k2_conv (Conv2D)")
        assert at.multiselect(key="methods").value == ["gradcam"]
        assert {"dl_grid", "dl_explain"} <= {b.key for b in at.get("download_button")}  # a grid, a Grad-CAM
    at.file_uploader(key="model_upload").set_value(("broken.h5", b"\x89HDF\r\n\x1a\n" + b"0" * 64, "x")).run()
    assert not at.exception and at.error and "broken.h5" in at.error[0].value


def test_an_unexpected_error_stays_in_its_tab(monkeypatch):
    """A bug in one tab is one line in that tab; a full rerun still draws the other tabs."""
    import explain

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(explain, "activation_bars", broken)  # app.py takes it from the package
    at = _new()
    labels = at.selectbox(key="layer").options
    at.selectbox(key="layer").set_value(labels[-1]).run()  # the output layer: drawn with activation_bars
    assert not at.exception
    assert any("RuntimeError: boom" in e.value for e in at.error)
    at.run()
    assert not at.exception
    assert {"dl_filters", "dl_explain"} <= {b.key for b in at.get("download_button")}
