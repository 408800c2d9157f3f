"""Occlusion, RISE and Kernel SHAP against their formulas, on tiny models with fixed weights.

Hand answers are computed here with NumPy and direct model calls: a linear model makes Occlusion and
Kernel SHAP exact (each window's or superpixel's contribution ``sum (x - baseline) * w``), brute-force
Shapley values check Kernel SHAP on a non-additive model, and RISE is the paper's weighted sum of
masks. Each numeric test was seen to fail against a deliberately wrong formula in the library (see
the test docstrings).
"""

from __future__ import annotations

import inspect
import math
import re

import keras
import numpy as np
import pytest
from conftest import fix_weights, tiny_functional

from explain.attribution import normalize_maps
from explain.attribution.kernel_shap import (
    KernelSHAP,
    KernelShapAttribution,
    kernel_coalitions,
    shapley_kernel,
)
from explain.attribution.lime import LimeAttribution
from explain.attribution.occlusion import Occlusion
from explain.attribution.rise import RISE, rise_masks

L = keras.layers
SIZE = 8


def _images(n: int = 3, size: int = SIZE, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, channels)).astype(np.float32)


def _linear(size: int = SIZE, channels: int = 3, units: int = 3, seed: int = 10, activation=None) -> keras.Model:
    """Flatten -> Dense(units): the score is x . w_c + b_c (a sigmoid output: its logit is)."""
    inp = keras.Input((size, size, channels))
    out = L.Dense(units, activation=activation, name="logits")(L.Flatten()(inp))
    return fix_weights(keras.Model(inp, out), seed=seed, scale=0.02)


def _mlp(size: int = SIZE, channels: int = 3, seed: int = 11) -> keras.Model:
    """Rescaling -> Flatten -> Dense(8, tanh) -> Dense(3): not additive over pixels."""
    inp = keras.Input((size, size, channels))
    h = L.Dense(8, activation="tanh")(L.Flatten()(L.Rescaling(1 / 255)(inp)))
    return fix_weights(keras.Model(inp, L.Dense(3, name="logits")(h)), seed=seed, scale=3.0)


def _kernel(model: keras.Model, cls: int, shape: tuple) -> np.ndarray:
    return model.get_layer("logits").get_weights()[0][:, cls].astype(np.float64).reshape(shape)


