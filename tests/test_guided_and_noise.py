"""Guided backpropagation, Guided Grad-CAM, SquareGrad and VarGrad against their formulas, on tiny
models with fixed weights.

Each numeric test here was seen to fail against a deliberately wrong formula in the library: the
guided ReLU without its ``upstream > 0`` condition (plain gradients), without its ``input > 0`` one
(the deconvnet rule), or with ReLU6's / the leaky ReLU's own derivative replaced by ``input > 0``;
ReLU layers or fused activations left unswapped; Guided Grad-CAM without the upsampling, with
Grad-CAM's gradients taken through the guided ReLUs, or with plain gradients for the guided part;
SquareGrad with ``|g|`` for ``g^2`` or the maximum over channels; VarGrad as the mean (or the mean
square) instead of the variance, or with the seed ignored.
"""

from __future__ import annotations

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import fix_weights

from explain.attribution import GradCAM, Saliency, SmoothGrad, normalize_maps
from explain.attribution.base import TRACE_LOCK
from explain.attribution.guided_backprop import GuidedBackprop, guided_relus
from explain.attribution.guided_gradcam import GuidedGradCAM
from explain.attribution.squaregrad import SquareGrad
from explain.attribution.vargrad import VarGrad

L = keras.layers
SIZE = 8


def _images(n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, SIZE, SIZE, 3)).astype(np.float32)


def _dense(model: keras.Model, name: str) -> tuple[np.ndarray, np.ndarray]:
    kernel, bias = model.get_layer(name).get_weights()
    return kernel.astype(np.float64), bias.astype(np.float64)


def _state(model: keras.Model) -> dict:
    """Every layer's own ``activation`` and ``call`` attributes, by identity."""
    return {
        id(layer): (id(vars(layer).get("activation")), "call" in vars(layer))
        for layer in model._flatten_layers(include_self=True, recursive=True)
    }


# -- Guided backpropagation ----------------------------------------------------------------------------


def _mlp(kind: str, seed: int) -> keras.Model:
    """Rescaling -> Flatten -> h1 (12) -> relu_1 -> h2 (10) -> relu_2 -> logits (3).

    ``kind="relu"``: ReLU fused into h1, then ``Activation("relu")``;
    ``kind="relu6"``: ``ReLU(max_value=6)`` layer after h1, ``ReLU(negative_slope=0.1)`` after h2.
    """
    inp = keras.Input((SIZE, SIZE, 3))
    x = L.Flatten()(L.Rescaling(1 / 255)(inp))
    if kind == "relu":
        x = L.Dense(12, activation="relu", name="h1")(x)
        x = L.Activation("relu")(L.Dense(10, name="h2")(x))
    else:
        x = L.ReLU(max_value=6.0)(L.Dense(12, name="h1")(x))
        x = L.ReLU(negative_slope=0.1)(L.Dense(10, name="h2")(x))
    out = L.Dense(3, name="logits")(x)
    return fix_weights(keras.Model(inp, out), seed=seed, scale=6.0 if kind == "relu6" else 2.0)


