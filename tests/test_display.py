"""Results that show themselves in a notebook: ``_repr_png_`` / ``_repr_html_``, ``explain.show`` and
``as_dict``, for every result of the public API."""

import base64
import io
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

import explain
from explain.concepts.craft import Concept, CraftResult
from explain.concepts.tcav import ClassTCAV, ConceptTCAV, LayerTCAV, TCAVResult
from explain.dataset.compare import Comparison, MethodScores
from explain.dataset.spray import ClassAudit, Cluster, SprayResult
from explain.render.pictures import captioned_grid, overlay
from tests.conftest import tiny_sequential

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _decoded(png: bytes) -> np.ndarray:
    assert png[:8] == PNG_MAGIC
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


@pytest.fixture(scope="module")
def model():
    return tiny_sequential(channels=3, size=16)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (3, 16, 16, 3)).astype(np.float32)


def test_an_attribution_draws_its_overlays_with_class_and_score(model, images):
    attr = explain.GradCAM(model)(images)
    assert attr.images is not None and attr.images.shape == images.shape
    fig = explain.show(attr, class_names=["cat", "dog", "bird"])
    assert isinstance(fig, Figure)
    # The figure's pixels are exactly the overlays of the images explained, captioned with class and score.
    shown = fig.axes[0].images[0].get_array()
    pictures = [
        overlay(im.astype(np.uint8), h, flat=f) for im, h, f in zip(images, attr.heatmap, attr.flat, strict=True)
    ]
    np.testing.assert_array_equal(shown, captioned_grid(pictures, attr.captions(["cat", "dog", "bird"])))
    names = ["cat", "dog", "bird"]
    assert attr.captions(names)[0] == f"{names[attr.class_index[0]]}\n{attr.score_kind} {attr.score[0]:.2f}"
    assert attr.captions()[0].startswith(f"class {attr.class_index[0]}\n")
    assert "gradcam @ " in fig.axes[0].get_title()
    assert _decoded(attr._repr_png_()).shape[0] > 100
    assert attr._repr_html_() is None  # no table: Jupyter shows the PNG


def test_an_attribution_of_many_images_draws_the_first_and_says_so(model):
    x = np.random.default_rng(1).uniform(0, 255, (20, 16, 16, 3)).astype(np.float32)
    fig = explain.GradCAM(model)(x).figure(max_images=5)
    assert "(the first 5 of 20 images)" in fig.axes[0].get_title()


def test_lime_results_carry_their_images_too(model, images):
    attr = explain.LIME(model, num_samples=20)(images[:1])
    np.testing.assert_array_equal(attr.images, images[:1])
    assert _decoded(attr._repr_png_()).size


def test_a_prediction_shows_its_top_k_and_converts_to_plain_types(model, images):
    p = explain.predict(model, images[:1], ["cat", "dog", "bird"], k=3)[0]
    assert _decoded(p._repr_png_()).size
    d = p.as_dict()
    assert [r["class"] for r in d["top_k"]] == [name for _, name, _ in p.top_k]
    assert all(type(r["probability"]) is float for r in d["top_k"])
    assert math.isclose(sum(r["probability"] for r in d["top_k"]), 1.0, rel_tol=1e-5)


def test_activations_are_a_dict_that_draws_each_layer(model, images):
    acts = explain.compute_activations(model, images)
    assert isinstance(acts, dict) and isinstance(acts, explain.Activations)
    fig = explain.show(acts, max_layers=2)
    assert len(fig.axes) == 2
    assert next(iter(acts)) in fig.axes[0].get_title()
    headers, rows = acts.table()
    assert headers == ["layer", "shape"] and rows[0] == [next(iter(acts)), str(acts[next(iter(acts))].shape)]
    html = acts._repr_html_()
    assert "data:image/png;base64," in html and list(acts)[-1] in html
    with pytest.raises(KeyError, match="computed: "):
        acts.figure(layers=["nope"])


def test_an_evaluation_shows_accuracy_confusion_and_a_table(model):
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 255, (12, 16, 16, 3)).astype(np.uint8)
    y = np.arange(12) % 3
    ev = explain.evaluate_model(model, explain.ArraySource("tiny", x, y, ("a", "b", "c")), progress=False)
    fig = explain.show(ev)
    assert len([a for a in fig.axes if a.get_title()]) >= 2
    assert f"accuracy {ev.accuracy:.1%}" in fig.get_suptitle()
    headers, rows = ev.table()
    assert headers == ["class", "images", "accuracy"] and [r[1] for r in rows] == [4, 4, 4]
    html = ev._repr_html_()
    assert "<table>" in html and "<td>a</td>" in html and "data:image/png" in html
    one = Figure()
    assert explain.show(ev, ax=one.add_subplot()) is one


def _spray() -> SprayResult:
    heat = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    clusters = (Cluster(0, 6, 0.5, 0.3, heat, (0, 1)), Cluster(1, 4, 1.0, 0.1, heat[::-1], (2,)))
    audit = ClassAudit(
        0, "cat", np.arange(10), np.r_[np.zeros(6), np.ones(4)].astype(np.int32), np.zeros(10, np.float32),
        (0.0, 0.1, 0.9), 0.8, clusters, heat, 0.2, None,
    )
    return SprayResult((audit,), ("cat", "dog"), (4, 4), "border 0.15 (51% of the image)", "gradcam", None)


