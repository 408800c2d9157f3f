import gzip
import json
import struct

import numpy as np
import pytest

from explain import load_model, load_model_card
from training.__main__ import main
from training.datasets import IDX_FILES, DatasetError, load_builtin, read_idx


def _write_idx(path, arr):
    header = b"\x00\x00\x08" + bytes([arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


@pytest.fixture
def idx_dir(tmp_path):
    """A tiny Fashion-MNIST look-alike: class c is a bright square at a class-specific place."""
    rng = np.random.default_rng(0)
    d = tmp_path / "idx"
    d.mkdir()

    def make(n):
        y = np.arange(n) % 10
        x = rng.integers(0, 40, (n, 28, 28))
        for i, c in enumerate(y):
            r, col = divmod(int(c), 5)
            x[i, 4 + 10 * r : 12 + 10 * r, 2 + 5 * col : 6 + 5 * col] = 250
        return x, y

    (xtr, ytr), (xte, yte) = make(300), make(60)
    for name, arr in zip(IDX_FILES, (xtr, ytr, xte, yte), strict=True):
        _write_idx(d / name, arr)
    return d


def test_read_idx_roundtrip_and_truncation(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", arr)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), arr)
    raw = gzip.decompress((tmp_path / "a.gz").read_bytes())
    (tmp_path / "b").write_bytes(raw[:-3])
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(tmp_path / "b")


def test_load_builtin_from_data_dir(idx_dir):
    ds = load_builtin("fashion_mnist", idx_dir)
    assert ds.x_train.shape == (300, 28, 28, 1) and ds.x_test.shape == (60, 28, 28, 1)
    assert ds.class_names[0] == "T-shirt/top" and ds.color_mode == "grayscale"


def test_missing_files_named(tmp_path):
    with pytest.raises(DatasetError, match=r"holds none of the four IDX files.*t10k-labels-idx1-ubyte\.gz"):
        load_builtin("fashion_mnist", tmp_path)
    with pytest.raises(DatasetError, match="Unknown data set 'cifar99'"):
        load_builtin("cifar99")


def test_cli_trains_and_writes_model_and_card(idx_dir, tmp_path, capsys):
    out = tmp_path / "models" / "tiny.keras"
    code = main(
        [
            "--dataset",
            "fashion_mnist",
            "--data-dir",
            str(idx_dir),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--batch-size",
            "32",
        ]
    )
    assert code == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["class_names"][9] == "Ankle boot" and card["input_shape"] == [28, 28, 1]
    assert card["color_mode"] == "grayscale" and card["split"] == {
        "train": 270,
        "validation": 30,
        "test": 60,
        "validation_fraction": 0.1,
        "seed": 0,
    }
    assert len(card["history"]["loss"]) == card["epochs_run"] == 2
    assert 0 <= card["test_metrics"]["accuracy"] <= 1 and card["training_time_s"] > 0
    model = load_model(out)  # loads in safe mode: no Lambda, preprocessing as a layer
    assert type(model.layers[0]).__name__ == "Rescaling"
    assert load_model_card(out, model).class_names[0] == "T-shirt/top"
    assert "Test accuracy" in capsys.readouterr().out
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.json", "tiny.keras"]


def test_cli_error_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "m.keras"
    assert main(["--dataset", "fashion_mnist", "--data-dir", str(tmp_path), "--out", str(out)]) == 2
    assert "holds none of the four IDX files" in capsys.readouterr().err
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert main(["--dataset", "fashion_mnist", "--out", str(tmp_path / "m.h5")]) == 2
