"""MuFidelity, stability (average sensitivity / sensitivity-max) and ROAD on hand-built models
whose right answers are known: each numeric test was seen to fail against a broken formula."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_functional, tiny_sigmoid

from explain.attribution import GradCAM, Saliency
from explain.attribution.base import Attribution, AttributionMethod
from explain.metrics import (
    MuFidelityScores,
    RoadScores,
    StabilityScores,
    linear_imputation,
    mufidelity,
    road,
    stability,
)
from explain.metrics.road import _impute, _ranks
from explain.models.scores import ScoreHead

L = keras.layers
SIZE = 16


def images(n=2, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3)).astype(np.float32)


def linear_model(weights: np.ndarray, softmax: bool = False, bias: float = 0.0) -> keras.Model:
    """Two classes on raw pixels: logit 1 = sum(weights * x) + bias, logit 0 = 0."""
    model = keras.Sequential(
        [keras.Input((SIZE, SIZE, 3)), L.Flatten(), L.Dense(2, activation="softmax" if softmax else None)]
    )
    kernel = np.zeros((SIZE * SIZE * 3, 2), np.float32)
    kernel[:, 1] = weights.ravel()
    model.layers[-1].set_weights([kernel, np.array([0.0, bias], np.float32)])
    return model


def weights(scale=1.0, seed=1):
    return (scale * np.random.default_rng(seed).normal(size=(SIZE, SIZE, 3)) / 255.0).astype(np.float32)


def contributions(x, w):
    """The exact contribution map of a linear model to logit 1, baseline 0: sum_c x * w (signed)."""
    return (x * w).sum(axis=-1)


def attribution_of(maps, method="gradcam", cls=1):
    n = len(maps)
    flat = np.array([np.ptp(m) == 0 for m in maps])
    return Attribution(
        heatmap=np.asarray(maps, np.float32),
        class_index=np.full(n, cls, np.int64),
        score=np.zeros(n, np.float32),
        method=method,
        layer=None,
        score_kind="logit",
        flat=flat,
    )


class ConstantRamp(AttributionMethod):
    """The same left-to-right ramp whatever the image: perfectly stable."""

    name = "ramp"

    def _raw_maps(self, x, class_index):
        cls, score = self.pick(self.scores_from_input(x), class_index)
        ramp = tf.broadcast_to(tf.range(SIZE, dtype=tf.float32)[None, None, :], (tf.shape(x)[0], SIZE, SIZE))
        return ramp, cls, score


class FlipRamp(AttributionMethod):
    """The ramp when the image's mean is above 127.5, the reversed ramp otherwise."""

    name = "flip"

    def _raw_maps(self, x, class_index):
        cls, score = self.pick(self.scores_from_input(x), class_index)
        ramp = tf.broadcast_to(tf.range(SIZE, dtype=tf.float32)[None, None, :], (tf.shape(x)[0], SIZE, SIZE))
        bright = tf.reduce_mean(x, axis=(1, 2, 3)) > 127.5
        return tf.where(bright[:, None, None], ramp, float(SIZE - 1) - ramp), cls, score


class RedChannel(AttributionMethod):
    """The image's red channel: moves with every pixel of noise."""

    name = "red"

    def _raw_maps(self, x, class_index):
        cls, score = self.pick(self.scores_from_input(x), class_index)
        return x[..., 0], cls, score


class Zeros(AttributionMethod):
    """Flat maps only."""

    name = "zeros"

    def _raw_maps(self, x, class_index):
        cls, score = self.pick(self.scores_from_input(x), class_index)
        return tf.zeros(tf.shape(x)[:3]), cls, score


# -- MuFidelity ---------------------------------------------------------------------------
def zero_mean_linear(x):
    """Weights whose contributions to one image ``x`` (1, H, W, 3) have mean 0, so that
    centring the map (as MuFidelity does) changes nothing even with unequal cells."""
    w = weights()
    c = contributions(x, w)
    return (w - (c.mean() / x[0].sum(axis=-1))[..., None]).astype(np.float32)


