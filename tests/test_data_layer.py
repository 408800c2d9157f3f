"""One decoder and one data layer: training and explaining read the same files as the same arrays.

Every image is generated here with Pillow/NumPy in tmp_path; nothing is downloaded.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explain.errors import DataError

SIZE = (24, 20)  # (height, width) the model takes; smaller than every file, so each is resized


def _smooth(h: int, w: int, seed: int) -> np.ndarray:
    """A photo-like RGB image: smooth gradients plus noise (JPEG keeps it recognisable)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w)], axis=-1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture
def folder(tmp_path) -> Path:
    """Two classes; every kind of file the decoders disagreed on: large JPEG, WebP, RGBA PNG,
    a JPEG with an EXIF rotation, grayscale PNG, TIFF."""
    root = tmp_path / "data"
    a, b = root / "a", root / "b"
    a.mkdir(parents=True)
    b.mkdir()
    Image.fromarray(_smooth(200, 160, 0)).save(a / "photo.jpg", quality=90)  # > 2x SIZE: JPEG draft mode
    Image.fromarray(_smooth(60, 50, 1)).save(a / "pic.webp", quality=80)
    rgba = np.dstack([_smooth(40, 40, 2), np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (40, 1))])
    Image.fromarray(rgba, "RGBA").save(a / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    Image.fromarray(_smooth(96, 64, 3)).save(b / "rotated.jpg", exif=exif, quality=92)
    Image.fromarray(_smooth(50, 30, 4)[..., 0], "L").save(b / "gray.png")
    Image.fromarray(_smooth(30, 44, 5)).save(b / "scan.tif")
    return root


@pytest.mark.parametrize("channels", [1, 3])
def test_training_and_explaining_see_identical_arrays(folder, channels):
    from explain.data import FolderSource
    from explain.images import load_image
    from training.folders import load_image_file, make_dataset, scan_folder

    report = scan_folder(folder)
    source = FolderSource(folder)
    paths = [p for p, _ in report.files]
    assert len(paths) == 6 and not report.bad_files and report.skipped == 0  # WebP and TIFF are images to both
    assert paths == list(source.paths)
    assert [lab for _, lab in report.files] == source.labels.tolist()

    ds = make_dataset(report.files, SIZE, channels, 4, shuffle_seed=None, cache=False)
    trained = np.concatenate([x.numpy() for x, _ in ds])
    explained, kept, failures = source.load(range(len(source)), SIZE, channels)
    assert not failures and kept.tolist() == list(range(6))
    assert trained.shape == explained.shape == (6, *SIZE, channels)
    for path, t, e in zip(paths, trained, explained, strict=True):
        single = load_image(path, target_size=SIZE, channels=channels)
        assert np.array_equal(t, single), path.name
        assert np.array_equal(e, single), path.name
        assert np.array_equal(load_image_file(path, SIZE, channels), single), path.name


def test_decoder_details_are_the_same_for_both(folder):
    from explain.images import load_image

    rotated = load_image(folder / "b" / "rotated.jpg")
    assert rotated.shape == (64, 96, 3)  # EXIF orientation 6: 96x64 stored, 64 high once upright
    alpha = load_image(folder / "a" / "alpha.png")
    assert (alpha[:, 0] == 255).all()  # alpha 0 in the first column: white, not black
    gray = load_image(folder / "b" / "gray.png", channels=3)
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])


@pytest.mark.parametrize("split", ["training", "testing", "val", "valid", "validation"])
def test_split_folders_are_refused_by_both(tmp_path, split):
    from explain.data import FolderSource
    from explain.errors import DataError
    from training.datasets import DatasetError
    from training.folders import scan_folder

    for s in (split, "train"):
        for c in ("cats", "dogs"):
            (tmp_path / s / c).mkdir(parents=True)
            Image.fromarray(_smooth(8, 8, 0)).save(tmp_path / s / c / "x.png")
    with pytest.raises(DatasetError, match="holds split folders"):
        scan_folder(tmp_path)
    with pytest.raises(DataError, match="holds split folders"):
        FolderSource(tmp_path)


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_one_idx_reader_and_one_cifar_unpickler(tmp_path):
    import explain.data as data
    import training.datasets as datasets

    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", arr)
    assert np.array_equal(data.read_idx(tmp_path / "a.gz"), arr)
    assert np.array_equal(datasets.read_idx(tmp_path / "a.gz"), arr)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")
    with pytest.raises(DataError, match="truncated"):
        data.read_idx(tmp_path / "bad")
    with pytest.raises(datasets.DatasetError, match="truncated"):
        datasets.read_idx(tmp_path / "bad")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (tmp_path / "evil").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}))
    with pytest.raises(DataError, match="refusing"):
        data.read_cifar_batch(tmp_path / "evil")
    planes = np.repeat(np.array([10, 20, 30], np.uint8), 1024)  # CIFAR rows: all red, then green, then blue
    good = {b"data": np.stack([planes, planes + 1]), b"labels": [3, 7]}
    (tmp_path / "good").write_bytes(pickle.dumps(good))
    x, y = data.read_cifar_batch(tmp_path / "good")
    assert x.shape == (2, 32, 32, 3) and y.tolist() == [3, 7]
    assert x[0, 5, 9].tolist() == [10, 20, 30] and x[1, 31, 0].tolist() == [11, 21, 31]


def test_old_import_paths_still_work():
    import explain
    import explain.data as data
    import explain.dataset.evaluation as ev

    for name in ("DataSource", "ArraySource", "FolderSource", "load_builtin_split", "open_data", "match_classes"):
        assert getattr(ev, name) is getattr(data, name), name
        assert getattr(explain, name) is getattr(data, name), name
    from training.datasets import BUILTIN, Dataset, DatasetError, load_builtin, read_idx  # noqa: F401
    from training.folders import make_dataset, scan_folder, split_files  # noqa: F401

    assert set(BUILTIN) == set(data.BUILTIN_CLASSES)
