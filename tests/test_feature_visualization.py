"""Filter and class patterns: each pattern excites its own channel (or class) most, seeded,
batched, in raw pixels, and every bad input gets one clear error."""

import keras
import numpy as np
import pytest
from conftest import SAMPLES, L, tiny_nested, tiny_sequential

from explain.errors import ExplainError, LayerError
from explain.features.patterns import channel_responses, class_patterns, filter_patterns
from explain.images import load_image

STEPS = 96


@pytest.fixture(scope="module")
def model():
    return tiny_sequential(size=24)


@pytest.fixture(scope="module")
def patterns(model):
    return filter_patterns(model, "conv_b", steps=STEPS)


def test_shapes_ranges_and_fields(patterns):
    assert patterns.images.shape == (6, 24, 24, 3) and patterns.images.dtype == np.float32
    assert patterns.images.min() >= 0.0 and patterns.images.max() <= 255.0
    assert patterns.channels.tolist() == list(range(6)) and patterns.layer == "conv_b"
    assert patterns.kind == "filter" and patterns.steps == STEPS and patterns.activation.shape == (6,)
    assert np.ptp(patterns.images) > 50  # not a flat grey start image


def test_each_pattern_excites_its_own_channel_most(model, patterns):
    """The quality check of the issue: own channel > noise, a natural image, other patterns."""
    own = channel_responses(model, "conv_b", patterns.images, patterns.channels)  # (pattern, channel)
    diag = np.diag(own)
    np.testing.assert_allclose(diag, patterns.activation, rtol=1e-5)
    noise = np.random.default_rng(0).uniform(0, 255, (1, 24, 24, 3)).astype(np.float32)
    photo = load_image(SAMPLES / "photo_chelsea.jpg", target_size=(24, 24), channels=3)[None]
    for other in (noise, photo):
        assert (diag > channel_responses(model, "conv_b", other, patterns.channels)[0]).all()
    others = np.where(np.eye(len(diag), dtype=bool), -np.inf, own)
    assert np.mean(diag > others.max(axis=0)) >= 5 / 6  # the pattern beats the other channels' patterns


def test_class_patterns_raise_their_own_logit():
    model = tiny_sequential(size=24)
    result = class_patterns(model, steps=STEPS)
    assert result.kind == "class" and result.layer == "logits" and result.channels.tolist() == [0, 1, 2]
    logits = keras.Model(model.inputs, model.get_layer("predictions").input)  # the Dense's input
    dense = model.get_layer("predictions")
    z = logits.predict(result.images, verbose=0) @ keras.ops.convert_to_numpy(
        dense.kernel
    ) + keras.ops.convert_to_numpy(dense.bias)
    np.testing.assert_allclose(np.diag(z), result.activation, rtol=1e-4)
    others = np.where(np.eye(3, dtype=bool), -np.inf, z)
    assert (np.diag(z) > others.max(axis=0)).all()  # each class's logit is highest on its own pattern


