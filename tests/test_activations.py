import keras
import numpy as np
import pytest
from conftest import tiny_nested, tiny_sequential

from explain import compute_activations, layer_table
from explain.features.activations import feature_model


def _images(n=2, size=16, channels=3):
    return np.random.default_rng(0).uniform(0, 255, (n, size, size, channels)).astype(np.float32)


def test_every_layer_shape_matches_its_output_shape(any_model):
    rows = layer_table(any_model)
    acts = compute_activations(any_model, _images(), [r.name for r in rows])
    assert list(acts) == [r.name for r in rows]
    for r in rows:
        assert acts[r.name].shape == (2, *r.output_shape[1:]), r.name
        assert acts[r.name].dtype == np.float32


def test_saved_and_loaded_models_too(saved_models):
    from explain import load_model

    for name in ("sequential", "functional", "nested"):
        model = load_model(saved_models[name])
        acts = compute_activations(model, _images(1))
        assert list(acts) == [layer.name for layer in model.layers]


def test_values_are_the_layers_outputs():
    model = tiny_sequential()
    x = _images()
    acts = compute_activations(model, x, ["rescale", "predictions", "conv_a"])
    np.testing.assert_allclose(acts["rescale"], x / 255, rtol=1e-6)
    np.testing.assert_allclose(acts["predictions"], model.predict(x, verbose=0), atol=1e-6)
    conv_a = model.get_layer("conv_a")
    np.testing.assert_allclose(acts["conv_a"], conv_a(x / 255).numpy(), atol=1e-5)


def test_nested_layer_values_equal_running_the_base():
    model = tiny_nested()
    x = _images()
    base = model.get_layer("tiny_base")
    inner = keras.Model(base.inputs, base.get_layer("block_1_pool").output)
    acts = compute_activations(model, x, ["tiny_base/block_1_pool", "predictions"])
    np.testing.assert_allclose(acts["tiny_base/block_1_pool"], inner.predict(x, verbose=0), atol=1e-5)
    np.testing.assert_allclose(acts["predictions"], model.predict(x, verbose=0), atol=1e-6)


def test_single_image_and_batching_agree():
    model = tiny_sequential()
    x = _images(5)
    full = compute_activations(model, x, [3], batch_size=2)["conv_b"]
    one = compute_activations(model, x[0], [3])["conv_b"]
    assert full.shape[0] == 5
    np.testing.assert_allclose(full[:1], one, atol=1e-6)


def test_feature_model_is_cached_and_model_unchanged():
    model = tiny_sequential()
    before = [w.copy() for w in model.get_weights()]
    assert feature_model(model, ("conv_a",)) is feature_model(model, ("conv_a",))
    compute_activations(model, _images(), ["conv_a"])
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert len(model.outputs) == 1


def test_wrong_image_shape():
    with pytest.raises(ValueError, match="load_image"):
        compute_activations(tiny_sequential(), np.zeros((1, 20, 20, 3)))
