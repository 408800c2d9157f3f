import re

import keras
import numpy as np
import pytest
from conftest import FAST, SAMPLES, tiny_functional, tiny_nested, tiny_sequential, tiny_sigmoid, universal_methods

from explain import ExplainError, LayerError, NoSpatialLayerError
from explain.attribute import main
from explain.attribution import (
    METHODS,
    GradCAM,
    LayerAttribution,
    Saliency,
    default_target_layer,
    method_label,
    normalize_maps,
)
from explain.models.layers import layer_table

L = keras.layers


def tiny_mlp() -> keras.Model:
    keras.utils.set_random_seed(5)
    return keras.Sequential(
        [keras.Input((16, 16, 3)), L.Rescaling(1 / 255), L.Flatten(), L.Dense(3, activation="softmax")]
    )


MODELS = {"sequential": tiny_sequential, "functional": tiny_functional, "nested": tiny_nested, "sigmoid": tiny_sigmoid}


def _images(n=2):
    return np.random.default_rng(0).uniform(0, 255, (n, 16, 16, 3)).astype(np.float32)


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("method", universal_methods())
def test_contract_every_method_every_model(method, model_name):
    model = MODELS[model_name]()
    x = _images()
    result = METHODS[method](model, **FAST.get(method, {}))(x)
    assert result.heatmap.shape == (2, 16, 16) and result.heatmap.dtype == np.float32
    assert np.isfinite(result.heatmap).all() and result.heatmap.min() >= 0 and result.heatmap.max() <= 1
    assert not result.flat.any() and result.heatmap.max() == pytest.approx(1.0)
    probs = keras.ops.convert_to_numpy(model(x, training=False))  # eager: predict() traces (0.1 s a model)
    top = (probs[:, 0] > 0.5).astype(int) if probs.shape[1] == 1 else probs.argmax(1)
    assert np.array_equal(result.class_index, top)
    assert result.method == method and result.score_kind == "logit"
    if issubclass(METHODS[method], LayerAttribution):
        assert result.layer is not None


def test_gradcam_matches_a_hand_written_gradient_tape():
    model = tiny_functional()
    x = _images(3)
    conv = model.get_layer("conv_b")
    probe = keras.Model(model.inputs, [conv.output, model.get_layer("logits").output])
    import tensorflow as tf

    with tf.GradientTape() as tape:
        a, logits = probe(x)
        score = logits[:, 1]
    grads = tape.gradient(score, a).numpy()
    cam = np.maximum((a.numpy() * grads.mean(axis=(1, 2))[:, None, None, :]).sum(-1), 0)
    expected, _ = normalize_maps(cam)  # conv_b keeps the 16x16 input size: no resizing
    got = GradCAM(model, layer="conv_b")(x, class_index=1)
    np.testing.assert_allclose(got.heatmap, expected, atol=1e-5)
    np.testing.assert_allclose(got.score, logits[:, 1].numpy(), rtol=1e-5)  # the pre-softmax logit


def test_dense_softmax_score_is_the_recomputed_logit():
    model = tiny_sequential()
    x = _images()
    dense = model.layers[-1]
    hidden = keras.Model(model.inputs, model.layers[-2].output).predict(x, verbose=0)
    logits = hidden @ dense.kernel.numpy() + dense.bias.numpy()
    result = Saliency(model)(x, class_index=2)
    np.testing.assert_allclose(result.score, logits[:, 2], rtol=1e-5)


def test_binary_sigmoid_explains_either_class():
    model = tiny_sigmoid()
    x = _images()
    pos, neg = GradCAM(model)(x, class_index=1), GradCAM(model)(x, class_index=0)
    np.testing.assert_allclose(pos.score, -neg.score, rtol=1e-6)
    assert not np.allclose(pos.heatmap, neg.heatmap)


def test_nested_target_layer_by_path_gets_real_gradients():
    model = tiny_nested()
    result = GradCAM(model, layer="tiny_base/block_1_conv")(_images())
    assert result.layer == "tiny_base/block_1_conv" and not result.flat.any()
    assert GradCAM(model).layer.name == "tiny_base/block_2_conv"  # default: last spatial, inside the base


