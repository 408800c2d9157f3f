"""Model report: evaluation over a data set, its figures and files, the CLI and its bad inputs."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

import explain.data.builtin
import explain.data.spec
import explain.dataset.evaluation as ev
from explain import (
    ArraySource,
    DataError,
    FolderSource,
    classification_metrics,
    confusion_gallery,
    confusion_matrix_figure,
    evaluate_model,
    evaluation_from_predictions,
    load_image,
    load_model,
    match_classes,
    open_data,
    per_class_accuracy_chart,
    top_confusions,
    training_curves,
    write_report,
)
from explain.cli.report import main
from explain.dataset.report import ReportOptions, compute_report

CLASSES = ["ant", "bee", "cat"]
PER_CLASS = 5
HISTORY = {
    "loss": [1.0, 0.7, 0.6],
    "val_loss": [1.1, 0.9, 0.95],
    "accuracy": [0.4, 0.6, 0.7],
    "val_accuracy": [0.3, 0.5, 0.5],
}


def _write_folder(root: Path, classes=CLASSES, per_class: int = PER_CLASS, seed: int = 0) -> Path:
    """Class subfolders of generated PNGs, RGB and 20x24 (the gray model reads 28x28x1: resized)."""
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
            arr[: 4 + 3 * i] = 255 * (i % 2)  # vary brightness so the model's predictions differ
            Image.fromarray(arr).save(root / c / f"img_{i}.png")
    return root


@pytest.fixture
def carded_model(saved_models, tmp_path) -> Path:
    """The tiny gray 28x28x1 model with a model card naming CLASSES and holding a history."""
    path = tmp_path / "model" / "tiny.keras"
    path.parent.mkdir()
    shutil.copy(saved_models["gray"], path)
    card = {"class_names": CLASSES, "dataset": "generated", "history": HISTORY, "best_epoch": 2}
    path.with_suffix(".json").write_text(json.dumps(card))
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    return _write_folder(tmp_path / "data")


def _hand_predictions(model_path: Path, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels and top predictions computed without explain.dataset.evaluation: one image at a time."""
    model = load_model(model_path)
    y_true, y_pred = [], []
    for label, c in enumerate(CLASSES):
        for f in sorted((root / c).glob("*.png")):
            x = load_image(f, target_size=(28, 28), channels=1)[None].astype(np.float32)
            y_pred.append(int(np.argmax(keras.ops.convert_to_numpy(model(x)))))
            y_true.append(label)
    return np.array(y_true), np.array(y_pred)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("python -m explain.report: error: ")
    return err[0]


