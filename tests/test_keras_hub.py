"""keras-hub image classifiers (the optional extra ``explain[hub]``): a tiny ResNet built from its
config with random weights, saved as ``.keras``; nothing is downloaded (no presets).

keras-hub registers its classes as ``keras_hub>ClassName``: they load without ``--trust-code``
when keras-hub is importable, and the refusal names the extra when it is not.
"""

from __future__ import annotations

import numpy as np
import pytest

import explain
import explain.models.config_scan
from explain import ModelLoadError, layer_table, load_model
from explain.attribution import GradCAM, Saliency

keras_hub = pytest.importorskip("keras_hub")

SIZE = 32
CLASSES = 3


@pytest.fixture(scope="module")
def hub_classifier(tmp_path_factory):
    """``(path, original model)``: a ``ResNetImageClassifier`` (no preprocessor) over a two-stack
    basic-block ``ResNetBackbone`` (89k weights), 32x32 RGB in, 3 logits out."""
    import keras

    keras.utils.set_random_seed(7)
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],  # keras-hub requires 64 filters into the first stack
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        image_shape=(SIZE, SIZE, 3),
    )
    model = keras_hub.models.ResNetImageClassifier(backbone=backbone, num_classes=CLASSES)
    path = tmp_path_factory.mktemp("hub") / "hub_resnet.keras"
    model.save(path)
    return path, model


def _images(n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")


def test_hub_classifier_loads_without_trust_and_predicts_the_same(hub_classifier):
    path, original = hub_classifier
    model = load_model(path)
    assert isinstance(model, keras_hub.models.ResNetImageClassifier)
    assert tuple(model.inputs[0].shape) == (None, SIZE, SIZE, 3)
    x = _images()
    expected = original.predict(x, verbose=0)
    got = model.predict(x, verbose=0)
    assert got.shape == (2, CLASSES)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_hub_classifier_is_explainable(hub_classifier):
    model = load_model(hub_classifier[0])
    rows = layer_table(model)
    names = [r.name for r in rows]
    assert rows[1].name == "res_net_backbone" and rows[1].type == "ResNetBackbone" and rows[1].index == 1
    assert "res_net_backbone/stack1_block0_out" in names  # the backbone's layers, by path
    assert rows[-1].name == "predictions" and rows[-1].output_shape == (None, CLASSES)

    x = _images()
    saliency = Saliency(model)(x)
    assert saliency.heatmap.shape == (2, SIZE, SIZE) and saliency.layer is None
    assert np.isfinite(saliency.heatmap).all() and not saliency.flat.any()

    gradcam = GradCAM(model)(x)  # the default target: the backbone's last spatial layer
    assert gradcam.heatmap.shape == (2, SIZE, SIZE)
    assert gradcam.layer == "res_net_backbone/stack1_block0_out"
    assert np.isfinite(gradcam.heatmap).all()
    np.testing.assert_allclose(gradcam.score, model.predict(x, verbose=0)[np.arange(2), gradcam.class_index], atol=1e-4)


def test_hub_classifier_without_keras_hub_names_the_extra(hub_classifier, monkeypatch):
    monkeypatch.setattr(explain.models.config_scan, "hub_class", lambda label: None)
    with pytest.raises(ModelLoadError) as info:
        load_model(hub_classifier[0])
    message = str(info.value)
    assert "keras-hub" in message and "pip install" in message
    assert "keras_hub>ResNetImageClassifier" in message


def test_hub_image_converter_gives_the_preprocessing_mode(hub_classifier, tmp_path):
    """keras-hub's ``predict`` runs the task's preprocessor; a call of the model does not. explain
    reads the converter's scale (1/255 here) as the ``unit`` mode, so it scores what predict scores."""
    import keras

    _, original = hub_classifier
    converter = keras_hub.layers.ResNetImageConverter(scale=1 / 255)
    preprocessor = keras_hub.models.ResNetImageClassifierPreprocessor(image_converter=converter)
    model = keras_hub.models.ResNetImageClassifier(
        backbone=original.backbone, num_classes=CLASSES, preprocessor=preprocessor
    )
    path = tmp_path / "with_preprocessor.keras"
    model.save(path)
    loaded = load_model(path)
    card = explain.load_model_card(path, loaded)
    assert card.preprocessing == "unit" and card.preprocessing_from == "model" and not card.notes
    x = _images()
    expected = keras.ops.convert_to_numpy(keras.activations.softmax(model.predict(x, verbose=0)))
    got = np.stack([p.probabilities for p in explain.predict(loaded, x, list("abc"), preprocess=card.preprocessing)])
    np.testing.assert_allclose(got, expected, atol=1e-5)
