"""Each attribution method against its formula, computed by hand on tiny models with fixed weights.

The library scales every map to [0, 1] per image (``normalize_maps``), so each hand map is scaled
the same way before comparing; the explained score (``Attribution.score``) is checked against the
hand-computed logit. Every test here was seen to fail against a deliberately wrong formula in the
library (dropped ReLU, alpha = 1, no softmax, no (x - baseline) factor, a seed ignored, ...).
"""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import fix_weights, tiny_functional

from explain.attribution import (
    GradCAM,
    GradCAMPlusPlus,
    GradientInput,
    HiResCAM,
    IntegratedGradients,
    LayerCAM,
    Saliency,
    ScoreCAM,
    SmoothGrad,
    XGradCAM,
    normalize_maps,
)

L = keras.layers
SIZE = 8


def _images(n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, SIZE, SIZE, 3)).astype(np.float32)


def _linear_model() -> keras.Model:
    """Flatten -> Dense(3), linear output: the score is x . w_c + b_c."""
    inp = keras.Input((SIZE, SIZE, 3))
    out = L.Dense(3, name="logits")(L.Flatten()(inp))
    return fix_weights(keras.Model(inp, out), seed=10, scale=30.0)


def _conv_model(channels: int = 5, head: str = "mlp", seed: int = 11) -> keras.Model:
    """Rescaling -> conv_a (relu) -> conv_b (relu, ``channels``, same padding: 8x8) -> head -> 3 logits.

    ``head="mlp"``: Flatten -> Dense(8, tanh) -> Dense(3), so gradients vary over the map;
    ``head="linear"``: Flatten -> Dense(3), so dS/dA is the Dense kernel itself;
    ``head="gap"``: GlobalAveragePooling -> Dense(3).
    """
    inp = keras.Input((SIZE, SIZE, 3))
    x = L.Rescaling(1 / 255)(inp)
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="conv_a")(x)
    x = L.Conv2D(channels, 3, padding="same", activation="relu", name="conv_b")(x)
    if head == "gap":
        x = L.GlobalAveragePooling2D()(x)
    else:
        x = L.Flatten()(x)
    if head == "mlp":
        x = L.Dense(8, activation="tanh")(x)
    out = L.Dense(3, name="logits")(x)
    return fix_weights(keras.Model(inp, out), seed=seed, scale=2.0)


def _activations(model: keras.Model, x: np.ndarray, layer: str = "conv_b") -> np.ndarray:
    return keras.Model(model.inputs[0], model.get_layer(layer).output)(x).numpy().astype(np.float64)


# -- Integrated Gradients ----------------------------------------------------------------------------


def test_integrated_gradients_on_a_linear_model_is_x_times_w():
    """For S(x) = x . w + b and a black baseline, IG is exactly (x - 0) * w at any number of steps."""
    model = _linear_model()
    x = _images()
    kernel, bias = (w.astype(np.float64) for w in model.get_layer("logits").get_weights())
    w = kernel[:, 2].reshape(SIZE, SIZE, 3)
    expected, flat = normalize_maps(np.abs(x * w).sum(axis=-1))
    assert not flat.any()
    for steps in (1, 5):
        got = IntegratedGradients(model, steps=steps)(x, class_index=2)
        np.testing.assert_allclose(got.heatmap, expected, atol=1e-5)
        np.testing.assert_allclose(got.score, x.reshape(len(x), -1) @ kernel[:, 2] + bias[2], rtol=1e-4)