# -- the whole report, through the CLI ----------------------------------------------------
def test_cli_report_on_a_folder_has_real_content(carded_model, folder, tmp_path, capsys):
    out = tmp_path / "report"
    assert main([str(carded_model), str(folder), "--out", str(out), "--no-progress", "--examples", "3"]) == 0
    stdout = capsys.readouterr().out
    y_true, y_pred = _hand_predictions(carded_model, folder)
    n = len(y_true)

    with open(out / "confusion_matrix.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == CLASSES and [r[0] for r in rows[1:]] == CLASSES
    counts = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    assert counts.sum() == n
    hand = np.zeros((3, 3), int)
    np.add.at(hand, (y_true, y_pred), 1)
    np.testing.assert_array_equal(counts, hand)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(np.mean(y_true == y_pred))
    assert metrics["num_images"] == n
    for k, c in enumerate(CLASSES):
        recall = hand[k, k] / hand[k].sum()
        assert metrics["per_class"][c]["recall"] == pytest.approx(recall)
        assert metrics["per_class"][c]["support"] == PER_CLASS
        predicted = hand[:, k].sum()
        assert metrics["per_class"][c]["precision"] == (pytest.approx(hand[k, k] / predicted) if predicted else None)

    # The most frequent confusion, with its gallery.
    off = hand.copy()
    np.fill_diagonal(off, 0)
    t, p = np.unravel_index(np.argmax(off), off.shape)
    first = metrics["top_confusions"][0]
    assert (first["true"], first["predicted"], first["count"]) == (CLASSES[t], CLASSES[p], off.max())
    assert f"{CLASSES[t]} predicted as {CLASSES[p]}: {off.max()} image" in stdout
    with Image.open(out / first["gallery"]) as img:
        assert img.format == "PNG" and img.width > 400

    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") >= 5  # per-class, confusion, a gallery, top-k, curves
    assert all(v.startswith(("data:", "#")) for v in re.findall(r'(?:src|href)="([^"]*)"', page))
    assert "<link" not in page and "<script" not in page and "@import" not in page
    assert f"{np.mean(y_true == y_pred):.1%}" in page and "gradcam @ " in page
    assert {"per_class_accuracy.png", "confusion_matrix.png", "training_curves.png", "top_k_predictions.png"} <= {
        f.name for f in out.iterdir()
    }
    assert not [f for f in out.iterdir() if f.name.startswith(".")]  # no temporary files left


def test_fake_builtin_split_through_the_cli_with_chosen_images(carded_model, tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)  # CIFAR-sized RGB for a 28x28 gray model
    labels = np.arange(20) % 3
    calls = []

    def fake(name, split="test"):
        calls.append((name, split))
        return ArraySource(f"{name}:{split}", images, labels, CLASSES)

    monkeypatch.setattr(explain.data.spec, "load_builtin_split", fake)
    chosen = tmp_path / "chosen.png"
    Image.fromarray(images[0]).save(chosen)
    out = tmp_path / "r"
    argv = [str(carded_model), "cifar10:test", "--out", str(out), "--images", str(chosen), "--no-progress"]
    assert main(argv) == 0
    assert calls == [("cifar10", "test")]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_images"] == 20 and metrics["data"] == "cifar10:test"
    assert any("resized from 32x32 to the model's input 28x28" in n for n in metrics["notes"])
    assert any("converted from RGB to grayscale" in n for n in metrics["notes"])
    assert "chosen.png" in (out / "report.html").read_text(encoding="utf-8")
    assert "Accuracy" in capsys.readouterr().out


# -- the Python API ---------------------------------------------------------------------
class _CountingSource(ArraySource):
    def __init__(self, *args):
        super().__init__(*args)
        self.loaded: list[list[int]] = []

    def load(self, indices, target_size, channels):
        self.loaded.append([int(i) for i in indices])
        return super().load(indices, target_size, channels)


def test_evaluation_streams_in_order_in_bounded_batches(saved_models):
    model = load_model(saved_models["gray"])
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (23, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 3, 23)
    source = _CountingSource("fake:test", x, y, CLASSES)
    result = evaluate_model(model, source, CLASSES, batch_size=5, progress=False, top_k=2)
    assert [len(b) for b in source.loaded] == [5, 5, 5, 5, 3]  # never more than one batch in memory
    assert [i for b in source.loaded for i in b] == list(range(23))  # in order, never shuffled
    probs = keras.ops.convert_to_numpy(model(x.astype(np.float32)))
    np.testing.assert_array_equal(result.y_pred, probs.argmax(axis=1))
    np.testing.assert_array_equal(result.y_true, y)
    np.testing.assert_allclose(result.top_k_probabilities[:, 0], probs.max(axis=1), rtol=1e-5)
    assert result.top_k_classes.shape == (23, 2) and result.confusion.sum() == 23
    assert result.accuracy == pytest.approx(np.mean(probs.argmax(axis=1) == y))
    np.testing.assert_allclose(result.per_class_accuracy, np.diag(result.confusion) / result.support)


def test_top_confusions_and_metrics_by_hand():
    # 0 -> 1 twice (the second more confident), 2 -> 1 once, 1 right twice.
    y_true = np.array([0, 0, 0, 1, 1, 2])
    p = np.array([[0.9, 0.1, 0], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0, 1, 0], [0.2, 0.7, 0.1], [0.2, 0.5, 0.3]])
    r = evaluation_from_predictions(y_true, p, CLASSES)
    conf = top_confusions(r, 5)
    assert [str(c) for c in conf] == ["ant predicted as bee: 2 images", "cat predicted as bee: 1 image"]
    assert conf[0].examples.tolist() == [2, 1]  # most confident wrong first
    m = classification_metrics(r)
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["per_class"]["bee"]["precision"] == pytest.approx(2 / 5)
    assert m["per_class"]["bee"]["recall"] == pytest.approx(1.0)
    assert m["per_class"]["bee"]["f1-score"] == pytest.approx(2 * 0.4 / 1.4)
    assert m["per_class"]["cat"]["precision"] is None  # never predicted: undefined, not 0
    assert m["per_class"]["ant"]["recall"] == pytest.approx(1 / 3)
    json.dumps(m, allow_nan=False)


