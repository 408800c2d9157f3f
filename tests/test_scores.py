"""The score head: logits or probabilities decided once per model, the same answer everywhere."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
from keras import layers as L

from explain import ArraySource, deletion_insertion, evaluate_model, predict, score_head
from explain.attribution import LIME, Saliency
from explain.models.scores import ScoreHead, looks_like_probabilities


def _linear(bias, kernel_sum=None, activation=None, size=2) -> keras.Model:
    """Flatten -> Dense with a constant kernel: an all-zero image scores ``bias``, an all-255
    image ``bias + kernel_sum``."""
    bias = np.asarray(bias, np.float32)
    inp = keras.Input((size, size, 1))
    dense = L.Dense(len(bias), activation=activation, name="head")
    out = dense(L.Flatten()(inp))
    k = np.zeros(len(bias), np.float32) if kernel_sum is None else np.asarray(kernel_sum, np.float32)
    dense.set_weights([np.tile(k / (size * size * 255.0), (size * size, 1)), bias])
    return keras.Model(inp, out)


def test_binary_linear_logit_0_3_is_class_1_everywhere():
    """A sigmoid-free binary model whose logit is 0.3 for every image: its probability is
    sigmoid(0.3) = 0.574, so class 1, in predict, evaluate_model, attribution, LIME and
    deletion/insertion alike (judged by value, 0.3 looks like a probability below 0.5)."""
    model = _linear([0.3])
    x = np.zeros((3, 2, 2, 1), np.float32)
    head = score_head(model)
    assert head.score_kind == "logit" and head.outputs_logits and head.binary
    p1 = 1 / (1 + np.exp(-0.3))
    pred = predict(model, x, ["no", "yes"])
    assert [p.top_k[0][0] for p in pred] == [1, 1, 1]
    np.testing.assert_allclose(pred[0].probabilities, [1 - p1, p1], rtol=1e-6)
    assert not pred[0].outputs_probabilities
    result = evaluate_model(
        model, ArraySource("zeros", x.astype(np.uint8), np.ones(3, int), ["no", "yes"]), progress=False
    )
    assert result.y_pred.tolist() == [1, 1, 1] and not result.outputs_probabilities
    assert Saliency(model)(x).class_index.tolist() == [1, 1, 1]
    lime = LIME(model, num_samples=20, batch_size=20, segmentation="slic")
    assert lime(np.full((1, 2, 2, 1), 9.0, np.float32)).class_index.tolist() == [1]
    assert deletion_insertion(
        model, x, np.random.default_rng(0).random((3, 2, 2)), None, steps=2
    ).class_index.tolist() == [1, 1, 1]


def test_probabilities_do_not_depend_on_the_batch():
    """Outputs (0.2, 0.3, 0.5) look like probabilities; with another image in the batch they
    did not, and the same image got other probabilities. Now they are logits either way."""
    model = _linear([0.2, 0.3, 0.5], kernel_sum=[1.8, -1.3, -0.5])
    a = np.zeros((1, 2, 2, 1), np.float32)
    b = np.full((1, 2, 2, 1), 255.0, np.float32)
    alone = predict(model, a, ["a", "b", "c"])[0].probabilities
    together = predict(model, np.concatenate([a, b]), ["a", "b", "c"])[0].probabilities
    np.testing.assert_allclose(alone, together, rtol=1e-6)
    np.testing.assert_allclose(alone, np.exp([0.2, 0.3, 0.5]) / np.exp([0.2, 0.3, 0.5]).sum(), rtol=1e-5)


@pytest.mark.parametrize(
    ("activation", "kind", "outputs_logits"),
    [("softmax", "logit", False), (None, "logit", True), ("sigmoid", "logit", False)],
)
def test_decided_from_the_last_layer(activation, kind, outputs_logits):
    classes = 1 if activation == "sigmoid" else 3
    head = ScoreHead(_linear(np.zeros(classes), activation=activation))
    assert (head.score_kind, head.outputs_logits) == (kind, outputs_logits)
    assert "last layer" in head.decided_by


def test_unknown_last_layer_falls_back_to_one_value_test():
    """A nested model as the last layer: nothing to read, so its values decide, once."""
    inner_softmax = keras.Sequential([keras.Input((4,)), L.Dense(3, activation="softmax")])
    inner_linear = keras.Sequential([keras.Input((4,)), L.Dense(3)])
    for inner, kind in ((inner_softmax, "probability"), (inner_linear, "logit")):
        inp = keras.Input((2, 2, 1))
        model = keras.Model(inp, inner(L.Flatten()(inp)))
        head = ScoreHead(model)
        assert head.score_kind == kind and "values" in head.decided_by
        assert head.outputs_logits == (kind == "logit")
        probs = head.predict_probabilities(np.random.default_rng(0).uniform(0, 255, (5, 2, 2, 1)))
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


def test_value_test_and_cache():
    assert looks_like_probabilities(np.array([[0.2, 0.8]])) and not looks_like_probabilities(np.array([[0.2, 0.9]]))
    assert looks_like_probabilities(np.array([[0.3]])) and not looks_like_probabilities(np.array([[1.3]]))
    model = _linear([0.0, 0.0])
    assert score_head(model) is score_head(model) and score_head(model) is not score_head(model, "unit")
    with pytest.raises(ValueError, match="batch_size"):
        score_head(model).predict_probabilities(np.zeros((1, 2, 2, 1)), batch_size=0)
