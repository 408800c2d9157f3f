"""Faithfulness (deletion / insertion) on hand-built models, and the sanity check."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import left_half_model, tiny_functional, tiny_nested, tiny_sequential, tiny_sigmoid

from explain.attribution import GradCAM
from explain.attribution.base import AttributionMethod
from explain.errors import ExplainError
from explain.metrics.faithfulness import FaithfulnessScores, deletion_insertion
from explain.metrics.sanity import randomized_copy, sanity_check
from explain.models.scores import ScoreHead

L = keras.layers
SIZE = 16


def images(n=2, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3)).astype(np.float32)


class EdgeMap(AttributionMethod):
    """Not a real attribution: the image's Sobel edges, whatever the model."""

    name = "edges"

    def _raw_maps(self, x, class_index):
        cls, score = self.pick(self.scores_from_input(x), class_index)
        return tf.reduce_sum(tf.abs(tf.image.sobel_edges(x)), axis=(3, 4)), cls, score


# -- deletion / insertion -----------------------------------------------------------------
@pytest.mark.parametrize("baseline", ["black", "blur"])
def test_known_answer_left_half(baseline):
    x = np.zeros((1, SIZE, SIZE, 3), np.float32)
    x[:, :, : SIZE // 2] = 255.0  # bright left half: class 1 is confident
    cols = np.arange(SIZE, dtype=np.float32)[None, :].repeat(SIZE, 0)
    left_first = (cols < SIZE // 2).astype(np.float32)[None]
    right_first = 1.0 - left_first
    kw = {"steps": 16, "baseline": baseline, "blur_sigma": SIZE}
    good = deletion_insertion(left_half_model(), x, left_first, 1, **kw)
    bad = deletion_insertion(left_half_model(), x, right_first, 1, **kw)
    assert good.deletion_auc[0] < bad.deletion_auc[0] - 0.2
    assert good.insertion_auc[0] > bad.insertion_auc[0] + 0.2
    # the right half does not move class 1: its removal / insertion leaves the curve flat
    np.testing.assert_allclose(bad.deletion_curve[0, : 16 // 2 + 1], bad.deletion_curve[0, 0], atol=1e-5)
    np.testing.assert_allclose(good.deletion_curve[0, 16 // 2 :], good.deletion_curve[0, -1], atol=1e-5)


def test_shapes_ranges_and_endpoints():
    model = tiny_functional()
    x = images(3)
    heat = GradCAM(model)(x).heatmap
    scores = deletion_insertion(model, x, heat, None, steps=10)
    assert isinstance(scores, FaithfulnessScores)
    assert scores.deletion_curve.shape == scores.insertion_curve.shape == (3, 11)
    np.testing.assert_allclose(scores.fractions, np.linspace(0, 1, 11))
    for auc in (scores.deletion_auc, scores.insertion_auc):
        assert auc.shape == (3,) and np.all((auc >= 0) & (auc <= 1))
    assert not scores.flat.any()
    probs = model(x).numpy()  # tiny_functional ends in softmax
    np.testing.assert_array_equal(scores.class_index, probs.argmax(axis=1))
    # nothing deleted = everything inserted = the original image
    np.testing.assert_allclose(scores.deletion_curve[:, 0], probs.max(axis=1), rtol=1e-4)
    np.testing.assert_allclose(scores.insertion_curve[:, -1], probs.max(axis=1), rtol=1e-4)
    # a model whose output is the softmax (tiny_sequential) gives probabilities too
    seq = deletion_insertion(tiny_sequential(), x, heat, 0, steps=4, baseline="black")
    assert np.all((seq.deletion_curve >= 0) & (seq.deletion_curve <= 1))


def test_flat_and_non_finite_heatmaps_are_not_scored():
    model = tiny_functional()
    heat = np.random.default_rng(0).random((3, SIZE, SIZE))
    heat[0] = 0.0
    heat[2, 3, 3] = np.nan
    scores = deletion_insertion(model, images(3), heat, 1, steps=5)
    assert scores.flat.tolist() == [True, False, True]
    assert np.isnan(scores.deletion_auc[[0, 2]]).all() and np.isnan(scores.insertion_auc[[0, 2]]).all()
    assert np.isnan(scores.deletion_curve[[0, 2]]).all()
    assert np.isfinite(scores.deletion_auc[1]) and np.isfinite(scores.insertion_curve[1]).all()


def test_binary_sigmoid_probabilities():
    model = tiny_sigmoid()
    x = images(2)
    heat = np.random.default_rng(1).random((2, SIZE, SIZE))
    s0 = deletion_insertion(model, x, heat, 0, steps=4)
    s1 = deletion_insertion(model, x, heat, 1, steps=4)
    np.testing.assert_allclose(s0.deletion_curve + s1.deletion_curve, 1.0, atol=1e-5)
    p = model.predict(x, verbose=0)[:, 0]
    np.testing.assert_allclose(s1.deletion_curve[:, 0], p, rtol=1e-4)


def test_perturbed_images_go_through_the_model_in_batches(monkeypatch):
    sizes = []
    original = ScoreHead.predict_probabilities

    def recording(self, x, batch_size=64):
        sizes.append(len(x))
        return original(self, x, batch_size)

    monkeypatch.setattr(ScoreHead, "predict_probabilities", recording)
    deletion_insertion(tiny_functional(), images(3), np.random.default_rng(0).random((3, SIZE, SIZE)), 0, steps=20)
    assert sum(sizes) == 2 * 3 * 21 and max(sizes) == 64


def test_bad_arguments():
    model = tiny_functional()
    heat = np.random.default_rng(0).random((2, SIZE, SIZE))
    with pytest.raises(ValueError, match="do not match"):
        deletion_insertion(model, images(2), heat[:, :8], 0)
    with pytest.raises(ValueError, match="Unknown baseline"):
        deletion_insertion(model, images(2), heat, 0, baseline="grey")
    with pytest.raises(ExplainError, match="out of range"):
        deletion_insertion(model, images(2), heat, 3)


# -- sanity check -------------------------------------------------------------------------
def test_randomized_copy_leaves_the_model_alone():
    model = tiny_nested()
    model.layers[0].trainable = False  # a frozen "pretrained base"
    before = [w.copy() for w in model.get_weights()]
    flags = [v.trainable for v in model.weights]
    copy = randomized_copy(model, seed=0)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [v.trainable for v in model.weights] == flags and not model.layers[0].trainable
    for a, b in zip(model.get_weights(), copy.get_weights(), strict=True):
        assert a.shape == b.shape and not np.array_equal(a, b)  # the frozen base too
    again = randomized_copy(model, seed=0)
    for a, b in zip(copy.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_gradcam_depends_on_the_weights():
    model = tiny_functional()
    before = [w.copy() for w in model.get_weights()]
    check = sanity_check(GradCAM, model, images(4), seed=0)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert check.method == "gradcam" and check.spearman.shape == check.ssim.shape == (4,)
    assert check.heatmap.shape == check.random_heatmap.shape == (4, SIZE, SIZE)
    assert np.nanmean(check.spearman) < 0.5 and np.nanmax(check.spearman) < 0.9
    assert check.passed and "passes the sanity check" in check.verdict
    assert not np.allclose(check.heatmap, check.random_heatmap)


def test_model_independent_method_fails():
    check = sanity_check(EdgeMap, tiny_functional(), images(3), class_index=1)
    np.testing.assert_allclose(check.spearman, 1.0, atol=1e-9)
    np.testing.assert_allclose(check.ssim, 1.0, atol=1e-6)
    assert check.class_index.tolist() == [1, 1, 1]
    assert not check.passed
    assert "fails the sanity check: the map does not depend on what the model learned" in check.verdict
