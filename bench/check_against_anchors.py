"""Check explain's attribution maps against two reference libraries, xplique and tf-keras-vis.

    python bench/check_against_anchors.py [--models demo mobilenetv2] [--images 4]

On the demo model (``models/fashion_mnist_cnn.keras``, trained, on 4 Fashion-MNIST test images) and on
MobileNetV2 (``keras.applications``, random seeded weights, 2 photos at 128x128), every method that
xplique or tf-keras-vis also implements is run by both sides on the same images, for the same class
(each image's top prediction), and the maps are compared by their Pearson correlation over the pixels,
image by image. A comparison PASSES when the correlation is at least 0.98 on every image (the minimum
over the images, not only the mean). The script prints one table and a summary line, and exits with 0
whatever the result (it is a benchmark, not a test).

Installing the anchors (``pip install -e ".[bench]"`` names them). xplique 2.0.2 pins
``tensorflow<=2.20`` and ``tensorflow-probability<=0.25``, so install it WITHOUT its dependencies, in a
virtual environment that shares this one's TensorFlow 2.21 / Keras 3::

    python -m venv --system-site-packages /tmp/anchors-venv
    /tmp/anchors-venv/bin/pip install --no-deps xplique==2.0.2 tf-keras-vis==0.8.7 \\
        tensorflow-probability==0.25.0 dm-tree einops deprecated opencv-python-headless
    /tmp/anchors-venv/bin/python bench/check_against_anchors.py

Both libraries then run on KERAS 3 models (``tf.keras`` is Keras 3 with TensorFlow 2.21); no tf_keras
(Keras 2) copy of the models is needed: xplique 2.x is written for TensorFlow 2.18-2.20, which are
Keras 3 already, and tf-keras-vis 0.8.7 imports ``keras.src`` for TensorFlow >= 2.16. What does not
work on Keras 3: tf-keras-vis's ``ReplaceToLinear`` model modifier (it reads ``model.output_names``,
gone in Keras 3), so the anchors are given a linear-output copy of the model (``clone_model``,
``set_weights``, the last ``Dense`` set to ``activation=linear``); explain gets the model as it is
(softmax) and explains the logit it rebuilds from the last ``Dense`` layer, the same number. The two
libraries' own tests were not run.

The models:

* ``demo``: the bundled demo model, 28x28x1 raw pixels, its first Fashion-MNIST test images. The
  class activation maps use explain's default target layer.
* ``mobilenetv2``: ``MobileNetV2(weights=None, classes=10)`` (no download here) behind a
  ``Rescaling(1/127.5, offset=-1)``, seeded. With random weights its activations shrink by about 100
  per block (1e-12 at ``out_relu``, a uniform softmax), so the batch-normalisation statistics are set
  from the images themselves (one training-mode pass with momentum 0): every block then sees
  unit-variance inputs, as in a trained network, and the class probabilities differ (0.04 to 0.2).
  The class activation maps use ``block_6_expand_relu`` (16x16x192 at 128x128; ``--mobilenet-layer``),
  not explain's default ``out_relu`` (4x4x1280), so that Score-CAM's one forward pass per channel
  stays affordable on a CPU and a map has 256 pixels to correlate, not 16.

The same random draws on both sides. Where a method is random, the anchor is handed explain's draws,
so that the comparison checks the computation, not two Monte Carlo estimates:

* SmoothGrad, SquareGrad, VarGrad: explain's noise ``tf.random.stateless_normal(x.shape, seed=[seed,
  s], stddev=noise * 255)`` for sample ``s`` (all images in one batch) replaces xplique's
  ``GradientStatistic._perturb_samples`` and tf-keras-vis's ``np.random.normal`` draw (patched for the
  length of one call);
* RISE: explain's masks (:meth:`RISE.masks`) replace xplique's ``Rise._get_masks`` and
  ``_apply_masks`` (which would upsample 7x7 binary grids and crop them at a random offset); xplique's
  own weighting and normalisation are kept.
* Integrated Gradients: one row with xplique on explain's path points (its ``_get_interpolated_points``
  and ``_average_gradients`` patched to the midpoint rule), one with xplique's own trapezoidal rule.

How the maps are put side by side, per method (``matched`` column: both maps brought to the same
definition and resolution; ``as is`` column: explain's heatmap, as it ships, against the anchor's output
with the anchor's own defaults, at the input resolution):

* Grad-CAM, Grad-CAM++, LayerCAM, Score-CAM, Faster Score-CAM (tf-keras-vis): the maps at the target
  layer's resolution, ``expand_cam=False, normalize_cam=False``, against :meth:`raw_maps`.
* Grad-CAM, Grad-CAM++ (xplique): xplique's map is resized to the input with BICUBIC interpolation
  (``tf.image.resize``), explain's heatmap with BILINEAR; the matched column resizes explain's raw map
  bicubically as xplique does.
* Grad-CAM++: DIFFERS in both libraries (checked against each library's formula recomputed by hand from
  the same activations and gradients, r = 1.0000 each). explain follows the paper's eq. 19 (as
  pytorch-grad-cam): ``alpha = g^2 / (2 g^2 + sum_ab A_ab g^3)``, ``w_k = sum_ij alpha_ijk ReLU(g_ijk)``.
  tf-keras-vis (as the authors' code) also divides each channel's ``alpha`` by its sum over the
  positions, a per-channel factor (without it, its map equals explain's: r = 1.0000); xplique puts the
  MEAN of ``A`` over the positions in the denominator instead of the sum (and averages instead of
  summing, a constant).
* Saliency: ``max_c |dS/dx|`` on both sides (xplique's default reducer "max" of the absolute gradient;
  tf-keras-vis ``keepdims=False``).
* Gradient x Input: xplique ``GradientInput(reducer=None)`` per channel, reduced as explain does,
  ``|sum_c g * x|``. DIFFERS by default: xplique's default reducer is the signed MEAN over channels
  (explain takes the absolute value of the sum).
* SmoothGrad: tf-keras-vis ``Saliency(smooth_samples=n)`` averages ``|gradient|`` and takes the max
  over channels, exactly explain's definition. xplique's ``SmoothGrad`` averages the SIGNED gradients
  (the paper's eq. 3) and reduces by the signed mean over channels: a different definition; the
  matched column takes ``max_c |mean_s g_s|`` of its per-channel output, which still differs from
  explain's ``max_c mean_s |g_s|`` (explain's docstring says so).
* SquareGrad: xplique ``SquareGrad(reducer="mean")``, the mean of the squared gradients, channels
  averaged, as explain.
* VarGrad: xplique ``VarGrad(reducer="mean")``: the UNBIASED variance (``n / (n - 1)`` times
  explain's population variance, one constant, which a correlation ignores).
* Integrated Gradients: xplique ``IntegratedGradients(reducer=None, baseline_value=0)``, reduced as
  explain, ``sum_c |attribution|`` (by default xplique takes the signed mean over channels). On the same
  path points the two agree exactly. With its own quadrature (the trapezoidal rule on ``m + 1`` points
  from 0 to 1; explain: the midpoint rule on ``m`` points) xplique estimates the same integral
  differently: close on the trained demo model (r about 0.99 at 16 steps), far on the random MobileNetV2,
  whose input gradients change abruptly along the path (at 32 steps both are at r 0.70 from a 1024-step
  midpoint reference, at 128 steps at 0.89).
* Guided backpropagation: xplique ``GuidedBackprop(reducer=None)`` (it clones the model and swaps each
  ReLU's gradient), reduced as explain, ``max_c |g|``; by default xplique takes the signed channel
  mean. xplique's guided ReLU passes the gradient wherever the ReLU's input is > 0, also above a capped
  ReLU's ``max_value`` (MobileNetV2's ReLU6), where explain's passes none (the ReLU6's own derivative,
  ``0 < x < 6``). On a model with capped ReLUs a second row gives xplique that gate
  (``guided_relu_policy`` patched): the same definition.
* Occlusion: xplique ``Occlusion(patch_size, patch_stride, occlusion_value=0)`` on the logits, with
  explain's default window side ``max(2, side // 7)`` shrunk to an even divisor of the side (4 on 28, 16
  on 128). Two rows: windows that tile the image (``stride = window``: every pixel in one window, the
  definitions agree), and overlapping windows (``stride = window / 2``), where xplique SUMS the
  score drops of the windows covering a pixel and explain AVERAGES them: the matched column divides
  xplique's map by each pixel's window count. (Both grids end flush with the image here, so explain's
  extra flush window never comes into play.)
* RISE: same masks; xplique weights each mask by the class probability (the softmax model) and divides
  by each pixel's sum of masks ``sum_i M_i`` (+1e-4), explain by ``N p``: the matched column multiplies
  explain's map by ``N p / (sum_i M_i + 1e-4)``.
* Score-CAM (tf-keras-vis, which takes the softmax of the model's output itself, so it gets the linear
  model): tf-keras-vis weights each channel by the class probability ``p_k`` of its masked image, explain
  by ``softmax_k(p_k)``, i.e. ``exp(p_k)`` up to one constant per image; the matched column gives
  tf-keras-vis the score function ``exp(p)``. tf-keras-vis upsamples the masks with
  ``scipy.ndimage.zoom(order=1, mode="nearest")`` (corners aligned), explain with ``tf.image.resize``
  (half-pixel centres): the masks, hence the weights, differ slightly.
* Faster Score-CAM: tf-keras-vis ``Scorecam(max_N=10)``, called one image at a time (it keeps the UNION
  of the batch's top channels, explain each image's own), with the ``exp(p)`` score as above.

Not compared (neither library has them, or only as random sampling with its own draws): HiResCAM,
XGradCAM, EigenCAM, Ablation-CAM, Guided Grad-CAM, LIME, KernelSHAP, GradientSHAP.

Options: ``--images`` (per model; default 4 on the demo model, 2 on MobileNetV2), ``--samples``
(SmoothGrad, SquareGrad, VarGrad; default 8), ``--steps`` (Integrated Gradients; default 16), ``--masks``
(RISE; default 256), ``--size`` (MobileNetV2's input side; default 128), ``--mobilenet-layer``, ``--only``
(check names, e.g. ``gradcam rise``). The agreement does not depend on the sample, step and mask counts
(the same draws on both sides), only the run time (the sample and step loops are graph loops, the model
traced once whatever their counts). With the defaults: about half a minute on the demo model and 4 minutes
on MobileNetV2, on 2 busy CPU cores (measured when the loops were unrolled; less now).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import explain  # noqa: E402, F401  (quiet TensorFlow import)
from explain.attribution import METHODS  # noqa: E402
from explain.attribution.base import default_target_layer, normalize_maps  # noqa: E402

THRESHOLD = 0.98

#: registry name -> (module file, class name), for the methods not registered in METHODS yet.
_MODULES = {
    "gradcam": ("gradcam", "GradCAM"),
    "gradcam++": ("gradcam_plus_plus", "GradCAMPlusPlus"),
    "layercam": ("layercam", "LayerCAM"),
    "scorecam": ("scorecam", "ScoreCAM"),
    "faster_scorecam": ("faster_scorecam", "FasterScoreCAM"),
    "saliency": ("saliency", "Saliency"),
    "gradient_input": ("gradient_input", "GradientInput"),
    "smoothgrad": ("smoothgrad", "SmoothGrad"),
    "squaregrad": ("squaregrad", "SquareGrad"),
    "vargrad": ("vargrad", "VarGrad"),
    "integrated_gradients": ("integrated_gradients", "IntegratedGradients"),
    "guided_backprop": ("guided_backprop", "GuidedBackprop"),
    "occlusion": ("occlusion", "Occlusion"),
    "rise": ("rise", "RISE"),
}


def method_class(name: str):
    """explain's class for a registry name: from METHODS, else from its module file."""
    if name in METHODS:
        return METHODS[name]
    module, cls = _MODULES[name]
    return getattr(importlib.import_module(f"explain.attribution.{module}"), cls)


