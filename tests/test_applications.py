"""Every image classifier family in ``keras.applications``, bare and nested as in the transfer-learning tutorial.

Each family is built with random weights (``weights=None``: nothing is downloaded), at the smallest input
it accepts, with 4 classes, in two configurations:

* ``bare``: ``include_top=True, classes=4``, the network's own classifier top;
* ``nested``: the tutorial's classifier, a frozen base (``include_top=False``, ``base.trainable = False``)
  inside ``Sequential([Input, base, GlobalAveragePooling2D, Dropout(0.2), Dense(4, softmax)])``.

For each: the layer table and activations (a nested path too), the default target layer, every
attribution method of ``explain.attribution.METHODS`` on the default target layer and, for the CAM
methods, on an explicit inner layer (a nested path in the nested configuration), Grad-CAM against a
Grad-CAM written here with ``tf.GradientTape``, and ``write_report`` on generated images.

Runtime: the module must stay within about 6 minutes on 2 CPU cores. Tracing a ``tf.function``
through a network of 100 to 800 layers costs 1 to 15 seconds, one eager call a fraction of a second,
and the full matrix below takes about 40 minutes there. So in CI:

* every model is built once: the ``case`` fixture is module-scoped and parametrised, so pytest runs all
  tests of one model together and then drops it; explainers are built once per case and reused;
* one image (once per class where every class is explained), the smallest input, 4 classes, one noise
  sample / path step, 20 LIME samples;
* both configurations (the bare one for the families of :data:`BARE_IN_CI`, one of each kind of
  classifier top): the layer table and activations, the default target layer, Grad-CAM on it
  (the top class, and every class against the hand-written tape). The nested configuration (the
  tutorial's model, whose base is the harder case) also gets Grad-CAM++ and Score-CAM on the inner
  layer, and, for the families of :data:`WHOLE_MODEL_IN_CI`, saliency, SmoothGrad, Integrated
  Gradients, LIME and the report (see :func:`skip_unless_in_ci` for what is left out, and
  :data:`HEAVY_LEFT_OUT` for ConvNeXtTiny, whose every gradient costs seconds of XLA compiling);
* the report runs compiled (``tf.function``: its Grad-CAM galleries and its evaluation), as the CLIs
  and the dashboard do. The explainers called here run their own Python code uncompiled
  (:func:`uncompiled`): the same code and the same model plumbing (target layers inside nested
  models, logit heads), without tracing; every method compiled is covered on small models in
  ``tests/test_attribution.py`` (Grad-CAM against a hand-written tape there too). So does
  ``compute_activations`` in :func:`test_layer_table_and_activations` (the same feature model,
  called untraced; compiled in ``tests/test_activations.py``, and here by the report). Not with
  ``tf.config.run_functions_eagerly``: that also runs Keras's own XLA-compiled ops eagerly, and
  grouped convolutions (ConvNeXt's depthwise ones) have no CPU gradient outside XLA;
* Score-CAM costs one forward pass per channel of the target layer (256 to 2048 at the default
  layers here: up to 30 s each), so it runs on the inner layer (at most 128 channels).

``EXPLAIN_FULL_APPLICATIONS=1`` runs the full matrix: everything on both configurations, every
explainer compiled, Score-CAM on the default layer too, 4 noise samples / path steps.
"""

from __future__ import annotations

import html
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dataclasses import dataclass, field

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import universal_methods

import explain
from explain.attribution import METHODS, LayerAttribution, default_target_layer, method_label
from explain.attribution.base import FLAT_RTOL
from explain.dataset.evaluation import ArraySource
from explain.features import activations as feature_activations
from explain.models.layers import layer_table, resolve_layer

A = keras.applications
L = keras.layers
FULL = os.environ.get("EXPLAIN_FULL_APPLICATIONS") == "1"