@pytest.mark.parametrize("grid_size", [9, 8, None])
def test_mufidelity_of_the_exact_contributions_of_a_linear_model_is_one(grid_size):
    x = images(2)
    x[:, 0, 0] = 1.0  # no all-black pixel: every pixel's contribution can be moved
    w = zero_mean_linear(x[:1]) if grid_size == 9 else weights()
    if grid_size == 9:
        x = x[:1]
    exact = contributions(x, w)
    model = linear_model(w)
    good = mufidelity(model, x, exact, 1, subsets=64, grid_size=grid_size)
    assert isinstance(good, MuFidelityScores) and good.score == "logit"
    np.testing.assert_allclose(good.correlation, 1.0, atol=1e-4)
    assert not good.flat.any() and np.all(good.class_index == 1)
    shuffled = np.random.default_rng(5).permuted(exact.reshape(len(x), -1), axis=1).reshape(exact.shape)
    bad = mufidelity(model, x, shuffled, 1, subsets=64, grid_size=grid_size)
    assert np.all(bad.correlation < 0.6)
    # the opposite map: exactly anti-correlated
    opposite = mufidelity(model, x, -exact, 1, subsets=64, grid_size=grid_size)
    np.testing.assert_allclose(opposite.correlation, -1.0, atol=1e-4)


def test_mufidelity_is_pearson_not_a_rank_correlation():
    # f = the probability, a sigmoid of the exact mass: monotone (Spearman would give 1), not linear
    w = weights(scale=0.4)
    x = images(1)
    exact = contributions(x, w)
    model = linear_model(w, softmax=True, bias=1.0 - float(exact.sum()))  # logit 1 on x, +-2 over the subsets
    linear = mufidelity(model, x, exact, 1, subsets=64, grid_size=8, score="logit")
    curved = mufidelity(model, x, exact, 1, subsets=64, grid_size=8, score="probability")
    np.testing.assert_allclose(linear.correlation, 1.0, atol=1e-4)
    assert curved.score == "probability"
    assert 0.5 < curved.correlation[0] < 0.97  # 0.82; Spearman's would be 1


def test_mufidelity_does_not_depend_on_the_maps_units():
    w = weights()
    x = images(2)
    exact = contributions(x, w)
    unit = (exact - exact.min(axis=(1, 2), keepdims=True)) / np.ptp(exact, axis=(1, 2), keepdims=True)
    model = linear_model(w)
    for grid in (9, 8, None):  # 16 / 9: cells of 1 or 2 rows, and the map is centred
        raw = mufidelity(model, x, exact, 1, subsets=32, grid_size=grid, seed=3).correlation
        scaled = mufidelity(model, x, unit, 1, subsets=32, grid_size=grid, seed=3).correlation
        np.testing.assert_allclose(raw, scaled, atol=1e-6)


def test_mufidelity_binary_class_zero_is_the_negative_logit():
    model = tiny_sigmoid()
    x = images(2)
    maps = np.random.default_rng(2).normal(size=(2, SIZE, SIZE))
    one = mufidelity(model, x, maps, 1, subsets=16, grid_size=4)
    zero = mufidelity(model, x, -maps, 0, subsets=16, grid_size=4)
    np.testing.assert_allclose(one.correlation, zero.correlation, atol=1e-6)