# -- the models and images ------------------------------------------------------------------------


def _linear_copy(model: keras.Model) -> keras.Model:
    """The same model (same weights) with its last layer's activation set to linear: logits out."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    last = copy.layers[-1]
    if getattr(getattr(last, "activation", None), "__name__", "") not in ("softmax", "linear"):
        raise SystemExit(f"the last layer {last.name!r} of {model.name!r} is not a softmax Dense layer")
    last.activation = keras.activations.linear
    return copy


def demo_case(n: int) -> tuple[keras.Model, np.ndarray, str]:
    from training.datasets import read_idx

    model = keras.models.load_model(ROOT / "models" / "fashion_mnist_cnn.keras")
    images = read_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")[:n]
    x = images.astype(np.float32)[..., None]
    return model, x, default_target_layer(model).name


def _photos(size: int, n: int) -> np.ndarray:
    from PIL import Image

    paths = sorted((ROOT / "sample_images").glob("photo_*.jpg"))
    pictures = [Image.open(p).convert("RGB") for p in paths]
    try:
        import skimage.data

        pictures += [Image.fromarray(skimage.data.rocket()), Image.fromarray(skimage.data.astronaut())]
    except Exception:
        pass
    out = []
    for i in range(n):
        picture = pictures[i % len(pictures)].resize((size, size), Image.BILINEAR)
        a = np.asarray(picture, np.float32)
        out.append(a if i < len(pictures) else a[:, ::-1])  # later rounds mirrored
    return np.stack(out)


def mobilenet_case(n: int, size: int, layer: str) -> tuple[keras.Model, np.ndarray, str]:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3))
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1, name="rescaling")(inputs)
    model = keras.applications.MobileNetV2(input_tensor=scaled, weights=None, classes=10)
    x = _photos(size, n)
    # Random weights shrink the activations ~100x per block; batch-norm statistics from the images
    # themselves (momentum 0: one training-mode pass sets them) keep every block at unit variance.
    for bn in (lyr for lyr in model.layers if isinstance(lyr, keras.layers.BatchNormalization)):
        bn.momentum = 0.0
    model(x, training=True)
    return model, x, layer


# -- the comparisons ------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    model: keras.Model  # softmax, as a user has it: explain's
    linear: keras.Model  # the same weights, logits out: the anchors'
    x: np.ndarray  # float32 (N, H, W, C) raw pixels
    cls: np.ndarray  # int64 (N,) each image's top class
    layer: str  # the class activation maps' target layer
    args: argparse.Namespace

    @property
    def onehot(self) -> np.ndarray:
        return np.eye(self.model.outputs[0].shape[-1], dtype=np.float32)[self.cls]

    @property
    def size(self) -> tuple[int, int]:
        return self.x.shape[1], self.x.shape[2]


@dataclass
class Row:
    model: str
    method: str
    anchor: str
    r: np.ndarray  # per image, matched definitions
    r_as_is: np.ndarray  # per image, explain's heatmap vs the anchor's default output
    same: bool  # the matched column compares the same definition
    note: str
    seconds: float = 0.0
    error: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if self.error:
            return "ERROR"
        if not self.same:
            return "differs"
        return "PASS" if np.all(np.nan_to_num(self.r, nan=-1.0) >= THRESHOLD) else "FAIL"


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per image Pearson r of two ``(N, h, w)`` stacks (NaN where a map is constant)."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    if a.shape != b.shape:
        raise ValueError(f"maps of different shapes {a.shape} and {b.shape}")
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(1) / den, np.nan)


def _np(t) -> np.ndarray:
    return np.asarray(t.numpy() if hasattr(t, "numpy") else t, np.float32)


def _squeeze(maps) -> np.ndarray:
    """``(N, H, W, 1)`` or ``(N, H, W)`` -> ``(N, H, W)``."""
    m = _np(maps)
    return m[..., 0] if m.ndim == 4 else m


def _resize(maps: np.ndarray, size: tuple[int, int], method: str) -> np.ndarray:
    return tf.image.resize(np.asarray(maps, np.float32)[..., None], size, method=method)[..., 0].numpy()


def heatmap(raw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """explain's heatmap from its raw maps, as ``__call__`` makes it: bilinear to the input size, then
    scaled to [0, 1] per image (:func:`normalize_maps`)."""
    up = raw if raw.shape[1:3] == tuple(size) else _resize(raw, size, "bilinear")
    return normalize_maps(up)[0]


def ours(case: Case, name: str, layer: bool = False, **params) -> np.ndarray:
    """explain's raw maps (its own units) for the case's images and classes."""
    kwargs = {"layer": case.layer} if layer else {}
    method = method_class(name)(case.model, preprocess="raw", **kwargs, **params)
    return method.raw_maps(case.x, case.cls)[0]


@contextlib.contextmanager
def quiet():
    """Silence the anchors' progress bars and warnings."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def noise_stack(case: Case, samples: int, noise: float, seed: int = 0) -> np.ndarray:
    """explain's SmoothGrad noise, float32 ``(samples, N, H, W, C)``: sample ``s`` is
    ``tf.random.stateless_normal(x.shape, seed=[seed, s], stddev=noise * 255)`` for the whole batch."""
    return np.stack(
        [tf.random.stateless_normal(case.x.shape, seed=[seed, s], stddev=noise * 255.0).numpy() for s in range(samples)]
    )