#: family -> (constructor, smallest input side it accepts with weights=None).
FAMILIES = {
    "ResNet50": (A.ResNet50, 32),
    "ResNet50V2": (A.ResNet50V2, 32),
    "DenseNet121": (A.DenseNet121, 32),
    "EfficientNetB0": (A.EfficientNetB0, 32),
    "EfficientNetV2B0": (A.EfficientNetV2B0, 32),
    "ConvNeXtTiny": (A.ConvNeXtTiny, 32),
    "InceptionV3": (A.InceptionV3, 75),
    "InceptionResNetV2": (A.InceptionResNetV2, 75),
    "Xception": (A.Xception, 71),
    "MobileNet": (A.MobileNet, 32),
    "MobileNetV2": (A.MobileNetV2, 32),
    "MobileNetV3Small": (A.MobileNetV3Small, 32),
    "MobileNetV3Large": (A.MobileNetV3Large, 32),
    "NASNetMobile": (A.NASNetMobile, 32),
    "VGG16": (A.VGG16, 32),
}
CLASSES = 4
CAM_METHODS = [name for name, cls in METHODS.items() if issubclass(cls, LayerAttribution)]
#: Few samples / steps: the contract, not the quality of the maps, is under test.
SMALL = {
    "smoothgrad": {"samples": 4 if FULL else 1},
    "squaregrad": {"samples": 4 if FULL else 1},
    "vargrad": {"samples": 4 if FULL else 2},
    "gradient_shap": {"samples": 4 if FULL else 1},
    "integrated_gradients": {"steps": 4 if FULL else 1},
    "lime": {"num_samples": 20},
    "kernel_shap": {"num_samples": 20},
    "rise": {"masks": 16},
}
#: Layer types never the default target layer: they only carry the image, or shift it (padding, cropping).
NOT_DEFAULT = ("InputLayer", "Rescaling", "Normalization", "Resizing", "ZeroPadding2D", "Cropping2D")


def build(family: str, config: str) -> tuple[keras.Model, keras.Model | None]:
    """The model and, for ``nested``, its frozen base."""
    constructor, side = FAMILIES[family]
    keras.utils.set_random_seed(0)
    shape = (side, side, 3)
    if config == "bare":
        return constructor(weights=None, input_shape=shape, include_top=True, classes=CLASSES), None
    base = constructor(weights=None, input_shape=shape, include_top=False)
    base.trainable = False
    model = keras.Sequential(
        [
            keras.Input(shape),
            base,
            L.GlobalAveragePooling2D(),
            L.Dropout(0.2),
            L.Dense(CLASSES, activation="softmax"),
        ],
        name=f"{family.lower()}_classifier",
    )
    return model, base


def inner_layer(network: keras.Model) -> str:
    """An explicit target layer: the deepest layer larger than 1x1 with at most 128 channels (Score-CAM
    costs one forward pass per channel), an activation (``ReLU``, ``Activation``, a max pooling of one)
    where there is one; a path into a nested block where it is in one (ConvNeXt)."""
    rows = [
        r
        for r in layer_table(network)
        if r.is_spatial and r.type not in NOT_DEFAULT and r.output_shape[1] > 1 and r.output_shape[-1] <= 128
    ]
    activations = [r for r in rows if r.type in ("ReLU", "Activation", "MaxPooling2D")]
    return (activations or rows)[-1].name


@dataclass
class Case:
    """One model under test and what is built for it once."""

    family: str
    config: str
    model: keras.Model
    base: keras.Model | None
    images: np.ndarray  # float32 (1, H, W, 3) raw pixels in [0, 255]
    probabilities: np.ndarray  # the model's output for them, (CLASSES,)
    inner: str  # explicit target layer; "<base name>/<inner layer>" when nested
    explainers: dict = field(default_factory=dict)

    @property
    def side(self) -> int:
        return self.images.shape[1]

    @property
    def per_class(self) -> np.ndarray:
        """The image once per class, to explain every class in one call: (CLASSES, H, W, 3)."""
        return np.repeat(self.images, CLASSES, axis=0)

    def is_top(self, class_index: int) -> bool:
        """Whether the class is a top prediction (random weights can tie the probabilities)."""
        return self.probabilities[class_index] == self.probabilities.max()

    def explainer(self, method: str, layer: str | None = None, compiled: bool = FULL):
        """The method on ``layer`` (None: the default target layer), built once."""
        key = (method, layer, compiled)
        if key not in self.explainers:
            explainer = METHODS[method](self.model, layer=layer, **SMALL.get(method, {}))
            self.explainers[key] = explainer if compiled else uncompiled(explainer)
        return self.explainers[key]


