"""Eigen-CAM, Ablation-CAM, Faster Score-CAM and GradientSHAP against their formulas, computed by hand on
tiny models with fixed weights (the style of test_method_maths.py).

Every numeric test here was seen to fail against a deliberately wrong formula in the library: Eigen-CAM
on the second principal component, without centring, without the sign convention, without the ReLU;
Ablation-CAM dividing by y_c instead of |y_c|, with the weights' sign flipped, ablating by keeping only
channel k, without the ReLU; Faster Score-CAM keeping the channels of largest mean or of smallest
spread, softmaxing the kept channels' raw activations; GradientSHAP without the (x - x') factor, with
alpha = 1, with the baseline ignored, with the channel sum taken of absolute values.
"""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import fix_weights, tiny_functional, tiny_nested, tiny_sequential, tiny_sigmoid

from explain import LayerError
from explain.attribution import ScoreCAM, normalize_maps
from explain.attribution.ablation_cam import AblationCAM
from explain.attribution.eigencam import EigenCAM
from explain.attribution.faster_scorecam import FasterScoreCAM
from explain.attribution.gradient_shap import GradientSHAP

L = keras.layers
SIZE = 8


def _images(n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, SIZE, SIZE, 3)).astype(np.float32)


def _conv_model(channels: int = 5, head: str = "mlp", seed: int = 11) -> keras.Model:
    """Rescaling -> conv_a (relu) -> conv_b (relu, ``channels``, 8x8) -> head -> 3 logits.

    ``head="mlp"``: Flatten -> Dense(8, tanh) -> Dense(3); ``"linear"``: Flatten -> Dense(3);
    ``"gap"``: GlobalAveragePooling -> Dense(3).
    """
    inp = keras.Input((SIZE, SIZE, 3))
    x = L.Rescaling(1 / 255)(inp)
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="conv_a")(x)
    x = L.Conv2D(channels, 3, padding="same", activation="relu", name="conv_b")(x)
    x = L.GlobalAveragePooling2D()(x) if head == "gap" else L.Flatten()(x)
    if head == "mlp":
        x = L.Dense(8, activation="tanh", name="hidden")(x)
    out = L.Dense(3, name="logits")(x)
    return fix_weights(keras.Model(inp, out), seed=seed, scale=2.0)


def _linear_model() -> keras.Model:
    """Flatten -> Dense(3), linear output: the score is x . w_c + b_c."""
    inp = keras.Input((SIZE, SIZE, 3))
    out = L.Dense(3, name="logits")(L.Flatten()(inp))
    return fix_weights(keras.Model(inp, out), seed=10, scale=30.0)


def _activations(model: keras.Model, x: np.ndarray, layer: str = "conv_b") -> np.ndarray:
    return keras.Model(model.inputs[0], model.get_layer(layer).output)(x).numpy().astype(np.float64)


def _raw(method, x, cls):
    raw, got_cls, score = method.raw_maps(x, class_index=cls)
    return raw.astype(np.float64), got_cls, score


# -- Eigen-CAM -------------------------------------------------------------------------------------


