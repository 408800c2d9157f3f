"""training.folders: scanning a folder of class subfolders, loading, splitting, the tf.data pipeline.

Every image is generated here with Pillow/NumPy in tmp_path; nothing is downloaded.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training import folders
from training.datasets import DatasetError
from training.folders import load_image_file, make_dataset, scan_folder, split_files

RNG = np.random.default_rng(0)


def _rgb(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, img: Image.Image, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def _jpeg_bytes(h: int = 24, w: int = 32) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(_rgb(h, w)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def folder(tmp_path):
    """birds/ (empty), café/ (2), cats/ (6 good in every mode, 3 bad, 1 README), 猫/ (1)."""
    root = tmp_path / "data"
    cats = root / "cats"
    _save(cats / "rgb.jpg", Image.fromarray(_rgb(30, 40)), quality=90)
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, 10:, 3] = 255  # left half fully transparent
    _save(cats / "rgba.PNG", Image.fromarray(rgba, "RGBA"))
    _save(cats / "palette.gif", Image.fromarray(_rgb(24, 16)).convert("P"))
    _save(cats / "gray.bmp", Image.fromarray(RNG.integers(0, 256, (12, 18), dtype=np.uint8), "L"))
    deep = (np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 257).astype(np.uint16)
    _save(cats / "deep16.png", Image.fromarray(deep))
    _save(cats / "sub" / "cmyk.jpeg", Image.new("CMYK", (10, 14), (0, 255, 0, 0)))
    (cats / "truncated.jpg").write_bytes(_jpeg_bytes(64, 64)[:-300])
    (cats / "empty.jpg").write_bytes(b"")
    (cats / "notes.png").write_text("this is text, not a PNG\n")
    (cats / "README.txt").write_text("cats from the garden\n")
    _save(root / "café" / "chat_é.jpg", Image.fromarray(_rgb(20, 20)))
    _save(root / "café" / "b.png", Image.fromarray(_rgb(9, 11)))
    _save(root / "猫" / "猫1.png", Image.fromarray(_rgb(16, 16)))
    (root / "birds").mkdir()
    (root / "birds" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / ".ipynb_checkpoints").mkdir()  # hidden: not a class
    return root


def test_scan_report_counts_reasons_and_summary(folder):
    report = scan_folder(folder)
    assert report.class_names == ("birds", "café", "cats", "猫")
    assert report.counts == {"birds": 0, "café": 2, "cats": 6, "猫": 1}
    assert len(report.files) == 9 and report.num_images == 9
    labels = [lab for _, lab in report.files]
    assert labels == sorted(labels) and Counter(labels) == {1: 2, 2: 6, 3: 1}
    assert all(report.class_names[lab] == p.relative_to(folder).parts[0] for p, lab in report.files)
    reasons = {p.name: r for p, r in report.bad_files}
    assert set(reasons) == {"truncated.jpg", "empty.jpg", "notes.png"}
    assert reasons["truncated.jpg"].startswith("truncated or corrupt")
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["notes.png"] == "not an image Pillow can read"
    assert report.skipped == 2  # README.txt, .DS_Store
    assert report.empty_classes == ("birds",)
    assert report.imbalance == 6.0

    text = report.summary()
    assert text.splitlines()[0] == f"9 images in 4 classes in {folder}"
    assert "  猫" in text and "café" in text
    assert "3 bad files left out:" in text and "cats/empty.jpg: empty file (0 bytes)" in text
    assert "2 files skipped" in text
    assert "empty class (no readable image): birds" in text
    assert "warning: classes are imbalanced, largest/smallest = 6.0 (cats 6, 猫 1)" in text


def test_scan_checks_every_file_with_several_workers_the_same(folder):
    assert scan_folder(folder, workers=1) == scan_folder(folder, workers=3)


def test_summary_lists_ten_bad_files_then_and_more(tmp_path):
    for c in ("a", "b"):
        _save(tmp_path / c / "ok.png", Image.fromarray(_rgb(4, 4)))
    for i in range(13):
        (tmp_path / "a" / f"bad{i:02d}.jpg").write_bytes(b"nope")
    report = scan_folder(tmp_path)
    assert len(report.bad_files) == 13 and report.imbalance == 1.0
    text = report.summary()
    assert "bad09.jpg" in text and "bad10.jpg" not in text and "  and 3 more" in text
    assert "warning" not in text


def test_decompression_bomb_and_tiny_images_are_bad_files(tmp_path, monkeypatch):
    for c in ("a", "b"):
        _save(tmp_path / c / "ok.png", Image.fromarray(_rgb(20, 20)))
    _save(tmp_path / "a" / "bomb.png", Image.new("L", (100, 100)))  # over 2x the limit: Pillow raises
    _save(tmp_path / "a" / "warn.png", Image.new("L", (40, 40)))  # between 1x and 2x: Pillow only warns
    _save(tmp_path / "b" / "thin.png", Image.new("RGB", (1, 50)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    reasons = {p.name: r for p, r in scan_folder(tmp_path).bad_files}
    assert "decompression bomb" in reasons["bomb.png"] and "1,000" in reasons["bomb.png"]
    assert reasons["warn.png"].startswith("40x40 = 1,600 pixels, more than Pillow's limit")
    assert reasons["thin.png"] == "too small: 1x50 pixels (need at least 2 pixels per side)"
    with pytest.raises(DatasetError, match="decompression bomb"):
        load_image_file(tmp_path / "a" / "warn.png", (8, 8), 1)


def test_scan_errors_say_how_to_fix(tmp_path):
    with pytest.raises(DatasetError, match=r"No such folder: .*nowhere"):
        scan_folder(tmp_path / "nowhere")
    (tmp_path / "file.jpg").write_bytes(_jpeg_bytes())
    with pytest.raises(DatasetError, match="is a file, not a folder"):
        scan_folder(tmp_path / "file.jpg")
    with pytest.raises(DatasetError, match=r"no class subfolders \(it holds 1 images directly\).*root/cats/\*\.jpg"):
        scan_folder(tmp_path)

    (tmp_path / "dogs").mkdir()
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "a.jpg").write_bytes(b"")
    (tmp_path / "dogs" / "b.txt").write_text("x")
    with pytest.raises(
        DatasetError, match=r"No readable image in the 2 class folders .*1 bad files, 1 other files.*a\.jpg"
    ):
        scan_folder(tmp_path)

    (tmp_path / "cats" / "c.jpg").write_bytes(_jpeg_bytes())
    with pytest.raises(DatasetError, match=r"Only one class .* \('cats', 1 images\): need at least two classes"):
        scan_folder(tmp_path)


def test_split_folders_are_not_classes(tmp_path):
    for split in ("train", "validation"):
        for c in ("cats", "dogs"):
            _save(tmp_path / split / c / "x.png", Image.fromarray(_rgb(4, 4)))
    with pytest.raises(DatasetError, match=r"holds split folders \(train, validation\), not class folders"):
        scan_folder(tmp_path)
    assert scan_folder(tmp_path / "train").class_names == ("cats", "dogs")


def test_class_names_checked_against_training_classes(folder, tmp_path):
    report = scan_folder(folder, class_names=["猫", "cats", "café", "birds"])
    assert report.class_names == ("猫", "cats", "café", "birds")
    assert {p.name: lab for p, lab in report.files}["猫1.png"] == 0
    assert all(report.class_names[lab] == p.relative_to(folder).parts[0] for p, lab in report.files)

    # Decomposed Unicode (as macOS stores it) matches the composed name.
    assert scan_folder(folder, class_names=["birds", "cafe\u0301", "cats", "猫"]).counts["cafe\u0301"] == 2

    with pytest.raises(
        DatasetError, match=r"class folder '猫' not among the training classes \('birds', 'café', 'cats'\)"
    ):
        scan_folder(folder, class_names=["birds", "café", "cats"])
    with pytest.raises(DatasetError, match=r"lacks the class folders 'dogs', 'owls' that training has"):
        scan_folder(folder, class_names=["birds", "café", "cats", "dogs", "owls", "猫"])

    # A test folder may hold images of one class only: it is evaluated, not trained on.
    test = tmp_path / "test"
    _save(test / "a" / "x.png", Image.fromarray(_rgb(4, 4)))
    (test / "b").mkdir()
    assert scan_folder(test, class_names=["a", "b"]).empty_classes == ("b",)


def test_load_image_file_modes_and_sizes(folder):
    cats = folder / "cats"
    for name in ("rgb.jpg", "rgba.PNG", "palette.gif", "gray.bmp", "deep16.png", "sub/cmyk.jpeg"):
        for channels in (1, 3):
            arr = load_image_file(cats / name, (7, 5), channels)
            assert arr.shape == (7, 5, channels) and arr.dtype == np.uint8, name

    rgba = load_image_file(cats / "rgba.PNG", (20, 20), 3)
    assert (rgba[:, :10] == 255).all()  # transparent: white
    assert (rgba[:, 10:] == (200, 0, 0)).all()
    deep = load_image_file(cats / "deep16.png", (16, 16), 1)[..., 0]
    assert np.array_equal(deep, np.arange(256, dtype=np.uint8).reshape(16, 16))  # /257, not clipped to 255
    cmyk = load_image_file(cats / "sub" / "cmyk.jpeg", (14, 10), 3)
    assert np.abs(cmyk.astype(int) - (255, 0, 255)).max() <= 2  # magenta
    assert load_image_file(os.fsencode(folder / "猫" / "猫1.png"), (16, 16), 3).shape == (16, 16, 3)


def test_load_image_file_exif_rotation_and_first_frame(tmp_path):
    wide = np.zeros((16, 32), np.uint8)
    wide[:, 16:] = 255  # left half black, right half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display: the left half ends on top
    _save(tmp_path / "rot.jpg", Image.fromarray(wide), exif=exif, quality=95)
    up = load_image_file(tmp_path / "rot.jpg", (32, 16), 1)[..., 0]
    assert up[:12].mean() < 20 and up[20:].mean() > 235

    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    first = load_image_file(tmp_path / "anim.gif", (8, 8), 3)
    assert (first[..., 0] > 200).all() and (first[..., 2] < 50).all()


def test_load_image_file_errors_name_the_file(folder):
    with pytest.raises(DatasetError, match=r"truncated\.jpg: truncated or corrupt"):
        load_image_file(folder / "cats" / "truncated.jpg", (8, 8), 3)
    with pytest.raises(DatasetError, match=r"notes\.png: not an image Pillow can read"):
        load_image_file(folder / "cats" / "notes.png", (8, 8), 3)
    with pytest.raises(DatasetError, match=r"channels must be 1 .* or 3"):
        load_image_file(folder / "cats" / "rgb.jpg", (8, 8), 4)


def _files(counts: dict[int, int]) -> list[tuple[Path, int]]:
    return [(Path(f"c{lab}/{i:03d}.jpg"), lab) for lab, n in counts.items() for i in range(n)]


def test_split_is_stratified_seeded_and_order_independent():
    files = _files({0: 10, 1: 5, 2: 1, 3: 2})
    train, val = split_files(files, 0.2, seed=0)
    assert Counter(lab for _, lab in val) == {0: 2, 1: 1, 3: 1}  # the one-image class trains only
    assert Counter(lab for _, lab in train) == {0: 8, 1: 4, 2: 1, 3: 1}
    assert sorted(train + val) == sorted(files) and not set(train) & set(val)
    assert split_files(files, 0.2, seed=0) == (train, val)
    assert set(split_files(files[::-1], 0.2, seed=0)[1]) == set(val)
    assert any(set(split_files(files, 0.2, seed=s)[1]) != set(val) for s in (1, 2, 3))
    assert split_files(files, 0.0) == (tuple(files), ())
    with pytest.raises(DatasetError, match=r"validation fraction must be in \[0, 1\)"):
        split_files(files, 1.0)


def _epoch(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_make_dataset_in_order_decodes_once(folder, monkeypatch):
    report = scan_folder(folder)
    calls = []

    def counting(path, image_size, channels):
        calls.append(path)
        return load_image_file(path, image_size, channels)

    monkeypatch.setattr(folders, "load_image_file", counting)
    ds = make_dataset(report.files, (8, 6), 3, 4, shuffle_seed=None)
    shapes = [(x.shape, x.dtype.name, y.shape, y.dtype.name) for x, y in ds]
    assert shapes == [((4, 8, 6, 3), "uint8", (4,), "int32")] * 2 + [((1, 8, 6, 3), "uint8", (1,), "int32")]
    x1, y1 = _epoch(ds)
    assert y1.tolist() == [lab for _, lab in report.files]
    for img, (path, _) in zip(x1, report.files, strict=True):
        assert np.array_equal(img, load_image_file(path, (8, 6), 3))
    x2, y2 = _epoch(ds)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert len(calls) == len(report.files)  # three epochs, one decode per file

    gray = make_dataset(report.files, (5, 5), 1, 16, shuffle_seed=None, cache=False)
    assert next(iter(gray))[0].shape == (9, 5, 5, 1)


def test_make_dataset_shuffles_each_epoch_seeded(folder, tmp_path):
    files = scan_folder(folder).files
    keys = {}

    def orders(ds, epochs=3):
        out = []
        for _ in range(epochs):
            x, y = _epoch(ds)
            out.append([keys.setdefault(img.tobytes(), len(keys)) for img in x])
            assert sorted(y.tolist()) == sorted(lab for _, lab in files)
        return out

    a = orders(make_dataset(files, (8, 8), 3, 4, shuffle_seed=7))
    assert all(sorted(o) == list(range(len(files))) for o in a)  # same multiset of images
    assert len({tuple(o) for o in a}) == 3  # a different order every epoch
    assert orders(make_dataset(files, (8, 8), 3, 4, shuffle_seed=7)) == a  # the same orders again

    cache = tmp_path / "cache" / "train"
    b = orders(make_dataset(files, (8, 8), 3, 4, shuffle_seed=7, cache=str(cache)), epochs=2)
    assert b == a[:2]
    assert any(p.name.startswith("train.") and p.name.endswith(".index") for p in cache.parent.iterdir())


def test_make_dataset_rejects_bad_arguments(folder):
    files = scan_folder(folder).files
    with pytest.raises(DatasetError, match="No image files"):
        make_dataset([], (8, 8), 3, 4, shuffle_seed=None)
    with pytest.raises(DatasetError, match="batch size must be at least 1"):
        make_dataset(files, (8, 8), 3, 0, shuffle_seed=None)
    with pytest.raises(DatasetError, match="image_size must be"):
        make_dataset(files, (0, 8), 3, 4, shuffle_seed=None)
