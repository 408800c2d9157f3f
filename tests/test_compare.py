"""Which method to trust (explain.dataset.compare, python -m explain.compare): the ranking rule by hand, a
method that ignores the model ranked last, the files written, the CLI's refusals, the report's section."""

from __future__ import annotations

import csv
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_sequential
from PIL import Image

from explain.attribution import METHODS, AttributionMethod
from explain.cli.compare import main
from explain.data import ArraySource
from explain.dataset.compare import (
    BETTER,
    COLUMNS,
    MethodScores,
    compare_images,
    compare_methods,
    metric_ranks,
    rank_methods,
    write_comparison,
)
from explain.errors import ExplainError

L = keras.layers
FAST = ["saliency", "gradcam"]


# -- the ranking rule, by hand ------------------------------------------------------------------------------
def _row(name, d, i, mu, morf, lerf, st, sanity=True, error=None):
    return MethodScores(name, d, i, mu, morf, lerf, st, sanity, 0.01, error=error)


def test_the_rank_is_the_mean_rank_over_the_metrics_sanity_failures_and_errors_last():
    rows = [
        _row("b", 0.2, 0.8, 0.9, 0.2, 0.8, 0.1),  # best on all six
        _row("a", 0.3, 0.7, 0.8, 0.3, 0.7, 0.2),  # second on all
        _row("c", 0.1, 0.9, 0.95, 0.1, 0.9, 0.05, sanity=False),  # best everywhere, fails the sanity check
        _row("d", 0.4, math.nan, 0.1, 0.4, 0.6, 0.3),  # NaN insertion: after those scored
        MethodScores("e", error="needs a convolutional layer"),
    ]
    ranked = rank_methods(rows)
    assert [r.method for r in ranked] == ["b", "a", "d", "c", "e"]
    assert [r.rank for r in ranked] == [1, 2, 3, 4, 5]
    ranks = metric_ranks(ranked)
    assert ranks.shape == (5, len(BETTER))
    np.testing.assert_array_equal(ranks[:, 0], [2, 3, 4, 1, np.nan])  # deletion: c lowest, e not scored
    assert np.isnan(ranks[2, list(BETTER).index("insertion")])  # d's insertion: not scored


def test_lower_is_better_metrics_rank_the_smallest_first():
    rows = [_row("x", 0.5, 0.5, 0.5, 0.9, 0.5, 0.5), _row("y", 0.5, 0.5, 0.5, 0.1, 0.5, 0.5)]
    assert rank_methods(rows)[0].method == "y"  # lower ROAD MoRF, everything else tied
    rows = [_row("x", 0.5, 0.5, 0.5, 0.5, 0.9, 0.5), _row("y", 0.5, 0.5, 0.5, 0.5, 0.1, 0.5)]
    assert rank_methods(rows)[0].method == "x"  # higher ROAD LeRF


# -- a method that ignores the model --------------------------------------------------------------------------
class InputBrightness(AttributionMethod):
    """A "method" whose map is the image itself: it never looks at the model (an edge detector would do the
    same): it must fail the sanity check and be ranked last."""

    name = "input_brightness"
    reference = "a test double"

    def _raw_maps(self, x, class_index):
        cls, score = self.pick(self.scores_from_input(x), class_index)
        return tf.reduce_mean(x, axis=-1), cls, score


@pytest.fixture
def with_input_method(monkeypatch):
    monkeypatch.setitem(METHODS, InputBrightness.name, InputBrightness)


