"""The training callback (issue 24): the maps of fixed images every few epochs, to TensorBoard and as a strip."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_sequential

from explain.attribution import METHODS
from explain.callbacks import CAPTION, CELL, ExplainCallback
from explain.errors import ExplainError


def _data(n=64, size=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, size, size, 3)).astype(np.float32)
    y = (x[:, :, : size // 2].mean(axis=(1, 2, 3)) > x[:, :, size // 2 :].mean(axis=(1, 2, 3))).astype(np.int64)
    return x, y


def _events(log_dir) -> dict[str, list[int]]:
    """Tag -> steps of every image summary in the event files under ``log_dir``."""
    found: dict[str, list[int]] = {}
    for path in sorted(log_dir.rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "images":
                    found.setdefault(value.tag, []).append(event.step)
    return found


def test_three_epochs_write_tensorboard_images_a_strip_and_the_final_maps(tmp_path):
    model = tiny_sequential(channels=3, size=16)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _data()
    y = y % 3
    callback = ExplainCallback(x[:4], methods=("gradcam", "saliency"), every=1, log_dir=tmp_path / "tb",
                               out=tmp_path / "strips", class_names=["ant", "bee", "a very long class name"])
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[callback])
    tags = _events(tmp_path / "tb")
    assert set(tags) == {f"{m}/image_{i}" for m in ("gradcam", "saliency") for i in range(4)}
    assert all(steps == [1, 2, 3] for steps in tags.values())
    strip = callback.strip_picture("gradcam")
    from PIL import Image

    on_disk = np.asarray(Image.open(tmp_path / "strips" / "explain_gradcam.png"))
    assert on_disk.shape == strip.shape and (strip.shape[1] + 4) % (CELL + 4) == 0
    assert (strip.shape[1] + 4) // (CELL + 4) == 1 + 3  # the image, then one column per epoch
    assert (strip.shape[0] + 4) % (CELL + CAPTION + 4) == 0
    assert (strip.shape[0] + 4) // (CELL + CAPTION + 4) == 4  # one row per image, each cell captioned
    # The last epoch's maps are Grad-CAM computed after training, captioned with the class they explain.
    epoch, last = callback.maps["gradcam"][-1]
    after = METHODS["gradcam"](model)(x[:4])
    assert epoch == 3 and np.allclose(last, after.heatmap, atol=1e-5)
    names = ["ant", "bee", "a very long…"]  # cut to one line of a cell
    assert callback._captions["gradcam"][-1] == [f"epoch 3\n{names[c]}" for c in after.class_index]
    # The weights changed between epochs and the maps followed them.
    assert not np.allclose(callback.maps["saliency"][0][1], callback.maps["saliency"][-1][1])


def test_every_second_epoch_and_no_retrace(tmp_path):
    model = tiny_sequential(channels=3, size=16)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _data()
    callback = ExplainCallback(x[:2], every=2)
    model.fit(x, y % 3, epochs=4, batch_size=32, verbose=0, callbacks=[callback])
    assert [e for e, _ in callback.maps["gradcam"]] == [2, 4]
    explainer = callback._explainers["gradcam"]
    traced = explainer._compiled
    callback.on_epoch_end(5)  # one more logged epoch: the same concrete function, no new trace
    assert explainer._compiled is traced


def test_bad_input_is_one_line_before_training(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(ExplainError, match="Cannot write the TensorBoard folder"):
        ExplainCallback(np.zeros((1, 16, 16, 3)), log_dir=blocked / "tb")
    with pytest.raises(ExplainError, match="every must be"):
        ExplainCallback(np.zeros((1, 16, 16, 3)), every=0)
    model = tiny_sequential(channels=3, size=16)
    callback = ExplainCallback(np.zeros((2, 16, 16, 1)))
    callback.set_model(model)
    with pytest.raises(ExplainError, match="have 1 channels and the model takes 3"):
        callback.on_train_begin()
    resized = ExplainCallback(np.zeros((2, 20, 24, 3)))
    resized.set_model(model)
    with pytest.warns(UserWarning, match="20x24 resized to the model's 16x16"):
        resized.on_train_begin()
    assert resized.images.shape == (2, 16, 16, 3)
    assert keras.callbacks.Callback in type(resized).__mro__


def test_training_cli_explains_every_epoch(tmp_path, capsys):
    from PIL import Image

    from training.__main__ import main

    rng = np.random.default_rng(0)
    for c, name in enumerate(("dark", "light")):
        (tmp_path / "data" / name).mkdir(parents=True)
        for k in range(20):
            Image.fromarray(rng.integers(c * 128, c * 128 + 128, (12, 12, 3), dtype=np.uint8)).save(
                tmp_path / "data" / name / f"{k}.png")
    out = tmp_path / "m.keras"
    code = main(["train", "--data", str(tmp_path / "data"), "--image-size", "12", "12", "--epochs", "3",
                 "--patience", "0", "--batch-size", "8", "--explain-every", "1", "--explain-images", "4",
                 "--tensorboard", str(tmp_path / "tb"), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    import json

    card = json.loads(out.with_suffix(".json").read_text())
    strip = np.asarray(Image.open(out.parent / card["explain"]["strip"]))
    assert card["explain"]["epochs"] == [1, 2, 3] and card["explain"]["images"] == 4
    assert (strip.shape[1] + 4) // (CELL + 4) == 4 and (strip.shape[0] + 4) // (CELL + CAPTION + 4) == 4
    assert set(_events(tmp_path / "tb")) == {f"gradcam/image_{i}" for i in range(4)}
    code = main(["train", "--data", str(tmp_path / "data"), "--image-size", "12", "12", "--epochs", "1",
                 "--tensorboard", str(tmp_path / "tb2"), "--out", str(tmp_path / "n.keras")])
    assert code == 2 and "give --explain-every N too" in capsys.readouterr().err


def test_tensorboard_lists_the_image_tags_over_http(tmp_path):
    """TensorBoard given ``--logdir DIR``, fetched with a plain HTTP client, lists the callback's image tags.

    TensorBoard's own program (``tensorboard.program``, the ``tensorboard`` command's code, with the same
    flags), launched in this process: a ``tensorboard`` subprocess spends 10 s importing TensorFlow again."""
    import json
    import urllib.request

    program = pytest.importorskip("tensorboard.program")
    model = tiny_sequential(channels=3, size=16)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _data(n=16)
    model.fit(x, y % 3, epochs=1, verbose=0, callbacks=[ExplainCallback(x[:2], log_dir=tmp_path / "tb")])
    board = program.TensorBoard()
    # the event files read once, before the server answers (no reload thread left behind)
    board.configure(argv=[None, "--logdir", str(tmp_path / "tb"), "--host", "127.0.0.1", "--port", "0",
                          "--reload_interval", "0", "--reload_task", "blocking"])
    url = board.launch()
    with urllib.request.urlopen(f"{url.rstrip('/')}/data/plugin/images/tags", timeout=30) as r:
        tags = json.loads(r.read())
    assert set(tags["."]) == {"gradcam/image_0", "gradcam/image_1"}, tags