@contextlib.contextmanager
def xplique_noise(stack: np.ndarray):
    """xplique's GradientStatistic perturbs with ``stack`` instead of ``tf.random.normal``."""
    from xplique.attributions.gradient_statistics.gradient_statistic import GradientStatistic

    samples, n = stack.shape[:2]
    flat = tf.constant(np.swapaxes(stack, 0, 1).reshape(n * samples, *stack.shape[2:]))  # image-major

    def perturb(inputs, nb_perturbations, noise):
        if inputs.shape[0] != n or nb_perturbations != samples:
            raise RuntimeError(f"xplique perturbed {inputs.shape[0]} images x {nb_perturbations}, not {n} x {samples}")
        return tf.repeat(inputs, repeats=nb_perturbations, axis=0) + flat

    original = GradientStatistic.__dict__["_perturb_samples"]
    GradientStatistic._perturb_samples = staticmethod(perturb)
    try:
        yield
    finally:
        GradientStatistic._perturb_samples = original


@contextlib.contextmanager
def tfkv_noise(stack: np.ndarray):
    """tf-keras-vis's smoothing noise (``np.random.normal(0, sigma, X.shape)``, ``X`` of shape
    ``(samples, N, H, W, C)``) is ``stack``."""
    original = np.random.normal

    def normal(loc=0.0, scale=1.0, size=None):
        if size is not None and tuple(size) == stack.shape:
            return stack
        return original(loc, scale, size)

    np.random.normal = normal
    try:
        yield
    finally:
        np.random.normal = original