def test_class_names_match_exactly_or_loosely_when_unambiguous():
    mapping, missing, loose = match_classes(
        ["T-shirt_top", "ankle boot", "Bag"], ["T-shirt/top", "Bag", "Ankle boot", "Coat"]
    )
    assert mapping.tolist() == [0, 2, 1] and missing == ("Coat",)
    assert loose == (("T-shirt_top", "T-shirt/top"), ("ankle boot", "Ankle boot"))
    with pytest.raises(
        DataError, match="a class the model does not know: 'tshirt'; and the data lack the model's 'T-shirt/top'"
    ):
        match_classes(["tshirt", "Bag"], ["T-shirt/top", "Bag"])
    with pytest.raises(DataError, match="classes the model does not know: 'a_b', 'A-B'"):
        match_classes(["a_b", "A-B"], ["a/b", "c"])  # two folders for one class: ambiguous, refused


def test_empty_and_missing_class_folders_are_reported_not_fatal(carded_model, tmp_path):
    root = _write_folder(tmp_path / "d", classes=["ant", "bee"], per_class=3)
    (root / "bee" / "notes.txt").write_text("not an image")
    (root / "bee" / "broken.png").write_bytes(b"\x89PNG not really")
    source = FolderSource(root)
    assert source.class_names == ("ant", "bee") and len(source) == 7
    empty = tmp_path / "e"
    _write_folder(empty, classes=["ant", "bee"], per_class=2)
    (empty / "cat").mkdir()
    model = load_model(carded_model)
    report = write_report(model, FolderSource(empty), tmp_path / "out", model_path=carded_model, progress=False)
    r = report.evaluation
    assert r.classes_without_images == ("cat",) and np.isnan(r.per_class_accuracy[2])
    assert any("Empty class folder 'cat'" in n for n in report.notes)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    cat = metrics["per_class"]["cat"]
    assert (cat["recall"], cat["f1-score"], cat["support"]) == (None, None, 0)  # undefined, not 0
    skipping = evaluate_model(model, source, CLASSES, progress=False)
    assert skipping.num_images == 6 and [s[0] for s in skipping.skipped] == ["bee/broken.png"]
    assert any("no class 'cat'" in n for n in skipping.notes)
    assert "cat" in skipping.classes_without_images


def test_model_without_conv_layer_falls_back_to_saliency(tmp_path, folder):
    keras.utils.set_random_seed(4)
    layers = [keras.layers.Rescaling(1 / 255), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")]
    dense = keras.Sequential([keras.Input((28, 28, 1)), *layers])
    report = write_report(dense, FolderSource(folder), tmp_path / "out", confusions=1, examples=2, progress=False)
    assert report.heatmap_method == "saliency"
    assert any("no convolutional layer" in n and "saliency" in n for n in report.notes)
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "no convolutional layer" in page
    assert any("No class names from a model card" in n for n in report.notes)


def test_model_with_only_1x1_feature_maps_falls_back_to_saliency(tmp_path, folder):
    keras.utils.set_random_seed(5)
    layers = [
        keras.layers.Rescaling(1 / 255),
        keras.layers.MaxPooling2D(28),  # 1x1 from here on: Grad-CAM would be flat
        keras.layers.Conv2D(4, 1, activation="relu", name="conv"),
        keras.layers.Flatten(),
        keras.layers.Dense(3, activation="softmax"),
    ]
    pooled = keras.Sequential([keras.Input((28, 28, 1)), *layers])
    report = write_report(pooled, FolderSource(folder), tmp_path / "out", confusions=1, examples=2, progress=False)
    assert report.heatmap_method == "saliency"
    assert any("only 1x1 feature maps" in n and "saliency" in n for n in report.notes)
    assert not any("no convolutional layer" in n for n in report.notes)


def test_builtin_fashion_mnist_from_the_local_idx_files():
    if not Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("dataset-fashion-mnist not installed")
    source = open_data("fashion_mnist:test")
    assert len(source) == 10_000 and source.class_names[6] == "Shirt" and source.image_size == (28, 28)
    images, idx, failures = source.load([0, 9999], (28, 28), 1)
    assert images.shape == (2, 28, 28, 1) and images.dtype == np.uint8 and idx.tolist() == [0, 9999] and not failures


def test_offline_builtin_message_names_what_to_place_where(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "k"))
    monkeypatch.setattr(explain.data.builtin, "FASHION_MNIST_DIRS", ())

    def offline():
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    with pytest.raises(
        DataError, match=r"t10k-images-idx3-ubyte\.gz and t10k-labels-idx1-ubyte\.gz in .*fashion-mnist"
    ):
        ev.load_builtin_split("fashion_mnist", "test")
    with pytest.raises(DataError, match="Unknown built-in data set 'imagenet'"):
        open_data("imagenet:test")
    with pytest.raises(DataError, match="write fashion_mnist:test"):
        open_data("fashion_mnist")


