"""python -m explain.filters: filter patterns, kernels and class patterns as PNG grids; every bad
input is one stderr line and exit 2, and nothing is left half-written."""

import math

import keras
import pytest
from conftest import L
from PIL import Image

import explain.render.figures
from explain.cli import filters as cli
from explain.cli.filters import UsageError, main, parse_channels

PROG = "python -m explain.filters"


def _run(argv, capsys):
    """``(exit code, stdout, stderr)`` of the CLI, argparse's own exits included."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _valid_png(path, least=150):
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width >= least and img.height >= least
        return img.size


def _no_temporaries(folder):
    assert not [p for p in folder.iterdir() if ".tmp" in p.name]


@pytest.fixture
def labels_drawn(monkeypatch):
    """The tile labels each figure is drawn with (pattern_grid still draws)."""
    seen = []
    original = explain.render.figures.pattern_grid

    def spy(images, labels, **kwargs):
        seen.append((images.shape, list(labels), kwargs.get("title", "")))
        return original(images, labels, **kwargs)

    monkeypatch.setattr(explain.render.figures, "pattern_grid", spy)
    return seen


def test_filter_patterns_png(saved_models, tmp_path, capsys, labels_drawn):
    out = tmp_path / "grid.png"
    code, stdout, _ = _run(
        [saved_models["sequential"], "--layer", "conv_b", "--channels", "0-1,4", "--steps", "4", "--out", out], capsys
    )
    assert code == 0
    _valid_png(out)
    assert stdout.startswith(f"Wrote {out} (3 patterns of layer 'conv_b', 4 steps, ") and stdout.endswith(" s).\n")
    (shape, labels, title) = labels_drawn[0]
    assert shape == (3, 16, 16, 3)
    assert [label.split(":")[0] for label in labels] == ["0", "1", "4"]
    assert all(math.isfinite(float(label.split(": ")[1])) for label in labels)  # the final activation
    assert "Layer 3: conv_b (Conv2D)" in title and "4 steps, seed 0" in title
    _no_temporaries(tmp_path)


def test_default_name_in_current_folder_and_nested_layer(saved_models, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = _run(
        [saved_models["nested"], "--layer", "tiny_base/block_2_conv", "--channels", "7", "--steps", "4"], capsys
    )
    assert code == 0, stdout
    _valid_png(tmp_path / "nested_tiny_base_block_2_conv_patterns.png", least=50)
    assert "1 patterns of layer 'tiny_base/block_2_conv'" in stdout


def test_kernels(saved_models, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = _run([saved_models["sequential"], "--layer", "conv_a", "--kernels"], capsys)
    assert code == 0
    _valid_png(tmp_path / "sequential_conv_a_kernels.png")
    assert "4 kernels of layer 'conv_a'" in stdout
    code, _, err = _run([saved_models["sequential"], "--layer", "hidden", "--kernels"], capsys)
    assert code == 2 and "no 2-D convolution kernel" in err.splitlines()[0]


def test_class_patterns_labelled_with_names(saved_models, tmp_path, capsys, labels_drawn):
    out = tmp_path / "classes.png"
    argv = [saved_models["functional"], "--classes", "cat,dog,bird", "--class-patterns", "bird,0", "--steps", "4"]
    code, stdout, _ = _run([*argv, "--out", out], capsys)
    assert code == 0
    _valid_png(out)
    assert "2 class patterns, 4 steps" in stdout
    assert [label.split(":")[0] for label in labels_drawn[0][1]] == ["bird", "cat"]


def test_all_class_patterns_by_default_name(saved_models, tmp_path, monkeypatch, capsys, labels_drawn):
    monkeypatch.chdir(tmp_path)
    code, stdout, err = _run([saved_models["sequential"], "--class-patterns", "--steps", "3", "--no-progress"], capsys)
    assert code == 0 and "3 class patterns, 3 steps" in stdout and "Optimising" not in err
    _valid_png(tmp_path / "sequential_class_patterns.png", least=50)
    assert [label.split(":")[0] for label in labels_drawn[0][1]] == ["class 0", "class 1", "class 2"]


def test_progress_bar_on_stderr(saved_models, tmp_path, capsys):
    code, _, err = _run(
        [saved_models["sequential"], "--layer", "conv_a", "--steps", "40", "--out", tmp_path / "p.png"], capsys
    )
    assert code == 0 and "Optimising" in err and "/40" in err


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("0-3,7", [0, 1, 2, 3, 7]), ("5, 1-2,2", [5, 1, 2]), ("12", [12]), ("2 - 4", [2, 3, 4])],
)
def test_parse_channels(spec, expected):
    assert parse_channels(spec) == expected


def test_parse_channels_with_names():
    assert parse_channels("T-shirt/top,2-3,Bag", ("T-shirt/top", "Trouser", "Pullover", "Dress", "Bag")) == [
        0,
        2,
        3,
        4,
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "Empty item"),
        ("1,,2", "Empty item"),
        ("3-1", "runs backwards"),
        ("x", "'x' is not a number"),
        ("-1", "not"),
    ],
)
def test_parse_channels_rejects(spec, message):
    with pytest.raises(UsageError, match=message):
        parse_channels(spec)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layer", "conv_b", "--channels", "6"], "Channel 6 is out of range: there are 6"),
        (["--layer", "conv_b", "--channels", "1-x"], "--channels: '1-x' is not a number"),
        (["--layer", "conv_b", "--steps", "0"], "--steps must be at least 1, got 0"),
        (["--layer", "conv_b", "--size", "32", "32"], "takes 16x16 images only, not 32x32"),
        (["--class-patterns", "5"], "Class 5 is out of range"),
        (["--class-patterns", "Hat"], "'Hat' is not a number, a range like 0-15 or a class name (class 0"),
        (["--layer", "conv_b", "--class-patterns"], "leave out --layer and --channels"),
        ([], "give --layer"),
        (["--layer", "conv_b", "--steps", "many"], "argument --steps: invalid int value: 'many'"),
    ],
)
def test_bad_input_is_one_line_exit_2(saved_models, tmp_path, capsys, args, message):
    out = tmp_path / "g.png"
    code, stdout, err = _run([saved_models["sequential"], *args, "--out", out], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"{PROG}: error: ") and message in err
    assert not out.exists() and stdout == ""
    _no_temporaries(tmp_path)


@pytest.mark.parametrize(
    ("layer", "message"),
    [("hidden", "no filters to visualise: choose a convolution layer"), ("nope", "No such layer: 'nope'")],
)
def test_bad_layer_prints_the_table(saved_models, tmp_path, capsys, layer, message):
    out = tmp_path / "g.png"
    code, _, err = _run([saved_models["sequential"], "--layer", layer, "--out", out], capsys)
    first = err.splitlines()[0]
    assert code == 2 and first.startswith(f"{PROG}: error: ") and message in first
    assert layer != "hidden" or "--class-patterns" in first
    assert "conv_b" in err and "Conv2D" in err  # the layer table follows
    assert not out.exists()


def test_bad_model_path(tmp_path, capsys):
    code, _, err = _run([tmp_path / "none.keras", "--layer", "1"], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "No such model file" in err


class _Rounding(keras.layers.Layer):
    def call(self, x):
        return keras.ops.round(x)


def test_model_without_a_gradient(monkeypatch, tmp_path, capsys):
    from explain.models.card import load_model_card

    inp = keras.Input((8, 8, 1))
    broken = keras.Model(inp, L.Conv2D(2, 3, name="after")(_Rounding(name="rounding")(inp)))
    monkeypatch.setattr(cli, "open_model", lambda args, prog: (broken, load_model_card(None, broken)))
    out = tmp_path / "g.png"
    code, _, err = _run(["broken.keras", "--layer", "after", "--steps", "2", "--out", out], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "'rounding'" in err and "not differentiable" in err
    assert not out.exists()


def test_failure_keeps_the_old_file_and_ctrl_c_writes_nothing(saved_models, tmp_path, monkeypatch, capsys):
    out = tmp_path / "grid.png"
    out.write_bytes(b"old")
    code, _, _ = _run([saved_models["sequential"], "--layer", "conv_b", "--channels", "9", "--out", out], capsys)
    assert code == 2 and out.read_bytes() == b"old"

    import explain.features.patterns as fv

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fv, "filter_patterns", interrupted)
    fresh = tmp_path / "fresh.png"
    code, _, err = _run([saved_models["sequential"], "--layer", "conv_b", "--out", fresh], capsys)
    assert code == 130 and "nothing was written" in err and not fresh.exists()
    _no_temporaries(tmp_path)


def test_a_layer_without_channels_is_the_first_line(saved_models, capsys):
    """The message a user sees first (``python -m explain.filters`` run as ``__main__``, exit 2 and no traceback
    on stderr: tests/test_hardening.py::test_cli_processes_print_no_traceback)."""
    assert main([str(saved_models["sequential"]), "--layer", "gap"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(f"{PROG}: error: Layer 'gap' (GlobalAveragePooling2D)")