def test_model_without_conv_layer():
    model = tiny_mlp()
    with pytest.raises(NoSpatialLayerError, match="gradcam needs a convolutional layer") as info:
        GradCAM(model)
    assert isinstance(info.value, LayerError) and info.value.reason == NoSpatialLayerError.NO_SPATIAL
    for name, cls in METHODS.items():  # every class activation map names itself and says what to use instead
        if issubclass(cls, LayerAttribution):
            with pytest.raises(NoSpatialLayerError, match=rf"^{re.escape(name)} needs a .*Use a gradient method"):
                cls(model)
    assert info.value.last_layer is None
    assert Saliency(model)(_images()).heatmap.shape == (2, 16, 16)


def _eager(explainer):
    """The explainer running its own Python code untraced (as tests/test_applications.py's ``uncompiled``): on a
    real network, a trace costs seconds; the compiled path is checked on the tiny models above, and through
    MobileNetV3Small by test_applications.py's report."""
    explainer._compiled = explainer._maps_at_input_size
    return explainer


def test_default_target_layer_skips_mobilenetv3s_1x1_top():
    """MobileNetV3's classifier top is 1x1 convolutions after global pooling: Grad-CAM there is flat."""
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(64, 64, 3), classes=3)
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    rows = layer_table(model)
    top = [r for r in rows if r.name in ("conv_2", "logits")]
    assert [(r.type, r.output_shape[1:3]) for r in top] == [("Conv2D", (1, 1))] * 2
    info = default_target_layer(model)
    assert info.output_shape[1:3] == (2, 2)  # the last conv block, 64 / 32 pixels
    later = rows[[r.name for r in rows].index(info.name) + 1 :]
    assert all(not r.is_spatial or r.output_shape[1:3] == (1, 1) for r in later)
    result = _eager(GradCAM(model))(x)
    assert result.layer == info.name and not result.flat.any()
    assert _eager(GradCAM(model, layer="logits"))(x).flat.all()  # a 1x1 layer can still be asked for: flat


def test_default_target_layer_rules_on_tiny_models():
    def classifier(shape, *layers):
        return keras.Sequential(
            [keras.Input(shape), *layers, L.GlobalAveragePooling2D(), L.Dense(2, activation="softmax")]
        )

    padded = classifier((8, 8, 3), L.Conv2D(4, 3, padding="same", name="conv"), L.ZeroPadding2D(name="pad"))
    assert default_target_layer(padded).name == "conv"  # padding shifts the map against the image
    free_size = classifier((None, None, 3), L.Conv2D(4, 3, name="conv"))
    assert default_target_layer(free_size).name == "conv"  # a free height and width count as larger than 1x1
    pooled = classifier((8, 8, 3), L.Conv2D(4, 3, name="conv"), L.MaxPooling2D(name="pool"), L.Conv2D(4, 3, name="c2"))
    assert [r.output_shape[1:3] for r in layer_table(pooled)[:3]] == [(6, 6), (3, 3), (1, 1)]
    assert default_target_layer(pooled).name == "pool"
    inp = keras.Input((4, 4, 3))
    trunk = L.Conv2D(4, 3, padding="same", name="trunk")(inp)
    branch = L.GlobalAveragePooling2D()(L.Conv2D(4, 3, padding="same", name="branch")(trunk))  # the last 4x4 layer
    pooled = L.Flatten()(L.MaxPooling2D(4, name="pool")(trunk))
    branched = keras.Model(inp, L.Dense(2, activation="softmax")(L.Concatenate()([branch, pooled])))
    assert [r.name for r in layer_table(branched) if r.is_spatial and r.output_shape[1:3] != (1, 1)][-1] == "branch"
    assert default_target_layer(branched).name == "trunk"  # every path goes through it, not through "branch"
    one_pixel = classifier((1, 1, 3), L.Conv2D(4, 1, name="conv"))
    with pytest.raises(
        NoSpatialLayerError, match=r"gradcam needs a convolutional layer.*every spatial layer.*1x1.*'conv'"
    ) as info:
        GradCAM(one_pixel)
    assert (info.value.reason, info.value.last_layer) == (NoSpatialLayerError.ONLY_1X1, "conv")
    assert GradCAM(one_pixel, layer="conv")(np.ones((1, 1, 1, 3), np.float32)).flat.all()