def _eigencam_by_hand(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pytorch-grad-cam's get_2d_projection with the sign convention: per image, rows (h*w, K) centred
    over the positions, projected on VT[0] of np.linalg.svd; the sign making the projection correlate
    positively with the mean activation over channels; then ReLU. Returns ``(maps, s0 / s1)``."""
    maps, gaps = [], []
    for ai in a:
        rows = ai.reshape(-1, ai.shape[-1])
        centred = rows - rows.mean(axis=0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        projection = centred @ vt[0]
        if (projection * rows.mean(axis=1)).sum() < 0:
            projection = -projection
        maps.append(np.maximum(projection, 0.0).reshape(ai.shape[:2]))
        gaps.append(s[0] / s[1])
    return np.stack(maps), np.array(gaps)


def test_eigencam_is_the_first_principal_component_of_the_feature_maps():
    model = _conv_model(channels=6, head="linear", seed=21)
    x = _images(8)
    a = _activations(model, x)
    expected, gaps = _eigencam_by_hand(a)
    assert gaps.min() > 1.1  # the first component is well separated: its direction is determined
    raw, cls, score = _raw(EigenCAM(model, layer="conv_b"), x, 1)
    np.testing.assert_allclose(raw, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())
    assert (expected == 0).any()  # the ReLU matters
    logits = model(x).numpy()
    np.testing.assert_array_equal(cls, [1] * 8)
    np.testing.assert_allclose(score, logits[:, 1], rtol=1e-5)
    # class-agnostic: the same map for every class; the top class and its score are still reported
    heat = EigenCAM(model, layer="conv_b")(x)
    np.testing.assert_allclose(heat.heatmap, normalize_maps(expected)[0], atol=1e-4)
    np.testing.assert_array_equal(heat.class_index, logits.argmax(axis=1))
    np.testing.assert_allclose(EigenCAM(model, layer="conv_b")(x, class_index=2).heatmap, heat.heatmap, atol=1e-6)


def test_eigencam_sign_convention_on_random_feature_maps():
    """64 random non-negative feature maps: the map always equals the hand projection with the sign that
    correlates with the mean activation, though the raw SVD's sign is the other one for some of them."""
    a = np.maximum(np.random.default_rng(6).normal(size=(64, 4, 5, 6)), 0.0)
    expected, gaps = _eigencam_by_hand(a)
    keep = gaps > 1.05  # a well-determined first component
    assert keep.sum() > 40
    got = EigenCAM.cam(tf.constant(a, tf.float32)).numpy()
    np.testing.assert_allclose(got[keep], expected[keep], atol=1e-4)
    rows = a.reshape(64, 20, 6)
    centred = rows - rows.mean(axis=1, keepdims=True)
    _, _, v = tf.linalg.svd(tf.constant(centred, tf.float32), full_matrices=False)
    raw_sign = np.einsum("bnk,bk->bn", centred, v.numpy()[:, :, 0].astype(np.float64))
    assert ((raw_sign * rows.mean(axis=2)).sum(axis=1)[keep] < 0).sum() >= 3  # the convention is exercised


def test_eigencam_of_a_constant_layer_is_flat():
    """A 1x1 map centred is all zeros: a flat map, not NaN."""
    inp = keras.Input((SIZE, SIZE, 3))
    x = L.Conv2D(4, SIZE, name="whole")(inp)  # valid padding: a 1x1 map
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(x)))
    result = EigenCAM(model, layer="whole")(_images(2))
    assert result.flat.all() and np.isfinite(result.heatmap).all()


# -- Ablation-CAM ----------------------------------------------------------------------------------


def _ablation_cam_by_hand(a: np.ndarray, y: np.ndarray, ablated: np.ndarray) -> np.ndarray:
    """w_k = (y_c - y_c^k) / |y_c|; map = ReLU(sum_k w_k A_k). ``a`` (B, h, w, K), ``y`` (B,), ``ablated`` (B, K)."""
    weights = (y[:, None] - ablated) / np.abs(y)[:, None]
    return np.maximum(np.einsum("bhwk,bk->bhw", a, weights), 0.0)


def test_ablation_cam_on_a_linear_head_weights_each_channel_by_its_contribution():
    """Target conv -> Flatten -> Dense: y_c - y_c^k = sum_ij W_ijkc A_ijk exactly, no forward pass needed.
    Both signs of y_c occur, so |y_c| (not y_c) is checked; raw maps compared, so the scale is too."""
    model = _conv_model(channels=5, head="linear", seed=24)
    x = _images(4)
    a = _activations(model, x)
    kernel, bias = (w.astype(np.float64) for w in model.get_layer("logits").get_weights())
    signs, clipped = set(), False
    for cls in range(3):
        w = kernel[:, cls].reshape(SIZE, SIZE, -1)
        y = a.reshape(len(x), -1) @ kernel[:, cls] + bias[cls]
        signs.update(np.sign(y))
        contribution = (a * w).sum(axis=(1, 2))  # (B, K): y_c - y_c^k
        expected = _ablation_cam_by_hand(a, y, y[:, None] - contribution)
        raw, _, score = _raw(AblationCAM(model, layer="conv_b"), x, cls)
        np.testing.assert_allclose(raw, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())
        np.testing.assert_allclose(score, y, rtol=1e-4, atol=1e-4)
        assert not normalize_maps(expected)[1].any()
        clipped |= bool((expected == 0).any())
    assert signs == {-1.0, 1.0} and clipped  # both signs of y_c; the ReLU matters


def _head_from(model: keras.Model, after: str, t: tf.Tensor) -> np.ndarray:
    """Run the layers of a chain model after layer ``after`` on ``t``."""
    names = [layer.name for layer in model.layers]
    for layer in model.layers[names.index(after) + 1 :]:
        t = layer(t)
    return t.numpy().astype(np.float64)


