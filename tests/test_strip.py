"""The training strip the model card names (``"explain": {"strip": ...}``, written by ``python -m training train
--explain-every N``): shown by the report and the dashboard, read only from inside the model's folder through the
one image decoder. Strips are made by hand beside tiny models (fast); one test runs the real callback."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import DEMO_MODEL, ROOT, tiny_sequential
from PIL import Image

from explain import load_model, open_data
from explain.dataset.report import STRIP_PNG, compute_report, render_report, save_report
from explain.models import card as card_module
from explain.models.card import load_model_card, names_training_strip, training_strip

STRIP_NAME = "tiny_explain/explain_gradcam.png"
EXPLAIN = {"strip": STRIP_NAME, "tensorboard": None, "every": 1, "images": 2, "epochs": [1, 2, 3]}


def _strip_pixels() -> np.ndarray:
    """A hand-made strip: 2 rows (images) by 4 columns (the image, then epochs 1-3), 20-pixel cells, each its colour."""
    rng = np.random.default_rng(0)
    cells = rng.integers(0, 256, (2, 4, 3), dtype=np.uint8)
    return np.kron(cells, np.ones((20, 20, 1), np.uint8)).astype(np.uint8)


def _write_card(model_path: Path, explain: dict | None) -> None:
    card = {"class_names": ["ant", "bee", "cat"], "dataset": "generated"}
    if explain is not None:
        card["explain"] = explain
    model_path.with_suffix(".json").write_text(json.dumps(card))


@pytest.fixture
def strip_model(saved_models, tmp_path) -> Path:
    """The tiny gray 28x28x1 model in its own folder, with a card naming a hand-made strip beside it."""
    path = tmp_path / "model" / "tiny.keras"
    (path.parent / "tiny_explain").mkdir(parents=True)
    shutil.copy(saved_models["gray"], path)
    Image.fromarray(_strip_pixels()).save(path.parent / STRIP_NAME)
    _write_card(path, EXPLAIN)
    return path


def _card(model_path: Path, **explain):
    """The model card of ``model_path`` after its ``"explain"`` entry was changed by ``explain``."""
    _write_card(model_path, {**EXPLAIN, **explain})
    return load_model_card(model_path, load_model(model_path))


def _folder(root: Path, per_class: int = 2) -> Path:
    rng = np.random.default_rng(1)
    for c in ("ant", "bee", "cat"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


# -- the report ----------------------------------------------------------------------------
def test_report_shows_the_strip_and_copies_it(strip_model, tmp_path):
    model = load_model(strip_model)
    data = compute_report(
        model, open_data(_folder(tmp_path / "data")), model_path=strip_model, embedding=False, confusions=1, examples=2,
        progress=False,
    )  # fmt: skip
    rendered = render_report(data, model_path=strip_model)
    out = tmp_path / "report"
    save_report(rendered.files, out)
    with Image.open(out / STRIP_PNG) as img:
        np.testing.assert_array_equal(np.asarray(img.convert("RGB")), _strip_pixels())
    page = (out / "report.html").read_text(encoding="utf-8")
    section = page.split('<h2 id="training-strip">', 1)[1].split("<h2", 1)[0]
    assert "How the explanation evolved during training" in page and 'href="#training-strip"' in page
    assert "Maps (gradcam) of 2 images" in section and "after epochs 1, 2, 3" in section and STRIP_NAME in section
    assert base64.b64encode((out / STRIP_PNG).read_bytes()).decode() in section  # the copy is the picture shown
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training_strip"] == {
        "image": STRIP_PNG, "from_model_card": STRIP_NAME, "method": "gradcam", "epochs": [1, 2, 3], "note": None,
    }  # fmt: skip

    # A strip that cannot be shown: one line in its section, no file, the rest of the report unchanged.
    bad = training_strip(_card(strip_model, strip="../outside.png"))
    rendered = render_report(data.__class__(**{**data.__dict__, "strip": bad}), model_path=strip_model)
    assert STRIP_PNG not in rendered.files and "per_class_accuracy.png" in rendered.files
    section = rendered.files["report.html"].decode().split('<h2 id="training-strip">', 1)[1].split("<h2", 1)[0]
    assert section.count('<p class="note">') == 1 and "refused" in section and "data:image" not in section
    assert json.loads(rendered.files["metrics.json"])["training_strip"]["image"] is None

    # No strip named: no section, no entry.
    _write_card(strip_model, None)
    plain = load_model_card(strip_model, model)
    assert training_strip(plain) is None and not names_training_strip(plain)
    rendered = render_report(data.__class__(**{**data.__dict__, "strip": None}), model_path=strip_model)
    assert "training-strip" not in rendered.files["report.html"].decode()


# -- what is refused -----------------------------------------------------------------------
def _outside_png(tmp_path: Path) -> Path:
    outside = tmp_path / "outside.png"
    Image.fromarray(_strip_pixels()).save(outside)
    return outside


@pytest.mark.parametrize(
    "case, words",
    [
        ("dotdot", "refused: '..'"),
        ("absolute", "refused: an absolute path"),
        ("windows_drive", "refused: an absolute path"),
        ("backslash_dotdot", "refused: '..'"),
        ("link_out", "refused: a symbolic link leads out"),
        ("folder_link_out", "refused: a symbolic link leads out"),
        ("not_png_name", "refused: not a .png file"),
        ("link_to_text", "refused: a link to a file that is not a .png"),
        ("directory", "refused: not a regular file"),
        ("missing", "missing from the model's folder"),
        ("not_a_string", "refused: not a file name"),
        ("corrupt", "cannot be shown: not an image"),
        ("jpeg_inside", "cannot be shown: a JPEG image, not a PNG"),
        ("too_many_pixels", "cannot be shown: 80x40 pixels, more than 100"),
        ("upload", "no model folder"),
    ],
)
def test_unsafe_or_bad_strips_become_one_line(strip_model, tmp_path, monkeypatch, case, words):
    folder = strip_model.parent
    outside = _outside_png(tmp_path)
    name: object = STRIP_NAME
    if case == "dotdot":
        name = "../outside.png"
    elif case == "absolute":
        name = str(outside)
    elif case == "windows_drive":
        name = "C:/strips/explain_gradcam.png"
    elif case == "backslash_dotdot":
        name = "tiny_explain\\..\\..\\outside.png"
    elif case == "link_out":
        (folder / "link.png").symlink_to(outside)
        name = "link.png"
    elif case == "folder_link_out":
        (folder / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
        name = "elsewhere/outside.png"
    elif case == "not_png_name":
        name = "tiny.json"
    elif case == "link_to_text":
        (folder / "card.png").symlink_to(strip_model.with_suffix(".json"))
        name = "card.png"
    elif case == "directory":
        (folder / "dir.png").mkdir()
        name = "dir.png"
    elif case == "missing":
        name = "tiny_explain/explain_saliency.png"
    elif case == "not_a_string":
        name = ["a.png"]
    elif case == "corrupt":
        (folder / STRIP_NAME).write_bytes(b"not a png at all")
    elif case == "jpeg_inside":
        Image.fromarray(_strip_pixels()).save(folder / STRIP_NAME, format="JPEG")
    elif case == "too_many_pixels":
        monkeypatch.setattr(card_module, "STRIP_MAX_PIXELS", 100)
    card = _card(strip_model, strip=name)
    if case == "upload":
        card = card.__class__(**{**card.__dict__, "path": None})
    strip = training_strip(card)
    assert strip is not None and strip.pixels is None
    assert words in strip.note and "\n" not in strip.note, strip.note
    assert str(tmp_path) not in strip.note or case == "absolute"  # no server path beyond what the card says


def test_a_link_inside_the_folder_and_a_bomb_sized_header(strip_model, tmp_path):
    """A symbolic link that stays inside the folder is read; a PNG whose header declares more pixels than Pillow's
    limit is refused before decoding."""
    (strip_model.parent / "latest.png").symlink_to(strip_model.parent / STRIP_NAME)
    strip = training_strip(_card(strip_model, strip="latest.png"))
    np.testing.assert_array_equal(strip.pixels, _strip_pixels())
    assert strip.method is None and strip.caption == (  # the method is not in the file's name
        "Maps of 2 images during training, logged every epoch: one row per image, the image itself, then its map "
        "after epochs 1, 2, 3."
    )

    # A 1x1 PNG whose IHDR says 20000 x 20000 (CRC fixed): Pillow's decompression-bomb guard answers from the header.
    import struct
    import zlib

    png = (strip_model.parent / STRIP_NAME).read_bytes()
    ihdr = struct.pack(">II", 20000, 20000) + png[24:29]
    png = png[:16] + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + png[33:]
    (strip_model.parent / STRIP_NAME).write_bytes(png)
    strip = training_strip(_card(strip_model))
    assert strip.pixels is None and "decompression bomb" in strip.note


def test_the_callbacks_own_strip_is_read(tmp_path):
    """A real ExplainCallback run (2 epochs of a tiny model) and the card entry training writes: the strip read
    back is the picture the callback drew."""
    import keras

    from explain.callbacks import ExplainCallback

    model = tiny_sequential(channels=3, size=16)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (32, 16, 16, 3)).astype(np.float32), rng.integers(0, 3, 32)
    path = tmp_path / "run" / "tiny.keras"
    callback = ExplainCallback(x[:3], every=1, out=path.parent / "tiny_explain")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[callback])
    model.save(path)
    explain = {"strip": f"{callback.out.name}/explain_gradcam.png", "tensorboard": None, "every": 1, "images": 3,
               "epochs": [e for e, _ in callback.maps["gradcam"]]}  # fmt: skip
    _write_card(path, explain)
    strip = training_strip(load_model_card(path, keras.models.load_model(path)))
    np.testing.assert_array_equal(strip.pixels, callback.strip_picture("gradcam"))
    assert strip.epochs == (1, 2) and strip.method == "gradcam" and strip.note is None


# -- the dashboard -------------------------------------------------------------------------
@pytest.mark.skipif(not DEMO_MODEL.exists(), reason="the bundled demo model is missing")
def test_dashboard_shows_the_strip_in_the_explain_tab(tmp_path, monkeypatch):
    from dashboard_helpers import open_tab
    from streamlit.testing.v1 import AppTest

    path = tmp_path / "model" / "tiny.keras"
    (path.parent / "tiny_explain").mkdir(parents=True)
    tiny_sequential(channels=3, size=16).save(path)
    Image.fromarray(_strip_pixels()).save(path.parent / STRIP_NAME)
    _write_card(path, EXPLAIN)
    monkeypatch.setattr(sys, "argv", ["app.py", "--model", str(path)])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    open_tab(at, "Explain")
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    labels = [e.label for e in at.expander]
    assert "How the explanation evolved during training" in labels
    assert "dl_training_strip" not in {b.key for b in at.get("download_button")}  # closed: nothing read
    at.session_state["training_strip"] = True
    at.run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    (box,) = [e for e in at.expander if e.label == "How the explanation evolved during training"]
    assert any("Maps (gradcam) of 2 images" in c.value and "after epochs 1, 2, 3" in c.value for c in box.caption)
    (image,) = box.get("image")
    assert image.proto.imgs[0].url.endswith(".png")  # sent as the PNG it is, not re-encoded as a JPEG
    (download,) = [b for b in at.get("download_button") if b.key == "dl_training_strip"]
    assert download.proto.label == "Download PNG"

    # The card now names a file outside the model's folder: one info line, the tab still works.
    _write_card(path, {**EXPLAIN, "strip": "../../outside.png"})
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))  # the model (and its card) is read again
    at.run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert any("refused" in i.value for i in at.info)
    assert "dl_training_strip" not in {b.key for b in at.get("download_button")}
    assert "dl_explain" in {b.key for b in at.get("download_button")}


@pytest.mark.skipif(not DEMO_MODEL.exists(), reason="the bundled demo model is missing")
def test_an_uploaded_card_naming_a_strip_gets_one_info_line(tmp_path):
    """An upload has no folder (its temporary one is gone): nothing beside it is read, one line says so."""
    from dashboard_helpers import open_tab
    from streamlit.testing.v1 import AppTest

    path = tmp_path / "tiny.keras"
    tiny_sequential(channels=3, size=16).save(path)
    card = json.dumps({"class_names": ["ant", "bee", "cat"], "explain": EXPLAIN}).encode()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.selectbox(key="model_choice").set_value("Upload…").run()
    at.file_uploader(key="model_upload").set_value(("tiny.keras", path.read_bytes(), "application/octet-stream"))
    at.file_uploader(key="card_upload").set_value(("tiny.json", card, "application/json")).run()
    open_tab(at, "Explain")
    at.session_state["training_strip"] = True
    at.run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert [i.value for i in at.info] == [
        f"The model card names a training strip ({STRIP_NAME!r}), but there is no model folder to read it from "
        "(an uploaded model)."
    ]