@contextlib.contextmanager
def xplique_masks(masks: np.ndarray):
    """xplique's Rise uses ``masks`` ``(M, H, W)`` as they are (no upsampling, no random crop)."""
    from xplique.attributions import Rise

    given = tf.constant(masks[..., None])

    def get_masks(*args, **kwargs):
        return given

    def apply_masks(single_input, binary_masks, mask_value=0.0):
        m = tf.cast(binary_masks, tf.float32)
        return m * single_input[None] + (1.0 - m) * mask_value, m

    originals = Rise.__dict__["_get_masks"], Rise.__dict__["_apply_masks"]
    Rise._get_masks, Rise._apply_masks = staticmethod(get_masks), staticmethod(apply_masks)
    try:
        yield
    finally:
        Rise._get_masks, Rise._apply_masks = originals


def _exp_score(cls: np.ndarray) -> Callable:
    """tf-keras-vis score ``exp(p_class)`` per image: Score-CAM weights ``exp(p_k)``, explain's
    ``softmax_k(p_k)`` up to one constant per image."""
    idx = tf.constant(cls, tf.int64)

    def score(probabilities):
        return tf.exp(tf.gather(probabilities, idx[: tf.shape(probabilities)[0]], axis=1, batch_dims=1))

    return score


def _row(case, method, anchor, ours_raw, theirs, theirs_default, same, note, ours_matched=None):
    """A row: ``ours_matched`` (default: ``ours_raw``) against ``theirs``; explain's heatmap against the
    anchor's default output (at the input size, bilinear where smaller)."""
    mine = ours_raw if ours_matched is None else ours_matched
    default = _squeeze(theirs_default)
    if default.shape[1:3] != case.size:
        default = _resize(default, case.size, "bilinear")
    return Row(
        case.name,
        method,
        anchor,
        pearson(mine, _squeeze(theirs)),
        pearson(heatmap(ours_raw, case.size), default),
        same,
        note,
    )


# Each check returns Rows; the anchors are imported inside, so a missing one is reported, not fatal.


def check_gradcam(case: Case) -> list[Row]:
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.scores import CategoricalScore
    from xplique.attributions import GradCAM as XGradCAM

    raw = ours(case, "gradcam", layer=True)
    kw = {"penultimate_layer": case.layer, "seek_penultimate_conv_layer": False}
    vis = Gradcam(case.linear)
    score = CategoricalScore(list(case.cls))
    t_raw = vis(score, case.x, expand_cam=False, normalize_cam=False, **kw)
    t_default = vis(score, case.x, **kw)
    xp = XGradCAM(case.linear, conv_layer=case.layer).explain(case.x, case.onehot)
    return [
        _row(
            case,
            "gradcam",
            "tf-keras-vis Gradcam",
            raw,
            t_raw,
            t_default,
            True,
            "same definition, at the layer; as is: tf-keras-vis upsamples by scipy zoom (corners aligned)",
        ),
        _row(
            case,
            "gradcam",
            "xplique GradCAM",
            raw,
            xp,
            xp,
            True,
            "xplique resizes bicubic (explain bilinear): matched = explain's raw map resized bicubic",
            ours_matched=_resize(raw, case.size, "bicubic"),
        ),
    ]


