"""A served dashboard: folders confined to the data root, and uploaded zips of class folders unpacked safely.

Every file is generated in tmp_path: a data root with class folders, a folder outside it (the
"secret"), symbolic links both ways, and zip files crafted to escape, to link, to bomb or to be
damaged. Each refusal is matched on the words that name the problem, so a test fails if its check
is removed even where a later check would still refuse the input for another reason.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import explain.data.served
from explain.archives import unpack_zip
from explain.data import FolderSource, data_folders, resolve_data_folder, unpack_class_folders
from explain.errors import DataError, ModelLoadError


def _png(seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _class_folders(folder: Path, classes=("cats", "dogs")) -> Path:
    for i, c in enumerate(classes):
        (folder / c).mkdir(parents=True)
        (folder / c / f"{c}.png").write_bytes(_png(i))
    return folder


@pytest.fixture
def root(tmp_path) -> Path:
    """``root/birds/{test,train}/{cats,dogs}/*.png`` and, beside the root, ``secret/{cats,dogs}``."""
    data = tmp_path / "root"
    _class_folders(data / "birds" / "test")
    _class_folders(data / "birds" / "train")
    _class_folders(tmp_path / "secret")
    return data


# -- the data root ---------------------------------------------------------------------------
def test_folders_inside_the_root_are_resolved(root):
    real = (root / "birds" / "test").resolve()
    assert resolve_data_folder("birds/test", root) == real
    assert resolve_data_folder(" birds/test/ ", root) == real
    assert resolve_data_folder("birds/train/../test", root) == real  # '..' that stays inside
    assert resolve_data_folder(str(real), root) == real  # absolute, inside
    assert resolve_data_folder(".", root) == root.resolve()


@pytest.mark.parametrize("text", ["..", "../secret", "birds/../../secret", "birds/test/../../../secret/cats"])
def test_dotdot_leaving_the_root_is_refused(root, text):
    with pytest.raises(DataError, match=r"leaves the data root through '\.\.'"):
        resolve_data_folder(text, root)


@pytest.mark.parametrize("where", ["secret", "/", "/etc"])
def test_absolute_path_elsewhere_is_refused(root, tmp_path, where):
    text = str(tmp_path / where) if where == "secret" else where
    with pytest.raises(DataError, match=r"is outside the data root: only folders under it are served"):
        resolve_data_folder(text, root)


def test_symlinked_folder_leading_outside_is_refused(root, tmp_path):
    (root / "escape").symlink_to(tmp_path / "secret")
    (root / "birds" / "sneaky").symlink_to(tmp_path)
    for text in ("escape", "escape/cats", "birds/sneaky/secret", str(root / "escape")):
        with pytest.raises(DataError, match="leads outside the data root through a symbolic link"):
            resolve_data_folder(text, root)


@pytest.mark.parametrize(
    ("link", "target"),
    [("birds/test/leak", "secret/cats"), ("birds/test/cats/leak.png", "secret/cats/cats.png")],
    ids=["class_folder", "image_file"],
)
def test_symlink_below_the_folder_leading_outside_is_refused(root, tmp_path, link, target):
    (root / link).symlink_to(tmp_path / target)
    with pytest.raises(DataError, match=r"birds/test: .*leak.* is a symbolic link to a place outside the data root"):
        resolve_data_folder("birds/test", root)


def test_link_behind_an_inside_link_is_followed(root, tmp_path):
    (root / "birds" / "train" / "cats" / "leak.png").symlink_to(tmp_path / "secret" / "cats" / "cats.png")
    (root / "birds" / "test" / "more_cats").symlink_to(root / "birds" / "train" / "cats")
    with pytest.raises(DataError, match=r"more_cats/leak\.png is a symbolic link to a place outside"):
        resolve_data_folder("birds/test", root)


def test_symlink_inside_the_root_pointing_inside_is_allowed(root):
    (root / "alias").symlink_to(root / "birds" / "test")
    (root / "birds" / "test" / "more_cats").symlink_to(root / "birds" / "train" / "cats")
    assert resolve_data_folder("alias", root) == (root / "birds" / "test").resolve()
    assert FolderSource(resolve_data_folder("alias", root)).class_names == ("cats", "dogs", "more_cats")


def test_root_given_through_a_symlink(root, tmp_path):
    (tmp_path / "served").symlink_to(root)
    assert resolve_data_folder(str(tmp_path / "served" / "birds" / "test"), tmp_path / "served").name == "test"
    assert resolve_data_folder(str(root / "birds" / "test"), tmp_path / "served").name == "test"


def test_missing_file_empty_and_bad_root(root, tmp_path):
    with pytest.raises(DataError, match=r"No such folder under the data root: birds/nope"):
        resolve_data_folder("birds/nope", root)
    with pytest.raises(DataError, match=r"cats\.png is a file, not a folder"):
        resolve_data_folder("birds/test/cats/cats.png", root)
    with pytest.raises(DataError, match="No folder given"):
        resolve_data_folder("  ", root)
    for bad_root in (tmp_path / "nope", root / "birds" / "test" / "cats" / "cats.png"):
        with pytest.raises(DataError, match=r"The data root .* is not an existing folder.*--data-root"):
            resolve_data_folder("birds", bad_root)
        with pytest.raises(DataError, match=r"The data root .* is not an existing folder"):
            data_folders(bad_root)


def test_data_folders_lists_folders_of_class_folders(root, tmp_path):
    (root / "escape").symlink_to(tmp_path / "secret")  # holds class folders, but outside: never listed
    (root / "alias").symlink_to(root / "birds" / "test")  # inside: listed
    _class_folders(root / ".hidden")
    (root / "notes").mkdir()
    assert data_folders(root) == ["alias", "birds/test", "birds/train"]
    assert data_folders(root, max_depth=1) == ["alias"]
    assert data_folders(root, limit=2) == ["alias", "birds/test"]
    assert data_folders(root / "birds" / "test") == ["."]


def test_data_folders_never_follow_a_link_out(root, tmp_path):
    (root / "deep").mkdir()
    (root / "deep" / "out").symlink_to(tmp_path)  # tmp_path/secret holds class folders at depth 2
    assert data_folders(root, max_depth=3) == ["birds/test", "birds/train"]


# -- zips of class folders -------------------------------------------------------------------
def _zip(members: dict, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            if isinstance(data, zipfile.ZipInfo):
                zf.writestr(data, b"target")
            else:
                zf.writestr(name, data)
    return buf.getvalue()


def _link(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o120777 << 16  # a symbolic link, as zip -y stores it
    return info


def _classes(prefix: str = "") -> dict:
    return {f"{prefix}cats/a.png": _png(0), f"{prefix}cats/b.png": _png(1), f"{prefix}dogs/c.png": _png(2)}


def test_zip_with_a_wrapping_folder(tmp_path):
    data = _zip({"birds/": b"", **_classes("birds/"), "__MACOSX/birds/._cats": b"x"})
    top = unpack_class_folders(data, tmp_path / "up", "birds.zip")
    assert top == (tmp_path / "up" / "birds")
    assert not (tmp_path / "up" / "__MACOSX").exists()
    source = FolderSource(top)
    assert source.class_names == ("cats", "dogs") and len(source) == 3


def test_zip_with_class_folders_at_its_top(tmp_path):
    archive = tmp_path / "birds.zip"
    archive.write_bytes(_zip({**_classes(), "README.txt": b"hi"}))
    top = unpack_class_folders(archive, tmp_path / "up", "birds.zip")  # a path works as well as bytes
    assert top == tmp_path / "up"
    assert FolderSource(top).class_names == ("cats", "dogs")
    with pytest.raises(DataError, match=r"No such zip file: gone\.zip"):
        unpack_class_folders(tmp_path / "gone.zip", tmp_path / "up2", "gone.zip")


@pytest.mark.parametrize(
    ("members", "held"),
    [
        ({"cats/a.png": _png(0), "cats/b.png": _png(1)}, r"1 class folder with images \('cats'\)"),
        ({"birds/cats/a.png": _png(0), "birds/dogs/notes.txt": b"x"}, r"1 class folder with images \('cats'\)"),
        ({"a.png": _png(0), "b.png": _png(1)}, "no class folder with images"),
    ],
    ids=["one_class", "one_with_images", "no_folders"],
)
def test_zip_with_fewer_than_two_classes(tmp_path, members, held):
    with pytest.raises(DataError, match=rf"birds\.zip holds {held}; at least 2 are needed\. Zip the folder .*zip -r"):
        unpack_class_folders(_zip(members), tmp_path / "up", "birds.zip")


def test_zip_of_split_folders(tmp_path):
    data = _zip({**_classes("birds/train/"), **_classes("birds/test/")})
    with pytest.raises(DataError, match=r"holds split folders \(test, train\), not class folders: zip one\. Zip"):
        unpack_class_folders(data, tmp_path / "up", "birds.zip")


@pytest.mark.parametrize(
    "evil", ["../evil", "cats/../../evil", "/tmp/evil", "C:/evil", "C:\\evil", "..\\evil"], ids=str.__repr__
)
def test_zip_member_leaving_the_folder(tmp_path, evil):
    data = _zip({**_classes(), evil: b"x"})
    with pytest.raises(DataError, match=r"member .*evil' points outside the zip file's folder.*Zip the folder"):
        unpack_class_folders(data, tmp_path / "up" / "inner", "birds.zip")
    assert not (tmp_path / "up" / "evil").exists() and not (tmp_path / "up" / "inner" / "cats").exists()


def test_zip_with_a_symlink_member(tmp_path):
    data = _zip({**_classes(), "cats/link.png": _link("cats/link.png")})
    with pytest.raises(DataError, match=r"member 'cats/link\.png' is a symbolic link"):
        unpack_class_folders(data, tmp_path / "up", "birds.zip")
    assert not (tmp_path / "up" / "cats").exists()  # refused before anything was written


def test_zip_bomb_one_member(tmp_path):
    data = _zip({**_classes(), "dogs/zeros.bin": bytes(20 * 2**20)})  # 20 MB of zeros, about 20 KB zipped
    assert len(data) < 100_000
    with pytest.raises(
        DataError, match=r"member dogs/zeros\.bin is compressed \d+:1; refusing it as a possible zip bomb"
    ):
        unpack_class_folders(data, tmp_path / "up", "birds.zip")
    assert not (tmp_path / "up" / "cats").exists()


def test_zip_bomb_many_small_members(tmp_path):
    zeros = {f"dogs/zeros{i}.bin": bytes(2**20) for i in range(20)}  # each under the per-member threshold
    with pytest.raises(DataError, match=r"birds\.zip is compressed \d+:1 overall; refusing it as a possible zip bomb"):
        unpack_class_folders(_zip({**_classes(), **zeros}), tmp_path / "up", "birds.zip")


def test_zip_size_caps(tmp_path, monkeypatch):
    noise = {"dogs/noise.bin": np.random.default_rng(0).bytes(2**20)}  # incompressible: no ratio guard
    data = _zip({**_classes(), **noise})
    monkeypatch.setattr(explain.data.served, "MAX_DATA_UNPACKED_BYTES", 2**20)
    with pytest.raises(DataError, match=r"birds\.zip would unpack to 1 MB, more than the 1 MB allowed"):
        unpack_class_folders(data, tmp_path / "up", "birds.zip")
    monkeypatch.setattr(explain.data.served, "MAX_DATA_ZIP_BYTES", 2**19)
    with pytest.raises(DataError, match=r"birds\.zip is 1 MB; zips of class folders up to 0 MB are accepted"):
        unpack_class_folders(data, tmp_path / "up", "birds.zip")


def test_bytes_are_counted_while_unpacking(tmp_path, monkeypatch):
    """A directory can understate sizes; the stream is counted all the same."""
    data = _zip({"a.bin": np.random.default_rng(0).bytes(3 * 2**20)}, zipfile.ZIP_STORED)
    monkeypatch.setattr(explain.archives, "check_zip_sizes", lambda *a, **k: None)  # as if the directory lied
    with pytest.raises(DataError, match=r"x\.zip unpacks to more than the 1 MB allowed"):
        unpack_zip(data, tmp_path / "up", "x.zip", DataError, max_bytes=2**20)


def test_unpacking_checks_each_target_again(tmp_path, monkeypatch):
    """Defence in depth: were a name to slip past the checks, unpacking still never writes outside."""
    monkeypatch.setattr(explain.archives, "check_members", lambda *a, **k: None)
    with pytest.raises(DataError, match=r"member '\.\./evil' points outside the zip file's folder"):
        unpack_zip(_zip({"../evil": b"x"}), tmp_path / "up", "x.zip", DataError)
    assert not (tmp_path / "evil").exists()


def _flag_encrypted(data: bytes, name: bytes) -> bytes:
    """Set the "encrypted" flag (as zip -e does) on a member's entry in the zip directory."""
    out = bytearray(data)
    at = out.find(b"PK\x01\x02")
    while at >= 0:
        size = int.from_bytes(out[at + 28 : at + 30], "little")
        if out[at + 46 : at + 46 + size] == name:
            out[at + 8] |= 0x1
        at = out.find(b"PK\x01\x02", at + 4)
    return bytes(out)


def test_encrypted_member(tmp_path):
    data = _flag_encrypted(_zip({**_classes(), "cats/secret.png": b"x"}), b"cats/secret.png")
    with pytest.raises(DataError, match=r"member 'cats/secret\.png' is encrypted; zip the files without a password"):
        unpack_class_folders(data, tmp_path / "up", "birds.zip")


@pytest.mark.parametrize(
    "damage",
    [
        lambda z: b"not a zip file at all",
        lambda z: z[: len(z) // 2],  # truncated: no directory at the end
        lambda z: z.replace(_png(0)[20:40], bytes(20)),  # a member's bytes changed: its CRC fails
    ],
    ids=["not_a_zip", "truncated", "bad_crc"],
)
def test_damaged_zip(tmp_path, damage):
    data = damage(_zip(_classes(), zipfile.ZIP_STORED))
    with pytest.raises(DataError, match=r"birds\.zip is a damaged zip file \(.*\)\. Copy or download it again\."):
        unpack_class_folders(data, tmp_path / "up", "birds.zip")


def test_the_error_class_is_the_callers(tmp_path):
    data = _zip({"../evil": b"x"})
    with pytest.raises(ModelLoadError, match="points outside"):
        unpack_zip(data, tmp_path / "up", "model.zip", ModelLoadError)
    with pytest.raises(DataError, match="points outside"):
        unpack_zip(data, tmp_path / "up", "data.zip", DataError)
    assert os.listdir(tmp_path / "up") == []