def uncompiled(explainer):
    """The explainer with its ``tf.function``s replaced by the Python functions they wrap.

    The call then runs the very code that would be traced, eagerly: a fraction of a second
    instead of seconds of tracing through hundreds of layers. Keras's own compiled ops (XLA for
    grouped convolutions) stay compiled.
    """
    explainer._compiled = explainer._maps_at_input_size
    if hasattr(explainer, "_proba"):  # LIME's batched model call
        explainer._proba = explainer._probabilities
    return explainer


#: Families on which CI runs the report and the input-gradient methods and LIME (whole-model passes, the same
#: plumbing for every family: the score head, the input scaling): one of each kind of structure, a skip
#: connection (ResNet50), branches (InceptionV3), scaling layers inside (EfficientNetB0), a 1x1 top
#: (MobileNetV3Small), nested blocks and LayerNormalization (ConvNeXtTiny).
WHOLE_MODEL_IN_CI = ("ResNet50", "InceptionV3", "EfficientNetB0", "MobileNetV3Small", "ConvNeXtTiny")
#: Families whose bare configuration CI runs: one of each kind of classifier top (a Dense top: ResNet50; a
#: 1x1 convolution then Activation(softmax): MobileNet; the same after hard-swish: MobileNetV3Small;
#: LayerNormalization before the Dense: ConvNeXtTiny). The other bare tops are a pooling and a Dense
#: over the base the nested configuration already runs (EXPLAIN_FULL_APPLICATIONS=1 runs them all).
BARE_IN_CI = ("ResNet50", "MobileNet", "MobileNetV3Small", "ConvNeXtTiny")


