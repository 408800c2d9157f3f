"""The embedding map: features from the right layer in one pass, 2-D maps that keep clusters
apart, seeded and deterministic, look-alikes, the figure, the report's section and bad input."""

import json

import keras
import numpy as np
import pytest
from conftest import L, tiny_nested

from explain.dataset.embedding import MIN_IMAGES, embed, feature_layer, look_alikes, project
from explain.dataset.evaluation import ArraySource
from explain.errors import DataError, ExplainError, LayerError
from explain.render.figures import class_colors, embedding_map

NAMES = ["red", "green", "blue"]


def _clusters(per_class: int = 20, size: int = 12, seed: int = 0) -> ArraySource:
    """Three well-separated clusters: each class a saturated colour, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), per_class)
    base = np.zeros((3, 3))
    base[np.arange(3), np.arange(3)] = 200
    x = base[labels][:, None, None, :] + rng.normal(0, 12, (len(labels), size, size, 3))
    return ArraySource("clusters", np.clip(x, 0, 255).astype(np.uint8), labels, NAMES)


def _model(size: int = 12) -> keras.Model:
    keras.utils.set_random_seed(4)
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            L.Rescaling(1 / 255, name="rescale"),
            L.Conv2D(8, 3, activation="relu", name="conv"),
            L.GlobalAveragePooling2D(name="gap"),
            L.Dense(16, activation="relu", name="features"),
            L.Dropout(0.5, name="drop"),
            L.Dense(3, activation="softmax", name="predictions"),
        ],
        name="cluster_model",
    )


def _knn_accuracy(x: np.ndarray, y: np.ndarray, k: int = 5) -> float:
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    return float(np.mean(cross_val_score(KNeighborsClassifier(k), x, y, cv=5)))


# -- the layer -------------------------------------------------------------------------------------
def test_default_layer_is_the_classifier_heads_input():
    assert feature_layer(_model())[0].name == "features"  # past the Dropout
    assert feature_layer(tiny_nested())[0].name == "gap"  # a nested pretrained base, pooled
    logits = keras.Sequential(
        [keras.Input((8, 8, 1)), L.Flatten(name="flat"), L.Dense(3, name="logits"), L.Softmax(name="softmax")]
    )
    assert feature_layer(logits)[0].name == "flat"  # a separate softmax after the logits
    whole = keras.Sequential([keras.Input((12, 12, 3)), _model()])  # a whole network as the only layer
    assert feature_layer(whole)[0].name == "cluster_model/features"


def test_spatial_layer_is_pooled_with_a_note_and_layers_without_features_are_refused():
    info, notes = feature_layer(_model(), "conv")
    assert info.name == "conv" and "10x10 maps of 8 channels" in notes[0] and "global average pooling" in notes[0]
    pixels = keras.Input((8, 8, 3), name="pixels")
    functional = keras.Model(pixels, L.Dense(2, activation="softmax")(L.Flatten()(pixels)))
    with pytest.raises(LayerError, match="input layer"):
        feature_layer(functional, "pixels")
    one = keras.Sequential([keras.Input((4,)), L.Dense(1, name="one"), L.Dense(2, activation="softmax")])
    with pytest.raises(LayerError, match="at least 2 features"):
        feature_layer(one, "one")
    single = keras.Sequential([keras.Input((4,)), L.Dense(2, activation="softmax", name="only")])
    with pytest.raises(LayerError, match="no feature layer before it"):
        feature_layer(single)


def test_features_and_predictions_come_from_one_pass_that_matches_the_model():
    model, source = _model(), _clusters(per_class=5)
    emb = embed(model, source, NAMES, method="pca", progress=False, batch_size=4)
    probs = model.predict(source.images.astype(np.float32), verbose=0)
    np.testing.assert_array_equal(emb.y_pred, probs.argmax(1))
    np.testing.assert_allclose(emb.confidence, probs.max(1), rtol=1e-5)
    assert emb.layer == "features" and emb.feature_shape == (16,) and emb.coordinates.shape == (15, 2)
    assert emb.image_ids[3] == "clusters #3" and emb.source_indices.tolist() == list(range(15))


# -- the map ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["umap", "tsne", "pca"])
def test_map_keeps_clusters_apart_and_is_deterministic(method):
    model, source = _model(), _clusters()
    first = embed(model, source, NAMES, method=method, seed=3, progress=False)
    again = embed(model, source, NAMES, method=method, seed=3, progress=False)
    np.testing.assert_array_equal(first.coordinates, again.coordinates)
    from explain.features.activations import compute_activations

    features = compute_activations(model, source.images, ["features"])["features"]
    in_features = _knn_accuracy(features, source.labels)
    assert in_features > 0.9  # the clusters are apart in feature space ...
    assert _knn_accuracy(first.coordinates, source.labels) >= in_features - 0.1  # ... and on the map
    assert first.method == method and first.coordinates.dtype == np.float32


def test_neighbours_and_look_alikes():
    model = _model()
    source = _clusters()
    labels = source.labels.copy()
    labels[0] = 2  # a red image labelled blue: its neighbours are red
    mislabelled = ArraySource("clusters", source.images, labels, NAMES)
    emb = embed(model, mislabelled, NAMES, method="pca", progress=False)
    assert emb.neighbors.shape == (60, 10) and not (emb.neighbors == np.arange(60)[:, None]).any()
    found = look_alikes(emb, 3)
    assert found[0].index == 0 and found[0].looks_like == 0 and found[0].share > 0.8
    assert all(a.share > 0.5 for a in found)
    assert emb.neighbor_agreement[0] < 0.2 and emb.neighbor_agreement[1:].mean() > 0.9


def test_big_features_are_reduced_with_pca_first():
    rng = np.random.default_rng(0)
    coords, neighbors, notes = project(rng.normal(size=(80, 300)).astype(np.float32), "pca")
    assert coords.shape == (80, 2) and neighbors.shape == (80, 10)
    assert notes and notes[0].startswith("300 features reduced to 50 principal components")


# -- bad input -------------------------------------------------------------------------------------
def test_bad_input_gets_one_clear_message():
    model, source = _model(), _clusters(per_class=3)  # 9 images
    with pytest.raises(DataError, match=f"has 9 images; a map needs at least {MIN_IMAGES}"):
        embed(model, source, NAMES, progress=False)
    with pytest.raises(ExplainError, match=r"Unknown projection 'mds'.*umap, tsne, pca"):
        embed(model, _clusters(), NAMES, method="mds", progress=False)
    broken = _model()
    dense = broken.get_layer("features")
    dense.bias.assign(np.full(dense.bias.shape, np.inf, np.float32))  # relu(inf) = inf
    with pytest.raises(ExplainError, match=r"Layer 'features' gave NaN or infinite activations for 60 of 60 images"):
        embed(broken, _clusters(), NAMES, method="pca", progress=False)


# -- the figure ------------------------------------------------------------------------------------
def test_map_figure_marks_mistakes_in_the_predicted_class_colour():
    model, source = _model(), _clusters()
    labels = source.labels.copy()
    labels[:4] = 1  # some red images labelled green: misclassified (the model calls them red, or not)
    emb = embed(model, ArraySource("c", source.images, labels, NAMES), NAMES, method="pca", progress=False)
    thumbs = {5: source.images[5]}
    fig = embedding_map(emb, thumbnails=thumbs)
    ax = fig.axes[0]
    dots, crosses = ax.collections[:2]
    wrong = emb.misclassified
    assert wrong.any() and len(crosses.get_offsets()) == wrong.sum() and len(dots.get_offsets()) == (~wrong).sum()
    np.testing.assert_allclose(crosses.get_facecolors()[:, :3], class_colors(3)[emb.y_pred[wrong]][:, :3])
    np.testing.assert_allclose(crosses.get_offsets(), emb.coordinates[wrong])
    assert [t.get_text() for t in ax.get_legend().get_texts()][:3] == NAMES
    boxes = [a for a in ax.artists if type(a).__name__ == "AnnotationBbox"]
    assert len(boxes) == 1 and tuple(boxes[0].xy) == tuple(emb.coordinates[5])
    np.testing.assert_array_equal(boxes[0].offsetbox.get_data(), source.images[5])


# -- the report ------------------------------------------------------------------------------------
def test_report_has_the_map_and_look_alikes_and_no_embedding_leaves_them_out(tmp_path):
    from explain.dataset.report import compute_report, write_report

    model, source = _model(), _clusters()
    labels = source.labels.copy()
    labels[0] = 2
    data = ArraySource("clusters", source.images, labels, NAMES)
    report = write_report(model, data, tmp_path / "with", progress=False, embedding_method="pca")
    names = {p.name for p in report.files}
    assert {"embedding.png", "look_alikes.png"} <= names
    doc = json.loads((tmp_path / "with" / "metrics.json").read_text())
    assert doc["embedding"]["layer"] == "features" and doc["embedding"]["method"] == "pca"
    assert doc["embedding"]["look_alikes"][0] == {"image": "clusters #0", "true": "blue", "looks_like": "red"}
    page = (tmp_path / "with" / "report.html").read_text()
    assert 'id="embedding"' in page and "Looks like another class" in page
    # The thumbnails on the map are the images of their points.
    computed = compute_report(model, data, progress=False, embedding_method="pca")
    for row, image in computed.look_alikes.thumbnails.items():
        np.testing.assert_array_equal(image, data.images[computed.embedding.source_indices[row]])
    assert 0 in computed.look_alikes.rows.tolist()
    np.testing.assert_array_equal(computed.look_alikes.images[0], data.images[0])

    plain = write_report(model, data, tmp_path / "without", progress=False, embedding=False)
    assert not {"embedding.png", "look_alikes.png"} & {p.name for p in plain.files}
    assert 'id="embedding"' not in (tmp_path / "without" / "report.html").read_text()


def test_report_on_too_few_images_notes_why_there_is_no_map(tmp_path):
    from explain.dataset.report import write_report

    report = write_report(_model(), _clusters(per_class=2), tmp_path / "r", progress=False)
    assert not any(p.name == "embedding.png" for p in report.files)
    assert any("No feature-space map: it needs at least 10 images" in n for n in report.notes)


def test_report_cli_embedding_options(tmp_path):
    from explain.cli.report import main

    path = tmp_path / "m.keras"
    _model().save(path)
    folder = tmp_path / "data"
    source = _clusters(per_class=4)
    from PIL import Image

    for i, (img, y) in enumerate(zip(source.images, source.labels, strict=True)):
        (folder / NAMES[y]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / NAMES[y] / f"{i}.png")
    out = tmp_path / "out"
    args = [str(path), str(folder), "--out", str(out), "--no-progress", "--embedding-method", "pca"]
    assert main([*args, "--embedding-layer", "conv"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["embedding"]["layer"] == "conv" and doc["embedding"]["feature_shape"] == [10, 10, 8]
    assert any("global average pooling" in n for n in doc["notes"])
    assert main([*args, "--embedding-layer", "nowhere"]) == 2
