"""Concepts (issue 23): TCAV and CRAFT find the planted concept, each step's numbers agree with a computation
written here, and every bad input gets one line.

The planted data (tests/concepts_planted.py): class "striped" images carry a patch of stripes, "dotted"
images a patch of dots, on varied backgrounds; the model is trained on them with ``training/``.
"""

from __future__ import annotations

import json
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

import explain
from explain.concepts import craft, tcav
from explain.concepts.craft import crop_boxes, cut_crops, jansen_total_indices, sobol_design
from explain.concepts.tcav import random_sets
from explain.errors import DataError, ExplainError, LayerError

LAYER = "pool_2"  # the planted model's last spatial layer (mnist_cnn: conv, pool, conv, pool)
CLASSES = ("dotted", "striped")


@pytest.fixture(scope="module")
def planted(planted_concepts):
    return planted_concepts, explain.load_model(planted_concepts.model_path)


@pytest.fixture(scope="module")
def tcav_result(planted):
    p, model = planted
    return tcav(
        model,
        {"stripes": p.stripes, "noise": p.random_concept},
        p.random,
        layers=[LAYER],
        classes=["striped", "dotted"],
        data=p.test_dir,
        runs=20,
        class_names=CLASSES,
    )


def test_tcav_finds_the_planted_concept(tcav_result):
    striped, dotted = tcav_result.classes
    stripes, noise = striped.layers[0].concepts
    assert (striped.class_name, stripes.name) == ("striped", "stripes")
    assert stripes.significant and stripes.score_mean >= 0.8 and stripes.direction == "drives"
    assert stripes.cav_accuracy > 0.8
    # For the other class, stripes do not drive it: they push its score down (a significant score near 0 in
    # the paper's two-sided test; see the closing note of issue 23).
    dotted_stripes = dotted.layers[0].concepts[0]
    assert dotted_stripes.direction != "drives" and dotted_stripes.score_mean <= 0.2
    # A random "concept" (noise images) is not significant for either class.
    assert not noise.significant and not dotted.layers[0].concepts[1].significant


def _layer_model(model):
    """The layer's activations and the logit, by hand: the model's layers called one after the other."""
    x = keras.Input(model.inputs[0].shape[1:])
    t, a = x, None
    for layer in model.layers[:-1]:
        t = layer(t)
        if layer.name == LAYER:
            a = t
    head = model.layers[-1]
    return keras.Model(x, a), keras.Model(x, [a, t]), head


def _read(folder, size=40):
    return np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR))
                     for f in sorted(folder.iterdir())]).astype(np.float32)


def test_each_step_agrees_with_a_computation_written_here(planted, tcav_result):
    p, model = planted
    acts_model, both, head = _layer_model(model)
    concept = acts_model(_read(p.stripes)).numpy().reshape(30, -1)
    random = acts_model(_read(p.random)).numpy()
    random = random.reshape(len(random), -1)
    sets = random_sets(len(random), 20, seed=0)
    assert all(len(s) == 10 for s in sets) and len(np.unique(np.concatenate(sets))) == 210  # disjoint
    stripes = tcav_result.classes[0].layers[0].concepts[0]
    for run in (0, 7):
        # The CAV: a plain logistic regression on every feature (no span trick), the same split.
        x = np.concatenate([concept, random[sets[run + 1]]]).astype(np.float64)
        x /= np.sqrt(np.mean(x**2))  # the one scale fit_cav divides by
        y = np.r_[np.ones(30), np.zeros(10)]
        xt, xv, yt, yv = train_test_split(x, y, test_size=1 / 3, stratify=y, random_state=run)
        clf = LogisticRegression(class_weight="balanced", max_iter=5000, tol=1e-8).fit(xt, yt)
        w = clf.coef_[0] / np.linalg.norm(clf.coef_[0])
        assert float(w @ stripes.cavs[run]) > 0.99
        assert stripes.cav_accuracies[run] == pytest.approx(clf.score(xv, yv))
    # The TCAV score: the logit's directional derivative along each CAV, by a hand tape (class 1 "striped"
    # scores the logit of the sigmoid output).
    images = np.stack([np.asarray(Image.open(p.test_dir / "striped" / f"{k:04d}.png"), np.float32) for k in range(60)])
    with tf.GradientTape() as tape:
        a, features = both(images)
        tape.watch(a)
        logit = features @ head.kernel + head.bias
    grads = tape.gradient(logit, a).numpy().reshape(60, -1)
    assert np.allclose(stripes.scores, (grads @ stripes.cavs.T > 0).mean(axis=0))
    # The t-test: Student's, pooled variance, two-sided.
    null = tcav_result.classes[0].layers[0].random_scores
    for c in tcav_result.classes[0].layers[0].concepts:
        n1, n2 = len(c.scores), len(null)
        pooled = ((n1 - 1) * np.var(c.scores, ddof=1) + (n2 - 1) * np.var(null, ddof=1)) / (n1 + n2 - 2)
        t = (c.scores.mean() - null.mean()) / np.sqrt(pooled * (1 / n1 + 1 / n2))
        assert c.p_value == pytest.approx(2 * stats.t.sf(abs(t), n1 + n2 - 2), rel=1e-6, abs=1e-300)
        assert c.significant == (c.p_value < 0.05 / 2)  # Bonferroni over the 2 concepts


