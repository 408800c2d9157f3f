"""Vision Transformers: tokens read as an h x w grid, Grad-CAM on them, attention rollout.

The ViTs are the keras.io example's (custom ``Patches`` / ``PatchEncoder`` layers, all tokens
flattened into the head) and the original ViT's (a class token, the head on it), at a tiny size,
from ``tests/trusted_code/vit_layers.py``: the file a user passes with ``--trust-code``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT

from explain import ModelLoadError, compute_activations, format_layer_table, layer_table, load_model
from explain.attribution import AttentionRollout, GradCAM, default_target_layer, methods_for

TRUSTED = ROOT / "tests" / "trusted_code" / "vit_layers.py"
sys.path.insert(0, str(TRUSTED.parent))
import vit_layers  # noqa: E402

L = keras.layers
SIZE = 24  # 6x6 patches: a 4x4 grid


@pytest.fixture(scope="module")
def vits(tmp_path_factory) -> dict:
    """``name -> (path, model as loaded with --trust-code)`` for the keras.io ViT and a class-token ViT."""
    d = tmp_path_factory.mktemp("vit")
    out = {}
    for name, class_token in (("keras_io", False), ("class_token", True)):
        keras.utils.set_random_seed(3)
        path = d / f"{name}.keras"
        vit_layers.vit_classifier(image_size=SIZE, class_token=class_token).save(path)
        out[name] = (path, load_model(path, trusted_code=TRUSTED))
    return out


def _images(n=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")


def test_refused_without_the_flag_naming_the_classes(vits):
    path, _ = vits["keras_io"]
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    message = str(info.value)
    assert "'vit_layers.Patches' (layer 'patches')" in message and "'vit_layers.PatchEncoder'" in message
    assert "--trust-code my_layers.py" in message


def test_layer_table_reads_tokens_as_a_grid(vits):
    rows = {r.type: r for r in layer_table(vits["class_token"][1])}
    assert rows["MultiHeadAttention"].note == "tokens, 4x4 grid + class token"
    assert rows["MultiHeadAttention"].grid == (4, 4, 16) and rows["Dense"].grid is None
    text = format_layer_table(layer_table(vits["keras_io"][1]))
    assert "tokens, 4x4 grid" in text and "feature maps" in text.splitlines()[0]


def test_token_activations_are_per_channel_grids(vits):
    model = vits["class_token"][1]
    name = next(r.name for r in layer_table(model) if r.type == "Add")
    acts = compute_activations(model, _images(), [name])[name]
    tokens = keras.Model(model.inputs, model.get_layer(name).output)(_images())
    assert acts.shape == (3, 4, 4, 16)
    np.testing.assert_allclose(acts, np.reshape(tokens[:, 1:], (3, 4, 4, 16)), atol=1e-6)


def test_default_target_is_the_last_encoder_block_output(vits):
    adds = [r.name for r in layer_table(vits["keras_io"][1]) if r.type == "Add"]
    assert default_target_layer(vits["keras_io"][1]).name == adds[-1]  # the last block's residual Add
    # with a class token, the last block's own output reaches the head through the class token only:
    # the block before the last attention layer is taken (its patch tokens get a gradient)
    adds = [r.name for r in layer_table(vits["class_token"][1]) if r.type == "Add"]
    assert default_target_layer(vits["class_token"][1]).name == adds[-3]


def _token_gradcam(model, layer: str, x: np.ndarray, class_token: bool) -> np.ndarray:
    """Grad-CAM on tokens, written out: drop the class token, reshape to the 4x4 grid, average
    the gradients over it, ReLU of the weighted sum, bilinear upsampling, min-max scaling."""
    probe = keras.Model(model.inputs, [model.get_layer(layer).output, model.output])
    with tf.GradientTape() as tape:
        tokens, logits = probe(tf.constant(x))
        score = tf.gather(logits, tf.argmax(logits, axis=1), axis=1, batch_dims=1)
    grads = tape.gradient(score, tokens).numpy()
    tokens = tokens.numpy()
    if class_token:
        tokens, grads = tokens[:, 1:], grads[:, 1:]
    a, g = tokens.reshape(-1, 4, 4, 16), grads.reshape(-1, 4, 4, 16)
    cam = np.maximum(np.einsum("bhwk,bk->bhw", a, g.mean(axis=(1, 2))), 0)
    cam = tf.image.resize(cam[..., None], (SIZE, SIZE)).numpy()[..., 0]
    lo, hi = cam.min(axis=(1, 2), keepdims=True), cam.max(axis=(1, 2), keepdims=True)
    return (cam - lo) / np.where(hi > lo, hi - lo, 1)


@pytest.mark.parametrize("name", ["keras_io", "class_token"])
def test_gradcam_on_tokens_is_the_token_grid_gradcam(vits, name):
    model = vits[name][1]
    x = _images(4)
    result = GradCAM(model)(x)
    assert not result.flat.any()
    expected = _token_gradcam(model, result.layer, x, name == "class_token")
    assert np.abs(result.heatmap - expected).max() < 1e-4


def _attention_by_hand(mha, x: np.ndarray) -> np.ndarray:
    """softmax(Q K^T / sqrt(d)) per head from the layer's own weights: ``(B, heads, T, T)``."""
    wq, bq = mha._query_dense.kernel.numpy(), mha._query_dense.bias.numpy()
    wk, bk = mha._key_dense.kernel.numpy(), mha._key_dense.bias.numpy()
    q = np.einsum("btd,dhk->bhtk", x, wq) + bq[None, :, None, :]
    k = np.einsum("btd,dhk->bhtk", x, wk) + bk[None, :, None, :]
    s = np.einsum("bhtk,bhsk->bhts", q, k) / np.sqrt(wq.shape[-1])
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _rollout_by_hand(model, x: np.ndarray, class_token: bool) -> np.ndarray:
    """Abnar & Zuidema's rollout, in NumPy: mean over heads, 0.5 A + 0.5 I, rows re-normalised,
    multiplied from the first layer up; the class token's row, or the mean row."""
    attention = [layer for layer in model.layers if isinstance(layer, L.MultiHeadAttention)]
    inputs = keras.Model(model.inputs, [model.get_layer(layer.name).input[0] for layer in attention])
    xs = inputs(tf.constant(x))
    rollout = None
    for layer, t in zip(attention, xs, strict=True):
        a = _attention_by_hand(layer, np.asarray(t)).mean(axis=1)
        a = 0.5 * a + 0.5 * np.eye(a.shape[-1])
        a = a / a.sum(axis=-1, keepdims=True)
        rollout = a if rollout is None else a @ rollout
    flow = rollout[:, 0, 1:] if class_token else rollout.mean(axis=1)
    flow = tf.image.resize(flow.reshape(-1, 4, 4, 1), (SIZE, SIZE)).numpy()[..., 0]
    lo, hi = flow.min(axis=(1, 2), keepdims=True), flow.max(axis=(1, 2), keepdims=True)
    return (flow - lo) / (hi - lo)