@pytest.mark.parametrize("mask_batch", [64, 2])
def test_ablation_cam_zeroes_each_channel_and_runs_the_rest_again(mask_batch):
    """A tanh MLP head: the ablated scores from the head's layers run by hand on A with channel k zeroed.
    mask_batch=2 on 5 channels leaves a partial last batch."""
    model = _conv_model(channels=5, head="mlp", seed=13)
    x = _images(3)
    a = _activations(model, x)
    y = _head_from(model, "conv_b", tf.constant(a, tf.float32))[:, 0]
    ablated = np.zeros((len(x), 5))
    for k in range(5):
        zeroed = a.copy()
        zeroed[..., k] = 0.0
        ablated[:, k] = _head_from(model, "conv_b", tf.constant(zeroed, tf.float32))[:, 0]
    expected = _ablation_cam_by_hand(a, y, ablated)
    method = AblationCAM(model, layer="conv_b", mask_batch=mask_batch, batch_size=2)
    raw, _, score = _raw(method, x, 0)
    np.testing.assert_allclose(raw, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())
    np.testing.assert_allclose(score, y, rtol=1e-4)
    got = method.ablated_scores(tf.constant(x), tf.constant(a, tf.float32), tf.constant([0, 0, 0], tf.int64))
    np.testing.assert_allclose(got.numpy(), ablated, rtol=1e-4, atol=1e-5)


def test_ablation_cam_keeps_a_skip_connection_around_the_layer():
    """tiny_functional: add(conv_a, conv_b(conv_a)). Ablating conv_b leaves the skip from conv_a whole;
    ablating conv_a zeroes it on both paths. Under preprocess 'tf', so the model's input is x / 127.5 - 1."""
    model = tiny_functional(size=SIZE)
    x = _images(2)
    pre = tf.constant(x / 127.5 - 1.0, tf.float32)
    get = model.get_layer
    a_in = get("conv_a")(get("rescale")(pre))
    logits = get("logits")

    def score(conv_a_out, conv_b_out):
        return logits(get("gap")(get("add")([conv_a_out, conv_b_out]))).numpy().astype(np.float64)[:, 2]

    b_out = get("conv_b")(a_in)
    y = score(a_in, b_out)
    for target in ("conv_b", "conv_a"):
        a = (b_out if target == "conv_b" else a_in).numpy().astype(np.float64)
        ablated = np.zeros((2, 4))
        for k in range(4):
            keep = tf.constant(np.eye(4)[k] == 0, tf.float32)
            if target == "conv_b":
                ablated[:, k] = score(a_in, b_out * keep)
            else:
                ablated[:, k] = score(a_in * keep, get("conv_b")(a_in * keep))
        expected = _ablation_cam_by_hand(a, y, ablated)
        raw, _, got_score = _raw(AblationCAM(model, layer=target, preprocess="tf"), x, 2)
        np.testing.assert_allclose(raw, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())
        np.testing.assert_allclose(got_score, y, rtol=1e-4)


def test_ablation_cam_inside_a_nested_model():
    """tiny_nested: Sequential[base(rescale, conv, pool, conv), gap, dense softmax]; target 'tiny_base/block_1_conv'."""
    model = tiny_nested(size=SIZE)
    x = _images(2)
    base = model.get_layer("tiny_base")
    a = base.get_layer("block_1_conv")(base.get_layer("base_rescale")(tf.constant(x)))
    dense = model.get_layer("predictions")

    def score(t):
        h = model.get_layer("gap")(base.get_layer("block_2_conv")(base.get_layer("block_1_pool")(t)))
        return (h.numpy().astype(np.float64) @ dense.kernel.numpy() + dense.bias.numpy())[:, 1]  # the logit

    y = score(a)
    ablated = np.stack([score(a * tf.constant(np.eye(4)[k] == 0, tf.float32)) for k in range(4)], axis=1)
    expected = _ablation_cam_by_hand(a.numpy().astype(np.float64), y, ablated)
    raw, _, got_score = _raw(AblationCAM(model, layer="tiny_base/block_1_conv"), x, 1)
    np.testing.assert_allclose(raw, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())
    np.testing.assert_allclose(got_score, y, rtol=1e-4)


def test_ablation_cam_refuses_the_input_layer_with_a_layer_error():
    with pytest.raises(LayerError, match="input layer"):
        AblationCAM(tiny_functional(size=SIZE), layer="pixels")


# -- Faster Score-CAM ------------------------------------------------------------------------------