def test_integrated_gradients_completeness_on_a_monotone_network():
    """Attributions sum to S(x) - S(baseline) within 1% (Sundararajan et al. 2017, proposition 1).

    All weights are positive and the pixels non-negative, so every attribution is >= 0 and the raw
    map (|attribution| summed over channels) sums to the signed attributions' total.
    """
    inp = keras.Input((SIZE, SIZE, 3))
    h = L.Dense(6, activation="tanh")(L.Flatten()(inp))
    model = keras.Model(inp, L.Dense(2)(h))
    rng = np.random.default_rng(3)
    top = (0, 1.2e-4), (0, 0.1), (0, 2.0), (0, 0.1)  # hidden pre-activations about 1.5: tanh is curved
    model.set_weights(
        [rng.uniform(*r, w.shape).astype(np.float32) for r, w in zip(top, model.get_weights(), strict=True)]
    )
    x = _images(2, seed=4)
    method = IntegratedGradients(model, steps=32)
    raw, cls, score = method._raw_maps(tf.constant(x), tf.constant([1, 1], tf.int64))
    total = raw.numpy().sum(axis=(1, 2))
    f = model.predict(np.concatenate([x, np.zeros_like(x[:1])]), verbose=0)[:, 1].astype(np.float64)
    gain = f[:2] - f[2]
    hidden = keras.Model(inp, h).predict(x, verbose=0)
    assert 0.5 < hidden.min() and hidden.max() < 0.99  # curved, not saturated
    np.testing.assert_allclose(total, gain, rtol=0.01)
    np.testing.assert_allclose(score.numpy(), f[:2], rtol=1e-5)
    assert np.array_equal(cls.numpy(), [1, 1])


# -- Grad-CAM ----------------------------------------------------------------------------------------


def test_gradcam_equals_a_hand_written_gradient_tape():
    model = _conv_model()
    x = _images()
    probe = keras.Model(model.inputs[0], [model.get_layer("conv_b").output, model.output])
    with tf.GradientTape() as tape:
        a, logits = probe(tf.constant(x))
        score = logits[:, 0]
    grads = tape.gradient(score, a).numpy().astype(np.float64)
    a = a.numpy().astype(np.float64)
    linear = np.einsum("bhwk,bk->bhw", a, grads.mean(axis=(1, 2)))
    assert (linear < 0).any() and (linear > 0).any()  # the ReLU matters on these images
    expected, _ = normalize_maps(np.maximum(linear, 0.0))  # conv_b is 8x8 like the input: no resizing
    got = GradCAM(model, layer="conv_b")(x, class_index=0)
    np.testing.assert_allclose(got.heatmap, expected, atol=1e-5)
    np.testing.assert_allclose(got.score, logits[:, 0].numpy(), rtol=1e-5)


# -- Grad-CAM++ --------------------------------------------------------------------------------------