def check_gradcam_pp(case: Case) -> list[Row]:
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.scores import CategoricalScore
    from xplique.attributions import GradCAMPP

    raw = ours(case, "gradcam++", layer=True)
    kw = {"penultimate_layer": case.layer, "seek_penultimate_conv_layer": False}
    vis = GradcamPlusPlus(case.linear)
    score = CategoricalScore(list(case.cls))
    t_raw = vis(score, case.x, expand_cam=False, normalize_cam=False, **kw)
    t_default = vis(score, case.x, **kw)
    xp = GradCAMPP(case.linear, conv_layer=case.layer).explain(case.x, case.onehot)
    return [
        _row(
            case,
            "gradcam++",
            "tf-keras-vis GradcamPlusPlus",
            raw,
            t_raw,
            t_default,
            False,
            "tf-keras-vis divides alpha by its spatial sum per channel (the authors' code); explain, like "
            "the paper's eq. 19 and pytorch-grad-cam, does not",
        ),
        _row(
            case,
            "gradcam++",
            "xplique GradCAMPP",
            raw,
            xp,
            xp,
            False,
            "xplique's alpha denominator uses the MEAN of A over positions (the paper: the SUM); "
            "bicubic resize (matched: explain's raw map resized bicubic)",
            ours_matched=_resize(raw, case.size, "bicubic"),
        ),
    ]


def check_layercam(case: Case) -> list[Row]:
    from tf_keras_vis.layercam import Layercam
    from tf_keras_vis.utils.scores import CategoricalScore

    raw = ours(case, "layercam", layer=True)
    kw = {"penultimate_layer": case.layer, "seek_penultimate_conv_layer": False}
    vis = Layercam(case.linear)
    score = CategoricalScore(list(case.cls))
    t_raw = vis(score, case.x, expand_cam=False, normalize_cam=False, **kw)
    t_default = vis(score, case.x, **kw)
    note = "same definition, at the layer; as is: tf-keras-vis upsamples by scipy zoom (corners aligned)"
    return [_row(case, "layercam", "tf-keras-vis Layercam", raw, t_raw, t_default, True, note)]


def check_scorecam(case: Case) -> list[Row]:
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.scores import CategoricalScore

    raw = ours(case, "scorecam", layer=True)
    kw = {"penultimate_layer": case.layer, "seek_penultimate_conv_layer": False}
    vis = Scorecam(case.linear)
    with quiet():
        t_raw = vis(_exp_score(case.cls), case.x, expand_cam=False, normalize_cam=False, **kw)
        t_default = vis(CategoricalScore(list(case.cls)), case.x, **kw)
    return [
        _row(
            case,
            "scorecam",
            "tf-keras-vis Scorecam",
            raw,
            t_raw,
            t_default,
            True,
            "tf-keras-vis weights by p_k, explain by softmax_k(p_k): matched = tf-keras-vis with score exp(p); "
            "masks upsampled by scipy zoom (corners aligned) vs tf.image.resize",
        )
    ]


def check_faster_scorecam(case: Case) -> list[Row]:
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.scores import CategoricalScore

    raw = ours(case, "faster_scorecam", layer=True, max_n=10)
    kw = {"penultimate_layer": case.layer, "seek_penultimate_conv_layer": False, "max_N": 10}
    vis = Scorecam(case.linear)
    t_raw, t_default = [], []
    with quiet():
        for i in range(len(case.x)):  # one image a call: tf-keras-vis keeps the batch's union of channels
            xi, ci = case.x[i : i + 1], case.cls[i : i + 1]
            t_raw.append(_squeeze(vis(_exp_score(ci), xi, expand_cam=False, normalize_cam=False, **kw)))
            t_default.append(_squeeze(vis(CategoricalScore([int(ci[0])]), xi, **kw))[None])
    return [
        _row(
            case,
            "faster_scorecam",
            "tf-keras-vis Scorecam(max_N=10)",
            raw,
            np.concatenate(t_raw),
            np.concatenate(t_default),
            True,
            "one image per tf-keras-vis call (it keeps the batch's union of top channels); score exp(p) as "
            "for Score-CAM",
        )
    ]


def check_saliency(case: Case) -> list[Row]:
    from tf_keras_vis.saliency import Saliency as VSaliency
    from tf_keras_vis.utils.scores import CategoricalScore
    from xplique.attributions import Saliency as XSaliency

    raw = ours(case, "saliency")
    score = CategoricalScore(list(case.cls))
    t_raw = VSaliency(case.linear)(score, case.x, normalize_map=False)
    t_default = VSaliency(case.linear)(score, case.x)
    xp = XSaliency(case.linear).explain(case.x, case.onehot)
    return [
        _row(case, "saliency", "tf-keras-vis Saliency", raw, t_raw, t_default, True, "same definition"),
        _row(case, "saliency", "xplique Saliency", raw, xp, xp, True, "same definition (reducer max of |g|)"),
    ]


def check_gradient_input(case: Case) -> list[Row]:
    from xplique.attributions import GradientInput

    raw = ours(case, "gradient_input")
    per_channel = _np(GradientInput(case.linear, reducer=None).explain(case.x, case.onehot))
    if per_channel.shape[-1] != case.x.shape[-1]:
        per_channel = per_channel.reshape(case.x.shape)
    return [
        _row(
            case,
            "gradient_input",
            "xplique GradientInput",
            raw,
            np.abs(per_channel.sum(-1)),
            per_channel.mean(-1),
            True,
            "matched = |sum_c| of xplique's per-channel map; xplique's default is the signed channel mean",
        )
    ]


