import gzip
import json
import struct

import numpy as np
import pytest
from PIL import Image

from explain import load_model, load_model_card
from training.__main__ import main
from training.datasets import IDX_FILES, DatasetError, load_builtin, read_idx
from training.train import Checkpoints, checkpoint_folder, prepare_builtin, train


def _write_idx(path, arr):
    header = b"\x00\x00\x08" + bytes([arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def write_idx_dataset(folder, n_train, n_test, *, noise_max=40, squares=True):
    """Write the four gzipped IDX files of a Fashion-MNIST look-alike into ``folder``.

    Images are uniform noise in [0, noise_max); with ``squares``, class c also gets a
    bright square at a class-specific place, so a model can learn it.
    """
    rng = np.random.default_rng(0)

    def make(n):
        y = np.arange(n) % 10
        x = rng.integers(0, noise_max, (n, 28, 28))
        for i, c in enumerate(y if squares else []):
            r, col = divmod(int(c), 5)
            x[i, 4 + 10 * r : 12 + 10 * r, 2 + 5 * col : 6 + 5 * col] = 250
        return x, y

    for name, arr in zip(IDX_FILES, (*make(n_train), *make(n_test)), strict=True):
        _write_idx(folder / name, arr)
    return folder


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    """A tiny Fashion-MNIST look-alike: class c is a bright square at a class-specific place."""
    return write_idx_dataset(tmp_path_factory.mktemp("idx"), 300, 60)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Two classes of 12 generated photos each (bright vs dark), JPEG and PNG, unicode names."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(1)
    for k, name in enumerate(("chats", "chiens_café")):
        (root / name).mkdir()
        for i in range(12):
            base = 60 + 130 * k
            arr = np.clip(rng.normal(base, 25, (40 + i, 50, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / name / f"img_{i}.{'jpg' if i % 2 else 'png'}")
    return root


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
    with pytest.raises(DatasetError, match="data_batch_1"):
        load_builtin("cifar10", tmp_path)


def test_cifar10_batches_read_safely(tmp_path):
    import pickle

    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
        (tmp_path / name).write_bytes(pickle.dumps(batch))
    ds = load_builtin("cifar10", tmp_path)
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_test.shape == (4, 32, 32, 3)
    # a pickle that would call a function is refused
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": print, b"labels": []}))
    with pytest.raises(DatasetError, match="refusing"):
        load_builtin("cifar10", tmp_path)


def test_cli_trains_and_writes_model_card_and_curves(idx_dir, tmp_path, capsys):
    out = tmp_path / "models" / "tiny.keras"
    argv = ["--dataset", "fashion_mnist", "--data-dir", str(idx_dir), "--out", str(out), "--epochs", "2"]
    assert main([*argv, "--batch-size", "32"]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["class_names"][9] == "Ankle boot" and card["input_shape"] == [28, 28, 1]
    assert card["color_mode"] == "grayscale"
    assert card["split"] == {"train": 240, "validation": 60, "test": 60, "validation_fraction": 0.2, "seed": 0}
    assert len(card["history"]["loss"]) == card["epochs_run"] == 2
    assert 0 <= card["test_metrics"]["accuracy"] <= 1 and card["training_time_s"] > 0
    assert card["hyperparameters"]["batch_size"] == 32
    model = load_model(out)  # loads in safe mode: no Lambda, preprocessing as a layer
    assert type(model.layers[0]).__name__ == "Rescaling"
    assert load_model_card(out, model).class_names[0] == "T-shirt/top"
    assert "Wrote" in capsys.readouterr().out
    # the model, its card and the curves; no checkpoint or temporary file left
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.json", "tiny.keras", "tiny_history.png"]
    with Image.open(out.parent / "tiny_history.png") as img:
        assert img.format == "PNG" and img.width > 500
        assert img.width > 2 * img.height  # loss and accuracy panels side by side


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    import training.train
    import training.tune
    from explain.io import atomic_write

    assert training.train.atomic_write is training.tune.atomic_write is atomic_write  # one implementation
    path = tmp_path / "new_folder" / "card.json"
    assert atomic_write(path, lambda p: p.write_text("old")) == path
    assert path.read_text() == "old" and path.stat().st_mode & 0o777 == 0o644

    def interrupted(p):
        p.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, interrupted)
    assert path.read_text() == "old" and list(path.parent.iterdir()) == [path]  # no temporary file left


def test_same_seed_same_model(idx_dir, tmp_path):
    outs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.keras"
        argv = ["train", "--dataset", "fashion_mnist", "--data-dir", str(idx_dir), "--out", str(out), "--epochs", "1"]
        assert main([*argv, "--limit", "100", "--architecture", "mlp"]) == 0
        outs.append(load_model(out).get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*outs, strict=True))


def test_interrupted_run_resumes_from_last_checkpoint(idx_dir, tmp_path, monkeypatch):
    data = prepare_builtin("fashion_mnist", data_dir=idx_dir, batch_size=32, limit=120)
    out = tmp_path / "r.keras"
    original = Checkpoints.on_epoch_end

    def interrupt_after_first(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpoints, "on_epoch_end", interrupt_after_first)
    with pytest.raises(KeyboardInterrupt):
        train(data, out, architecture="mlp", epochs=3, verbose=0)
    assert not out.exists()  # nothing half-written
    folder = checkpoint_folder(out)
    assert json.loads((folder / "state.json").read_text())["epoch"] == 1
    assert load_model(folder / "last.keras")  # the last good checkpoint loads
    monkeypatch.setattr(Checkpoints, "on_epoch_end", original)
    result = train(data, out, architecture="mlp", epochs=3, resume=True, verbose=0)
    card = json.loads(result.card_path.read_text())
    assert card["epochs_run"] == 3 and len(card["history"]["loss"]) == 3
    assert not folder.exists()


def test_resume_without_checkpoint_or_with_other_settings(idx_dir, tmp_path, capsys):
    out = tmp_path / "n.keras"
    argv = ["train", "--dataset", "fashion_mnist", "--data-dir", str(idx_dir), "--out", str(out), "--resume"]
    assert main(argv) == 2
    assert "Nothing to resume" in capsys.readouterr().err
    assert not out.exists()


def test_tune_grid_writes_csv_chart_and_refits_best(idx_dir, tmp_path, capsys):
    out = tmp_path / "tuned.keras"
    argv = ["tune", "--dataset", "fashion_mnist", "--data-dir", str(idx_dir), "--out", str(out), "--limit", "100"]
    argv += ["--architecture", "mlp", "--learning-rates", "1e-3", "3e-3", "--dropouts", "0.2", "--dense-units", "16"]
    argv += ["--trial-epochs", "1", "--epochs", "1"]
    assert main(argv) == 0
    lines = (tmp_path / "tuned_grid.csv").read_text().splitlines()
    assert lines[0] == "learning_rate,dropout,n_dense,val_accuracy" and len(lines) == 3
    assert {line.split(",")[0] for line in lines[1:]} == {"0.001", "0.003"}
    card = json.loads(out.with_suffix(".json").read_text())
    best = lines[1].split(",")
    assert card["hyperparameters"]["learning_rate"] == float(best[0]) and card["hyperparameters"]["n_dense"] == 16
    assert len(card["hyperparameter_search"]["grid"]) == 2
    assert (tmp_path / "tuned_grid.png").stat().st_size > 0
    assert not [p for p in tmp_path.iterdir() if "tuner" in p.name]


def test_folder_training_binary_and_evaluate(image_folder, tmp_path, capsys):
    out = tmp_path / "pets.keras"
    argv = ["train", "--data", str(image_folder), "--image-size", "32", "32", "--architecture", "mnist_cnn"]
    argv += ["--epochs", "1", "--batch-size", "8", "--flip", "horizontal", "--out", str(out)]
    assert main(argv) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["class_names"] == ["chats", "chiens_café"] and card["input_shape"] == [32, 32, 3]
    assert card["split"]["train"] + card["split"]["validation"] == 24 and card["output"].startswith("sigmoid")
    model = load_model(out)
    assert model.outputs[0].shape[-1] == 1  # binary: one sigmoid unit
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(image_folder)]) == 0
    report = capsys.readouterr().out
    assert "24 images" in report and "chiens_café" in report


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("empty", "subfolder per class"),
        ("one_class", "at least two classes"),
        ("empty_class", "without a readable image"),
    ],
)
def test_bad_folders_exit_2_and_write_nothing(tmp_path, capsys, setup, message):
    root = tmp_path / "data"
    root.mkdir()
    if setup in ("one_class", "empty_class"):
        (root / "a").mkdir()
        for i in range(3):
            Image.new("RGB", (8, 8), (i, 0, 0)).save(root / "a" / f"{i}.png")
    if setup == "empty_class":
        (root / "b").mkdir()
        (root / "c").mkdir()
        for i in range(3):
            Image.new("RGB", (8, 8), (0, i, 0)).save(root / "c" / f"{i}.png")
    out = tmp_path / "out" / "m.keras"
    assert main(["train", "--data", str(root), "--out", str(out), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m training: error:") and message in err
    assert "Traceback" not in err
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_cli_errors_leave_nothing(tmp_path, capsys):
    out = tmp_path / "m.keras"
    assert main(["--dataset", "fashion_mnist", "--data-dir", str(tmp_path), "--out", str(out)]) == 2
    assert "holds none of the four IDX files" in capsys.readouterr().err
    assert not out.exists() and not out.with_suffix(".json").exists()
    with pytest.raises(SystemExit) as e:
        main(["--dataset", "fashion_mnist", "--out", str(tmp_path / "m.h5")])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["train", "--dataset", "imagenet21k", "--out", str(out)])
    assert e.value.code == 2