def test_seeded_and_batched(model):
    a = filter_patterns(model, "conv_b", channels=[1, 4], steps=8, seed=3)
    b = filter_patterns(model, "conv_b", channels=[1, 4], steps=8, seed=3)
    c = filter_patterns(model, "conv_b", channels=[1, 4], steps=8, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.allclose(a.images, c.images)
    calls = []
    split = filter_patterns(
        model, "conv_b", channels=[0, 1, 2, 3, 4], steps=8, batch_size=2, progress=lambda d, t: calls.append((d, t))
    )
    assert split.images.shape == (5, 24, 24, 3) and split.channels.tolist() == [0, 1, 2, 3, 4]
    assert calls[-1] == (24, 24) and [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_raw_pixels_whatever_the_preprocessing():
    """A model that rescales inside and the same model fed x/255 by explain give the same patterns."""
    inside = tiny_sequential(size=24)
    outside = keras.Sequential([keras.Input((24, 24, 3)), *inside.layers[1:]])
    a = filter_patterns(inside, "conv_a", channels=[0, 1], steps=8)
    b = filter_patterns(outside, "conv_a", channels=[0, 1], steps=8, preprocess="unit")
    np.testing.assert_allclose(a.images, b.images, atol=1e-2)


def test_nested_layer_and_free_size():
    nested = filter_patterns(tiny_nested(), "tiny_base/block_2_conv", channels=[0, 1], steps=4)
    assert nested.images.shape == (2, 16, 16, 3)
    free = keras.Sequential([keras.Input((None, None, 1)), L.Conv2D(3, 3, activation="relu", name="c")])
    assert filter_patterns(free, "c", steps=2).images.shape == (3, 128, 128, 1)
    assert filter_patterns(free, "c", steps=2, size=(20, 30)).images.shape == (3, 20, 30, 1)
    with pytest.raises(ValueError, match="smaller than this model accepts"):
        filter_patterns(free, "c", steps=2, size=(2, 2))


class _Rounding(keras.layers.Layer):
    def call(self, x):
        return keras.ops.round(x)


def test_bad_input_messages(model):
    with pytest.raises(LayerError, match=r"no filters.*class patterns"):
        filter_patterns(model, "hidden")
    with pytest.raises(ValueError, match="Channel 6 is out of range: there are 6"):
        filter_patterns(model, "conv_b", channels=[6])
    with pytest.raises(ValueError, match="steps must be a whole number of at least 1, got 0"):
        filter_patterns(model, "conv_b", steps=0)
    with pytest.raises(ValueError, match="takes 24x24 images only"):
        filter_patterns(model, "conv_b", size=(32, 32))
    with pytest.raises(ValueError, match="Class 3 is out of range"):
        class_patterns(model, classes=[3])
    inp = keras.Input((8, 8, 1))
    broken = keras.Model(inp, L.Conv2D(2, 3, name="after")(_Rounding(name="rounding")(inp)))
    with pytest.raises(ExplainError, match=r"'rounding'.*not differentiable"):
        filter_patterns(broken, "after", steps=2)


def test_demo_model_patterns_excite_their_channels():
    """On the trained demo model's last conv layer most patterns beat every other channel's
    pattern, noise and a real Fashion-MNIST image (measured 0.75 of 64 at 128 steps; the rest are
    channels that barely fire on the test set)."""
    from conftest import DEMO_MODEL

    from explain import load_model

    model = load_model(DEMO_MODEL)
    p = filter_patterns(model, "conv2d_1", steps=128)
    own = channel_responses(model, "conv2d_1", p.images, p.channels)
    diag = np.diag(own)
    others = np.where(np.eye(len(diag), dtype=bool), -np.inf, own).max(axis=0)
    noise = np.random.default_rng(0).uniform(0, 255, (1, 28, 28, 1)).astype(np.float32)
    boot = load_image(SAMPLES / "fashion_mnist_9_ankle_boot.png", target_size=(28, 28), channels=1)[None]
    ok = (diag > others) & (diag > channel_responses(model, "conv2d_1", noise, p.channels)[0])
    ok &= diag > channel_responses(model, "conv2d_1", boot, p.channels)[0]
    assert ok.mean() >= 0.7, ok.mean()


def test_step_cost_and_estimate(model):
    import time

    from explain.features.patterns import StepCost, estimate_seconds, step_cost

    cost = step_cost(model, "conv_b")
    assert cost.setup > 0 and cost.fixed >= 0 and cost.per_image >= 0 and cost.fixed + cost.per_image > 0
    assert step_cost(model, None).setup > 0  # class patterns
    made = StepCost(setup=1.0, fixed=0.1, per_image=0.01)
    assert estimate_seconds(made, 10, 100) == pytest.approx(1.0 + 100 * (0.1 + 10 * 0.01))
    assert estimate_seconds(made, 130, 10, batch_size=64) == pytest.approx(3 * 1.0 + 10 * (3 * 0.1 + 130 * 0.01))
    start = time.perf_counter()
    filter_patterns(model, "conv_b", steps=64)
    took = time.perf_counter() - start
    assert 0.2 < estimate_seconds(cost, 6, 64) / took < 5  # the right order of magnitude
