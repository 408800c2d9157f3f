"""LIME adapter: determinism, the result contract, grayscale and sigmoid models, batching."""

import keras
import numpy as np
import pytest
from conftest import left_half_model, tiny_functional, tiny_sequential, tiny_sigmoid

from explain.attribution import METHODS, LayerAttribution
from explain.attribution.lime import LIME, LimeAttribution
from explain.errors import ExplainError

L = keras.layers
FAST = {"num_samples": 100}


def images(n=2, size=16, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels)).astype(np.float32)


@pytest.fixture(scope="module")
def rgb_model():
    return tiny_functional()


def test_registered():
    assert METHODS["lime"] is LIME
    assert LIME.name == "lime" and not issubclass(LIME, LayerAttribution) and "1602.04938" in LIME.reference


def test_same_seed_same_map_other_seed_other_map(rgb_model):
    x = images()
    first = LIME(rgb_model, seed=0, **FAST)
    a = first(x)
    b = LIME(rgb_model, seed=0, **FAST)(x)
    c = LIME(rgb_model, seed=1, **FAST)(x)
    np.testing.assert_array_equal(a.heatmap, b.heatmap)
    for s1, s2, w1, w2 in zip(a.segments, b.segments, a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_array_equal(w1, w2)
    assert not np.array_equal(a.heatmap, c.heatmap)


def test_contract(rgb_model):
    x = images(3)
    method = LIME(rgb_model, **FAST)
    att = method(x)
    assert att.heatmap.shape == (3, 16, 16) and att.heatmap.dtype == np.float32
    assert att.heatmap.min() >= 0.0 and att.heatmap.max() <= 1.0
    assert att.method == "lime" and att.layer is None and att.score_kind == "logit"
    probs = method.predict_proba(x)
    np.testing.assert_array_equal(att.class_index, probs.argmax(axis=1))
    logits = keras.Model(rgb_model.inputs, rgb_model.get_layer("logits").output).predict(x, verbose=0)
    np.testing.assert_allclose(att.score, logits.max(axis=1), rtol=1e-5)
    assert not att.flat.any()
    assert isinstance(att, LimeAttribution) and att.num_features == 5
    assert len(att.segments) == len(att.weights) == 3
    assert not hasattr(method, "segments") and not hasattr(method, "weights")  # no per-call state
    for heat, seg, wts in zip(att.heatmap, att.segments, att.weights, strict=True):
        assert seg.shape == (16, 16) and seg.dtype == np.int64
        np.testing.assert_array_equal(np.unique(seg), np.arange(len(wts)))  # labels 0..n-1
        assert np.count_nonzero(wts) <= 5  # num_features
        for label in range(len(wts)):  # each superpixel painted with one value, ordered by weight
            assert np.ptp(heat[seg == label]) == 0
        top, bottom = int(np.argmax(wts)), int(np.argmin(wts))
        assert heat[seg == top][0] == 1.0 and heat[seg == bottom][0] == 0.0


@pytest.mark.parametrize("segmentation", ["slic", "felzenszwalb"])
def test_segmentations_and_positive_only(rgb_model, segmentation):
    method = LIME(rgb_model, segmentation=segmentation, positive_only=True, **FAST)
    att = method(images(1), class_index=2)
    assert att.class_index.tolist() == [2]
    assert len(att.weights[0]) > 3
    assert (att.weights[0] >= 0).all()
    assert att.heatmap.shape == (1, 16, 16)


def test_known_answer_left_half():
    """Hiding left-half superpixels lowers class 1: they get the weight, the right half none."""
    x = np.full((1, 16, 16, 3), 255.0, np.float32)
    method = LIME(
        left_half_model(gain=4.0),
        segmentation="slic",
        segmentation_params={"n_segments": 4},
        num_features=8,
        num_samples=200,
    )
    att = method(x, class_index=1)
    seg, wts = att.segments[0], att.weights[0]
    left = np.array([np.mean(np.nonzero(seg == s)[1]) < 7.5 for s in range(len(wts))])
    assert left.any() and (~left).any()
    assert wts[left].min() > 10 * np.abs(wts[~left]).max()
    assert att.heatmap[0, :, :8].mean() > att.heatmap[0, :, 8:].mean() + 0.5


def test_grayscale_model():
    model = tiny_sequential(channels=1, size=28)
    method = LIME(model, **FAST)
    att = method(images(1, size=28, channels=1))
    assert att.heatmap.shape == (1, 28, 28) and not att.flat.any()
    assert att.segments[0].shape == (28, 28) and len(att.weights[0]) > 1
    # lime hands RGB images to the classifier: the adapter takes channel 0 back to the model
    probs = method.predict_proba(np.repeat(images(2, size=28, channels=1), 3, axis=-1))
    assert probs.shape == (2, 3)


def test_binary_sigmoid_model():
    model = tiny_sigmoid()
    method = LIME(model, **FAST)
    x = images(2)
    probs = method.predict_proba(x)
    assert probs.shape == (2, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    p = model.predict(x, verbose=0)[:, 0]
    np.testing.assert_allclose(probs[:, 1], p, rtol=1e-5)
    att = method(x)
    np.testing.assert_array_equal(att.class_index, (p > 0.5).astype(int))
    for cls in (0, 1):
        att = method(x, class_index=cls)
        assert att.class_index.tolist() == [cls, cls] and att.heatmap.shape == (2, 16, 16)
    with pytest.raises(ExplainError, match="out of range"):
        method(x, class_index=2)


def test_class_index_out_of_range(rgb_model):
    with pytest.raises(ExplainError, match="out of range"):
        LIME(rgb_model, **FAST)(images(1), class_index=3)
    with pytest.raises(ExplainError, match="out of range"):
        LIME(rgb_model, **FAST)(images(1), class_index=-1)


def test_bad_arguments(rgb_model):
    with pytest.raises(ValueError, match="Unknown segmentation"):
        LIME(rgb_model, segmentation="watershed")
    with pytest.raises(ValueError, match="do not fit"):
        LIME(rgb_model, **FAST)(images(1, size=20))


def test_model_called_in_large_batches_with_progress(rgb_model):
    seen, progress = [], []
    method = LIME(rgb_model, num_samples=300, progress=lambda done, total: progress.append((done, total)))
    original = method.predict_proba

    def recording(batch):
        seen.append(len(batch))
        return original(batch)

    method.predict_proba = recording
    method(images(1))
    assert seen == [256, 44]  # lime's batches of 256 (not its default 10)
    assert progress == [(256, 300), (300, 300)]


def test_one_explainer_serves_two_callers_without_sharing_state(rgb_model):
    """Two calls on one explainer (two dashboard sessions) each keep their own superpixels."""
    method = LIME(rgb_model, **FAST)
    x = images(2)
    first, second = method(x[:1]), method(x[1:])
    again = LIME(rgb_model, **FAST)(x[:1])
    np.testing.assert_array_equal(first.segments[0], again.segments[0])
    np.testing.assert_array_equal(first.weights[0], again.weights[0])
    assert not np.array_equal(first.segments[0], second.segments[0])
