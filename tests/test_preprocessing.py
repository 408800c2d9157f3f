"""Preprocessing modes in front of the model, the model card's mode and class names, and the
CLI options that set them (--preprocess, --classes) and python -m explain.convert."""

import json

import keras
import numpy as np
import pytest
from conftest import FAST, L, universal_methods

import explain
from explain.attribution import METHODS
from explain.errors import ExplainError
from explain.models.card import imagenet_class_names, load_model_card, read_class_names
from explain.models.preprocessing import MODES, check_mode, from_raw_pixels, infer_preprocessing, preprocess

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)


def _layers(rescale: bool) -> list:
    """The same conv net, with or without a leading Rescaling(1/255): identical functions when
    the one without it is fed x / 255."""
    keras.utils.set_random_seed(7)
    conv_a = L.Conv2D(4, 3, activation="relu", name="conv_a")
    conv_b = L.Conv2D(6, 3, padding="same", activation="relu", name="conv_b")
    dense = L.Dense(3, activation="softmax", name="predictions")
    return [*([L.Rescaling(1 / 255, name="rescale")] if rescale else []), conv_a, conv_b, L.Flatten(), dense]


@pytest.fixture(scope="module")
def unit_pair():
    """(a model trained on x/255 without a scaling layer, the same weights with Rescaling inside)."""
    unit = keras.Sequential([keras.Input((16, 16, 3)), *_layers(False)], name="unit_model")
    inside = keras.Sequential([keras.Input((16, 16, 3)), *_layers(True)], name="raw_model")
    inside.set_weights(unit.get_weights())
    return unit, inside


# -- the modes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["tf", "caffe", "torch"])
def test_modes_match_keras_preprocess_input(mode):
    from keras.applications import imagenet_utils

    expected = imagenet_utils.preprocess_input(IMAGES.copy(), mode=mode)
    got = keras.ops.convert_to_numpy(preprocess(IMAGES, mode))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_unit_and_raw():
    np.testing.assert_allclose(keras.ops.convert_to_numpy(preprocess(IMAGES, "unit")), IMAGES / 255, rtol=1e-6)
    assert preprocess(IMAGES, "raw") is IMAGES


def test_unknown_mode_and_rgb_only_modes_are_refused():
    with pytest.raises(ExplainError, match=r"Unknown preprocessing mode 'scale'.*raw.*unit.*tf.*caffe.*torch"):
        check_mode("scale")
    with pytest.raises(ExplainError, match=r"'caffe'.*1 channel"):
        check_mode("caffe", channels=1)
    assert check_mode(" Unit ") == "unit"


def test_wrapper_shares_weights_and_leaves_the_model_alone(unit_pair):
    unit, _ = unit_pair
    layers_before = [layer.name for layer in unit.layers]
    wrapped = from_raw_pixels(unit, "unit")
    assert from_raw_pixels(unit, "unit") is wrapped  # cached
    assert from_raw_pixels(unit, "raw") is unit
    assert [layer.name for layer in unit.layers] == layers_before
    np.testing.assert_allclose(np.asarray(wrapped(IMAGES)), np.asarray(unit(IMAGES / 255)), rtol=1e-5, atol=1e-6)


def test_wrapper_is_freed_with_its_model(tmp_path):
    """A wrapper holds its model, so a cache keyed weakly on the model would keep both forever."""
    import gc
    import weakref

    model = keras.Sequential([keras.Input((16, 16, 3)), *_layers(rescale=False)])
    from_raw_pixels(model, "unit")(IMAGES)
    model.save(tmp_path / "m.keras")  # the cached wrapper is not saved with the model
    assert len(keras.models.load_model(tmp_path / "m.keras").layers) == len(model.layers)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