def test_mufidelity_is_seeded_and_batched(monkeypatch):
    sizes = []
    original = ScoreHead.predict_scores

    def recording(self, batch, batch_size=64):
        sizes.append(len(batch))
        return original(self, batch, batch_size)

    monkeypatch.setattr(ScoreHead, "predict_scores", recording)
    model = tiny_functional()
    x = images(3)
    maps = np.random.default_rng(0).random((3, SIZE, SIZE))
    a = mufidelity(model, x, maps, subsets=20, batch_size=16)
    assert sizes == [3, 16, 16, 16, 12]  # the originals (their top classes too), then the subsets
    b = mufidelity(model, x, maps, subsets=20, batch_size=7)
    np.testing.assert_allclose(a.correlation, b.correlation, atol=1e-6)
    c = mufidelity(model, x, maps, subsets=20, seed=1)
    assert not np.allclose(a.correlation, c.correlation)
    # an image's number does not depend on the batch it is in
    alone = mufidelity(model, x[1:2], maps[1:2], subsets=20)
    np.testing.assert_allclose(alone.correlation, a.correlation[1:2], atol=1e-6)
    np.testing.assert_array_equal(a.class_index, model.predict(x, verbose=0).argmax(axis=1))  # None: the top class


def test_mufidelity_flat_maps():
    model = tiny_functional()
    maps = np.random.default_rng(0).random((3, SIZE, SIZE))
    maps[0] = 0.5
    maps[2, 1, 1] = np.inf
    scores = mufidelity(model, images(3), maps, 0, subsets=8)
    assert scores.flat.tolist() == [True, False, True]
    assert np.isnan(scores.correlation[[0, 2]]).all() and np.isfinite(scores.correlation[1])
    with pytest.raises(ValueError, match=r"^MuFidelity: every heatmap given is flat \(the method returned"):
        mufidelity(model, images(2), np.zeros((2, SIZE, SIZE)), 0)
    with pytest.raises(ValueError, match=r"^MuFidelity: every heatmap of gradcam is flat") as err:
        mufidelity(model, images(2), attribution_of(np.zeros((2, SIZE, SIZE))))
    assert "\n" not in str(err.value) and "try another method or layer" in str(err.value)


def test_mufidelity_bad_arguments():
    model = tiny_functional()
    maps = np.random.default_rng(0).random((2, SIZE, SIZE))
    with pytest.raises(ValueError, match="do not match"):
        mufidelity(model, images(2), maps[:, :8], 0)
    with pytest.raises(ValueError, match="do not match"):
        mufidelity(model, images(3), maps, 0)
    with pytest.raises(ValueError, match="subset_fraction"):
        mufidelity(model, images(2), maps, 0, subset_fraction=1.0)
    with pytest.raises(ValueError, match="Unknown score"):
        mufidelity(model, images(2), maps, 0, score="margin")
    with pytest.raises(ValueError, match="subsets"):
        mufidelity(model, images(2), maps, 0, subsets=2)


# -- stability ----------------------------------------------------------------------------
def test_stability_of_an_input_independent_map_and_of_saliency_on_a_linear_model_is_zero():
    x = images(2)
    ramp = stability(ConstantRamp(tiny_functional()), x, samples=4)
    assert isinstance(ramp, StabilityScores) and ramp.method == "ramp"
    np.testing.assert_array_equal(ramp.average, 0.0)
    np.testing.assert_array_equal(ramp.maximum, 0.0)
    linear = stability(Saliency(linear_model(weights())), x, 1, samples=4)  # the gradient is the kernel
    np.testing.assert_allclose(linear.maximum, 0.0, atol=1e-6)
    assert linear.distances.shape == (2, 4) and not linear.flat.any()


def test_stability_known_answer_of_a_map_that_flips():
    x = np.full((1, SIZE, SIZE, 3), 127.5, np.float32)  # no clipping; the noise's mean sign decides
    scores = stability(FlipRamp(tiny_functional()), x, 0, samples=10, radius=20.0)
    ramp = np.arange(SIZE) / (SIZE - 1)
    moved = np.sqrt(np.mean((2 * ramp - 1) ** 2))  # RMS of ramp - reversed ramp over the pixels
    d = scores.distances[0]
    flips = np.isclose(d, moved, atol=1e-6)
    assert np.all(flips | np.isclose(d, 0.0, atol=1e-6)) and 0 < flips.sum() < 10
    np.testing.assert_allclose(scores.average[0], moved * flips.sum() / 10, atol=1e-6)
    np.testing.assert_allclose(scores.maximum[0], moved, atol=1e-6)