def test_an_audit_draws_each_cluster_and_tables_the_classes():
    result = _spray()
    fig = explain.show(result)
    titles = [a.get_title() for a in fig.axes]
    assert any("n=6" in t for t in titles) and any("n=4" in t for t in titles)
    _headers, rows = result.table()
    assert rows == [["cat", 10, 2, 0.8, 0.2, "6 / 4"]]
    assert "<td>6 / 4</td>" in result._repr_html_()
    d = result.as_dict()
    # its own as_dict, the clusters.json document, is kept
    assert d["classes"][0]["clusters"][1]["size"] == 4 and d["classes"][0]["class"] == "cat"


def test_a_comparison_shows_its_ranking_and_table():
    scores = (
        MethodScores("gradcam", 0.1, 0.8, 0.5, 0.2, 0.7, 0.05, True, 0.01, rank=1, flat=0.0),
        MethodScores("saliency", 0.3, 0.6, 0.2, 0.4, 0.5, 0.2, False, 0.02, rank=2, flat=0.0),
    )
    result = Comparison(scores, np.zeros((1, 8, 8, 3), np.uint8), ("a.png",), np.array([0]), ("x", "y"))
    assert isinstance(explain.show(result), Figure)
    headers, rows = result.table()
    assert rows[0][:2] == [1, "gradcam"] and rows[1][headers.index("sanity")] == "FAILED"
    assert result.as_dict()["methods"][0]["method"] == "gradcam"  # its own JSON-ready as_dict is kept


def test_concept_results_show_their_figures():
    scores, accuracies = np.array([0.9, 0.8, 1.0]), np.array([0.9, 0.9, 0.8])
    concept = ConceptTCAV("stripes", scores, accuracies, 0.001, True, np.zeros((3, 4)))
    layer = LayerTCAV("conv", (concept,), np.array([0.5, 0.4, 0.6]))
    tcav = TCAVResult((ClassTCAV("zebra", 0, 30, (layer,)),), 3, 10, 0.05, 0, {"stripes": 12})
    assert _decoded(tcav._repr_png_()).size
    _headers, rows = tcav.table()
    accuracy = pytest.approx(0.8667, abs=1e-3)
    assert rows == [["zebra", "conv", "stripes", pytest.approx(0.9), 0.001, "yes", "drives", accuracy]]
    crops = np.zeros((2, 8, 8, 3), np.uint8)
    craft = CraftResult(
        "zebra", 0, "conv", (Concept(0, 0.7, (("a.png", 0, 0, 4, 4),), crops),), np.zeros((1, 4), np.float32),
        "sobol", 2, 10, 10, 2, 4, {}, 0,
    )
    assert isinstance(explain.show(craft), Figure)


def test_metric_scores_show_curves_and_tables(model, images):
    attr = explain.Saliency(model)(images)
    faith = explain.deletion_insertion(model, images, attr.heatmap, attr.class_index, steps=4)
    fig = explain.show(faith)
    assert any("deletion" in t.get_text() for t in fig.axes[0].get_legend().get_texts())
    headers, rows = faith.table()
    assert headers[-2:] == ["deletion_auc", "insertion_auc"] and len(rows) == len(images)
    assert rows[0][-1] == pytest.approx(float(faith.insertion_auc[0]))
    mu = explain.mufidelity(model, images, attr.heatmap, attr.class_index, subsets=8, grid_size=4)
    assert mu._repr_png_() is None and "<table>" in mu._repr_html_()  # only a table
    with pytest.raises(TypeError, match="has no picture"):
        explain.show(mu)


def test_show_refuses_what_is_not_a_result_in_one_line():
    with pytest.raises(TypeError, match=r"pass one element, e\.g\. explain\.show\(results\[0\]\)"):
        explain.show([1, 2])
    with pytest.raises(TypeError, match="not a ndarray"):
        explain.show(np.zeros(3))


def test_feature_patterns_label_their_tiles():
    patterns = explain.FeaturePatterns(
        np.zeros((2, 8, 8, 3), np.float32), np.array([1.5, 2.0], np.float32), np.array([1, 0]), "logits", "class", 10, 0
    )
    assert patterns.labels(["cat", "dog"]) == ["dog: 1.5", "cat: 2"]
    fig = explain.show(patterns, class_names=["cat", "dog"])
    assert "2 class patterns, 10 steps, seed 0" in fig.axes[0].get_title()


def test_an_audit_result_shows_the_cluster_pictures_it_wrote(tmp_path):
    picture = np.zeros((10, 12, 3), np.uint8)
    picture[:, :6] = 200
    Image.fromarray(picture).save(tmp_path / "clusters_cat.png")
    html = explain.AuditResult(_spray(), tmp_path, (tmp_path / "clusters_cat.png",), reused=True)._repr_html_()
    assert "(rows reused)" in html and "<td>cat</td>" in html
    shown = html.split('alt="cat" src="data:image/png;base64,')[1].split('"')[0]
    np.testing.assert_array_equal(_decoded(base64.b64decode(shown)), picture)