def _mlp_by_hand(model: keras.Model, x: np.ndarray, cls: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """``(guided gradient (B, H, W, C), plain gradient)`` of logit ``cls``, backpropagated by hand.

    At each ReLU: ``d_in = f'(z) * ReLU(d_out)`` (guided) or ``f'(z) * d_out`` (plain), with ``f'`` the
    ReLU's own derivative: ``z > 0``; ``0 < z < 6`` for ReLU6; ``1 if z > 0 else 0.1`` for the leaky one.
    """
    (k1, b1), (k2, b2), (k3, _) = (_dense(model, n) for n in ("h1", "h2", "logits"))
    flat = x.reshape(len(x), -1).astype(np.float64) / 255
    z1 = flat @ k1 + b1
    if kind == "relu":
        d1, h1 = (z1 > 0).astype(float), np.maximum(z1, 0)
    else:
        d1, h1 = ((z1 > 0) & (z1 < 6)).astype(float), np.clip(z1, 0, 6)
    z2 = h1 @ k2 + b2
    d2 = (z2 > 0).astype(float) if kind == "relu" else np.where(z2 > 0, 1.0, 0.1)
    if kind == "relu6":
        assert (z1 > 6).any() and (z1 < 0).any() and (z2 < 0).any()  # every branch of the derivatives is used
    out = []
    for guide in (lambda g: np.maximum(g, 0.0), lambda g: g):
        up2 = np.broadcast_to(k3[:, cls], z2.shape)
        up1 = (d2 * guide(up2)) @ k2.T
        grad = ((d1 * guide(up1)) @ k1.T) / 255
        out.append(grad.reshape(x.shape))
    return out[0], out[1]


@pytest.mark.parametrize("kind", ["relu", "relu6"])
def test_guided_backprop_on_an_mlp_by_hand(kind):
    """Fused relu + Activation("relu"); ReLU(max_value=6) + ReLU(negative_slope=0.1): each ReLU's backward
    pass is its own derivative times the positive part of the incoming gradient."""
    model = _mlp(kind, seed=21 if kind == "relu" else 22)
    x = _images()
    guided, plain = _mlp_by_hand(model, x, cls=1, kind=kind)
    method = GuidedBackprop(model)
    raw, cls, score = method.raw_maps(x, class_index=1)
    expected = np.abs(guided).max(axis=-1)
    assert np.abs(expected - np.abs(plain).max(axis=-1)).max() > 0.05 * expected.max()  # guiding matters here
    np.testing.assert_allclose(raw, expected, rtol=1e-4, atol=1e-6 * expected.max())
    np.testing.assert_allclose(method(x, class_index=1).heatmap, normalize_maps(expected)[0], atol=1e-5)
    np.testing.assert_allclose(score, model.predict(x, verbose=0)[:, 1], rtol=1e-5)
    assert np.array_equal(cls, [1, 1, 1])


def _guided_relu_reference(t):
    """The test's own guided ReLU: forward ReLU, backward ``(t > 0) * ReLU(upstream)``."""

    @tf.custom_gradient
    def f(t):
        return tf.nn.relu(t), lambda dy: tf.cast(t > 0, dy.dtype) * tf.nn.relu(dy)

    return f(t)


def _conv_net(guided_twin: bool = False) -> keras.Model:
    """A 'base' of Conv2D(relu), DepthwiseConv2D(relu), SeparableConv2D(relu) and Activation("relu")
    nested in a Sequential with a Dense(relu) head. ``guided_twin``: the same graph with every ReLU
    replaced by the test's own guided one (:func:`_guided_relu_reference`), for the reference."""
    act = _guided_relu_reference if guided_twin else "relu"
    b_in = keras.Input((SIZE, SIZE, 3))
    x = L.Rescaling(1 / 255)(b_in)
    x = L.Conv2D(4, 3, padding="same", activation=act, name="conv")(x)
    x = L.DepthwiseConv2D(3, padding="same", activation=act, name="depthwise")(x)
    x = L.SeparableConv2D(6, 3, padding="same", activation=act, name="separable")(x)
    x = L.Activation(act)(L.Conv2D(5, 3, padding="same", name="conv_b")(x))
    base = keras.Model(b_in, x, name="base")
    base.trainable = False
    model = keras.Sequential(
        [keras.Input((SIZE, SIZE, 3)), base, L.Flatten(), L.Dense(8, activation=act), L.Dense(3, name="logits")]
    )
    return fix_weights(model, seed=31, scale=2.0)


def test_guided_backprop_through_fused_convolutions_in_a_nested_base():
    """Every fused relu (Conv2D, DepthwiseConv2D, SeparableConv2D, Dense) and Activation("relu") in a
    frozen base nested in a Sequential is guided: the map equals the gradient through a twin model built
    with an explicitly guided ReLU and the same weights."""
    model, twin = _conv_net(), _conv_net(guided_twin=True)
    twin.set_weights(model.get_weights())
    x = _images(seed=2)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        score = twin(xt)[:, 2]
    expected = np.abs(tape.gradient(score, xt).numpy()).max(axis=-1)
    got, _, _ = GuidedBackprop(model).raw_maps(x, class_index=2)
    plain, _, _ = Saliency(model).raw_maps(x, class_index=2)
    assert np.abs(expected - plain).max() > 0.05 * expected.max()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * expected.max())