def test_bad_layer_and_class():
    model = tiny_sequential()
    with pytest.raises(LayerError, match="out of range"):
        GradCAM(model, layer=40)
    with pytest.raises(LayerError, match="without height and width"):
        GradCAM(model, layer="hidden")
    with pytest.raises(ExplainError, match="Class index 3 is out of range"):
        GradCAM(model)(_images(), class_index=3)


def test_flat_heatmap_is_reported_not_nan():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            L.Conv2D(2, 3, name="conv"),
            L.GlobalAveragePooling2D(),
            L.Dense(2, kernel_initializer="zeros", activation="softmax"),
        ]
    )
    for method in (Saliency, GradCAM):
        result = method(model)(_images())
        assert result.flat.all() and (result.heatmap == 0).all()


def test_callers_model_is_not_changed():
    model = tiny_sequential()
    before = [w.copy() for w in model.get_weights()]
    for name in ("gradcam", "saliency"):
        METHODS[name](model)(_images())
    assert model.layers[-1].activation.__name__ == "softmax" and len(model.outputs) == 1
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_normalize_maps_guards():
    raw = np.array([[[1.0, 2.0], [3.0, np.nan]], [[5.0, 5.0], [5.0, 5.0]], [[np.inf, np.nan], [np.nan, np.nan]]])
    maps, flat = normalize_maps(raw)
    assert list(flat) == [False, True, True]
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


# --------------------------------------------------------------------------- CLI
def test_cli_overlay_and_npy(saved_models, tmp_path, capsys):
    out, npy = tmp_path / "o.png", tmp_path / "h.npy"
    img = SAMPLES / "fashion_mnist_9_ankle_boot.png"
    assert main([str(saved_models["gray"]), str(img), "--method", "gradcam", "--out", str(out), "--npy", str(npy)]) == 0
    heat = np.load(npy)
    assert heat.shape == (28, 28) and heat.dtype == np.float32 and 0 <= heat.min() and heat.max() <= 1
    assert out.stat().st_size > 0 and "Explained class" in capsys.readouterr().out