# -- every consumer, on a model trained on x/255 -------------------------------------------------
def test_activations_and_predictions_with_unit(unit_pair):
    unit, inside = unit_pair
    a = explain.compute_activations(unit, IMAGES, ["conv_b", 1], preprocess="unit")
    b = explain.compute_activations(inside, IMAGES, ["conv_b", 2])
    np.testing.assert_allclose(a["conv_b"], b["conv_b"], rtol=1e-4, atol=1e-5)
    # Layer indices stay the user's: index 1 is conv_b in the model without the scaling layer.
    assert list(a) == ["conv_b"]
    raw = explain.compute_activations(unit, IMAGES, ["conv_b"])["conv_b"]
    assert np.abs(raw).max() > 50 * np.abs(a["conv_b"]).max()  # raw pixels really are different
    names = ("a", "b", "c")
    p_unit = explain.predict(unit, IMAGES, names, preprocess="unit")
    p_inside = explain.predict(inside, IMAGES, names)
    for x, y in zip(p_unit, p_inside, strict=True):
        np.testing.assert_allclose(x.probabilities, y.probabilities, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", universal_methods())
def test_every_method_with_unit_matches_the_model_that_rescales_itself(unit_pair, method):
    unit, inside = unit_pair
    kwargs = FAST.get(method, {})
    ours = METHODS[method](unit, preprocess="unit", **kwargs)(IMAGES[:1], 1)
    ref = METHODS[method](inside, **kwargs)(IMAGES[:1], 1)
    assert ours.heatmap.shape == (1, 16, 16)
    np.testing.assert_allclose(ours.heatmap, ref.heatmap, atol=2e-3)
    np.testing.assert_allclose(ours.score, ref.score, rtol=1e-4, atol=1e-5)


def test_faithfulness_and_evaluation_with_unit(unit_pair):
    unit, inside = unit_pair
    heat = METHODS["gradcam"](inside)(IMAGES).heatmap
    a = explain.deletion_insertion(unit, IMAGES, heat, None, steps=4, preprocess="unit")
    b = explain.deletion_insertion(inside, IMAGES, heat, None, steps=4)
    np.testing.assert_allclose(a.deletion_curve, b.deletion_curve, rtol=1e-4, atol=1e-6)
    source = explain.ArraySource("arrays", IMAGES.astype(np.uint8), np.array([0, 1]), ["a", "b", "c"])
    e1 = explain.evaluate_model(unit, source, ["a", "b", "c"], progress=False, preprocess="unit")
    e2 = explain.evaluate_model(inside, source, ["a", "b", "c"], progress=False)
    np.testing.assert_array_equal(e1.y_pred, e2.y_pred)


# -- guessing the mode without a card -------------------------------------------------------------
def test_infer_preprocessing(unit_pair):
    unit, inside = unit_pair
    assert infer_preprocessing(inside) == ("raw", None)
    mode, note = infer_preprocessing(unit)
    assert mode == "raw" and "assuming it takes raw pixels" in note and "--preprocess unit" in note
    from conftest import tiny_nested

    assert infer_preprocessing(tiny_nested()) == ("raw", None)  # Rescaling inside the leading nested base


def test_infer_preprocessing_of_keras_applications():
    mobilenet = keras.applications.MobileNetV2(input_shape=(32, 32, 3), weights=None, classes=3)
    assert infer_preprocessing(mobilenet)[0] == "tf"
    nested = keras.Sequential(
        [keras.Input((32, 32, 3)), mobilenet, L.Dense(2, activation="softmax")], name="my_classifier"
    )
    mode, note = infer_preprocessing(nested)
    assert mode == "tf" and "mobilenetv2" in note
    v3 = keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None, classes=3)
    assert infer_preprocessing(v3) == ("raw", None)  # it rescales itself


# -- the model card ------------------------------------------------------------------------------
def test_card_preprocessing_and_overrides(unit_pair, tmp_path):
    unit, _ = unit_pair
    path = tmp_path / "m.keras"
    unit.save(path)
    card = load_model_card(path, unit)
    assert card.preprocessing == "raw" and card.preprocessing_from == "assumed" and card.notes
    assert card.class_names == ("class 0", "class 1", "class 2") and card.class_names_from == "indices"
    path.with_suffix(".json").write_text(json.dumps({"preprocessing": "unit", "class_names": ["x", "y", "z"]}))
    card = load_model_card(path, unit)
    assert (card.preprocessing, card.preprocessing_from, card.notes) == ("unit", "card", ())
    assert card.class_names == ("x", "y", "z")
    card = load_model_card(path, unit, preprocess="tf", classes="p, q ,r")
    assert card.preprocessing == "tf" and card.class_names == ("p", "q", "r")
    with pytest.raises(ExplainError, match="2 class names given, but the model has 3 classes"):
        load_model_card(path, unit, classes="p,q")
    path.with_suffix(".json").write_text(json.dumps({"preprocessing": "scaled", "class_names": ["x", "y"]}))
    with pytest.raises(ExplainError, match=r"m\.json says preprocessing 'scaled'"):
        load_model_card(path, unit)
    card = load_model_card(path, unit, preprocess="unit")
    assert card.class_names == ("class 0", "class 1", "class 2")
    assert "lists 2 class names for 3 classes" in card.class_names_note


def test_class_names_from_a_file_and_bad_lists(tmp_path):
    f = tmp_path / "classes.txt"
    f.write_text("\ufeffcat\n\n dog \nbird, with a comma\n", encoding="utf-8")
    assert read_class_names(str(f)) == ("cat", "dog", "bird, with a comma")
    with pytest.raises(ExplainError, match="repeated: 'a'"):
        read_class_names("a,b,a")
    with pytest.raises(ExplainError, match="No such class names file"):
        read_class_names(str(tmp_path / "missing.txt"))
    with pytest.raises(ExplainError, match="No class names"):
        read_class_names(" , ")


def test_imagenet_names_for_a_1000_way_model_without_card():
    names = imagenet_class_names()
    assert len(names) == 1000 and len(set(names)) == 1000
    # Keras's class-index order (keras.applications decode_predictions).
    assert names[0] == "tench" and names[1] == "goldfish" and names[999] == "toilet tissue"
    assert names[134] == "crane (bird)" and names[517] == "crane (machine)"
    model = keras.Sequential([keras.Input((8, 8, 3)), L.Flatten(), L.Dense(1000, activation="softmax")])
    card = load_model_card(None, model)
    assert card.class_names == names and card.class_names_from == "imagenet"