def _gradcam_pp_by_hand(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Chattopadhyay et al. 2018, eq. 19 (exponential score): alpha = g^2 / (2 g^2 + sum_ab A_ab g^3),
    w_k = sum_ij alpha_ijk ReLU(g_ijk), map = ReLU(sum_k w_k A_k). ``a``, ``g``: (B, h, w, K)."""
    sum_a = a.sum(axis=(1, 2), keepdims=True)
    alpha = g**2 / (2 * g**2 + sum_a * g**3)
    weights = (alpha * np.maximum(g, 0.0)).sum(axis=(1, 2))
    return np.maximum(np.einsum("bhwk,bk->bhw", a, weights), 0.0)


def test_gradcam_plus_plus_weights_computed_by_hand():
    """Target conv -> Flatten -> Dense: dS/dA is the Dense kernel's column, no tape needed."""
    model = _conv_model(head="linear", seed=12)
    x = _images()
    a = _activations(model, x)
    kernel, bias = (w.astype(np.float64) for w in model.get_layer("logits").get_weights())
    g = np.broadcast_to(kernel[:, 1].reshape(1, SIZE, SIZE, -1), a.shape)
    assert (g > 0).any() and (g < 0).any() and np.all(g != 0)
    expected, flat = normalize_maps(_gradcam_pp_by_hand(a, g))
    assert not flat.any()
    got = GradCAMPlusPlus(model, layer="conv_b")(x, class_index=1)
    np.testing.assert_allclose(got.heatmap, expected, atol=1e-4)
    np.testing.assert_allclose(got.score, a.reshape(len(x), -1) @ kernel[:, 1] + bias[1], rtol=1e-4)
    # ... and not Grad-CAM's map: positive-gradient weighting changes the weights here.
    plain = GradCAM(model, layer="conv_b")(x, class_index=1)
    assert np.abs(plain.heatmap - got.heatmap).max() > 0.05


# -- HiResCAM, LayerCAM, XGrad-CAM (the CAM family: only the weighting differs) -----------------------


def _linear_head_case(cls: int = 1, seed: int = 12):
    """Target conv -> Flatten -> Dense: ``A`` (B, 8, 8, K) and ``g = dS/dA``, the Dense kernel's column."""
    model = _conv_model(head="linear", seed=seed)
    x = _images()
    a = _activations(model, x)
    kernel, _ = (w.astype(np.float64) for w in model.get_layer("logits").get_weights())
    g = np.broadcast_to(kernel[:, cls].reshape(1, SIZE, SIZE, -1), a.shape)
    return model, x, a, g


def test_hirescam_is_each_positions_contribution_on_a_flatten_head():
    """With a linear head, S = sum_ijk W_ijk A_ijk + b: HiResCAM is ReLU(sum_k W_k A_k), exactly (and it
    is not Grad-CAM there). Seen to fail with the gradient averaged over the map first."""
    model, x, a, g = _linear_head_case()
    expected, flat = normalize_maps(np.maximum((a * g).sum(axis=-1), 0.0))
    assert not flat.any()
    got = HiResCAM(model, layer="conv_b")(x, class_index=1)
    np.testing.assert_allclose(got.heatmap, expected, atol=1e-4)
    assert np.abs(GradCAM(model, layer="conv_b")(x, class_index=1).heatmap - got.heatmap).max() > 0.05


def test_hirescam_equals_gradcam_when_the_gradients_are_constant_over_the_map():
    """GlobalAveragePooling -> Dense: dS/dA_ijk = W_k / (h w) at every position, so both maps agree."""
    model = _conv_model(head="gap", seed=13)
    x = _images()
    np.testing.assert_allclose(
        HiResCAM(model, layer="conv_b")(x, class_index=2).heatmap,
        GradCAM(model, layer="conv_b")(x, class_index=2).heatmap,
        atol=1e-5,
    )


def test_layercam_weights_each_position_by_its_positive_gradient():
    """ReLU(sum_k ReLU(g_ijk) A_ijk); seen to fail without the inner ReLU (that is HiResCAM)."""
    model, x, a, g = _linear_head_case(cls=0)
    expected, _ = normalize_maps(np.maximum((np.maximum(g, 0.0) * a).sum(axis=-1), 0.0))
    got = LayerCAM(model, layer="conv_b")(x, class_index=0)
    np.testing.assert_allclose(got.heatmap, expected, atol=1e-4)
    assert np.abs(HiResCAM(model, layer="conv_b")(x, class_index=0).heatmap - got.heatmap).max() > 0.05


def test_xgradcam_weights_are_activation_weighted_gradients():
    """w_k = sum_ij A_ijk g_ijk / sum_ij A_ijk; map = ReLU(sum_k w_k A_k). Seen to fail with the plain mean."""
    model, x, a, g = _linear_head_case(cls=2)
    total = a.sum(axis=(1, 2))
    w = np.where(total > 1e-7, (a * g).sum(axis=(1, 2)) / np.where(total > 1e-7, total, 1.0), 0.0)
    expected, _ = normalize_maps(np.maximum(np.einsum("bhwk,bk->bhw", a, w), 0.0))
    got = XGradCAM(model, layer="conv_b")(x, class_index=2)
    np.testing.assert_allclose(got.heatmap, expected, atol=1e-4)
    assert np.abs(GradCAM(model, layer="conv_b")(x, class_index=2).heatmap - got.heatmap).max() > 0.05


def test_gradient_x_input_on_a_linear_model_is_each_pixels_contribution():
    """S = x . w + b: the map is |sum_c x_c w_c|. Seen to fail without the input factor (saliency)."""
    model = _linear_model()
    x = _images()
    kernel, _ = (w.astype(np.float64) for w in model.get_layer("logits").get_weights())
    w = kernel[:, 1].reshape(SIZE, SIZE, 3)
    expected, _ = normalize_maps(np.abs((x * w).sum(axis=-1)))
    np.testing.assert_allclose(GradientInput(model)(x, class_index=1).heatmap, expected, atol=1e-5)


# -- Score-CAM ---------------------------------------------------------------------------------------


def _scorecam_by_hand(model: keras.Model, x: np.ndarray, cls: int) -> tuple[np.ndarray, np.ndarray]:
    """Wang et al. 2020: mask M_k = A_k scaled to [0, 1]; p_k = softmax(model(x * M_k))[cls];
    map = ReLU(sum_k softmax_k(p)_k A_k). Returns ``(maps (B, H, W), p (B, K))``."""
    a = _activations(model, x)  # 8x8 like the input: the bilinear upsampling is the identity
    lo, hi = a.min(axis=(1, 2), keepdims=True), a.max(axis=(1, 2), keepdims=True)
    masks = np.where(hi > lo, (a - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0)
    maps, probs = [], []
    for xi, mi, ai in zip(x, masks, a, strict=True):
        masked = (xi[None] * np.moveaxis(mi, -1, 0)[..., None]).astype(np.float32)  # (K, H, W, C)
        logits = model(masked).numpy().astype(np.float64)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        p = (e / e.sum(axis=1, keepdims=True))[:, cls]
        w = np.exp(p - p.max()) / np.exp(p - p.max()).sum()
        maps.append(np.maximum(np.einsum("hwk,k->hw", ai, w), 0.0))
        probs.append(p)
    return np.stack(maps), np.stack(probs)


@pytest.mark.parametrize("mask_batch", [64, 7])
def test_scorecam_weights_are_a_softmax_of_masked_input_probabilities(mask_batch):
    """70 channels: more than one batch of masks (64 by default; 7 leaves a partial last batch)."""
    model = _conv_model(channels=70, head="gap", seed=13)
    dense = model.get_layer("logits")
    dense.set_weights([w * 10 for w in dense.get_weights()])  # confident: masking moves p from 0.05 to 0.98
    x = _images(2)
    expected_raw, probs = _scorecam_by_hand(model, x, cls=0)
    assert probs.shape == (2, 70) and (probs.max(axis=1) - probs.min(axis=1)).min() > 0.5
    expected, flat = normalize_maps(expected_raw)
    assert not flat.any()
    got = ScoreCAM(model, layer="conv_b", mask_batch=mask_batch)(x, class_index=0)
    np.testing.assert_allclose(got.heatmap, expected, atol=1e-4)
    np.testing.assert_allclose(got.score, model(x).numpy()[:, 0], rtol=1e-4)


# -- Saliency and SmoothGrad -------------------------------------------------------------------------


def _saliency_by_hand(model: keras.Model, x: np.ndarray, cls: int) -> tuple[np.ndarray, np.ndarray]:
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        score = model(xt)[:, cls]
    grads = tape.gradient(score, xt).numpy().astype(np.float64)
    return normalize_maps(np.abs(grads).max(axis=-1))[0], score.numpy()


def test_saliency_is_the_largest_absolute_gradient_over_channels():
    model = _conv_model()
    x = _images()
    expected, score = _saliency_by_hand(model, x, cls=1)
    got = Saliency(model)(x, class_index=1)
    np.testing.assert_allclose(got.heatmap, expected, atol=1e-5)
    np.testing.assert_allclose(got.score, score, rtol=1e-5)


def test_smoothgrad_with_one_sample_and_no_noise_is_saliency():
    model = _conv_model()
    x = _images()
    expected, score = _saliency_by_hand(model, x, cls=2)
    got = SmoothGrad(model, samples=1, noise=0.0)(x, class_index=2)
    np.testing.assert_allclose(got.heatmap, expected, atol=1e-5)
    np.testing.assert_allclose(got.heatmap, Saliency(model)(x, class_index=2).heatmap, atol=1e-6)
    np.testing.assert_allclose(got.score, score, rtol=1e-5)


def test_smoothgrad_is_the_mean_absolute_gradient_over_seeded_noise():
    """The hand average of |gradient| over the same stateless noise draws (seed, sample index)."""
    model = _conv_model()
    x = _images(2)
    total = np.zeros(x.shape)
    for i in range(3):
        noise = tf.random.stateless_normal(x.shape, seed=[5, i], stddev=0.1 * 255.0).numpy()
        xt = tf.constant(x + noise)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            score = model(xt)[:, 0]
        total += np.abs(tape.gradient(score, xt).numpy())
    expected, _ = normalize_maps((total / 3).max(axis=-1))
    got = SmoothGrad(model, samples=3, noise=0.1, seed=5)(x, class_index=0)
    np.testing.assert_allclose(got.heatmap, expected, atol=1e-5)


def test_smoothgrad_same_seed_same_map_other_seed_other_map():
    model = _conv_model()
    x = _images(2)
    first = SmoothGrad(model, samples=3, seed=7)(x).heatmap
    again = SmoothGrad(model, samples=3, seed=7)(x).heatmap
    other = SmoothGrad(model, samples=3, seed=8)(x).heatmap
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3


# -- parameter checks --------------------------------------------------------------------------------

BAD = [
    (IntegratedGradients, {"steps": 0}, "IntegratedGradients: steps must be at least 1, got 0."),
    (IntegratedGradients, {"steps": -3}, "IntegratedGradients: steps must be at least 1, got -3"),
    (IntegratedGradients, {"steps": 2.5}, "IntegratedGradients: steps must be a whole number"),
    (SmoothGrad, {"samples": 0}, "SmoothGrad: samples must be at least 1, got 0."),
    (SmoothGrad, {"noise": -0.1}, "SmoothGrad: noise must be a finite number of at least 0"),
    (SmoothGrad, {"noise": float("nan")}, "SmoothGrad: noise must be a finite number"),
    (SmoothGrad, {"seed": 1.5}, "SmoothGrad: seed must be a whole number, got 1.5."),
    (ScoreCAM, {"mask_batch": 0}, "ScoreCAM: mask_batch must be at least 1, got 0."),
    (ScoreCAM, {"batch_size": 0}, "ScoreCAM: batch_size must be at least 1, got 0."),
    (GradCAM, {"batch_size": 0}, "GradCAM: batch_size must be at least 1, got 0."),
    (GradCAMPlusPlus, {"batch_size": -1}, "GradCAMPlusPlus: batch_size must be at least 1, got -1."),
    (Saliency, {"batch_size": 0}, "Saliency: batch_size must be at least 1, got 0."),
    (SmoothGrad, {"batch_size": 0}, "SmoothGrad: batch_size must be at least 1, got 0."),
    (IntegratedGradients, {"batch_size": True}, "IntegratedGradients: batch_size must be a whole number"),
]


@pytest.mark.parametrize(("cls", "kwargs", "message"), BAD, ids=[f"{c.__name__}-{k}" for c, k, _ in BAD])
def test_bad_parameters_raise_a_value_error_naming_them(cls, kwargs, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        cls(tiny_functional(), **kwargs)


def test_smallest_allowed_parameters_give_informative_maps():
    model = _conv_model()
    x = _images(2)
    for method in (
        IntegratedGradients(model, steps=1, batch_size=1),
        SmoothGrad(model, samples=1, noise=0.0, batch_size=1),
        ScoreCAM(model, layer="conv_b", mask_batch=1, batch_size=1),
    ):
        result = method(x)
        assert np.isfinite(result.heatmap).all() and not result.flat.any()