@pytest.fixture(
    scope="module",
    params=[(f, c) for f in FAMILIES for c in ("bare", "nested") if FULL or c == "nested" or f in BARE_IN_CI],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def case(request) -> Case:
    family, config = request.param
    model, base = build(family, config)
    side = FAMILIES[family][1]
    images = np.random.default_rng(0).uniform(0, 255, (1, side, side, 3)).astype(np.float32)
    probabilities = keras.ops.convert_to_numpy(model(images, training=False))[0]
    inner = inner_layer(model) if base is None else f"{base.name}/{inner_layer(base)}"
    return Case(family, config, model, base, images, probabilities, inner)


def check_contract(result, case: Case, method: str, layer: str | None) -> None:
    """The shared result contract; flat maps allowed (a CAM can be all negative before its ReLU)."""
    heat = result.heatmap
    n = len(result.class_index)
    assert heat.shape == (n, case.side, case.side) and heat.dtype == np.float32, (method, heat.shape, heat.dtype)
    assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1, method
    assert (heat[result.flat] == 0).all(), method  # a flat map is drawn as zeros
    for row in heat[~result.flat]:  # an informative one is min-max scaled to exactly [0, 1]
        assert row.min() == 0.0 and row.max() == pytest.approx(1.0), method
    assert result.method == method and result.score_kind == "logit"
    assert ((result.class_index >= 0) & (result.class_index < CLASSES)).all()
    assert result.score.shape == (n,) and np.isfinite(result.score).all()
    assert result.layer == layer


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_input_size_is_the_smallest_each_family_accepts(family):
    constructor, side = FAMILIES[family]
    for include_top in (True, False):  # refused before a layer is built: instant
        with pytest.raises(ValueError, match=f"at least {side}x{side}"):
            constructor(weights=None, input_shape=(side - 1, side - 1, 3), include_top=include_top, classes=CLASSES)


# ---------------------------------------------------------------- layers and activations


def test_layer_table_and_activations(case, monkeypatch):
    if not FULL:  # the same feature model and call, untraced (1-10 s a family); compiled: tests/test_activations.py
        monkeypatch.setattr(feature_activations, "_compiled", lambda fm: lambda x: fm(x, training=False))
    rows = layer_table(case.model)
    names = [r.name for r in rows]
    assert len(names) == len(set(names))
    top = [r for r in rows if r.index is not None]
    assert [r.name for r in top] == [layer.name for layer in case.model.layers]
    if case.base is not None:
        inside = [r for r in rows if r.name.startswith(case.base.name + "/")]
        assert len(inside) >= len(case.base.layers) and all(r.index is None and r.depth >= 1 for r in inside)
    default = default_target_layer(case.model).name
    asked = [case.inner, default, top[-1].name]
    if case.base is not None:
        asked.append(case.base.name)
    acts = explain.compute_activations(case.model, case.images, asked)
    assert list(acts) == asked
    for name, a in acts.items():
        info = resolve_layer(case.model, name)
        assert a.shape == (1, *info.output_shape[1:]) and a.dtype == np.float32, name
        assert np.isfinite(a).all(), name
    # The last layer's activations are the model's own output; an inner layer's vary over the image.
    np.testing.assert_allclose(acts[top[-1].name][0], case.probabilities, rtol=1e-4, atol=1e-6)
    assert acts[case.inner].std() > 0 and acts[default].std() > 0


def bypassable(container: keras.Model, name: str) -> bool:
    """Whether ``container``'s output can be reached from its input without going through layer ``name``
    (a search over the calls of its own graph, the layer's removed)."""
    graph = container._functional if isinstance(container, keras.Sequential) else container
    nodes = [n for depth_nodes in graph._nodes_by_depth.values() for n in depth_nodes]
    children: dict[int, list] = {}
    for n in nodes:
        for parent in n.parent_nodes:
            children.setdefault(id(parent), []).append(n)
    outputs = {id(n) for n in graph._nodes_by_depth[0]}
    todo = [n for n in nodes if not n.parent_nodes and n.operation.name != name]
    seen = {id(n) for n in todo}
    while todo:
        n = todo.pop()
        if id(n) in outputs:
            return True
        for child in children.get(id(n), []):
            if id(child) not in seen and child.operation.name != name:
                seen.add(id(child))
                todo.append(child)
    return False


def on_every_path(model: keras.Model, path: str) -> bool:
    """Whether every path from input to output goes through the layer at ``path`` (and each model on the way)."""
    container = model
    for part in path.split("/"):
        if bypassable(container, part):
            return False
        container = container.get_layer(part)
    return True


def test_default_target_layer(case):
    """The last layer larger than 1x1 (not input-side, padding or cropping) that every path goes through."""
    info = default_target_layer(case.model)
    rows = layer_table(case.model)
    h, w = info.output_shape[1:3]
    assert info.is_spatial and h * w > 1 and info.type not in NOT_DEFAULT
    assert on_every_path(case.model, info.name)
    if case.base is not None:
        assert info.name.startswith(case.base.name + "/")
    later = rows[[r.name for r in rows].index(info.name) + 1 :]
    for r in later:  # not spatial, 1x1, padding or cropping, or on one branch only
        if r.is_spatial and r.output_shape[1:3] != (1, 1) and r.type not in NOT_DEFAULT:
            assert not on_every_path(case.model, r.name), r


# ---------------------------------------------------------------- attribution


#: What CI runs on the nested configuration beyond what every configuration gets (Grad-CAM on the default
#: layer, against the tape): on the inner layer, Grad-CAM++ and Score-CAM, Guided Grad-CAM (the model's ReLUs
#: swapped while tracing) and Ablation-CAM (the network cut after the layer); one input method per way of
#: reaching the model. Left to EXPLAIN_FULL_APPLICATIONS=1: the input methods that reach it as another does
#: (SquareGrad, VarGrad: SmoothGrad's noise loop; GradientSHAP: Integrated Gradients' gradients along a path;
#: RISE: Occlusion's masked batches; KernelSHAP: LIME's superpixels).
INPUT_METHODS = [name for name in universal_methods() if name not in CAM_METHODS]
SAME_PLUMBING_AS_ANOTHER = {"squaregrad", "vargrad", "gradient_shap", "rise", "kernel_shap"}
CI_NESTED = {("gradcam++", "inner"), ("scorecam", "inner"), ("guided_gradcam", "inner"), ("ablation_cam", "inner")}
CI_NESTED |= {(m, "input") for m in INPUT_METHODS if m not in SAME_PLUMBING_AS_ANOTHER}
#: The methods that reach the model in a way of their own (the network cut after the layer: Ablation-CAM; its
#: ReLUs swapped while tracing: Guided Backprop and Guided Grad-CAM; masked batches: Occlusion) run in CI on
#: three structures: a skip connection (ResNet50), branches (InceptionV3), ReLU beside hard-swish and a 1x1 top
#: (MobileNetV3Small). Nested blocks and paths are checked on tiny models in tests/test_cam_family_more.py.
NEW_METHODS = {"ablation_cam", "guided_gradcam", "guided_backprop", "occlusion"}
NEW_METHODS_IN_CI = ("ResNet50", "InceptionV3", "MobileNetV3Small")


#: ConvNeXtTiny is the costliest family here: its grouped convolutions run through XLA, compiled again at each
#: eager gradient (about 5 s a call on 2 cores). CI leaves out what the same case or another family already
#: checks the same way (EXPLAIN_FULL_APPLICATIONS=1 runs them):
#: * bare, the hand-written tape: the nested configuration's tape test checks Grad-CAM exactly on the same
#:   family at a deeper path (base/block/layer), and ResNet50-bare's the logit of a Dense(softmax) top;
#:   bare Grad-CAM on its default layer still runs (test_cam_methods);
#: * nested, Grad-CAM on the default layer: the tape test runs it on the same layer, for every class;
#: * nested, Score-CAM on the inner layer: Grad-CAM++ runs on the same layer (a path into a nested block), and
#:   Score-CAM on the inner layer of every other family;
#: * nested, SmoothGrad, Gradient x Input, Integrated Gradients and LIME: saliency still runs on it (the same
#:   gradient of the model with respect to its input; LIME's calls are plain forward passes), and those methods
#:   on the other WHOLE_MODEL_IN_CI families.
HEAVY_LEFT_OUT = {
    ("ConvNeXtTiny", "bare", "tape", "default"),
    ("ConvNeXtTiny", "nested", "gradcam", "default"),
    ("ConvNeXtTiny", "nested", "scorecam", "inner"),
    ("ConvNeXtTiny", "nested", "smoothgrad", "input"),
    ("ConvNeXtTiny", "nested", "gradient_input", "input"),
    ("ConvNeXtTiny", "nested", "integrated_gradients", "input"),
    ("ConvNeXtTiny", "nested", "lime", "input"),
}


def skip_heavy(case: Case, method: str, where: str) -> None:
    """Skip what :data:`HEAVY_LEFT_OUT` leaves to ``EXPLAIN_FULL_APPLICATIONS=1``."""
    if not FULL and (case.family, case.config, method, where) in HEAVY_LEFT_OUT:
        pytest.skip(f"{method} ({where}) on {case.family}-{case.config}: EXPLAIN_FULL_APPLICATIONS=1")


def skip_unless_in_ci(case: Case, method: str, where: str) -> None:
    """Skip what CI leaves to ``EXPLAIN_FULL_APPLICATIONS=1``.

    Left out: Grad-CAM on the inner layer and Grad-CAM++ on the default one (the same model plumbing
    as the CAM methods that run there), Score-CAM on the default layer (256-2048 forward passes), and
    all but Grad-CAM on the default layer on the bare configuration (the same base as the nested one).
    Every method runs compiled on small models in ``tests/test_attribution.py``. And :data:`HEAVY_LEFT_OUT`.
    """
    skip_heavy(case, method, where)
    if FULL or (method, where) == ("gradcam", "default"):
        return
    if case.config == "bare" or (method, where) not in CI_NESTED:
        pytest.skip(f"{method} ({where}) on {case.config} models: EXPLAIN_FULL_APPLICATIONS=1")
    families = NEW_METHODS_IN_CI if method in NEW_METHODS else WHOLE_MODEL_IN_CI
    if (where == "input" or method in NEW_METHODS) and case.family not in families:
        pytest.skip(f"{method} on {case.family}: EXPLAIN_FULL_APPLICATIONS=1 (CI: {', '.join(families)})")


@pytest.mark.parametrize("where", ["default", "inner"])
@pytest.mark.parametrize("method", CAM_METHODS)
def test_cam_methods(case, method, where):
    """Every CAM method on the default target layer and on an explicit (nested) inner layer."""
    skip_unless_in_ci(case, method, where)
    layer = default_target_layer(case.model).name if where == "default" else case.inner
    if case.base is not None:
        assert layer.startswith(case.base.name + "/")
    explainer = case.explainer(method, None if where == "default" else layer)
    if method == "scorecam" or (method, where) == ("gradcam", "default"):
        # Score-CAM: one forward pass per channel and image, so one image. Grad-CAM on the default layer:
        # every class in test_gradcam_matches_a_hand_written_tape. Here: the top prediction.
        result = explainer(case.images)
        check_contract(result, case, method, layer)
        assert case.is_top(result.class_index[0])
        assert method == "gradcam" or not result.flat.any()  # Score-CAM weights are positive (softmax)
        return
    every = explainer(case.per_class, class_index=np.arange(CLASSES))
    check_contract(every, case, method, layer)
    assert list(every.class_index) == list(range(CLASSES))
    # A ReLU'd CAM may be all zero for a class, not for every class (it is, on a 1x1 map).
    if method == "gradcam++" and every.flat.all():
        # Grad-CAM++ divides by max(denominator, 1e-7), as pytorch-grad-cam adds 1e-7: with gradients
        # below about 1e-13 (random-weight MobileNet's early layers) its weights underflow float32.
        _, grads, _ = tape_gradients(case, layer)
        assert np.abs(grads).max() < 1e-12, f"{method} on {layer}: flat for every class"
    else:
        assert not every.flat.all(), f"{method} on {layer}: flat for every class"


@pytest.mark.parametrize("method", INPUT_METHODS)
def test_input_methods(case, method):
    """Saliency, SmoothGrad, Integrated Gradients and LIME: maps of the whole input, never flat here."""
    skip_unless_in_ci(case, method, "input")
    explainer = case.explainer(method)
    result = explainer(case.images)
    check_contract(result, case, method, None)
    assert case.is_top(result.class_index[0])
    if method == "lime" and result.flat.any():
        # LIME fits the class probability over perturbed images, in float32. A random-weight network can
        # leave it no resolution: all classes tied (logits within 1e-12: random-weight MobileNet under Keras
        # 3.15's initialisers) or the top class at 1.0 (NASNetMobile). Then a flat map is the right answer.
        p = explainer.predict_proba(case.images)[0]
        assert np.ptp(p) == 0.0 or p.max() >= 1.0 - 1e-6, f"LIME flat although the probabilities are {p}"
        return
    assert not result.flat.any()


def tapped(container: keras.Model, path: str, end) -> keras.Model:
    """``container``'s input -> [the output of the layer at ``path``, ``end``], one forward pass.

    ``end`` is a tensor of ``container``'s graph. A path through a nested model (ConvNeXt's
    downsampling blocks, a base in the tutorial's Sequential) runs the outer graph up to the
    nested model, the nested model returning its inner layer and its output, then the rest.
    """
    head, _, rest = path.partition("/")
    layer = container.get_layer(head)
    if not rest:
        return keras.Model(container.inputs, [layer.output, end])
    # The nested model's call in container's own graph (explainers add calls of their own).
    graph = container._functional if isinstance(container, keras.Sequential) else container
    in_graph = {id(n) for nodes in graph._nodes_by_depth.values() for n in nodes}
    (node,) = [n for n in layer._inbound_nodes if id(n) in in_graph]
    inner = tapped(layer, rest, layer.outputs[0])
    x = keras.Input(tuple(container.inputs[0].shape[1:]))
    before = keras.Model(container.inputs, node.input_tensors[0])
    after = keras.Model(node.output_tensors[0], end)
    a, y = inner(before(x))
    return keras.Model(x, [a, after(y)])


def tape_gradients(case: Case, layer: str) -> tuple[tf.Tensor, np.ndarray, np.ndarray]:
    """With a GradientTape written out here: the activations of ``layer`` for the image once per class
    ``(CLASSES, h, w, K)``, the gradients of row c's pre-softmax logit of class c with respect to them,
    and those logits ``(CLASSES,)``."""
    x = tf.constant(case.per_class)  # row c explains class c
    dense = case.model.layers[-1]
    with tf.GradientTape() as tape:
        if case.base is None:
            # The bare top ends in Dense(softmax) or, for MobileNet and MobileNetV3, in Activation(softmax).
            a, pre = tapped(case.model, layer, dense.input)(x, training=False)
        else:
            # The tutorial: run the base up to the target layer, then the rest of the base and the head.
            a, features = tapped(case.base, layer.partition("/")[2], case.base.outputs[0])(x, training=False)
            pooled = case.model.layers[1](features)
            pre = case.model.layers[2](pooled, training=False)
        logits = tf.matmul(pre, dense.kernel) + dense.bias if isinstance(dense, L.Dense) else pre
        scores = tf.linalg.diag_part(logits)  # the rows are independent (inference): one gradient for all
    grads = tape.gradient(scores, a)
    assert grads is not None
    return a, grads.numpy(), scores.numpy()


def gradcam_by_hand(case: Case, layer: str) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM on ``layer`` for every class: ``(heatmaps (CLASSES, H, W), logits (CLASSES,))``, the maps
    resized bilinearly and min-max scaled, all zeros where flat."""
    a, grads, logits = tape_gradients(case, layer)
    weights = grads.mean(axis=(1, 2))
    cam = tf.nn.relu(tf.einsum("bhwk,bk->bhw", a, weights))
    cam = tf.image.resize(cam[..., None], (case.side, case.side), method="bilinear")[..., 0].numpy()
    lo, hi = cam.min(axis=(1, 2), keepdims=True), cam.max(axis=(1, 2), keepdims=True)
    informative = hi - lo > FLAT_RTOL * np.maximum(np.abs(lo), np.abs(hi))  # explain's "not flat"
    maps = np.where(informative, (cam - lo) / np.where(informative, hi - lo, 1.0), 0.0)
    return maps, logits


def test_gradcam_matches_a_hand_written_tape(case):
    """Grad-CAM on the default target layer for every class, against the same computed here."""
    skip_heavy(case, "tape", "default")
    layer = default_target_layer(case.model).name
    result = case.explainer("gradcam")(case.per_class, class_index=np.arange(CLASSES))
    check_contract(result, case, "gradcam", layer)
    assert list(result.class_index) == list(range(CLASSES))
    expected, logits = gradcam_by_hand(case, layer)
    informative = expected.max(axis=(1, 2)) > 0
    assert informative.any()  # not flat for every class (it is on a 1x1 map), nor all-zero maps compared
    assert list(result.flat) == list(~informative)
    assert np.abs(result.heatmap - expected).max() < 1e-4
    np.testing.assert_allclose(result.score, logits, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- the report


#: The report's families in CI: ResNet50 (caffe preprocessing, picked by the network's name), InceptionV3 (tf) and
#: MobileNetV3Small (its own rescaling, a 1x1 top). EfficientNetB0 and ConvNeXtTiny also rescale inside the
#: model; their default Grad-CAM layer runs in test_cam_methods (EXPLAIN_FULL_APPLICATIONS=1 runs their report).
REPORT_IN_CI = ("ResNet50", "InceptionV3", "MobileNetV3Small")


def test_report(case, tmp_path):
    if not FULL and (case.config == "bare" or case.family not in REPORT_IN_CI):
        pytest.skip(f"the report on {case.family}-{case.config}: EXPLAIN_FULL_APPLICATIONS=1")
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, case.side, case.side, 3), dtype=np.uint8)
    names = [f"c{i}" for i in range(CLASSES)]
    # Without a model card the report preprocesses as the keras.applications network expects (by its name).
    card = explain.load_model_card(None, case.model)
    predicted = [p.top_k[0][0] for p in explain.predict(case.model, images, names, preprocess=card.preprocessing)]
    labels = (np.array(predicted) + 1) % CLASSES  # every image misclassified: the report has a confusion gallery
    source = ArraySource("generated", images, labels, names)
    out = tmp_path / "report"
    report = explain.write_report(case.model, source, out, confusions=1, examples=2, top_k=2, progress=False)
    assert report.heatmap_method == "gradcam" and len(report.galleries) == 1
    assert report.evaluation.accuracy == 0.0
    for path in report.files:
        assert path.parent == out and path.stat().st_size > 0, path
    assert {p.name for p in report.files} >= {
        "per_class_accuracy.png",
        "confusion_matrix.png",
        "confusion_matrix.csv",
        "metrics.json",
        "predictions.csv",
        "top_k_predictions.png",
        "report.html",
    }
    assert report.galleries[0] in report.files
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["heatmap_method"] == "gradcam" and metrics["accuracy"] == 0.0
    page = (out / "report.html").read_text()
    assert html.escape(method_label("gradcam", default_target_layer(case.model).name)) in page