def test_stability_of_a_noisy_map_is_positive_grows_with_the_radius_and_is_seeded():
    method = RedChannel(tiny_functional())
    x = images(2)
    small = stability(method, x, radius=2.0, samples=5)
    large = stability(method, x, radius=40.0, samples=5)
    assert np.all(small.average > 0) and np.all(large.average > 3 * small.average)
    assert np.all(large.maximum >= large.average) and np.all(large.maximum <= 1.0)
    np.testing.assert_array_equal(large.maximum, large.distances.max(axis=1))
    again = stability(method, x, radius=40.0, samples=5, batch_size=3)
    np.testing.assert_allclose(again.distances, large.distances, atol=1e-6)
    other = stability(method, x, radius=40.0, samples=5, seed=1)
    assert not np.allclose(other.distances, large.distances)


def test_stability_keeps_the_explained_class():
    seen = []

    class Recording(Saliency):
        def __call__(self, images, class_index=None):
            seen.append(None if class_index is None else np.asarray(class_index).tolist())
            return super().__call__(images, class_index)

    model = tiny_functional()
    x = images(3)
    scores = stability(Recording(model), x, samples=2, radius=60.0)
    top = model.predict(x, verbose=0).argmax(axis=1)
    assert seen[0] is None and scores.class_index.tolist() == top.tolist()
    assert seen[1] == np.repeat(top, 2).tolist()  # every noisy copy: its original's class


def test_stability_flat_maps():
    x = images(2)
    x[0] = 100.0  # a constant red channel: a flat map
    scores = stability(RedChannel(tiny_functional()), x, samples=3)
    assert scores.flat.tolist() == [True, False]
    assert np.isnan(scores.average[0]) and np.isnan(scores.maximum[0]) and np.isfinite(scores.average[1])
    with pytest.raises(ValueError, match=r"^Stability: every heatmap of zeros is flat") as err:
        stability(Zeros(tiny_functional()), x)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="radius"):
        stability(RedChannel(tiny_functional()), x, radius=0)
    with pytest.raises(ValueError, match="do not fit the model input"):
        stability(RedChannel(tiny_functional()), x[:, :8])


# -- ROAD ---------------------------------------------------------------------------------
def test_linear_imputation_reproduces_a_linear_image_off_the_border():
    i, j = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    img = np.stack([3.0 * i + 2.0 * j + 10, -1.5 * i + 4.0 * j + 100, 0.5 * i - 7.0 * j + 200], axis=-1)
    removed = np.zeros((SIZE, SIZE), bool)
    removed[1:-1, 1:-1] = np.random.default_rng(0).random((SIZE - 2, SIZE - 2)) < 0.7
    removed[4:9, 3:12] = True  # a block: its pixels are imputed from each other
    garbage = img.copy()
    garbage[removed] = 1e6  # what the removed pixels held must not matter
    np.testing.assert_allclose(linear_imputation(garbage, removed), img, atol=1e-6)


def test_linear_imputation_weights_one_sixth_and_one_twelfth():
    img = np.random.default_rng(1).uniform(0, 255, (6, 7, 2))
    removed = np.zeros((6, 7), bool)
    removed[2, 3] = removed[0, 0] = True  # an interior pixel and a corner one
    filled = linear_imputation(img, removed)
    direct = img[1, 3] + img[3, 3] + img[2, 2] + img[2, 4]
    diagonal = img[1, 2] + img[1, 4] + img[3, 2] + img[3, 4]
    np.testing.assert_allclose(filled[2, 3], direct / 6 + diagonal / 12)
    # at the corner the three neighbours there are weighed 1/6, 1/6, 1/12, renormalised
    np.testing.assert_allclose(filled[0, 0], (img[0, 1] / 6 + img[1, 0] / 6 + img[1, 1] / 12) / (5 / 12))
    keep = ~removed
    np.testing.assert_array_equal(filled[keep], img[keep])
    with pytest.raises(ValueError, match="Every pixel is removed"):
        linear_imputation(img, np.ones((6, 7), bool))