def _logits(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(np.asarray(x, np.float32)), np.float64)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# -- Occlusion ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [4, (2, 4)])
def test_occlusion_on_a_linear_model_is_each_windows_contribution(window):
    """S = x . w + b, windows not overlapping (stride = window): every pixel of a window gets
    sum over the window and channels of (x - baseline) * w_c. Seen to fail with the drop's sign
    flipped and with the baseline ignored (windows set to 0)."""
    model = _linear()
    x = _images()
    w = _kernel(model, 2, (SIZE, SIZE, 3))
    wh, ww = (window, window) if isinstance(window, int) else window
    expected = np.zeros((len(x), SIZE, SIZE))
    for t in range(0, SIZE, wh):
        for left in range(0, SIZE, ww):
            part = (x[:, t : t + wh, left : left + ww] - 40.0) * w[t : t + wh, left : left + ww]
            expected[:, t : t + wh, left : left + ww] = part.sum(axis=(1, 2, 3))[:, None, None]
    method = Occlusion(model, window=window, stride=window, baseline=40)
    raw, cls, score = method.raw_maps(x, class_index=2)
    np.testing.assert_allclose(raw, expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(score, _logits(model, x)[:, 2], rtol=1e-5)
    assert cls.tolist() == [2, 2, 2]
    got = method(x, class_index=2)
    np.testing.assert_allclose(got.heatmap, normalize_maps(expected)[0], atol=1e-5)
    assert got.method == "occlusion" and got.layer is None and got.score_kind == "logit"


def _occlusion_by_hand(model, x, cls, window, tops, lefts, baseline=0.0):
    """The definition: mean over the windows covering each pixel of S(x) - S(x, window hidden)."""
    base = _logits(model, x)[:, cls]
    total, count = np.zeros(x.shape[:3]), np.zeros(x.shape[1:3])
    for t in tops:
        for left in lefts:
            hidden = x.copy()
            hidden[:, t : t + window[0], left : left + window[1]] = baseline
            drop = base - _logits(model, hidden)[:, cls]
            total[:, t : t + window[0], left : left + window[1]] += drop[:, None, None]
            count[t : t + window[0], left : left + window[1]] += 1
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


@pytest.mark.parametrize(
    ("window", "stride", "tops", "lefts"),
    [
        ((3, 3), (2, 2), [0, 2, 4, 5], [0, 2, 4, 5]),  # overlapping; the last window flush with the edge
        ((3, 2), (2, 3), [0, 2, 4, 5], [0, 3, 6]),  # stride > window across: columns 2 and 5 uncovered (0)
    ],
)
def test_occlusion_averages_the_drops_of_the_windows_covering_each_pixel(window, stride, tops, lefts):
    """A non-additive model, windows overlapping: the hand mean over covering windows, on the window grid
    written out by hand. Seen to fail with the drops summed instead of averaged (xplique's convention),
    without the window flush with the far edge, and with the last window of a partial batch lost."""
    model = _mlp()
    x = _images(2)
    expected = _occlusion_by_hand(model, x, 1, window, tops, lefts, baseline=128.0)
    method = Occlusion(model, window=window, stride=stride, baseline=128, mask_batch=5)
    assert method.patches(SIZE, SIZE)[2].tolist() == tops and method.patches(SIZE, SIZE)[3].tolist() == lefts
    raw, _, _ = method.raw_maps(x, class_index=1)
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(raw, expected, rtol=1e-4, atol=1e-5)


def test_occlusion_grayscale_binary_and_preprocessed():
    """A grayscale sigmoid model on x / 127.5 - 1 (``preprocess="tf"``): the window is painted in raw
    pixels, so each window's drop is sum (x - baseline) / 127.5 * w; class 0 (score -logit) is its
    negative. Seen to fail with the baseline painted after the preprocessing."""
    model = _linear(channels=1, units=1, activation="sigmoid")
    x = _images(2, channels=1)
    w = _kernel(model, 0, (SIZE, SIZE, 1))
    expected = np.zeros((2, SIZE, SIZE))
    for t in (0, 4):
        for left in (0, 4):
            part = (x[:, t : t + 4, left : left + 4] - 10.0) / 127.5 * w[t : t + 4, left : left + 4]
            expected[:, t : t + 4, left : left + 4] = part.sum(axis=(1, 2, 3))[:, None, None]
    method = Occlusion(model, window=4, stride=4, baseline=10, preprocess="tf")
    one, _, score = method.raw_maps(x, class_index=1)
    zero, _, minus = method.raw_maps(x, class_index=0)
    np.testing.assert_allclose(one, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(zero, -expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(minus, -score)


def test_occlusion_default_windows():
    """About 1/7 of the side, half-overlapping: 13 x 13 windows from 28x28 to 224x224."""
    model = _linear()
    method = Occlusion(model)
    for side, window in ((28, 4), (224, 32), (8, 2)):
        (wh, ww), (sh, sw), tops, lefts = method.patches(side, side)
        assert (wh, ww) == (window, window) and (sh, sw) == (window // 2, window // 2)
        assert tops[-1] == side - window and len(tops) == len(lefts)
    assert len(method.patches(28, 28)[2]) == 13 and len(method.patches(224, 224)[2]) == 13
    result = method(_images(2))
    assert result.heatmap.shape == (2, SIZE, SIZE) and not result.flat.any()


def test_occlusion_window_larger_than_the_image():
    model = _linear(size=28, channels=1)
    with pytest.raises(
        ValueError,
        match=re.escape("Occlusion: window 40x40 is larger than the 28x28 image; use a window of at most 28."),
    ):
        Occlusion(model, window=40)
    with pytest.raises(ValueError, match=re.escape("window 29x4 is larger than the 28x28 image")):
        Occlusion(model, window=(29, 4))
    # a free-size model: checked when called, against the image given
    inp = keras.Input((None, None, 3))
    free = keras.Model(inp, L.Dense(2)(L.GlobalAveragePooling2D()(inp)))
    method = Occlusion(free, window=10)
    with pytest.raises(ValueError, match=re.escape("Occlusion: window 10x10 is larger than the 8x8 image")):
        method(_images(1))
    assert Occlusion(free, window=4)(_images(1)).heatmap.shape == (1, SIZE, SIZE)


# -- RISE --------------------------------------------------------------------------------------------


def test_rise_is_the_papers_weighted_sum_of_masks():
    """map = sum_i P(class | x * M_i) M_i / (N p) with hand-given masks; 37 masks in batches of 16 (a
    partial last batch). Seen to fail without the 1 / p, with the logit in place of the probability,
    with the masks multiplied after the preprocessing, and with the last partial batch of masks lost."""
    model = _mlp()
    x = _images(2)
    masks = np.random.default_rng(5).uniform(0, 1, (37, SIZE, SIZE)).astype(np.float32)
    method = RISE(model, probability=0.3, mask_batch=16, preprocess="tf")
    method.set_masks(masks)
    np.testing.assert_array_equal(method.masks(SIZE, SIZE), masks)
    expected = []
    for xi in x:
        masked = xi[None] * masks[..., None]
        p = _softmax(_logits(model, masked / 127.5 - 1))[:, 0]
        expected.append(np.einsum("n,nhw->hw", p, masks) / (37 * 0.3))
    expected = np.stack(expected)
    raw, _, score = method.raw_maps(x, class_index=0)
    np.testing.assert_allclose(raw, expected, rtol=1e-5)
    np.testing.assert_allclose(score, _logits(model, x / 127.5 - 1)[:, 0], rtol=1e-5)
    np.testing.assert_allclose(method(x, class_index=0).heatmap, normalize_maps(expected)[0], atol=1e-5)


def test_rise_masks_are_the_papers():
    """Binary s x s cells kept with probability p, upsampled bilinearly to (s + 1) * ceil(H / s) and
    cropped at a random shift, as the paper's code (a loop over masks here). Seen to fail with the
    upsampled size H * (s + 1) / s and without the shift."""
    from skimage.transform import resize

    count, height, width, grid, p = 20, 12, 9, 4, 0.4
    rng = np.random.default_rng(3)
    cells = rng.random((count, grid, grid)) < p
    ch, cw = math.ceil(height / grid), math.ceil(width / grid)
    shifts = rng.integers(0, (ch, cw), (count, 2))
    expected = np.stack(
        [
            resize(c.astype(float), ((grid + 1) * ch, (grid + 1) * cw), order=1, mode="reflect", anti_aliasing=False)[
                dy : dy + height, dx : dx + width
            ]
            for c, (dy, dx) in zip(cells, shifts, strict=True)
        ]
    )
    got = rise_masks(count, height, width, grid=grid, probability=p, seed=3)
    assert got.shape == (count, height, width) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-6)
    method = RISE(_linear(), masks=count, grid=grid, probability=p, seed=3)
    np.testing.assert_array_equal(method.masks(height, width), got)
    many = RISE(_linear(), masks=2000).masks(28, 28)
    assert many.min() == 0.0 and many.max() == 1.0 and abs(many.mean() - 0.5) < 0.02


def test_rise_same_seed_same_map_other_seed_other_map_in_any_batch():
    model = _mlp()
    x = _images(3)
    first = RISE(model, masks=40, seed=7)(x)
    again = RISE(model, masks=40, seed=7, batch_size=1)(x)
    other = RISE(model, masks=40, seed=8)(x)
    np.testing.assert_allclose(first.heatmap, again.heatmap, atol=1e-6)
    assert np.abs(first.heatmap - other.heatmap).max() > 1e-3
    assert not first.flat.any()


def test_rise_grayscale_binary_classes_add_up_to_the_mean_mask():
    """P(0) + P(1) = 1 for a sigmoid model, so the two classes' maps add up to sum_i M_i / (N p)."""
    model = _linear(channels=1, units=1, activation="sigmoid")
    x = _images(2, channels=1)
    method = RISE(model, masks=30)
    zero, _, _ = method.raw_maps(x, class_index=0)
    one, _, score = method.raw_maps(x, class_index=1)
    np.testing.assert_allclose(
        zero + one, np.broadcast_to(method.masks(SIZE, SIZE).sum(0) / 15.0, zero.shape), rtol=1e-5
    )
    kernel, bias = model.get_layer("logits").get_weights()
    np.testing.assert_allclose(score, x.reshape(2, -1) @ kernel[:, 0] + bias[0], rtol=1e-5)  # the logit


# -- Kernel SHAP -------------------------------------------------------------------------------------


def _grid_segments(rows: int, cols: int, size: int = SIZE):
    """A segmentation function: a rows x cols grid of rectangles."""

    def segment(image):
        h, w = image.shape[:2]
        return (np.arange(h)[:, None] * rows // h) * cols + (np.arange(w)[None, :] * cols // w)

    return segment


def test_kernel_shap_on_a_linear_model_is_each_superpixels_contribution():
    """An additive game: each superpixel's Shapley value is sum over its pixels of (x - hide) * w, with
    quickshift superpixels (few: every coalition enumerated) and with 16 grid cells sampled (60 of the
    65534 coalitions: the regression is exact all the same). Efficiency: the values sum to
    f(x) - f(all hidden). Seen to fail with the hidden pixels painted 0 instead of hide_color."""
    model = _linear(size=16)
    x = _images(2, size=16)
    w = _kernel(model, 0, (16, 16, 3))
    for kwargs in ({}, {"segmentation": _grid_segments(4, 4), "num_samples": 60}):
        result = KernelSHAP(model, hide_color=30, **kwargs)(x, class_index=0)
        assert isinstance(result, KernelShapAttribution) and isinstance(result, LimeAttribution)
        for i in range(2):
            seg, values = result.segments[i], result.weights[i]
            contrib = np.array([((x[i] - 30.0) * w)[seg == s].sum() for s in range(seg.max() + 1)])
            assert len(values) == len(contrib) >= 4
            np.testing.assert_allclose(values, contrib, rtol=1e-4, atol=1e-3)
            hidden = np.full((1, 16, 16, 3), 30.0)
            np.testing.assert_allclose(result.base_value[i], _logits(model, hidden)[0, 0], rtol=1e-5)
            np.testing.assert_allclose(values.sum(), result.score[i] - result.base_value[i], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(result.score, _logits(model, x)[:, 0], rtol=1e-5)


def _brute_force_shapley(model, image, seg, cls, fill, m: int) -> np.ndarray:
    """phi_i = sum over S not holding i of |S|! (m - |S| - 1)! / m! (v(S + i) - v(S)), where v(S) is the
    logit with the superpixels outside S painted ``fill``; all 2^m coalitions in one model call."""
    keep = (np.arange(2**m)[:, None] >> np.arange(m)) & 1  # row b: the players of bit mask b
    images = np.where(keep[:, seg][..., None].astype(bool), image, fill)
    value = _logits(model, images)[:, cls]
    phi = np.zeros(m)
    for b in range(2**m):
        size = int(keep[b].sum())
        for i in np.flatnonzero(keep[b] == 0):
            weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
            phi[i] += weight * (value[b | (1 << i)] - value[b])
    return phi


def test_kernel_shap_enumerating_every_coalition_gives_the_exact_shapley_values():
    """A non-additive model and 6 superpixels (a 2 x 3 grid), so all 62 coalitions are enumerated
    (num_samples=62 = 2^6 - 2): the brute-force Shapley values, with each superpixel hidden under its
    mean colour (hide_color=None). Seen to fail with the Shapley kernel weights replaced by 1 (or without
    the binomial C(M, |z|)), with the enumeration cut one coalition short, and with the efficiency
    constraint dropped (an intercept fitted instead)."""
    model = _mlp(size=12)
    x = _images(2, size=12, seed=4)
    segment = _grid_segments(2, 3)
    result = KernelSHAP(model, segmentation=segment, hide_color=None, num_samples=62)(x, class_index=2)
    for i in range(2):
        seg = segment(x[i]).astype(np.int64)
        np.testing.assert_array_equal(result.segments[i], seg)
        means = np.stack([x[i][seg == s].mean(axis=0) for s in range(6)])
        exact = _brute_force_shapley(model, x[i], seg, 2, means[seg], 6)
        assert np.abs(exact).max() > 0.1
        np.testing.assert_allclose(result.weights[i], exact, rtol=1e-4, atol=1e-5)


def test_kernel_shap_sampled_values_are_close_to_the_exact_ones():
    """12 superpixels, 400 of the 4094 coalitions (sizes 1 and 11 enumerated, the rest sampled): within
    10% of the largest exact value, efficiency exact. Seen to fail with the sampled coalitions weighted
    by the kernel of their size a second time."""
    model = _mlp(size=12, seed=12)
    x = _images(1, size=12, seed=6)
    segment = _grid_segments(3, 4)
    seg = segment(x[0]).astype(np.int64)
    exact = _brute_force_shapley(model, x[0], seg, 1, 0.0, 12)
    result = KernelSHAP(model, segmentation=segment, num_samples=400)(x, class_index=1)
    values = result.weights[0]
    assert np.abs(values - exact).max() < 0.1 * np.abs(exact).max()
    np.testing.assert_allclose(values.sum(), exact.sum(), rtol=1e-4, atol=1e-5)


def test_kernel_shap_same_seed_same_values_other_seed_other_values():
    model = _mlp(size=12, seed=12)
    x = _images(2, size=12, seed=6)
    kwargs = {"segmentation": _grid_segments(3, 4), "num_samples": 100}
    first = KernelSHAP(model, seed=3, **kwargs)(x)
    again = KernelSHAP(model, seed=3, batch_size=7, **kwargs)(x[::-1])  # other batches, other order
    other = KernelSHAP(model, seed=4, **kwargs)(x)
    for a, b in zip(first.weights, again.weights[::-1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert max(np.abs(a - b).max() for a, b in zip(first.weights, other.weights, strict=True)) > 1e-3
    quick = KernelSHAP(model, seed=3, num_samples=50)(x)  # quickshift: seeded too
    for s1, s2 in zip(quick.segments, KernelSHAP(model, seed=3, num_samples=50)(x).segments, strict=True):
        np.testing.assert_array_equal(s1, s2)


def test_kernel_shap_grayscale_binary_preprocessed_with_progress():
    """A grayscale sigmoid model on x / 255 (``preprocess="unit"``): class 1's values are the
    superpixels' sum (x - hide) / 255 * w, class 0's their negatives; progress counts every model image."""
    model = _linear(size=16, channels=1, units=1, activation="sigmoid")
    x = _images(2, size=16, channels=1)
    w = _kernel(model, 0, (16, 16, 1))
    calls = []
    method = KernelSHAP(
        model,
        preprocess="unit",
        hide_color=0,
        num_samples=40,
        batch_size=16,
        progress=lambda done, total: calls.append((done, total)),
    )
    one = method(x, class_index=1)
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[-1][0] == calls[-1][1] and len({t for _, t in calls}) == 1
    zero = method(x, class_index=0)
    for i in range(2):
        seg = one.segments[i]
        contrib = np.array([(x[i] / 255.0 * w)[seg == s].sum() for s in range(seg.max() + 1)])
        np.testing.assert_allclose(one.weights[i], contrib, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(zero.weights[i], -contrib, rtol=1e-4, atol=1e-5)
    raw, cls, _ = method.raw_maps(x, class_index=1)
    assert raw.shape == (2, 16, 16) and raw.dtype == np.float32 and cls.tolist() == [1, 1]
    np.testing.assert_allclose(raw[0], one.weights[0][one.segments[0]])


def test_kernel_coalitions_enumerate_all_within_budget_else_sample():
    """With budget >= 2^m - 2: every coalition once, weighted by the Shapley kernel; otherwise at most
    budget coalitions whose weights add up to the kernel's total, sum_s (m - 1) / (s (m - s))."""
    rng = np.random.default_rng(0)
    for m in (2, 3, 6):
        z, weights = kernel_coalitions(m, 2**m - 2, rng)
        assert len(z) == 2**m - 2 and len({row.tobytes() for row in z}) == len(z)
        assert z.any(axis=1).all() and not z.all(axis=1).any()
        np.testing.assert_allclose(weights, shapley_kernel(m, z.sum(axis=1)))
    z, weights = kernel_coalitions(1, 10, rng)
    assert z.shape == (0, 1)
    for m, budget in ((12, 400), (30, 100)):
        z, weights = kernel_coalitions(m, budget, rng)
        sizes = np.arange(1, m)
        assert 0 < len(z) <= budget and len({row.tobytes() for row in z}) == len(z)
        # drawn with its complement: sizes 2 to m - 2 (1 and m - 1 may be enumerated) but m / 2, whose
        # complement is the same size; the budget may cut the last pair
        size = z.sum(axis=1)
        drawn = {row.tobytes() for row in z[(size > 1) & (size < m - 1) & (2 * size != m)]}
        assert len(drawn) > 10 and sum((~np.frombuffer(key, bool)).tobytes() not in drawn for key in drawn) <= 1
        np.testing.assert_allclose(weights.sum(), ((m - 1) / (sizes * (m - sizes))).sum())


# -- parameters ----------------------------------------------------------------------------------------

BAD = [
    (Occlusion, {"stride": 0}, "Occlusion: stride must be at least 1, got 0."),
    (Occlusion, {"stride": (2, -1)}, "Occlusion: stride must be at least 1, got -1."),
    (Occlusion, {"window": 0}, "Occlusion: window must be at least 1, got 0."),
    (Occlusion, {"window": 2.5}, "Occlusion: window must be a whole number"),
    (Occlusion, {"window": (1, 2, 3)}, "Occlusion: window must be a whole number or a pair (height, width)"),
    (Occlusion, {"baseline": 300}, "Occlusion: baseline must be a pixel value from 0 to 255, got 300."),
    (Occlusion, {"baseline": float("nan")}, "Occlusion: baseline must be a pixel value from 0 to 255, got nan."),
    (Occlusion, {"mask_batch": 0}, "Occlusion: mask_batch must be at least 1, got 0."),
    (Occlusion, {"batch_size": 0}, "Occlusion: batch_size must be at least 1, got 0."),
    (RISE, {"masks": 0}, "RISE: masks must be at least 1, got 0."),
    (RISE, {"grid": 0}, "RISE: grid must be at least 1, got 0."),
    (RISE, {"probability": 0}, "RISE: probability must be a number above 0 and at most 1, got 0."),
    (RISE, {"probability": 1.5}, "RISE: probability must be a number above 0 and at most 1, got 1.5."),
    (RISE, {"seed": 1.5}, "RISE: seed must be a whole number, got 1.5."),
    (RISE, {"mask_batch": -2}, "RISE: mask_batch must be at least 1, got -2."),
    (KernelSHAP, {"num_samples": 0}, "KernelSHAP: num_samples must be at least 1, got 0."),
    (KernelSHAP, {"batch_size": True}, "KernelSHAP: batch_size must be a whole number"),
    (KernelSHAP, {"hide_color": -1}, "KernelSHAP: hide_color must be a pixel value from 0 to 255, got -1."),
    (KernelSHAP, {"seed": "a"}, "KernelSHAP: seed must be a whole number, got 'a'."),
    (KernelSHAP, {"segmentation": "grid"}, "KernelSHAP: segmentation must be one of quickshift, slic, felzenszwalb"),
]


@pytest.mark.parametrize(("cls", "kwargs", "message"), BAD, ids=[f"{c.__name__}-{k}" for c, k, _ in BAD])
def test_bad_parameters_raise_a_value_error_naming_them(cls, kwargs, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        cls(tiny_functional(), **kwargs)


def test_kernel_shap_segmentation_function_is_checked():
    method = KernelSHAP(_linear(), segmentation=lambda image: np.zeros((3, 3), int))
    with pytest.raises(ValueError, match=re.escape("KernelSHAP: segmentation returned labels of shape (3, 3)")):
        method(_images(1))


def test_rise_set_masks_is_checked():
    method = RISE(_linear())
    with pytest.raises(ValueError, match=re.escape("RISE: masks must have shape (N, H, W), got (8, 8).")):
        method.set_masks(np.ones((8, 8)))
    with pytest.raises(ValueError, match=re.escape("RISE: masks must be in [0, 1].")):
        method.set_masks(np.full((2, 8, 8), 2.0))


@pytest.mark.parametrize("cls", [Occlusion, RISE, KernelSHAP])
def test_each_method_names_its_paper_and_documents_its_parameters(cls):
    """As tests/test_docstrings.py checks for the registered methods."""
    doc = inspect.getdoc(cls) or ""
    module_doc = inspect.getdoc(inspect.getmodule(cls)) or ""
    assert "arxiv.org" in cls.reference and cls.name in ("occlusion", "rise", "kernel_shap")
    assert re.search(r"[A-Z][a-z]+ (et al\.|& [A-Z][a-z]+) \d{4}", doc + module_doc) and "arxiv.org" in doc
    for p in inspect.signature(cls.__init__).parameters:
        if p not in ("self", "model"):
            assert p in doc, f"{cls.__name__}'s docstring does not describe {p!r}"
    assert "Raises:" in doc