# -- figures ------------------------------------------------------------------------------
def test_per_class_chart_runs_worst_to_best_and_labels_each_bar():
    acc = np.array([0.9, 0.5, np.nan, 0.75])
    fig = per_class_accuracy_chart(acc, ["a", "b", "c", "d"], support=np.array([10, 4, 0, 8]), overall=0.7)
    ax = fig.axes[0]
    assert isinstance(fig, Figure)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b (n=4)", "d (n=8)", "a (n=10)", "c (n=0)"]
    widths = [p.get_width() for p in ax.patches]
    assert widths[:3] == sorted(widths[:3]) == [0.5, 0.75, 0.9]
    texts = [t.get_text() for t in ax.texts]
    assert {"50.0%", "75.0%", "90.0%", "no images", "overall 70.0%"} <= set(texts)


def test_confusion_matrix_figure_and_gallery_shapes():
    cm = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    fig = confusion_matrix_figure(cm, CLASSES)
    panels = [a for a in fig.axes if a.get_xlabel() == "predicted class"]
    assert len(panels) == 2 and [t.get_text() for t in panels[0].get_yticklabels()] == CLASSES
    assert "5" in [t.get_text() for t in panels[0].texts] and "83%" in [t.get_text() for t in panels[1].texts]
    one = Figure()
    assert confusion_matrix_figure(cm, CLASSES, normalize="true", ax=one.add_subplot()) is one
    with pytest.raises(ValueError, match="two panels"):
        confusion_matrix_figure(cm, CLASSES, ax=Figure().add_subplot())
    imgs = np.zeros((3, 8, 8, 1), np.uint8)
    maps = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    g = confusion_gallery(imgs, maps, maps, true_name="ant", predicted_name="bee", labels=["x", "y", "z"], cols=2)
    titles = [a.get_title() for a in g.axes]
    assert titles.count("Grad-CAM: ant\n(true class)") == 3 and titles.count("Grad-CAM: bee\n(predicted)") == 3
    with pytest.raises(ValueError, match="N >= 1"):
        confusion_gallery(imgs[:0], maps[:0], maps[:0], true_name="a", predicted_name="b")
    curves = training_curves(HISTORY, best_epoch=2)
    assert [a.get_ylabel() for a in curves.axes] == ["loss", "accuracy"]
    one_epoch = training_curves({"loss": [0.5], "val_loss": [0.6]}, best_epoch=1)
    assert [t.get_text() for t in one_epoch.axes[0].get_xticklabels()] == ["1"]  # not 0.96 ... 1.04