def test_road_noise_is_on_the_imputed_pixels_only():
    img = np.full((SIZE, SIZE, 3), 128.0, np.float32)
    removed = np.zeros((SIZE, SIZE), bool)
    removed[2:14, 2:14] = True
    noisy = _impute(img, removed, "linear", 2.55, np.random.default_rng(0))
    assert noisy.dtype == np.float32
    np.testing.assert_array_equal(noisy[~removed], 128.0)
    np.testing.assert_allclose(np.std(noisy[removed] - 128.0), 2.55, rtol=0.1)
    clean = _impute(img, removed, "linear", 0.0, np.random.default_rng(0))
    np.testing.assert_allclose(clean, 128.0, atol=1e-4)
    mean = _impute(images(1)[0], removed, "mean", 0.0, None)
    np.testing.assert_allclose(mean[removed], np.broadcast_to(images(1)[0].mean(axis=(0, 1)), (144, 3)), rtol=1e-6)


def test_road_breaks_ties_at_random_not_in_raster_order():
    maps = np.zeros((2, SIZE, SIZE))
    maps[:, 0, :4] = [4, 3, 2, 1]  # four distinct values, then a plateau of zeros
    maps[1] *= 2  # the same order
    rank = _ranks(maps, seed=0)
    assert rank[0, 0, :4].tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(rank[0], rank[1])  # one key per pixel, the same for every map
    plateau = rank[0].ravel()[4:]
    assert sorted(plateau) == list(range(4, SIZE * SIZE))
    assert abs(np.corrcoef(plateau, np.arange(plateau.size))[0, 1]) < 0.3  # not raster order
    np.testing.assert_array_equal(_ranks(maps, seed=0), rank)
    assert not np.array_equal(_ranks(maps, seed=1), rank)


def test_road_a_faithful_map_beats_its_reverse():
    w = weights(scale=0.3)
    x = images(2)
    model = linear_model(w, softmax=True, bias=-127.5 * float(w.sum()))  # logit 1 = sum w (x - 127.5)
    good_map = contributions(x - 127.5, w)  # what each pixel adds, against the grey the imputation brings
    good = road(model, x, good_map, 1)
    bad = road(model, x, -good_map, 1)
    assert isinstance(good, RoadScores) and good.morf_curve.shape == good.lerf_curve.shape == (2, 9)
    assert np.all(good.morf < bad.morf - 0.1) and np.all(good.lerf > bad.lerf + 0.1)
    assert np.all(good.combined > bad.combined) and np.all(good.combined > 0)
    probs = model.predict(x, verbose=0)[:, 1]
    np.testing.assert_allclose(good.original, probs, rtol=1e-4)
    assert np.all((probs > 0.02) & (probs < 0.98))  # not saturated
    for curve in (good.morf_curve, good.lerf_curve):
        assert np.all((curve >= 0) & (curve <= 1))
    np.testing.assert_allclose(good.morf, good.morf_curve.mean(axis=1))
    # without noise, removing the top of a map is removing the bottom of its negative
    clean = road(model, x, good_map, 1, noise=0.0)
    flipped = road(model, x, -good_map, 1, noise=0.0)
    np.testing.assert_allclose(clean.morf_curve, flipped.lerf_curve, atol=1e-6)


