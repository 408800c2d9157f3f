import json
import zipfile

import keras
import numpy as np
import pytest
from conftest import tiny_functional, tiny_nested, tiny_sequential

from explain import (
    LayerError,
    ModelLoadError,
    format_layer_table,
    layer_table,
    load_model,
    load_model_card,
    resolve_layer,
)


def test_layer_table_sequential_indices_match_model_layers():
    model = tiny_sequential()
    rows = layer_table(model)
    assert [r.index for r in rows] == list(range(len(model.layers)))
    assert [r.name for r in rows] == [layer.name for layer in model.layers]
    conv = rows[1]
    assert (conv.type, conv.output_shape, conv.params) == ("Conv2D", (None, 14, 14, 4), 3 * 3 * 3 * 4 + 4)
    assert conv.is_spatial and not rows[-1].is_spatial


def test_layer_table_lists_nested_layers_with_paths():
    rows = layer_table(tiny_nested())
    names = [r.name for r in rows]
    assert "tiny_base/block_2_conv" in names
    nested = rows[names.index("tiny_base/block_2_conv")]
    assert nested.index is None and nested.depth == 1 and nested.output_shape == (None, 8, 8, 8)
    assert [r.index for r in rows if r.index is not None] == [0, 1, 2]


def test_format_layer_table_has_header_and_every_layer():
    model = tiny_functional()
    text = format_layer_table(layer_table(model))
    assert text.splitlines()[0].split() == ["index", "name", "type", "output", "shape", "params"]
    for layer in model.layers:
        assert layer.name in text


@pytest.mark.parametrize("spec", [1, "1", "conv_a", -6])
def test_resolve_layer_by_index_or_name(spec):
    assert resolve_layer(tiny_sequential(), spec).name == "conv_a"


def test_resolve_nested_by_path_and_by_unique_inner_name():
    model = tiny_nested()
    assert resolve_layer(model, "tiny_base/block_1_pool").name == "tiny_base/block_1_pool"
    assert resolve_layer(model, "block_1_pool").name == "tiny_base/block_1_pool"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (7, "out of range: this model has 7 layers, indices 0 to 6"),
        (-8, "out of range"),
        ("conv_z", "No such layer: 'conv_z'"),
        (1.5, "index or a name"),
    ],
)
def test_resolve_layer_errors(spec, message):
    with pytest.raises(LayerError, match=message):
        resolve_layer(tiny_sequential(), spec)


def test_load_model_roundtrip_and_card(saved_models, tmp_path):
    model = load_model(saved_models["sequential"])
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    ref = tiny_sequential()
    np.testing.assert_allclose(model.predict(x, verbose=0), ref.predict(x, verbose=0), atol=1e-6)
    card = load_model_card(saved_models["sequential"], model)
    assert not card.from_file and card.class_names == ("class 0", "class 1", "class 2")
    assert card.input_shape == (16, 16, 3) and card.color_mode == "rgb"


def test_model_card_read_from_json_beside_model(saved_models, tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(saved_models["gray"].read_bytes())
    path.with_suffix(".json").write_text(
        json.dumps({"class_names": ["a", "b", "c"], "dataset": "toy", "test_metrics": {"accuracy": 0.5}})
    )
    card = load_model_card(path, load_model(path))
    assert card.from_file and card.class_names == ("a", "b", "c")
    assert card.dataset == "toy" and card.test_accuracy == 0.5 and card.color_mode == "grayscale"


def test_model_card_with_wrong_class_count_falls_back(saved_models, tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(saved_models["gray"].read_bytes())
    path.with_suffix(".json").write_text(json.dumps({"class_names": ["only one"]}))
    assert load_model_card(path, load_model(path)).class_names == ("class 0", "class 1", "class 2")


def test_load_model_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="No such model file"):
        load_model(tmp_path / "missing.keras")
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        load_model(empty)
    text = tmp_path / "text.keras"
    text.write_text("not a zip")
    with pytest.raises(ModelLoadError, match=r"not a '\.keras' archive"):
        load_model(text)
    h5 = tmp_path / "old.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(ModelLoadError, match="HDF5"):
        load_model(h5)
    saved = tmp_path / "saved_model"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="SavedModel"):
        load_model(saved)
    other_zip = tmp_path / "other.keras"
    with zipfile.ZipFile(other_zip, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        load_model(other_zip)


def test_lambda_layer_refused(tmp_path):
    inp = keras.Input((4, 4, 1))
    out = keras.layers.Lambda(lambda t: t * 2)(inp)
    path = tmp_path / "lambda.keras"
    keras.Model(inp, out).save(path)
    with pytest.raises(ModelLoadError, match="Lambda"):
        load_model(path)