def _striped_share(crop_boxes_, boxes) -> float:
    """The share of crops lying at least half on the stripe patch of their image."""
    on = 0
    for image_id, x0, y0, x1, y1 in crop_boxes_:
        bx0, by0, bx1, by1 = boxes[image_id]
        inter = max(0, min(x1, bx1) - max(x0, bx0)) * max(0, min(y1, by1) - max(y0, by0))
        on += inter / ((x1 - x0) * (y1 - y0)) >= 0.5
    return on / len(crop_boxes_)


def test_craft_finds_the_stripes_as_the_most_important_concept(planted):
    p, model = planted
    result = craft(model, p.test_dir, "striped", concepts=4, class_names=CLASSES, importance_images=16)
    top = result.concepts[0]
    assert _striped_share(top.top_crops, p.boxes) >= 0.8
    assert top.importance == max(c.importance for c in result.concepts) > 0.3
    assert result.layer == LAYER and result.crops == 60 * 8 and result.images == 60
    assert top.crops.shape == (8, 40, 40, 3) and top.crops.dtype == np.uint8
    assert set(result.timings) == {"read", "crops", "nmf", "importance"}
    # The crop pixels are the boxes' pixels (a box at the model's size is the image itself).
    image_id, x0, y0, x1, y1 = top.top_crops[0]
    source = np.asarray(Image.open(p.test_dir / image_id), np.float32)
    again = cut_crops(source[None], np.array([[0, x0, y0, x1, y1]]), (40, 40)).numpy()[0]
    assert np.abs(np.round(again) - top.crops[0]).max() <= 1
    # Concept maps: the top concept lies on the stripe patches of its top crops' images.
    ids = sorted({c[0] for c in top.top_crops})
    pictures = np.stack([np.asarray(Image.open(p.test_dir / i), np.float32) for i in ids])
    maps = explain.craft_concept_maps(model, result, pictures)
    assert maps.shape == (len(ids), 4, 40, 40) and np.allclose(maps[ids.index(image_id), 0], top.example_map, atol=1e-3)
    inside, outside = [], []
    for m, i in zip(maps[:, 0], ids, strict=True):
        mask = np.zeros((40, 40), bool)
        bx0, by0, bx1, by1 = p.boxes[i]
        mask[by0:by1, bx0:bx1] = True
        inside.append(m[mask].mean())
        outside.append(m[~mask].mean())
    assert np.mean(inside) > 1.5 * np.mean(outside)


def test_gradient_importance_also_ranks_the_stripes_first(planted):
    p, model = planted
    result = craft(model, p.test_dir, "striped", concepts=4, class_names=CLASSES, importance="gradient",
                   crops_per_image=4, max_crops=100)
    assert result.crops == 100 and result.crops_requested == 240 and result.importance_method == "gradient"
    assert _striped_share(result.concepts[0].top_crops, p.boxes) >= 0.8


def test_jansen_total_indices_of_an_additive_function():
    """f(m) = sum a_i m_i with m_i uniform: the total index of i is a_i^2 / sum a_j^2."""
    a = np.array([3.0, 1.0, 0.0, 2.0])
    masks = sobol_design(4, 1024, seed=0)
    got = jansen_total_indices(masks @ a, 4, 1024)
    assert np.allclose(got, a**2 / (a**2).sum(), atol=0.03)
    # An interaction counts in the total index of both of its variables: f = m0 * m1.
    inter = jansen_total_indices(masks[:, 0] * masks[:, 1], 4, 1024)
    assert inter[0] > 0.5 and inter[1] > 0.5 and inter[2] < 1e-9