# -- CLIs ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saturating(tmp_path_factory):
    """A model without a scaling layer whose logits are huge on raw pixels (about 600) and
    ordinary on x / 255 (about 2.4): what a model trained on x / 255 looks like when fed raw."""
    model = keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            L.Conv2D(2, 3, padding="same", name="conv"),
            L.Flatten(),
            L.Dense(3, name="logits"),
            L.Activation("softmax", name="predictions"),
        ],
        name="unit_cnn",
    )
    model.get_layer("conv").set_weights([np.full((3, 3, 1, 2), 1 / 9, np.float32), np.zeros(2, np.float32)])
    kernel = np.zeros((16 * 16 * 2, 3), np.float32)
    kernel[:, 0] = 0.005
    model.get_layer("logits").set_weights([kernel, np.zeros(3, np.float32)])
    path = tmp_path_factory.mktemp("sat") / "unit_cnn.keras"
    model.save(path)
    image = path.parent / "white.png"
    from PIL import Image

    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(image)
    return path, image


def test_attribute_cli_notes_the_assumption_and_hints_at_unit(saturating, tmp_path, capsys):
    from explain.attribute import main

    path, image = saturating
    assert main([str(path), str(image), "--out", str(tmp_path / "a.png")]) == 0
    out, err = capsys.readouterr()
    assert "assuming it takes raw pixels" in err and "--preprocess unit" in err
    assert "hint: the top logit is 600" in out
    assert main([str(path), str(image), "--out", str(tmp_path / "b.png"), "--preprocess", "unit"]) == 0
    out, err = capsys.readouterr()
    assert "hint" not in out and "assuming" not in err and "logit 2.351" in out


def test_cli_bad_preprocess_and_classes(saturating, tmp_path, capsys):
    from explain.attribute import main as attribute
    from explain.layers import main as layers

    path, image = saturating
    with pytest.raises(SystemExit) as e:
        layers([str(path), str(image), "--layer", "0", "--preprocess", "scaled"])
    assert e.value.code == 2 and "invalid choice: 'scaled'" in capsys.readouterr().err
    code = attribute([str(path), str(image), "--classes", "a,b", "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "2 class names given, but the model has 3 classes" in err
    assert not (tmp_path / "x.png").exists()
    names = tmp_path / "names.txt"
    names.write_text("bright\ndark\ngrey\n")
    assert attribute([str(path), str(image), "--classes", str(names), "--out", str(tmp_path / "y.png")]) == 0
    assert "class 0 'bright'" in capsys.readouterr().out


def test_layers_cli_with_unit_draws_other_maps(saturating, tmp_path, capsys):
    from explain.layers import main

    path, image = saturating
    assert main([str(path), str(image), "--layer", "conv", "--out", str(tmp_path / "raw.png")]) == 0
    assert main([str(path), str(image), "--layer", "0", "--preprocess", "unit", "--out", str(tmp_path / "u.png")]) == 0
    assert "assuming" in capsys.readouterr().err  # printed for the first call only
    assert (tmp_path / "u.png").stat().st_size > 0


def test_convert_writes_a_keras_file_and_its_card(saturating, tmp_path, capsys):
    from explain.convert import main

    path, image = saturating
    out = tmp_path / "converted" / "model.keras"
    assert main([str(path), str(out), "--preprocess", "unit", "--classes", "bright,dark,grey"]) == 0
    assert "max abs difference" in capsys.readouterr().out
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["preprocessing"] == "unit" and doc["class_names"] == ["bright", "dark", "grey"]
    model = explain.load_model(out)
    card = load_model_card(out, model)
    assert (card.preprocessing, card.class_names[0], card.notes) == ("unit", "bright", ())
    # The next command needs neither --preprocess nor --classes.
    from explain.attribute import main as attribute

    assert attribute([str(out), str(image), "--out", str(tmp_path / "a.png")]) == 0
    assert "'bright' (logit 2.351)" in capsys.readouterr().out


def test_convert_refuses_bad_outputs_and_writes_nothing(saturating, tmp_path, capsys):
    from explain.convert import main

    path, _ = saturating
    assert main([str(path), str(tmp_path / "model.h5")]) == 2
    assert main([str(path), str(path)]) == 2
    assert main([str(path), str(tmp_path / "m.keras"), "--classes", "a"]) == 2
    assert "1 class names given" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_training_evaluate_takes_preprocess(saturating, tmp_path):
    from PIL import Image

    from training.evaluate import evaluate

    path, _ = saturating
    for k in range(3):
        (tmp_path / f"class {k}").mkdir()
        Image.fromarray(np.full((16, 16), 40 * k, np.uint8)).save(tmp_path / f"class {k}" / "a.png")
    text = evaluate(path, folder=tmp_path, preprocess="unit")
    assert "3 images" in text and "note:" not in text
    assert "assuming it takes raw pixels" in evaluate(path, folder=tmp_path)
    with pytest.raises(ValueError, match="Unknown preprocessing mode"):
        evaluate(path, folder=tmp_path, preprocess="scaled")


def test_modes_are_listed_once():
    assert MODES == ("raw", "unit", "tf", "caffe", "torch")
