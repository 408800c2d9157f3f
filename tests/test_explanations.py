"""A data set's explanations as a Parquet table (explain.attribute_dataset): the schema, rows that equal
Grad-CAM computed by hand and the embedding's features, the metadata, resuming after an interruption,
and the refusals."""

from __future__ import annotations

import json

import keras
import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from conftest import FAST, random_image, tiny_sequential, universal_methods

import explain
from explain.attribution import METHODS, LayerAttribution
from explain.data import ArraySource
from explain.dataset.embedding import feature_layer
from explain.dataset.explanations import check_model, read_metadata, table_schema
from explain.errors import ExplainError, LayerError
from explain.models.fingerprint import model_hash

N = 40
CLASSES = ("a", "b", "c")


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return tiny_sequential()


@pytest.fixture(scope="module")
def source() -> ArraySource:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, 16, 16, 3), dtype=np.uint8)
    return ArraySource("random", images, np.arange(N) % 3, CLASSES)


@pytest.fixture(scope="module")
def table(model, source, tmp_path_factory):
    out = tmp_path_factory.mktemp("rows") / "rows.parquet"
    explain.attribute_dataset(model, source, out=out, batch_size=16, progress=False)
    return out, pq.read_table(out)


def _gradcam_by_hand(model: keras.Model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM at conv_b for the top class, with one GradientTape: ``(maps (N, 7, 7), top classes (N,))``."""
    inner = keras.Model(model.inputs, [model.get_layer("conv_b").output, model.get_layer("hidden").output])
    dense = model.get_layer("predictions")
    x = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        a, hidden = inner(x, training=False)
        logits = tf.matmul(hidden, dense.kernel) + dense.bias
        top = tf.argmax(logits, axis=1)
        score = tf.gather(logits, top, axis=1, batch_dims=1)
    g = tape.gradient(score, a).numpy()
    a = a.numpy()
    weights = g.mean(axis=(1, 2))
    return np.maximum(np.einsum("bhwk,bk->bhw", a, weights), 0.0), top.numpy()


def test_the_table_has_the_schema_and_one_row_per_image(table, source):
    _, t = table
    assert t.schema.names == table_schema().names
    for field in table_schema():
        assert t.schema.field(field.name).type.equals(field.type, check_metadata=False) or str(
            t.schema.field(field.name).type.value_type
        ) == str(field.type.value_type)
    assert t.num_rows == N
    assert t.column("id").to_pylist() == list(range(N))
    assert t.column("path").null_count == N  # an array source has no file paths
    assert t.column("true").to_pylist() == [i % 3 for i in range(N)]
    assert set(t.column("h").to_pylist()) == {7} and set(t.column("w").to_pylist()) == {7}
    assert all(len(m) == 49 for m in t.column("heatmap").to_pylist())
    assert t.column("explained").to_pylist() == t.column("pred").to_pylist()
    assert pq.ParquetFile(table[0]).metadata.num_row_groups == 3  # one per batch of 16


def test_rows_equal_gradcam_by_hand_and_the_models_predictions(table, model, source):
    _, t = table
    x = source.images.astype(np.float32)
    maps, top = _gradcam_by_hand(model, x)
    rows = np.asarray(t.column("heatmap").to_pylist(), np.float32).reshape(N, 7, 7)
    np.testing.assert_allclose(rows, maps, rtol=1e-4, atol=1e-6)
    probs = model.predict(x, verbose=0)
    np.testing.assert_array_equal(t.column("pred").to_numpy(), top)
    np.testing.assert_array_equal(t.column("pred").to_numpy(), probs.argmax(axis=1))
    np.testing.assert_allclose(t.column("confidence").to_numpy(), probs.max(axis=1), rtol=1e-5)
    raw, cls, _ = METHODS["gradcam"](model).raw_maps(x, top)
    np.testing.assert_allclose(rows, raw, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(cls, top)


def test_features_are_the_embeddings_penultimate_layer(table, model, source):
    out, t = table
    info, _ = feature_layer(model)
    assert info.name == "hidden" == read_metadata(out)["explain.feature_layer"]
    expected = keras.Model(model.inputs, model.get_layer("hidden").output).predict(source.images, verbose=0)
    np.testing.assert_allclose(np.asarray(t.column("features").to_pylist()), expected, rtol=1e-5, atol=1e-6)


def test_the_metadata_say_what_made_the_table(table, model):
    meta = read_metadata(table[0])
    assert meta["explain.model_hash"] == model_hash(model) == model_hash(tiny_sequential())
    assert meta["explain.method"] == "gradcam" and meta["explain.layer"] == "conv_b"
    assert json.loads(meta["explain.class_names"]) == list(CLASSES)
    assert meta["explain.data"] == "random" and meta["explain.preprocess"] == "raw"
    assert meta["explain.version"] == "1" and meta["explain.images"] == str(N)


def test_another_model_has_another_hash_and_its_table_is_refused(table, model, tmp_path):
    other = tiny_sequential()
    other.get_layer("conv_a").kernel.assign(other.get_layer("conv_a").kernel + 1e-3)
    assert model_hash(other) != model_hash(model)
    assert check_model(table[0], model)["explain.method"] == "gradcam"
    with pytest.raises(ExplainError, match=r"rows\.parquet holds the explanations of another model"):
        check_model(table[0], other)
    pq.write_table(pq.read_table(table[0]).replace_schema_metadata(None), tmp_path / "plain.parquet")
    with pytest.raises(ExplainError, match=r"not written by explain\.attribute_dataset"):
        read_metadata(tmp_path / "plain.parquet")


@pytest.mark.parametrize("method", universal_methods())
def test_every_method_writes_its_raw_maps(method, model, source, tmp_path):
    kwargs = FAST.get(method, {})
    small = ArraySource("four", source.images[:4], source.labels[:4], CLASSES)
    out = explain.attribute_dataset(model, small, method, out=tmp_path / "m.parquet", progress=False, **kwargs)
    t = pq.read_table(out)
    x = small.images.astype(np.float32)
    pred = t.column("pred").to_numpy()
    raw, _, _ = METHODS[method](model, batch_size=64, **kwargs).raw_maps(x, pred)
    h, w = t.column("h")[0].as_py(), t.column("w")[0].as_py()
    # the CAMs: conv_b's 7x7; the others (and Guided Grad-CAM, a CAM times an input gradient): the input
    at_layer = issubclass(METHODS[method], LayerAttribution) and method != "guided_gradcam"
    assert (h, w) == raw.shape[1:] == ((7, 7) if at_layer else (16, 16))
    tol = 1e-5
    np.testing.assert_allclose(np.asarray(t.column("heatmap").to_pylist()).reshape(raw.shape), raw, rtol=tol, atol=tol)


def test_a_folder_gives_relative_paths(model, tmp_path):
    for k, name in enumerate(CLASSES):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(2):
            random_image(16, 16, seed=10 * k + i).save(tmp_path / "data" / name / f"{i}.png")
    out = explain.attribute_dataset(model, tmp_path / "data", out=tmp_path / "f.parquet", progress=False)
    t = pq.read_table(out)
    assert t.column("path").to_pylist() == [f"{c}/{i}.png" for c in CLASSES for i in range(2)]
    assert t.column("true").to_pylist() == [0, 0, 1, 1, 2, 2]


def test_an_interrupted_run_resumes_and_equals_an_uninterrupted_one(table, model, source, tmp_path):
    out = tmp_path / "r.parquet"
    seen = []

    def stop_after_two(done, total):
        seen.append((done, total))
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        explain.attribute_dataset(model, source, out=out, batch_size=16, progress=stop_after_two)
    assert seen == [(16, N), (32, N)]
    assert not out.exists()
    assert len(list((tmp_path / "r.parquet.partial").glob("part-*.parquet"))) == 2
    seen.clear()
    explain.attribute_dataset(model, source, out=out, batch_size=16, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(N, N)]  # only the last batch was left
    assert not (tmp_path / "r.parquet.partial").exists()
    assert pq.read_table(out).equals(table[1])
    assert read_metadata(out) == read_metadata(table[0])


def test_refusals_are_one_line(model, source, tmp_path):
    out = tmp_path / "x.parquet"
    with pytest.raises(ExplainError, match=r"Unknown method 'gradkam'\. Methods are: gradcam, gradcam\+\+"):
        explain.attribute_dataset(model, source, "gradkam", out=out)
    with pytest.raises(LayerError, match=r"'hidden'.*spatial"):
        explain.attribute_dataset(model, source, "gradcam", "hidden", out=out)
    out.write_bytes(b"done")
    with pytest.raises(ExplainError, match=r"exists already.*overwrite=True"):
        explain.attribute_dataset(model, source, out=out)
    small = ArraySource("four", source.images[:4], source.labels[:4], CLASSES)
    explain.attribute_dataset(model, small, out=out, overwrite=True, progress=False)
    assert pq.read_table(out).num_rows == 4

    other = tiny_sequential()
    other.get_layer("hidden").bias.assign(other.get_layer("hidden").bias + 1.0)
    with pytest.raises(KeyboardInterrupt):
        explain.attribute_dataset(other, source, out=tmp_path / "y.parquet", batch_size=16, progress=_interrupt)
    with pytest.raises(
        ExplainError, match=r"y\.parquet\.partial holds an unfinished run for another model_hash.*delete"
    ):
        explain.attribute_dataset(model, source, out=tmp_path / "y.parquet", progress=False)
    with pytest.raises(ExplainError, match="another method"):
        explain.attribute_dataset(other, source, "saliency", out=tmp_path / "y.parquet", progress=False)


def _interrupt(done, total):
    raise KeyboardInterrupt


def test_the_one_pass_gradcam_equals_the_methods_own_on_every_tiny_model(any_model, source, tmp_path):
    from explain.dataset.embedding import _joint_forward
    from explain.models.scores import score_head

    small = ArraySource("eight", source.images[:8], source.labels[:8], CLASSES)
    t = pq.read_table(explain.attribute_dataset(any_model, small, out=tmp_path / "t.parquet", progress=False))
    x = small.images.astype(np.float32)
    features, probs = _joint_forward(any_model, score_head(any_model), feature_layer(any_model)[0], "raw")(x)
    np.testing.assert_array_equal(t.column("pred").to_numpy(), probs.argmax(axis=1))
    raw, _, _ = METHODS["gradcam"](any_model).raw_maps(x, probs.argmax(axis=1))
    np.testing.assert_allclose(np.asarray(t.column("heatmap").to_pylist()).reshape(raw.shape), raw, atol=1e-6)
    np.testing.assert_allclose(np.asarray(t.column("features").to_pylist()), features, rtol=1e-5, atol=1e-6)