def check_smoothgrad(case: Case) -> list[Row]:
    from tf_keras_vis.saliency import Saliency as VSaliency
    from tf_keras_vis.utils.scores import CategoricalScore
    from xplique.attributions import SmoothGrad as XSmoothGrad

    n, noise = case.args.samples, 0.15
    raw = ours(case, "smoothgrad", samples=n, noise=noise, seed=0)
    stack = noise_stack(case, n, noise)
    score = CategoricalScore(list(case.cls))
    vis = VSaliency(case.linear)
    with tfkv_noise(stack):
        t_raw = vis(score, case.x, smooth_samples=n, smooth_noise=noise, normalize_map=False)
    with tfkv_noise(stack):
        t_default = vis(score, case.x, smooth_samples=n, smooth_noise=noise)
    xp = XSmoothGrad(case.linear, reducer=None, nb_samples=n, noise=noise * 255, batch_size=n * len(case.x))
    with xplique_noise(stack):
        per_channel = _np(xp.explain(case.x, case.onehot))
    return [
        _row(
            case,
            "smoothgrad",
            "tf-keras-vis Saliency(smooth)",
            raw,
            t_raw,
            t_default,
            True,
            "same noise; same definition",
        ),
        _row(
            case,
            "smoothgrad",
            "xplique SmoothGrad",
            raw,
            np.abs(per_channel).max(-1),
            per_channel.mean(-1),
            False,
            "same noise; xplique averages SIGNED gradients (matched column: max_c |mean_s g|), explain "
            "averages |g|; default reducer: signed channel mean",
        ),
    ]


def _statistic(case: Case, name: str, xplique_cls: str, note: str) -> list[Row]:
    xmod = importlib.import_module("xplique.attributions")
    n, noise = case.args.samples, 0.15
    raw = ours(case, name, samples=n, noise=noise, seed=0)
    stack = noise_stack(case, n, noise)
    xp = getattr(xmod, xplique_cls)(
        case.linear, reducer="mean", nb_samples=n, noise=noise * 255, batch_size=n * len(case.x)
    )
    with xplique_noise(stack):
        theirs = xp.explain(case.x, case.onehot)
    return [_row(case, name, f"xplique {xplique_cls}", raw, theirs, theirs, True, note)]


def check_squaregrad(case: Case) -> list[Row]:
    return _statistic(case, "squaregrad", "SquareGrad", "same noise; same definition (channel mean)")


def check_vargrad(case: Case) -> list[Row]:
    return _statistic(case, "vargrad", "VarGrad", "same noise; xplique's variance is unbiased (x n/(n-1), a constant)")


@contextlib.contextmanager
def xplique_midpoints():
    """xplique's IntegratedGradients on explain's path points ``(s + 1/2) / m`` with a plain mean
    (explain's midpoint rule) instead of ``linspace(0, 1, m)`` with the trapezoidal rule."""
    from xplique.attributions import IntegratedGradients

    def points(inputs, steps, baseline):
        alpha = tf.reshape((tf.range(steps, dtype=tf.float32) + 0.5) / steps, (1, -1, *(1,) * len(inputs.shape[1:])))
        path = baseline + alpha * (tf.expand_dims(inputs, 1) - baseline)
        return tf.reshape(path, (-1, *path.shape[2:]))

    def average(gradients):
        return tf.reduce_mean(gradients, axis=1)

    cls = IntegratedGradients
    originals = cls.__dict__["_get_interpolated_points"], cls.__dict__["_average_gradients"]
    cls._get_interpolated_points, cls._average_gradients = staticmethod(points), staticmethod(average)
    try:
        yield
    finally:
        cls._get_interpolated_points, cls._average_gradients = originals


def check_integrated_gradients(case: Case) -> list[Row]:
    from xplique.attributions import IntegratedGradients

    m = case.args.steps
    raw = ours(case, "integrated_gradients", steps=m)
    with xplique_midpoints():
        same = _np(
            IntegratedGradients(case.linear, reducer=None, steps=m, baseline_value=0.0).explain(case.x, case.onehot)
        )
    own = _np(
        IntegratedGradients(case.linear, reducer=None, steps=m + 1, baseline_value=0.0).explain(case.x, case.onehot)
    )
    return [
        _row(
            case,
            "integrated_gradients",
            "xplique IG, same path points",
            raw,
            np.abs(same).sum(-1),
            own.mean(-1),
            True,
            f"xplique on explain's {m} midpoints; matched = sum_c |attr| (xplique's default: signed channel mean)",
        ),
        _row(
            case,
            "integrated_gradients",
            "xplique IG, own trapezoid",
            raw,
            np.abs(own).sum(-1),
            own.mean(-1),
            False,
            f"quadrature differs: xplique's trapezoid on {m + 1} points from 0 to 1, explain's midpoints on {m} "
            "(the same integral; r -> 1 with more steps)",
        ),
    ]


@contextlib.contextmanager
def xplique_capped_guided_relu():
    """xplique's guided ReLU gated ``threshold < x < max_value`` (the capped ReLU's own derivative, as
    explain's) instead of ``x > 0``; the rest of xplique's GuidedBackprop (its model clone, the ReLU swap,
    the gradient) unchanged."""
    import xplique.attributions.guided_backpropagation as module

    def policy(max_value=None, threshold=0.0):
        threshold = threshold or 0.0
        relu = tf.keras.layers.ReLU(max_value=max_value, threshold=threshold)

        @tf.custom_gradient
        def guided_relu(inputs):
            def grad(upstream):
                gate = inputs > threshold
                if max_value is not None:
                    gate = gate & (inputs < max_value)
                return tf.nn.relu(upstream) * tf.cast(gate, upstream.dtype)

            return relu(inputs), grad

        return guided_relu

    original = module.guided_relu_policy
    module.guided_relu_policy = policy
    try:
        yield
    finally:
        module.guided_relu_policy = original