def test_road_without_noise_restores_a_linear_image():
    i, j = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    x = np.stack([5 * i + 3 * j, 200 - 4 * j, 10 + 6 * i], axis=-1)[None]
    interior = np.zeros((1, SIZE, SIZE))
    interior[:, 2:-2, 2:-2] = 1.0 + np.random.default_rng(0).random((SIZE - 4, SIZE - 4))
    w = weights(scale=3.0)
    model = linear_model(w, softmax=True, bias=-float((x * w).sum()))  # probability 0.5: not saturated
    # 0.5 of 256 pixels = 128 < the 144 interior ones: only interior pixels go, and come back
    exact = road(model, x, interior, 1, fractions=(0.25, 0.5), order="morf", noise=0.0)
    np.testing.assert_allclose(exact.morf_curve[0], exact.original[0], atol=1e-5)
    assert np.isnan(exact.lerf).all() and np.isnan(exact.combined).all()
    noisy = road(model, x, interior, 1, fractions=(0.25, 0.5), order="morf")
    assert np.all(np.abs(noisy.morf_curve[0] - noisy.original[0]) > 1e-4)


def test_road_is_seeded_and_batched(monkeypatch):
    sizes = []
    original = ScoreHead.predict_probabilities

    def recording(self, batch, batch_size=64):
        sizes.append(len(batch))
        return original(self, batch, batch_size)

    monkeypatch.setattr(ScoreHead, "predict_probabilities", recording)
    model = tiny_functional()
    x = images(3)
    attribution = GradCAM(model)(x)
    a = road(model, x, attribution, fractions=(0.2, 0.5, 0.8), batch_size=8)
    assert sizes == [3, 8, 8, 2]  # the originals, then 2 orders x 3 images x 3 fractions
    np.testing.assert_array_equal(a.class_index, attribution.class_index)
    top = road(model, x, attribution.heatmap, fractions=(0.5,))  # no class: the top prediction
    np.testing.assert_array_equal(top.class_index, model.predict(x, verbose=0).argmax(axis=1))
    b = road(model, x, attribution, fractions=(0.2, 0.5, 0.8), batch_size=5)
    np.testing.assert_allclose(a.morf_curve, b.morf_curve, atol=1e-6)
    one = road(model, x[2:], attribution.heatmap[2:], attribution.class_index[2:], fractions=(0.2, 0.5, 0.8))
    np.testing.assert_allclose(one.lerf_curve, a.lerf_curve[2:], atol=1e-6)
    c = road(model, x, attribution, fractions=(0.2, 0.5, 0.8), seed=1)
    assert not np.allclose(a.morf_curve, c.morf_curve)


def test_road_flat_maps_and_bad_arguments():
    model = tiny_functional()
    maps = np.random.default_rng(0).random((3, SIZE, SIZE))
    maps[1] = 0.0
    scores = road(model, images(3), maps, 0, fractions=(0.5,))
    assert scores.flat.tolist() == [False, True, False]
    assert np.isnan(scores.morf[1]) and np.isnan(scores.lerf_curve[1]).all() and np.isnan(scores.original[1])
    assert np.isfinite(scores.morf[[0, 2]]).all() and np.isfinite(scores.combined[[0, 2]]).all()
    with pytest.raises(ValueError, match=r"^ROAD: every heatmap given is flat \(the method returned constant maps\)"):
        road(model, images(2), np.ones((2, SIZE, SIZE)), 0)
    with pytest.raises(ValueError, match=r"^ROAD: every heatmap of scorecam is flat"):
        road(model, images(2), attribution_of(np.zeros((2, SIZE, SIZE)), "scorecam"))
    with pytest.raises(ValueError, match="do not match"):
        road(model, images(2), maps, 0)
    with pytest.raises(ValueError, match="fractions"):
        road(model, images(3), maps, 0, fractions=(0.5, 1.0))
    with pytest.raises(ValueError, match="Unknown order"):
        road(model, images(3), maps, 0, order="random")
    with pytest.raises(ValueError, match="Unknown imputation"):
        road(model, images(3), maps, 0, imputation="gain")