def test_guided_backprop_leaves_the_model_unchanged():
    """After GuidedBackprop and GuidedGradCAM ran, every layer holds its original activation object and
    no ``call`` of its own, and plain gradients (Saliency, Grad-CAM) are what they were."""
    model = _conv_net()
    x = _images(seed=3)
    before = _state(model)
    saliency_before = Saliency(model).raw_maps(x, class_index=0)[0]
    gradcam_before = GradCAM(model, layer="base/conv_b").raw_maps(x, class_index=0)[0]
    GuidedBackprop(model)(x, class_index=0)
    GuidedGradCAM(model, layer="base/conv_b")(x, class_index=0)
    assert _state(model) == before
    np.testing.assert_array_equal(Saliency(model).raw_maps(x, class_index=0)[0], saliency_before)
    np.testing.assert_array_equal(GradCAM(model, layer="base/conv_b").raw_maps(x, class_index=0)[0], gradcam_before)


def test_guided_relus_restores_the_layers_on_error_and_holds_the_trace_lock():
    model = _conv_net()
    before = _state(model)
    seen = {}

    def other_thread():
        seen["acquired"] = TRACE_LOCK.acquire(blocking=False)
        if seen["acquired"]:
            TRACE_LOCK.release()

    with pytest.raises(RuntimeError, match="boom"):
        with guided_relus(model) as n:
            assert n == 5  # conv, depthwise, separable, the Activation and the Dense head
            assert _state(model) != before
            t = threading.Thread(target=other_thread)
            t.start()
            t.join()
            raise RuntimeError("boom")
    assert seen["acquired"] is False
    assert _state(model) == before


def test_guided_backprop_on_mobilenetv2_nested_in_a_sequential():
    """ReLU(6.) layers of a frozen MobileNetV2 base: 35 are swapped; the map is finite, not flat, and not
    the saliency map; the model's plain gradients are unchanged afterwards."""
    base = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=4)
    base.trainable = False
    model = keras.Sequential([keras.Input((32, 32, 3)), base])
    x = np.random.default_rng(5).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    with guided_relus(model) as n:
        assert n == 35
    saliency = Saliency(model).raw_maps(x, class_index=1)[0]
    raw = GuidedBackprop(model).raw_maps(x, class_index=1)[0]
    assert np.isfinite(raw).all() and not normalize_maps(raw)[1].any()
    assert np.abs(raw - saliency).max() > 0.1 * np.abs(saliency).max()
    np.testing.assert_array_equal(Saliency(model).raw_maps(x, class_index=1)[0], saliency)


def test_guided_backprop_without_relus_is_saliency():
    inp = keras.Input((SIZE, SIZE, 3))
    x = L.Conv2D(4, 3, activation="swish")(L.Rescaling(1 / 255)(inp))
    model = fix_weights(keras.Model(inp, L.Dense(3)(L.Flatten()(x))), seed=41)
    x = _images()
    with guided_relus(model) as n:
        assert n == 0
    np.testing.assert_array_equal(
        GuidedBackprop(model).raw_maps(x, class_index=0)[0], Saliency(model).raw_maps(x, class_index=0)[0]
    )


# -- Guided Grad-CAM -----------------------------------------------------------------------------------