def _has_capped_relu(model: keras.Model) -> bool:
    return any(isinstance(lyr, keras.layers.ReLU) and lyr.max_value is not None for lyr in model.layers)


def check_guided_backprop(case: Case) -> list[Row]:
    from xplique.attributions import GuidedBackprop

    raw = ours(case, "guided_backprop")
    plain = _np(GuidedBackprop(case.linear, reducer=None).explain(case.x, case.onehot))
    rows = []
    capped = _has_capped_relu(case.linear)
    rows.append(
        _row(
            case,
            "guided_backprop",
            "xplique GuidedBackprop",
            raw,
            np.abs(plain).max(-1),
            plain.mean(-1),
            not capped,
            "matched = max_c |g| of xplique's per-channel map (its default: signed channel mean)"
            + (
                "; xplique's guided ReLU6 passes gradient where x >= 6 (gate x > 0), explain's does not "
                "(gate 0 < x < 6, the ReLU6's own derivative)"
                if capped
                else ""
            ),
        )
    )
    if capped:
        with xplique_capped_guided_relu():
            gated = _np(GuidedBackprop(case.linear, reducer=None).explain(case.x, case.onehot))
        rows.append(
            _row(
                case,
                "guided_backprop",
                "xplique GuidedBackprop, 0<x<6 gate",
                raw,
                np.abs(gated).max(-1),
                plain.mean(-1),
                True,
                "xplique with its guided ReLU gated 0 < x < max_value as explain's: same definition",
            )
        )
    return rows


def _coverage_count(size: int, window: int, stride: int) -> np.ndarray:
    """How many of xplique's windows (anchors ``0, stride, ...`` while the window fits) cover each index."""
    count = np.zeros(size)
    for a in range(0, size - window + 1, stride):
        count[a : a + window] += 1
    return count