def _scorecam_model() -> keras.Model:
    model = _conv_model(channels=12, head="gap", seed=13)
    dense = model.get_layer("logits")
    dense.set_weights([w * 10 for w in dense.get_weights()])  # confident: masking moves p a lot
    return model


def _scorecam_on(model: keras.Model, x: np.ndarray, a: np.ndarray, channels: np.ndarray, cls: int) -> np.ndarray:
    """Score-CAM restricted to ``channels`` (B, n): masks from those maps, softmax over them only."""
    maps = []
    for xi, ai, ci in zip(x, a, channels, strict=True):
        kept = ai[..., ci]  # (h, w, n); 8x8 like the input: no resizing
        lo, hi = kept.min(axis=(0, 1)), kept.max(axis=(0, 1))
        masks = np.where(hi > lo, (kept - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0)
        logits = model((xi[None] * np.moveaxis(masks, -1, 0)[..., None]).astype(np.float32)).numpy()
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        p = (e / e.sum(axis=1, keepdims=True))[:, cls].astype(np.float64)
        w = np.exp(p - p.max()) / np.exp(p - p.max()).sum()
        maps.append(np.maximum(kept @ w, 0.0))
    return np.stack(maps)


def test_faster_scorecam_with_max_n_at_least_k_is_scorecam():
    model = _scorecam_model()
    x = _images(2)
    plain = ScoreCAM(model, layer="conv_b")(x, class_index=0).heatmap
    for max_n in (12, 100):
        got = FasterScoreCAM(model, layer="conv_b", max_n=max_n)(x, class_index=0).heatmap
        np.testing.assert_allclose(got, plain, atol=1e-6)


def test_faster_scorecam_with_one_channel_is_the_most_varying_channel():
    model = _scorecam_model()
    x = _images(3)
    a = _activations(model, x)
    spread = a.std(axis=(1, 2))
    top = spread.argmax(axis=1)
    assert (top != a.mean(axis=(1, 2)).argmax(axis=1)).any()  # not the channel of largest activation
    expected, flat = normalize_maps(np.maximum(a[np.arange(3), :, :, top], 0.0))
    assert not flat.any()
    got = FasterScoreCAM(model, layer="conv_b", max_n=1)(x, class_index=1)
    np.testing.assert_allclose(got.heatmap, expected, atol=1e-5)


@pytest.mark.parametrize("mask_batch", [64, 2])
def test_faster_scorecam_is_scorecam_on_the_top_channels_by_spread(mask_batch):
    model = _scorecam_model()
    x = _images(2)
    a = _activations(model, x)
    channels = np.argsort(-a.std(axis=(1, 2)), axis=1, kind="stable")[:, :4]
    expected, flat = normalize_maps(_scorecam_on(model, x, a, channels, cls=0))
    assert not flat.any()
    got = FasterScoreCAM(model, layer="conv_b", max_n=4, mask_batch=mask_batch)(x, class_index=0)
    np.testing.assert_allclose(got.heatmap, expected, atol=1e-4)
    np.testing.assert_allclose(got.score, model(x).numpy()[:, 0], rtol=1e-4)
    assert np.abs(got.heatmap - ScoreCAM(model, layer="conv_b")(x, class_index=0).heatmap).max() > 0.05


# -- GradientSHAP ----------------------------------------------------------------------------------


def _linear_case():
    model = _linear_model()
    kernel, bias = (w.astype(np.float64) for w in model.get_layer("logits").get_weights())
    return model, kernel, bias


def test_gradient_shap_on_a_linear_model_with_one_baseline_is_x_minus_baseline_times_w():
    model, kernel, _ = _linear_case()
    x = _images(3)
    baseline = np.random.default_rng(5).uniform(0, 255, (SIZE, SIZE, 3)).astype(np.float32)
    w = kernel[:, 2].reshape(SIZE, SIZE, 3)
    signed = (x - baseline) * w
    expected, flat = normalize_maps(np.abs(signed.sum(axis=-1)))
    assert not flat.any()
    for samples in (1, 4):
        method = GradientSHAP(model, samples=samples, baselines=baseline[None], seed=3)
        np.testing.assert_allclose(method(x, class_index=2).heatmap, expected, atol=1e-5)
        phi = method.attributions(tf.constant(x), tf.constant([2, 2, 2], tf.int64)).numpy()
        np.testing.assert_allclose(phi, signed, rtol=1e-4, atol=1e-3)


def test_gradient_shap_completeness_on_a_linear_model():
    """sum phi = f(x) - (1/n) sum_s f(b_s): with two baselines the mean is f(b1) + (n1/n)(f(b2) - f(b1)) for a
    whole count n1 of draws of b2, and the draws pick each baseline about half the time."""
    model, kernel, bias = _linear_case()
    x = _images(2)
    baselines = np.stack([np.zeros((SIZE, SIZE, 3)), np.full((SIZE, SIZE, 3), 200.0)]).astype(np.float32)
    f = lambda t: t.reshape(len(t), -1).astype(np.float64) @ kernel[:, 0] + bias[0]  # noqa: E731
    fx, fb = f(x), f(baselines)
    n = 64
    method = GradientSHAP(model, samples=n, baselines=baselines)
    phi = method.attributions(tf.constant(x), tf.constant([0, 0], tf.int64))
    mean_fb = fx - phi.numpy().astype(np.float64).sum(axis=(1, 2, 3))
    n1 = n * (mean_fb - fb[0]) / (fb[1] - fb[0])
    np.testing.assert_allclose(n1, np.round(n1), atol=0.02)  # a whole number of draws
    np.testing.assert_allclose(n1[0], n1[1], atol=0.02)  # the draws are shared by the batch
    assert 0.3 * n < n1[0] < 0.7 * n


def test_gradient_shap_is_the_mean_of_gradient_times_difference_over_the_draws():
    """A tanh MLP with noise and the default baselines: the hand average over the method's own draws of
    (x + e - b) * dS/dx(b + alpha (x + e - b)); the draws include black, white and noise baselines."""
    model = _conv_model(seed=14)
    x = _images(2)
    method = GradientSHAP(model, samples=6, noise=0.1, seed=4)
    total = np.zeros(x.shape)
    kinds = set()
    for i in range(6):
        baseline, alpha, noise = (t.numpy() for t in method._draw(tf.constant(i), tf.constant(x.shape[1:])))
        assert 0.0 <= alpha < 1.0 and noise.std() > 10
        kinds.add("black" if (baseline == 0).all() else "white" if (baseline == 255).all() else "noise")
        diff = x + noise - baseline
        point = tf.constant(baseline + alpha * diff)
        with tf.GradientTape() as tape:
            tape.watch(point)
            score = model(point)[:, 1]
        total += tape.gradient(score, point).numpy() * diff
    assert len(kinds) >= 2
    expected, flat = normalize_maps(np.abs((total / 6).sum(axis=-1)))
    assert not flat.any()
    got = method(x, class_index=1)
    np.testing.assert_allclose(got.heatmap, expected, atol=1e-4)
    np.testing.assert_allclose(got.score, model(x).numpy()[:, 1], rtol=1e-5)


def test_gradient_shap_default_baselines_are_black_white_and_noise():
    method = GradientSHAP(_linear_model(), samples=1)
    kinds = []
    for i in range(30):
        baseline, _, noise = (t.numpy() for t in method._draw(tf.constant(i), tf.constant((SIZE, SIZE, 3))))
        assert (noise == 0).all()
        kinds.append("black" if (baseline == 0).all() else "white" if (baseline == 255).all() else "noise")
        assert baseline.min() >= 0 and baseline.max() <= 255
    assert min(kinds.count(k) for k in ("black", "white", "noise")) >= 4


def test_gradient_shap_seeded_and_the_same_in_any_batch():
    model = _conv_model(seed=15)
    x = _images(3)
    first = GradientSHAP(model, samples=4, noise=0.05, seed=7, batch_size=3)(x).heatmap
    one_by_one = GradientSHAP(model, samples=4, noise=0.05, seed=7, batch_size=1)(x).heatmap
    other = GradientSHAP(model, samples=4, noise=0.05, seed=8, batch_size=3)(x).heatmap
    np.testing.assert_allclose(first, one_by_one, atol=1e-5)
    assert np.abs(first - other).max() > 1e-3


def test_gradient_shap_baselines_must_fit_the_images():
    model = _linear_model()
    for bad, what in (
        (np.zeros((2, SIZE, SIZE, 1)), "shape (2, 8, 8, 1)"),
        (np.zeros((SIZE, SIZE)), "shape (8, 8)"),
        (np.zeros((0, SIZE, SIZE, 3)), "shape (0, 8, 8, 3)"),
        (np.zeros((1, SIZE + 1, SIZE, 3)), "shape (1, 9, 8, 3)"),
    ):
        with pytest.raises(
            ValueError, match=r"^GradientSHAP: baselines must be raw-pixel images of shape \(N, 8, 8, 3\) "
        ):
            GradientSHAP(model, baselines=bad)
        with pytest.raises(ValueError, match=re.escape(f"got {what}.")):
            GradientSHAP(model, baselines=bad)
    with pytest.raises(ValueError, match=r"^GradientSHAP: baselines must be finite"):
        GradientSHAP(model, baselines=np.full((SIZE, SIZE, 3), np.nan))
    with pytest.raises(ValueError, match=r"^GradientSHAP: baselines must be an array"):
        GradientSHAP(model, baselines=[np.zeros((SIZE, SIZE, 3)), np.zeros((2, 2))])
    # a model with a free input size: the images must have the baselines' size
    inp = keras.Input((None, None, 3))
    free = keras.Model(inp, L.Dense(2)(L.GlobalAveragePooling2D()(L.Conv2D(2, 3)(inp))))
    method = GradientSHAP(free, samples=2, baselines=np.zeros((SIZE, SIZE, 3)))
    assert method(_images(1)).heatmap.shape == (1, SIZE, SIZE)
    with pytest.raises(ValueError, match="not the size of the baselines"):
        method(np.zeros((1, 10, 10, 3), np.float32))


# -- parameters and the contract -------------------------------------------------------------------

BAD = [
    (EigenCAM, {"batch_size": 0}, "EigenCAM: batch_size must be at least 1, got 0."),
    (AblationCAM, {"mask_batch": 0}, "AblationCAM: mask_batch must be at least 1, got 0."),
    (AblationCAM, {"mask_batch": 1.5}, "AblationCAM: mask_batch must be a whole number"),
    (AblationCAM, {"batch_size": -1}, "AblationCAM: batch_size must be at least 1, got -1."),
    (FasterScoreCAM, {"max_n": 0}, "FasterScoreCAM: max_n must be at least 1, got 0."),
    (FasterScoreCAM, {"max_n": 2.5}, "FasterScoreCAM: max_n must be a whole number"),
    (FasterScoreCAM, {"mask_batch": 0}, "FasterScoreCAM: mask_batch must be at least 1, got 0."),
    (GradientSHAP, {"samples": 0}, "GradientSHAP: samples must be at least 1, got 0."),
    (GradientSHAP, {"noise": -0.1}, "GradientSHAP: noise must be a finite number of at least 0"),
    (GradientSHAP, {"noise": float("inf")}, "GradientSHAP: noise must be a finite number"),
    (GradientSHAP, {"seed": 1.5}, "GradientSHAP: seed must be a whole number, got 1.5."),
    (GradientSHAP, {"batch_size": 0}, "GradientSHAP: batch_size must be at least 1, got 0."),
]


@pytest.mark.parametrize(("cls", "kwargs", "message"), BAD, ids=[f"{c.__name__}-{k}" for c, k, _ in BAD])
def test_bad_parameters_raise_a_value_error_naming_them(cls, kwargs, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        cls(tiny_functional(), **kwargs)


MODELS = {"sequential": tiny_sequential, "functional": tiny_functional, "nested": tiny_nested, "sigmoid": tiny_sigmoid}
FAST = {GradientSHAP: {"samples": 4}, FasterScoreCAM: {"max_n": 2}}


CASES = [(m, name) for m in (EigenCAM, AblationCAM) for name in sorted(MODELS)]
CASES += [(m, name) for m in (FasterScoreCAM, GradientSHAP) for name in ("nested", "sigmoid")]  # slower: two


@pytest.mark.parametrize(("method", "model_name"), CASES, ids=[f"{m.name}-{n}" for m, n in CASES])
def test_contract_on_the_tiny_models(method, model_name):
    """As test_attribution's contract: informative maps in [0, 1], the top class, the logit, the layer."""
    model = MODELS[model_name]()
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    result = method(model, **FAST.get(method, {}))(x)
    assert result.heatmap.shape == (2, 16, 16) and result.heatmap.dtype == np.float32
    assert np.isfinite(result.heatmap).all() and not result.flat.any() and result.heatmap.max() == pytest.approx(1.0)
    probs = keras.ops.convert_to_numpy(model(x, training=False))  # eager: predict() traces (0.1 s a model)
    top = (probs[:, 0] > 0.5).astype(int) if probs.shape[1] == 1 else probs.argmax(1)
    assert np.array_equal(result.class_index, top)
    assert result.method == method.name and result.score_kind == "logit"
    assert (result.layer is None) == (method is GradientSHAP)