def test_guided_gradcam_is_upsampled_gradcam_times_the_guided_map():
    """conv_b is 4x4 (after pooling): Grad-CAM from a hand-written tape with ordinary ReLUs, resized
    bilinearly to 8x8, times max_c |guided gradient| (the twin model with explicitly guided ReLUs)."""

    def build(act):
        inp = keras.Input((SIZE, SIZE, 3))
        x = L.Conv2D(4, 3, padding="same", activation=act, name="conv_a")(L.Rescaling(1 / 255)(inp))
        x = L.MaxPooling2D()(x)
        x = L.Conv2D(5, 3, padding="same", activation=act, name="conv_b")(x)
        x = L.Dense(8, activation=act)(L.Flatten()(x))
        return keras.Model(inp, L.Dense(3, name="logits")(x))

    model, twin = fix_weights(build("relu"), seed=51, scale=2.0), build(_guided_relu_reference)
    twin.set_weights(model.get_weights())
    x = _images(seed=6)
    xt = tf.constant(x)
    probe = keras.Model(model.inputs[0], [model.get_layer("conv_b").output, model.output])
    with tf.GradientTape() as tape:
        a, logits = probe(xt)
        score = logits[:, 1]
    g = tape.gradient(score, a).numpy().astype(np.float64)
    a = a.numpy().astype(np.float64)
    cam = np.maximum(np.einsum("bhwk,bk->bhw", a, g.mean(axis=(1, 2))), 0.0)
    up = tf.image.resize(cam[..., None], (SIZE, SIZE), method="bilinear")[..., 0].numpy()
    with tf.GradientTape() as tape:
        tape.watch(xt)
        twin_score = twin(xt)[:, 1]
    guided = np.abs(tape.gradient(twin_score, xt).numpy()).max(axis=-1)
    expected = (up / up.max(axis=(1, 2), keepdims=True)) * (guided / guided.max(axis=(1, 2), keepdims=True))
    method = GuidedGradCAM(model, layer="conv_b")
    raw, cls, got_score = method.raw_maps(x, class_index=1)
    assert raw.shape == (3, SIZE, SIZE) and np.array_equal(cls, [1, 1, 1])
    np.testing.assert_allclose(raw, expected, rtol=1e-4, atol=1e-5)  # each factor scaled by its maximum
    np.testing.assert_allclose(method(x, class_index=1).heatmap, normalize_maps(expected)[0], atol=1e-5)
    np.testing.assert_allclose(got_score, score.numpy(), rtol=1e-5)
    # the guided part and the ordinary gradients of the Grad-CAM part both matter on this model
    plain = np.abs(Saliency(model).raw_maps(x, class_index=1)[0])
    assert np.abs(normalize_maps(up * plain)[0] - normalize_maps(expected)[0]).max() > 0.05


def test_guided_gradcam_of_two_tiny_factors_does_not_underflow():
    """Gradients near 1e-20 (a random-weight network's early layers): their product would be a float32 zero."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((SIZE, SIZE, 3))
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(L.Rescaling(1e-19)(inp))
    model = keras.Model(inp, L.Dense(3, name="logits")(L.Flatten()(x)))
    x = _images(seed=8)
    cam = np.abs(GradCAM(model, layer="conv").raw_maps(x, 1)[0]).max()
    guided = np.abs(GuidedBackprop(model).raw_maps(x, 1)[0]).max()
    assert cam * guided < 1e-38  # below float32's smallest normal number
    result = GuidedGradCAM(model, layer="conv")(x, 1)
    assert not result.flat.any()


def test_guided_gradcam_top_class_is_the_gradcam_class():
    model = _conv_net()
    x = _images(seed=7)
    got = GuidedGradCAM(model, layer="base/conv_b")(x)
    plain = GradCAM(model, layer="base/conv_b")(x)
    assert np.array_equal(got.class_index, plain.class_index)
    np.testing.assert_allclose(got.score, plain.score, rtol=1e-6)
    assert got.method == "guided_gradcam" and got.layer == "base/conv_b"


# -- SquareGrad and VarGrad ----------------------------------------------------------------------------


def _noise_model() -> keras.Model:
    inp = keras.Input((SIZE, SIZE, 3))
    x = L.Conv2D(4, 3, padding="same", activation="relu")(L.Rescaling(1 / 255)(inp))
    x = L.Dense(8, activation="tanh")(L.Flatten()(x))
    return fix_weights(keras.Model(inp, L.Dense(3)(x)), seed=61, scale=2.0)


def _noisy_gradients_by_hand(model, x, cls, samples, noise, seed) -> np.ndarray:
    """``(samples, B, H, W, C)``: the logit's input gradient at each seeded noisy copy."""
    out = []
    xt = tf.constant(x)
    for i in range(samples):
        noisy = xt + tf.random.stateless_normal(tf.shape(xt), seed=[seed, i], stddev=noise * 255.0)
        with tf.GradientTape() as tape:
            tape.watch(noisy)
            score = model(noisy)[:, cls]
        out.append(tape.gradient(score, noisy).numpy().astype(np.float64))
    return np.stack(out)