def test_cli_all_methods_side_by_side(saved_models, tmp_path, capsys):
    out = tmp_path / "all.png"
    assert (
        main(
            [str(saved_models["sequential"]), str(SAMPLES / "photo_chelsea.jpg"), "--method", "all", "--out", str(out)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert all(name in printed for name in universal_methods()) and "attention_rollout" not in printed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--class", "7"], "Class index 7 is out of range"),
        (["--class", "dog"], "No class named 'dog'"),
        (["--layer", "nope"], "No such layer: 'nope'"),
        (["--layer", "gap"], "without height and width"),
    ],
)
def test_cli_errors_exit_2(saved_models, png_path, tmp_path, capsys, extra, message):
    out = tmp_path / "x.png"
    code = main([str(saved_models["sequential"]), str(png_path), "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("python -m explain.attribute: error:") and message in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_cli_bad_method_is_a_usage_error(saved_models, png_path):
    with pytest.raises(SystemExit) as e:
        main([str(saved_models["sequential"]), str(png_path), "--method", "magic"])
    assert e.value.code == 2


def test_nested_gradcam_matches_a_hand_written_tape_through_the_base():
    import tensorflow as tf

    model = tiny_nested()
    x = tf.constant(_images(3))
    base = model.get_layer("tiny_base")
    sub = keras.Model(base.inputs, [base.get_layer("block_1_conv").output, base.output])
    dense = model.get_layer("predictions")
    with tf.GradientTape() as tape:
        tape.watch(x)
        a, features = sub(x)
        logits = tf.matmul(tf.reduce_mean(features, axis=(1, 2)), dense.kernel) + dense.bias
        score = logits[:, 2]
    grads = tape.gradient(score, a).numpy()
    cam = np.maximum((a.numpy() * grads.mean(axis=(1, 2))[:, None, None, :]).sum(-1), 0)
    expected, _ = normalize_maps(cam)  # block_1_conv keeps 16x16
    got = GradCAM(model, layer="tiny_base/block_1_conv")(x.numpy(), class_index=2)
    np.testing.assert_allclose(got.heatmap, expected, atol=1e-5)


def test_real_mobilenetv2_base_nested_in_a_classifier():
    from training.architectures import transfer

    model = transfer((64, 64, 3), 3, base="mobilenetv2", weights=None)
    x = _images(1).repeat(4, axis=1).repeat(4, axis=2)  # 64x64: block_16 is 2x2 (at 32x32, 1x1: a flat map)
    default = GradCAM(model)
    assert default.layer.name.startswith("mobilenetv2_1.00_224/")
    result = _eager(GradCAM(model, layer="mobilenetv2_1.00_224/block_16_project"))(x)
    assert result.heatmap.shape == (1, 64, 64) and not result.flat.any()


def test_cli_lime_with_scores(saved_models, tmp_path, capsys):
    out = tmp_path / "lime.png"
    img = SAMPLES / "fashion_mnist_3_dress.png"
    assert main([str(saved_models["gray"]), str(img), "--method", "lime", "--scores", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "deletion" in printed and "insertion" in printed
    assert out.stat().st_size > 0


def test_lime_boundaries_tints_for_and_against():
    from explain.render.figures import lime_boundaries

    image = np.full((8, 8, 1), 128, np.uint8)
    segments = np.zeros((8, 8), int)
    segments[:, 4:] = 1
    fig = lime_boundaries(image, segments, np.array([2.0, -1.0]), num_features=2)
    drawn = fig.axes[0].images[0].get_array()
    inner_left, inner_right = drawn[100, 50], drawn[100, 170]  # enlarged to 224 px
    assert inner_left[1] > inner_left[0] and inner_right[0] > inner_right[1]
    with pytest.raises(ValueError, match="weights"):
        lime_boundaries(image, segments, np.array([1.0]))


def test_layer_attribution_is_the_cam_family():
    cams = {name for name, cls in METHODS.items() if issubclass(cls, LayerAttribution)}
    assert cams == {
        "gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "guided_gradcam", "scorecam", "faster_scorecam",
        "ablation_cam", "eigencam",
    }  # fmt: skip  (attention rollout: every attention layer, not one target layer)


def test_no_spatial_layer_error_pickles():
    import pickle

    e = NoSpatialLayerError("none here", NoSpatialLayerError.ONLY_1X1, "conv")
    back = pickle.loads(pickle.dumps(e))
    assert (str(back), back.reason, back.last_layer) == ("none here", "only_1x1", "conv")
    with pytest.raises(ValueError, match="Unknown reason"):
        NoSpatialLayerError("x", "no conv")


def test_method_label():
    from explain.metrics.faithfulness import FaithfulnessScores

    assert method_label("saliency") == "saliency"
    assert method_label("gradcam", "conv2d_1") == "gradcam @ conv2d_1"
    assert method_label("gradcam", "conv2d_1", (0.12, 0.81)) == "gradcam @ conv2d_1, deletion 0.120 / insertion 0.810"
    assert method_label("lime", None, (float("nan"), float("nan")), sep="\n") == "lime\nflat heatmap"
    two = np.array([0.25, np.nan])
    scores = FaithfulnessScores(two, two, None, None, None, np.array([False, True]), np.array([0, 0]), "blur")
    assert method_label("gradcam++", "c", scores) == "gradcam++ @ c, deletion 0.250 / insertion 0.250"
    assert method_label("gradcam++", "c", scores, index=1) == "gradcam++ @ c, flat heatmap"