def _half_model() -> keras.Model:
    """A small trained-looking model: class 1 when the left half is brighter than the right."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((16, 16, 3)), L.Rescaling(1 / 255), L.Conv2D(4, 3, activation="relu", padding="same"),
         L.MaxPooling2D(), L.Flatten(), L.Dense(2)]
    )  # fmt: skip
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (256, 16, 16, 3)).astype(np.float32)
    y = (x[:, :, :8].mean(axis=(1, 2, 3)) > x[:, :, 8:].mean(axis=(1, 2, 3))).astype(np.int64)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    return model


def _images(n=6, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)


def test_a_map_that_ignores_the_model_fails_the_sanity_check_and_is_ranked_last(with_input_method):
    model = _half_model()
    result = compare_images(model, _images(), methods=["saliency", "input_brightness"], progress=False)
    by = {s.method: s for s in result.scores}
    assert by["input_brightness"].sanity_passed is False
    assert by["saliency"].sanity_passed is True
    assert [s.method for s in result.scores] == ["saliency", "input_brightness"]
    for s in result.scores:  # every metric scored, within its range
        assert 0 <= s.deletion <= 1 and 0 <= s.insertion <= 1 and -1 <= s.mufidelity <= 1
        assert 0 <= s.road_morf <= 1 and 0 <= s.road_lerf <= 1 and s.stability >= 0
        assert s.seconds_per_image > 0 and s.flat == 0


# -- the files ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compared():
    keras.utils.set_random_seed(0)
    model = tiny_sequential()
    source = ArraySource("tiny", _images(10, seed=2), np.arange(10) % 3, ("a", "b", "c"))
    return model, compare_methods(model, source, methods=FAST, images=5, check_images=2, progress=False)


def test_the_sample_is_seeded_and_of_the_size_asked(compared):
    model, result = compared
    assert len(result.images) == 5 and len(result.image_ids) == 5
    source = ArraySource("tiny", _images(10, seed=2), np.arange(10) % 3, ("a", "b", "c"))
    again = compare_methods(model, source, methods=["saliency"], images=5, check_images=1, progress=False)
    assert again.image_ids == result.image_ids
    other = compare_methods(model, source, methods=["saliency"], images=5, seed=1, check_images=1, progress=False)
    assert other.image_ids != result.image_ids
    assert result.data == "tiny"


def test_the_folder_holds_the_table_the_figures_and_the_summary(compared, tmp_path):
    _, result = compared
    files = write_comparison(result, tmp_path)
    assert {f.name for f in files} == {"methods.csv", "compare.json", "ranking.png", "gallery.png"}
    rows = list(csv.reader((tmp_path / "methods.csv").open()))
    assert tuple(rows[0]) == COLUMNS
    assert [r[0] for r in rows[1:]] == [s.method for s in result.scores] and len(rows) == 3
    assert [r[1] for r in rows[1:]] == ["1", "2"]
    assert all(r[8] in ("true", "false") for r in rows[1:])
    doc = json.loads((tmp_path / "compare.json").read_text())
    assert doc["better"]["deletion"] == "lower" and len(doc["methods"]) == 2
    gallery = Image.open(tmp_path / "gallery.png")
    ranking = Image.open(tmp_path / "ranking.png")
    assert gallery.width > 400 and ranking.width > 400
    assert set(result.gallery) == set(FAST) and result.gallery["saliency"].shape == (5, 16, 16)


def test_a_cam_on_a_model_without_convolutions_is_listed_with_the_reason_or_refused_when_named(monkeypatch):
    import explain.attribution

    monkeypatch.setattr(explain.attribution, "methods_for", lambda model: ["gradcam", "eigencam", "saliency"])
    keras.utils.set_random_seed(0)
    mlp = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(), L.Dense(3)])
    x = _images(3)[..., :1][:, :8, :8]
    result = compare_images(mlp, x, methods=None, progress=False, check_images=1)  # every method that applies
    assert [s.method for s in result.scores] == ["saliency", "eigencam", "gradcam"]  # errors last, by name
    for s in result.scores[1:]:
        assert s.error.startswith(f"{s.method} needs a convolutional layer") and "Use a gradient method" in s.error
        assert math.isnan(s.deletion)
    with pytest.raises(ExplainError, match=r"gradcam cannot explain this model: .*gradient method"):
        compare_images(mlp, x, methods=["gradcam", "saliency"], progress=False, check_images=1)


# -- the CLI --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for c, name in enumerate(("a", "b", "c")):
        (root / name).mkdir()
        for k, img in enumerate(_images(3, seed=10 + c)):
            Image.fromarray(img).save(root / name / f"{k}.png")
    return root


def test_the_cli_writes_the_folder_and_prints_the_ranking(saved_models, folder, tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main([str(saved_models["sequential"]), str(folder), "--images", "4", "--methods", "saliency,gradcam",
                 "--check-images", "1", "--out", str(out), "--no-progress"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert (out / "methods.csv").exists() and (out / "ranking.png").exists()
    assert "Trust first:" in printed and "deletion↓" in printed and "insertion↑" in printed


@pytest.mark.parametrize(
    "args, message",
    [
        (["--images", "0"], "--images must be at least 1, got 0"),
        (["--methods", ","], "--methods is empty"),
        (["--check-images", "0"], "--check-images must be at least 1"),
    ],
)
def test_the_cli_refuses_bad_numbers(saved_models, folder, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        main([str(saved_models["sequential"]), str(folder), "--out", str(tmp_path), *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_the_cli_names_an_unknown_method_in_one_line_and_writes_nothing(saved_models, folder, tmp_path, capsys):
    code = main(
        [str(saved_models["sequential"]), str(folder), "--out", str(tmp_path / "x"), "--methods", "gradcam,nope"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Unknown method 'nope'. Methods are: gradcam" in err[0], err
    assert not (tmp_path / "x").exists()


def test_the_report_gains_the_which_method_section(monkeypatch, tmp_path):
    import explain.attribution
    from explain.dataset.report import METHODS_CSV, METHODS_RANKING_PNG, write_report

    monkeypatch.setattr(explain.attribution, "methods_for", lambda model: list(FAST))  # two methods: fast
    keras.utils.set_random_seed(0)
    model = tiny_sequential()
    source = ArraySource("tiny", _images(6, seed=3), np.arange(6) % 3, ("a", "b", "c"))
    report = write_report(model, source, tmp_path, compare=3, embedding=False, progress=False, confusions=0)
    names = {p.name for p in report.files}
    assert {METHODS_CSV, METHODS_RANKING_PNG, "methods_gallery.png"} <= names
    page = (tmp_path / "report.html").read_text()
    assert 'id="methods"' in page and "deletion &darr;" in page and "insertion &uarr;" in page
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert [m["method"] for m in doc["methods"]["methods"]] == [
        r[0] for r in csv.reader((tmp_path / METHODS_CSV).open())
    ][1:]