def _tiling_window(side: int) -> int:
    """explain's default window side ``max(2, side // 7)``, made even and shrunk until it divides ``side``
    (so windows of stride ``w`` tile the image and those of stride ``w / 2`` end flush with it)."""
    w = max(2, side // 7)
    while w > 2 and (side % w or w % 2):
        w -= 1
    return w


def check_occlusion(case: Case) -> list[Row]:
    from xplique.attributions import Occlusion as XOcclusion

    h, w = case.size
    window = (_tiling_window(h), _tiling_window(w))  # explain's default size, shrunk to divide the image
    rows = []
    for label, stride in (("tiled", window), ("overlap", (max(1, window[0] // 2), max(1, window[1] // 2)))):
        raw = ours(case, "occlusion", window=window, stride=stride, baseline=0.0)
        xp = XOcclusion(case.linear, patch_size=window, patch_stride=stride, occlusion_value=0.0)
        theirs = _squeeze(xp.explain(case.x, case.onehot))
        count = np.outer(_coverage_count(h, window[0], stride[0]), _coverage_count(w, window[1], stride[1]))
        flush = (h - window[0]) % stride[0] == 0 and (w - window[1]) % stride[1] == 0
        note = (
            f"window {window[0]}x{window[1]}, stride {stride[0]}: "
            + (
                "each pixel in one window, same definition"
                if label == "tiled"
                else "xplique SUMS the drops of the windows covering a pixel, explain AVERAGES them: "
                "matched = xplique / window count"
            )
            + ("" if flush else "; explain adds a window flush with the far edge, xplique does not")
        )
        rows.append(
            _row(
                case,
                f"occlusion ({label})",
                "xplique Occlusion",
                raw,
                np.divide(theirs, count, out=np.zeros_like(theirs), where=count > 0),
                theirs,
                flush,
                note,
            )
        )
    return rows


def check_rise(case: Case) -> list[Row]:
    from xplique.attributions import Rise

    n, p = case.args.masks, 0.5
    method = method_class("rise")(case.model, preprocess="raw", masks=n, grid=7, probability=p, seed=0)
    raw = method.raw_maps(case.x, case.cls)[0]
    masks = method.masks(*case.size)
    xp = Rise(case.model, nb_samples=n, grid_size=7, preservation_probability=p)  # probabilities: the softmax model
    with xplique_masks(masks):
        theirs = _squeeze(xp.explain(case.x, case.onehot))
    scale = n * p / (masks.sum(0) + Rise.EPSILON)
    return [
        _row(
            case,
            "rise",
            "xplique Rise (same masks)",
            raw,
            theirs,
            theirs,
            True,
            "same masks; xplique divides by sum_i M_i per pixel, explain by N p: matched = explain x N p / sum_i M_i",
            ours_matched=raw * scale[None],
        )
    ]


CHECKS: list[Callable[[Case], list[Row]]] = [
    check_gradcam,
    check_gradcam_pp,
    check_layercam,
    check_scorecam,
    check_faster_scorecam,
    check_saliency,
    check_gradient_input,
    check_smoothgrad,
    check_squaregrad,
    check_vargrad,
    check_integrated_gradients,
    check_guided_backprop,
    check_occlusion,
    check_rise,
]


# -- the run --------------------------------------------------------------------------------------


def run_case(case: Case, only: set[str] | None) -> list[Row]:
    rows = []
    for check in CHECKS:
        label = check.__name__.removeprefix("check_")
        if only and label not in only:
            continue
        start = time.perf_counter()
        try:
            got = check(case)
        except Exception as e:
            got = [
                Row(
                    case.name,
                    label,
                    "?",
                    np.array([np.nan]),
                    np.array([np.nan]),
                    False,
                    "",
                    error=f"{type(e).__name__}: {e}",
                )
            ]
        seconds = time.perf_counter() - start
        for row in got:
            row.seconds = seconds / len(got)
            _print_row(row)
            rows.append(row)
    return rows


def _fmt(r: np.ndarray) -> tuple[str, str]:
    if np.all(np.isnan(r)):
        return "   nan", "   nan"
    return f"{np.nanmean(r):6.4f}", f"{np.nanmin(r):6.4f}"


HEADER = (
    f"{'model':<12} {'method':<22} {'anchor':<34} {'r mean':>6} {'r min':>6} {'verdict':<8} {'as is':>6} {'s':>4}  note"
)


def _print_row(row: Row) -> None:
    mean, low = _fmt(row.r)
    as_is = _fmt(row.r_as_is)[0]
    note = row.error or row.note
    if not row.error and np.any(np.isnan(row.r)):
        note = f"[{int(np.isnan(row.r).sum())} flat map(s)] " + note
    head = f"{row.model:<12} {row.method:<22} {row.anchor:<34} {mean} {low} {row.verdict:<8} {as_is}"
    print(f"{head} {row.seconds:4.0f}  {note}", flush=True)


def _tree_state() -> str:
    """The commit of explain's checkout, and whether its attribution files differ from it."""
    import subprocess

    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short", "HEAD") or "?"
    changed = git("status", "--porcelain", "--", "explain/attribution").splitlines()
    return f"commit {head}" + (f", {len(changed)} attribution files changed or new" if changed else ", clean")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["demo", "mobilenetv2"], choices=["demo", "mobilenetv2"])
    parser.add_argument("--images", type=int, help="images per model, 1 to 32 (default: 4 demo, 2 mobilenetv2)")
    parser.add_argument("--samples", type=int, default=8, help="SmoothGrad/SquareGrad/VarGrad samples")
    parser.add_argument("--steps", type=int, default=16, help="Integrated Gradients steps (explain's)")
    parser.add_argument("--masks", type=int, default=256, help="RISE masks")
    parser.add_argument("--size", type=int, default=128, help="MobileNetV2 input side")
    parser.add_argument("--mobilenet-layer", default="block_6_expand_relu", help="MobileNetV2's CAM target layer")
    parser.add_argument("--only", nargs="+", help="run only these checks, e.g. gradcam rise")
    args = parser.parse_args(argv)
    if args.images is not None and not 1 <= args.images <= 32:
        parser.error("--images must be 1 to 32 (explain's noise is drawn per batch of up to 32 images)")
    try:
        import tf_keras_vis
        import xplique
    except ImportError as e:
        print(f"SUMMARY: not run, an anchor is missing ({e}); install them as this file's docstring says.")
        return 0
    keras.utils.disable_interactive_logging()
    warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, xplique {getattr(xplique, '__version__', '?')}, "
        f"tf-keras-vis {tf_keras_vis.__version__}; Pearson r per image; PASS: r >= {THRESHOLD} on every image "
        "where the definitions match (verdict 'differs': they do not, see the note)."
    )
    print(f"explain: {_tree_state()}")
    only = set(args.only) if args.only else None
    rows: list[Row] = []
    for name in args.models:
        start = time.perf_counter()
        if name == "demo":
            model, x, layer = demo_case(args.images or 4)
        else:
            model, x, layer = mobilenet_case(args.images or 2, args.size, args.mobilenet_layer)
        linear = _linear_copy(model)
        probabilities = model.predict(x, verbose=0)
        cls = probabilities.argmax(1).astype(np.int64)
        # explain's logits (rebuilt from the last Dense layer) are the linear copy's outputs:
        head = method_class("saliency")(model, preprocess="raw")
        gap = np.abs(head.scores_from_input(tf.constant(x)).numpy() - linear.predict(x, verbose=0)).max()
        case = Case(name, model, linear, x, cls, layer, args)
        print(
            f"\n{name}: {x.shape[0]} images {x.shape[1:]}, classes {cls.tolist()}, top probabilities "
            f"{np.round(probabilities.max(1), 3).tolist()}, CAM layer {layer!r}, |explain logits - linear copy| "
            f"<= {gap:.2e}\n{HEADER}",
            flush=True,
        )
        rows += run_case(case, only)
        print(f"({name}: {time.perf_counter() - start:.0f} s)")
    matched = [r for r in rows if r.verdict in ("PASS", "FAIL")]
    failed = [f"{r.model}/{r.method} vs {r.anchor}" for r in matched if r.verdict == "FAIL"]
    errors = [f"{r.model}/{r.method}" for r in rows if r.verdict == "ERROR"]
    differs = [r for r in rows if r.verdict == "differs"]
    print(
        f"\nSUMMARY: {len(matched) - len(failed)}/{len(matched)} same-definition comparisons reach r >= {THRESHOLD} on "
        f"every image; {len(differs)} with differing definitions (not judged); {len(errors)} errors."
        + (f" FAILED: {', '.join(failed)}." if failed else "")
        + (f" ERRORS: {', '.join(errors)}." if errors else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
