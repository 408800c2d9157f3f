import pytest
from conftest import SAMPLES
from PIL import Image

from explain.layers import main


def test_writes_a_png_grid(saved_models, tmp_path, capsys):
    out = tmp_path / "grid.png"
    code = main(
        [str(saved_models["gray"]), str(SAMPLES / "fashion_mnist_9_ankle_boot.png"), "--layer", "1", "--out", str(out)]
    )
    assert code == 0
    with Image.open(out) as img:
        img.verify()
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width > 200 and img.height > 200
    assert "Wrote" in capsys.readouterr().out
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp.png")]


def test_nested_layer_by_path_and_rgb_photo(saved_models, tmp_path):
    out = tmp_path / "nested.png"
    argv = [
        str(saved_models["nested"]),
        str(SAMPLES / "photo_chelsea.jpg"),
        "--layer",
        "tiny_base/block_2_conv",
        "--out",
        str(out),
    ]
    assert main(argv) == 0 and out.stat().st_size > 0


def test_list_prints_the_table(saved_models, capsys):
    assert main([str(saved_models["functional"]), "--list"]) == 0
    text = capsys.readouterr().out
    assert "index" in text and "conv_b" in text and "Conv2D" in text


@pytest.mark.parametrize(
    ("layer", "message"),
    [("99", "out of range"), ("nope", "No such layer: 'nope'"), ("6", "no feature maps")],
)
def test_bad_layer_exits_2_with_one_line_and_the_table(saved_models, png_path, tmp_path, capsys, layer, message):
    out = tmp_path / "g.png"
    code = main([str(saved_models["sequential"]), str(png_path), "--layer", layer, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines()[0].startswith("python -m explain.layers: error:") and message in err.splitlines()[0]
    assert "conv_b" in err  # the layer table follows
    assert not out.exists()


def test_bad_image_and_model(saved_models, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    assert main([str(saved_models["sequential"]), str(bad), "--layer", "1"]) == 2
    assert "empty" in capsys.readouterr().err
    assert main([str(tmp_path / "none.keras"), str(bad), "--layer", "1"]) == 2
    assert "No such model file" in capsys.readouterr().err


def test_usage_errors_exit_2(saved_models, png_path):
    with pytest.raises(SystemExit) as e:
        main([str(saved_models["sequential"]), str(png_path)])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main([str(saved_models["sequential"]), str(png_path), "--layer", "1", "--max-maps", "0"])
    assert e.value.code == 2


def test_an_out_of_range_index_is_the_first_line(saved_models, png_path, capsys):
    """The message a user sees first (a real ``python -m explain.layers`` process, exit 2 and no traceback on
    stderr: tests/test_hardening.py::test_cli_processes_print_no_traceback)."""
    assert main([str(saved_models["sequential"]), str(png_path), "--layer", "42"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("python -m explain.layers: error: Layer index 42 is out of range")