@pytest.mark.parametrize(
    ("cls", "reduce"),
    [
        (SquareGrad, lambda g: (g**2).mean(axis=0).mean(axis=-1)),
        (VarGrad, lambda g: g.var(axis=0).mean(axis=-1)),
    ],
    ids=["squaregrad", "vargrad"],
)
def test_squaregrad_and_vargrad_against_an_explicit_noise_loop(cls, reduce):
    model = _noise_model()
    x = _images(seed=8)
    grads = _noisy_gradients_by_hand(model, x, cls=2, samples=6, noise=0.2, seed=7)
    expected = reduce(grads)
    method = cls(model, samples=6, noise=0.2, seed=7)
    raw, _, score = method.raw_maps(x, class_index=2)
    np.testing.assert_allclose(raw, expected, rtol=1e-4, atol=1e-6 * expected.max())
    np.testing.assert_allclose(method(x, class_index=2).heatmap, normalize_maps(expected)[0], atol=1e-5)
    np.testing.assert_allclose(score, model.predict(x, verbose=0)[:, 2], rtol=1e-5)
    # not the same map as the other reductions of the same gradients
    for other in (
        np.abs(grads).mean(axis=0).max(axis=-1),
        (grads**2).mean(axis=0).max(axis=-1),
        grads.mean(axis=0).mean(axis=-1) ** 2,
    ):
        assert np.abs(normalize_maps(other)[0] - normalize_maps(expected)[0]).max() > 0.02
    # another seed, another map
    assert np.abs(cls(model, samples=6, noise=0.2, seed=8).raw_maps(x, class_index=2)[0] - raw).max() > 1e-3 * raw.max()


def test_smoothgrad_keeps_its_reduction_on_the_shared_noise_loop():
    model = _noise_model()
    x = _images(seed=9)
    grads = _noisy_gradients_by_hand(model, x, cls=0, samples=4, noise=0.1, seed=3)
    expected = np.abs(grads).mean(axis=0).max(axis=-1)
    raw = SmoothGrad(model, samples=4, noise=0.1, seed=3).raw_maps(x, class_index=0)[0]
    np.testing.assert_allclose(raw, expected, rtol=1e-4, atol=1e-6 * expected.max())


def test_vargrad_with_two_samples_is_half_the_squared_difference():
    """n = 2: var = ((g_1 - g_2) / 2)^2 per pixel and channel (the population variance)."""
    model = _noise_model()
    x = _images(1, seed=10)
    g = _noisy_gradients_by_hand(model, x, cls=1, samples=2, noise=0.3, seed=0)
    expected = (((g[0] - g[1]) / 2) ** 2).mean(axis=-1)
    np.testing.assert_allclose(
        VarGrad(model, samples=2, noise=0.3).raw_maps(x, class_index=1)[0],
        expected,
        rtol=1e-4,
        atol=1e-7 * expected.max(),
    )


# -- parameters ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda m: VarGrad(m, samples=1), ["VarGrad", "samples", "at least 2", "1"]),
        (lambda m: VarGrad(m, samples=2.5), ["VarGrad", "samples", "2.5"]),
        (lambda m: VarGrad(m, noise=-0.1), ["VarGrad", "noise", "-0.1"]),
        (lambda m: SquareGrad(m, samples=0), ["SquareGrad", "samples", "0"]),
        (lambda m: SquareGrad(m, noise=float("nan")), ["SquareGrad", "noise", "nan"]),
        (lambda m: SquareGrad(m, seed=1.5), ["SquareGrad", "seed", "1.5"]),
        (lambda m: GuidedBackprop(m, batch_size=0), ["GuidedBackprop", "batch_size", "0"]),
        (lambda m: GuidedGradCAM(m, batch_size=True), ["GuidedGradCAM", "batch_size", "True"]),
    ],
)
def test_bad_parameters_are_refused_with_a_message_naming_them(make, words):
    model = _noise_model()
    with pytest.raises(ValueError) as err:
        make(model)
    for word in words:
        assert word in str(err.value)


def test_names_and_references():
    for cls, name in (
        (GuidedBackprop, "guided_backprop"),
        (GuidedGradCAM, "guided_gradcam"),
        (SquareGrad, "squaregrad"),
        (VarGrad, "vargrad"),
    ):
        assert cls.name == name and "arxiv.org/abs/" in cls.reference