# -- bad input: one line, exit 2, nothing written --------------------------------------------
def _assert_nothing_written(out: Path, before: set[str] | None = None):
    if before is None:
        assert not out.exists()
    else:
        assert {f.name for f in out.iterdir()} == before


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("extra_class", "the model does not know: 'dog'; and the data lack the model's 'cat'"),
        ("unknown_builtin", "Unknown built-in data set 'imagenet'"),
        ("no_folder", "No such folder"),
        ("no_subfolders", "has no class subfolders (it holds 1 images directly)"),
        ("bad_model", "is empty (0 bytes)"),
        ("bad_chosen_image", "not an image Pillow can read"),
        ("bad_layer", "No such layer: 'nope'"),
        ("out_is_a_file", "is a file; give a folder"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(carded_model, folder, tmp_path, capsys, case, message):
    out, model, data, extra = tmp_path / "out", str(carded_model), str(folder), []
    if case == "extra_class":
        shutil.move(folder / "cat", folder / "dog")
    elif case == "unknown_builtin":
        data = "imagenet:test"
    elif case == "no_folder":
        data = str(tmp_path / "nowhere")
    elif case == "no_subfolders":
        flat = tmp_path / "flat"
        flat.mkdir()
        Image.new("RGB", (8, 8)).save(flat / "a.png")
        data = str(flat)
    elif case == "bad_model":
        (tmp_path / "empty.keras").write_bytes(b"")
        model = str(tmp_path / "empty.keras")
    elif case == "bad_chosen_image":
        (tmp_path / "fake.png").write_text("hello")
        extra = ["--images", str(tmp_path / "fake.png")]
    elif case == "bad_layer":
        extra = ["--layer", "nope"]
    elif case == "out_is_a_file":
        out.write_text("keep me")
    assert main([model, data, "--out", str(out), "--no-progress", *extra]) == 2
    assert message in _one_error_line(capsys)
    if case == "out_is_a_file":
        assert out.read_text() == "keep me"
    else:
        _assert_nothing_written(out)


def test_no_card_class_count_mismatch_and_a_full_disk(saved_models, folder, tmp_path, capsys, monkeypatch):
    shutil.rmtree(folder / "cat")  # 2 folders, 3 outputs, no card: nothing to match them by
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    assert main([str(saved_models["gray"]), str(folder), "--out", str(out), "--no-progress"]) == 2
    assert "2 classes and the model has 3 outputs" in _one_error_line(capsys)
    _assert_nothing_written(out, {"old.txt"})

    # A disk that fills up while writing: the file being written is never left half-written.
    (folder / "cat").mkdir()
    real = Path.write_bytes

    def full_disk(self, data):
        if self.name.startswith(".metrics.json"):
            raise OSError(28, "No space left on device", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    assert main([str(saved_models["gray"]), str(folder), "--out", str(out), "--no-progress"]) == 2
    assert "No space left on device" in _one_error_line(capsys)
    names = {f.name for f in out.iterdir()}
    assert "metrics.json" not in names and "report.html" not in names and not [n for n in names if n.startswith(".")]


def test_an_unknown_builtin_data_set_lists_the_builtin_splits(carded_model, tmp_path, capsys):
    """The whole line (``python -m explain.report`` run as ``__main__``, exit 2 and no traceback on stderr:
    tests/test_hardening.py::test_cli_processes_print_no_traceback)."""
    assert main([str(carded_model), "nowhere:test", "--out", str(tmp_path / "o")]) == 2
    assert _one_error_line(capsys) == (
        "python -m explain.report: error: Unknown built-in data set 'nowhere'. Built-in splits are: "
        "fashion_mnist:test, mnist:test, cifar10:test (and :train)."
    )
    assert not (tmp_path / "o").exists()


def test_write_report_passes_every_option_with_the_same_defaults(saved_models):
    """write_report's keywords are ReportOptions's fields with its defaults; compute_report takes
    exactly those (a misspelt one is a TypeError, a bad value a ValueError before any work)."""
    import dataclasses
    import inspect

    params = inspect.signature(write_report).parameters
    for f in dataclasses.fields(ReportOptions):
        assert params[f.name].default == f.default, f.name
    model = load_model(saved_models["gray"])
    source = ArraySource("fake:test", np.zeros((3, 28, 28, 1), np.uint8), np.arange(3), CLASSES)
    with pytest.raises(TypeError, match="top_kk"):
        compute_report(model, source, top_kk=3)
    with pytest.raises(ValueError, match="examples must be at least 1, got 0"):
        compute_report(model, source, examples=0)