@pytest.mark.parametrize("name", ["keras_io", "class_token"])
def test_attention_rollout_is_the_hand_computed_one_on_two_layers(vits, name):
    model = vits[name][1]
    assert len([r for r in layer_table(model) if r.type == "MultiHeadAttention"]) == 2
    x = _images(3)
    result = AttentionRollout(model)(x)
    assert result.heatmap.shape == (3, SIZE, SIZE) and not result.flat.any()
    np.testing.assert_allclose(result.heatmap, _rollout_by_hand(model, x, name == "class_token"), atol=1e-4)


def test_attention_rollout_applies_to_transformers_only(vits):
    from conftest import tiny_sequential

    assert "attention_rollout" in methods_for(vits["keras_io"][1])
    assert "attention_rollout" not in methods_for(tiny_sequential())
    with pytest.raises(ModelLoadError.__mro__[1], match="needs MultiHeadAttention layers"):
        AttentionRollout(tiny_sequential())
    with pytest.raises(ValueError, match="Unknown head_fusion"):
        AttentionRollout(vits["keras_io"][1], head_fusion="median")


def test_every_cli_with_trust_code(vits, tmp_path, capsys):
    from explain.cli import attribute, filters, layers

    path, model = vits["class_token"]
    add = next(r.name for r in layer_table(model) if r.type == "Add")
    trust = ["--trust-code", str(TRUSTED)]
    image = str(ROOT / "sample_images" / "photo_chelsea.jpg")
    assert layers.main([str(path), "--list", *trust]) == 0
    assert "tokens, 4x4 grid + class token" in capsys.readouterr().out
    assert layers.main([str(path), image, "--layer", add, "--out", str(tmp_path / "g.png"), *trust]) == 0
    for method in ("gradcam", "attention_rollout"):
        assert attribute.main([str(path), image, "--method", method, "--out", str(tmp_path / "a.png"), *trust]) == 0
    argv = [str(path), "--layer", add, "--channels", "0-3", "--steps", "4", "--no-progress", *trust]
    assert filters.main([*argv, "--out", str(tmp_path / "f.png")]) == 0
    assert layers.main([str(path), "--list"]) == 2
    assert "--trust-code" in capsys.readouterr().err


def test_the_keras_io_layers_as_written_get_a_message_that_says_how_to_fix_them(tmp_path):
    """keras.io's Patches and PatchEncoder take no **kwargs and PatchEncoder.get_config lacks
    projection_dim: Keras cannot rebuild them, and the user is told what the class needs."""
    code = tmp_path / "example_layers.py"
    code.write_text(
        "import keras\n\n"
        "class Patches(keras.layers.Layer):\n"
        "    def __init__(self, patch_size):\n"
        "        super().__init__()\n"
        "        self.patch_size = patch_size\n\n"
        "    def call(self, images):\n"
        "        patches = keras.ops.image.extract_patches(images, size=self.patch_size)\n"
        "        return keras.ops.reshape(patches, (-1, 16, 108))\n\n"
        "    def get_config(self):\n"
        "        return {**super().get_config(), 'patch_size': self.patch_size}\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import example_layers
    finally:
        sys.path.remove(str(tmp_path))
    inp = keras.Input((SIZE, SIZE, 3))
    path = tmp_path / "vit_as_written.keras"
    keras.Model(inp, L.Dense(3)(L.Flatten()(example_layers.Patches(6)(inp)))).save(path)
    with pytest.raises(ModelLoadError) as info:
        load_model(path, trusted_code=code)
    assert (
        "the trusted class Patches cannot be rebuilt from its saved config: Patches.__init__() got an unexpected "
        "keyword argument 'name'. Its __init__ must accept **kwargs" in str(info.value)
    )


@pytest.mark.parametrize("method", ["gradcam++", "scorecam"])
def test_the_cam_family_works_on_tokens(vits, method):
    """The contract on tokens. Tokens have no ReLU: a positive weighting of them can be negative
    everywhere (then the map is flat, drawn as zeros), as Grad-CAM's weights computed by hand say."""
    from explain.attribution import METHODS

    for name in ("keras_io", "class_token"):
        model = vits[name][1]
        result = METHODS[method](model)(_images(2))
        assert result.heatmap.shape == (2, SIZE, SIZE) and result.layer == default_target_layer(model).name
        assert np.isfinite(result.heatmap).all() and result.heatmap.min() >= 0 and result.heatmap.max() <= 1
        assert (result.heatmap[result.flat] == 0).all()