def test_crops_are_seeded_squares_inside_the_image():
    boxes = crop_boxes(5, (40, 30), 8, 0.4, seed=3)
    side = boxes[..., 2] - boxes[..., 0]
    assert (side == 12).all() and ((boxes[..., 3] - boxes[..., 1]) == 12).all()
    assert boxes[..., 0].min() >= 0 and boxes[..., 2].max() <= 30 and boxes[..., 3].max() <= 40
    assert np.array_equal(boxes, crop_boxes(5, (40, 30), 8, 0.4, seed=3))
    assert not np.array_equal(boxes, crop_boxes(5, (40, 30), 8, 0.4, seed=4))


def test_the_cli_writes_tcav_and_craft(planted, tmp_path, capsys):
    from explain.cli.concepts import main

    p, _ = planted
    out = tmp_path / "out"
    code = main([str(p.model_path), str(p.test_dir), "--concept", f"stripes={p.stripes}", "--concept",
                 f"dots={p.dots}", "--random", str(p.random), "--layer", LAYER, "--class", "striped",
                 "--runs", "10", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    doc = json.loads((out / "tcav.json").read_text())
    assert doc["class"] == "striped" and doc["layers"][0]["layer"] == LAYER
    first = doc["layers"][0]["concepts"][0]
    assert set(first) >= {"name", "score_mean", "score_std", "p_value", "significant", "cav_accuracy"}
    assert first["name"] == "stripes" and first["score_mean"] >= 0.8
    assert "stripes" in capsys.readouterr().out
    code = main([str(p.model_path), str(p.test_dir), "--discover", "--class", "striped", "--concepts", "3",
                 "--crops-per-image", "4", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    doc = json.loads((out / "craft.json").read_text())
    assert doc["class"] == "striped" and doc["layer"] == LAYER and len(doc["concepts"]) == 3
    importances = [c["importance"] for c in doc["concepts"]]
    assert importances == sorted(importances, reverse=True)
    for image_id, x0, y0, x1, y1 in doc["concepts"][0]["top_crops"]:
        assert (p.test_dir / image_id).is_file() and 0 <= x0 < x1 <= 40 and 0 <= y0 < y1 <= 40
    for name in ("tcav.png", "craft.png"):
        assert Image.open(out / name).size[0] > 300


def _refusal(capsys, argv, parse_error=False) -> str:
    """The one error line a refused command prints last (argparse prints its usage above a parse error)."""
    from explain.cli.concepts import main

    if parse_error:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        code = exit_.value.code
    else:
        code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err
    return err.splitlines()[-1]


def test_bad_input_gets_one_line(planted, tmp_path, capsys):
    p, model = planted
    few = tmp_path / "few"
    few.mkdir()
    for f in sorted(p.stripes.iterdir())[:5]:
        shutil.copy(f, few / f.name)
    with pytest.raises(DataError, match=r"has 5 image files; a concept needs at least 10"):
        tcav(model, {"few": few}, p.random, [LAYER], ["striped"], p.test_dir, class_names=CLASSES)
    broken = tmp_path / "broken"
    shutil.copytree(p.stripes, broken)
    (broken / "zz_empty.png").write_bytes(b"")
    (broken / "zz_text.jpg").write_text("not an image")
    with pytest.raises(DataError, match=r"2 unreadable images: 'zz_empty.png', 'zz_text.jpg'"):
        tcav(model, {"broken": broken}, p.random, [LAYER], ["striped"], p.test_dir, class_names=CLASSES)
    with pytest.raises(ExplainError, match=r"no class 'zebra'; its classes are 'dotted', 'striped'"):
        tcav(model, {"s": p.stripes}, p.random, [LAYER], ["zebra"], p.test_dir, class_names=CLASSES)
    with pytest.raises(DataError, match=r"has 220 images; 30 runs need at least 310"):
        tcav(model, {"s": p.stripes}, p.random, [LAYER], ["striped"], p.test_dir, runs=30, class_names=CLASSES)
    with pytest.raises(ExplainError, match=r"at least 10"):
        tcav(model, {"s": p.stripes}, p.random, [LAYER], ["striped"], p.test_dir, runs=3, class_names=CLASSES)
    with pytest.raises(LayerError, match=r"CRAFT needs a convolutional layer .* 'dense'"):
        craft(model, p.test_dir, "striped", "dense", class_names=CLASSES)
    with pytest.raises(ExplainError, match=r"no class 'zebra'"):
        craft(model, p.test_dir, "zebra", class_names=CLASSES)
    err = _refusal(capsys, [str(p.model_path), str(p.test_dir), "--concept", f"few={few}", "--random",
                            str(p.random), "--layer", LAYER, "--class", "striped"])
    assert "a concept needs at least 10" in err
    err = _refusal(capsys, [str(p.model_path), "--concept", "stripes", "--random", "r", "--layer", "1",
                            "--class", "striped"], parse_error=True)
    assert "--concept takes NAME=DIR" in err


def test_craft_refuses_a_layer_with_negative_activations(tmp_path):
    x = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(4, 3, name="linear_conv")(x)  # no ReLU: negative activations
    y = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(x, y)
    rng = np.random.default_rng(0)
    data = explain.ArraySource("arrays", rng.integers(0, 255, (12, 16, 16, 3), dtype=np.uint8),
                               np.zeros(12, np.int64), ("a", "b"))
    with pytest.raises(LayerError, match=r"'linear_conv' has negative activations .* after a ReLU"):
        craft(model, data, "a", "linear_conv", concepts=2)


def test_the_report_gains_a_concepts_section(planted, tmp_path):
    from explain.dataset.report import write_report

    p, model = planted
    report = write_report(
        model, explain.open_data(p.test_dir), tmp_path / "report", model_path=p.model_path, embedding=False,
        confusions=1, concepts={"stripes": p.stripes}, random_images=p.random, craft=1, progress=False,
    )
    names = {f.name for f in report.files}
    assert {"tcav.json", "tcav.png", "craft.json"} <= names
    page = (tmp_path / "report" / "report.html").read_text()
    assert 'id="concepts"' in page and 'href="#concepts"' in page and "drives the class" in page
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    by_class = {c["class"]: c for c in metrics["concepts"]["tcav"]["classes"]}
    assert by_class["striped"]["layers"][0]["concepts"][0]["significant"]
    cm = report.evaluation.confusion
    errors = cm.sum(axis=1) - np.diag(cm)
    most = CLASSES[int(np.argmax(errors))]  # ties: the first class
    assert metrics["concepts"]["craft"][0]["class"] == most and (tmp_path / "report" / f"craft_{most}.png").exists()
    with pytest.raises(ValueError, match="random images"):
        write_report(model, explain.open_data(p.test_dir), tmp_path / "r2", concepts={"s": p.stripes})
    assert not (tmp_path / "r2").exists()


def test_a_crop_is_its_box_exactly():
    """At scale 1 the crop is the image's slice (boxes end-exclusive, pixel centres to pixel centres)."""
    image = np.random.default_rng(0).integers(0, 256, (1, 40, 30, 3)).astype(np.float32)
    crop = cut_crops(image, np.array([[0, 5, 7, 25, 27]]), (20, 20)).numpy()[0]
    assert np.allclose(crop, image[0, 7:27, 5:25], atol=0.01)
    whole = cut_crops(image, np.array([[0, 0, 0, 30, 40]]), (40, 30)).numpy()[0]
    assert np.allclose(whole, image[0], atol=0.01)


def test_seeded_and_deterministic_and_nested_layers(planted, tmp_path):
    from conftest import tiny_nested

    p, model = planted
    once = craft(model, p.test_dir, "striped", concepts=3, crops_per_image=2, importance_images=4, class_names=CLASSES)
    again = craft(model, p.test_dir, "striped", concepts=3, crops_per_image=2, importance_images=4, class_names=CLASSES)
    strip = lambda r: {k: v for k, v in r.as_dict().items() if k != "timings"}  # noqa: E731
    assert strip(once) == strip(again)
    a = tcav(model, {"s": p.stripes}, p.random, [LAYER], ["striped"], p.test_dir, class_names=CLASSES)
    b = tcav(model, {"s": p.stripes}, p.random, [LAYER], ["striped"], p.test_dir, class_names=CLASSES)
    assert a.as_dict() == b.as_dict()
    # A layer inside a nested base, by its path: CAVs live in that layer's flattened activations.
    nested = tiny_nested(channels=3, size=40)
    inner = next(layer.name for layer in nested.layers if isinstance(layer, keras.Model))
    path = f"{inner}/{next(layer.name for layer in nested.get_layer(inner).layers if 'conv' in layer.name)}"
    r = tcav(nested, {"s": p.stripes}, p.random, [path], ["b"], explain.ArraySource(
        "x", np.zeros((12, 40, 40, 3), np.uint8), np.ones(12, np.int64), ("a", "b", "c")), class_names=("a", "b", "c"))
    size = int(np.prod(nested.get_layer(inner).get_layer(path.split("/")[1]).output.shape[1:]))
    assert r.classes[0].layers[0].layer == path and r.classes[0].layers[0].concepts[0].cavs.shape == (10, size)
    with pytest.raises(ExplainError, match="pass data="):
        tcav(model, {"s": p.stripes}, p.random, [LAYER], ["striped"], class_names=CLASSES)
