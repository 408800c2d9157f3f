"""Issue 7: the bad-input list (docs/architecture.md, errors) through every entry point.

The Python API, the CLIs (``main(argv)`` in process, plus each run as ``python -m``, one in a real
process, to prove no traceback reaches stderr) and the dashboard (AppTest). Each case asserts the clear
message, exit code 2 for a CLI, no traceback, and no file left half-written.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import DEMO_MODEL, LFS_POINTER, ROOT, random_image, tiny_sequential, write_config_bomb
from PIL import Image
from test_images import _png_header

import explain
import explain.archives
import explain.models
from explain import METHODS, ExplainError, ImageLoadError, LayerError, ModelLoadError

L = keras.layers


# --------------------------------------------------------------------------- bad files, built once
def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _jpeg(h=200, w=200) -> bytes:
    return _save(random_image(h=h, w=w), "JPEG")


def _exif_rotated() -> bytes:
    """A 20 (wide) x 10 (high) JPEG whose EXIF says 'rotate 90 degrees clockwise to view'."""
    img = random_image(h=10, w=20)
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(img, "JPEG", exif=exif.tobytes())


def _animated_gif() -> bytes:
    red = Image.new("RGB", (12, 12), (255, 0, 0))
    blue = Image.new("RGB", (12, 12), (0, 0, 255))
    return _save(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)


def _sixteen_bit() -> bytes:
    arr = (np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 250).astype(np.uint16)
    return _save(Image.fromarray(arr), "PNG")  # uint16 -> mode I;16


#: name -> (bytes, message fragment the error must carry)
#: (file names are neutral so that a message cannot pass by quoting the name)
BAD_IMAGES = {
    "zero.jpg": (b"", "empty"),
    "notes.jpg": (b"hello, I am a text file renamed .jpg" * 5, "not an image"),
    "half.jpg": (_jpeg()[:1500], "truncated"),
    "huge_header.png": (_png_header(30000, 30000), "decompression bomb"),
    "dot.png": (_save(Image.new("RGB", (1, 1)), "PNG"), "at least 2 pixels"),
}

#: name -> bytes that must load (odd modes, EXIF, animation, a huge photo is separate)
GOOD_IMAGES = {
    "rgba.png": _save(random_image(mode="RGBA"), "PNG"),
    "palette.png": _save(random_image().convert("P"), "PNG"),
    "la.png": _save(random_image(mode="LA"), "PNG"),
    "cmyk.jpg": _save(random_image(mode="CMYK"), "JPEG"),
    "sixteen.png": _sixteen_bit(),
    "exif.jpg": _exif_rotated(),
    "animated.gif": _animated_gif(),
    "two_by_two.png": _save(Image.new("L", (2, 2), 128), "PNG"),
    "gray.png": _save(random_image(mode="L"), "PNG"),
}


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


def _one_error_line(err: str, prog: str, fragment: str) -> None:
    _no_traceback(err)
    first = err.strip().splitlines()[0]
    assert first.startswith(f"{prog}: error:"), err
    assert fragment.lower() in err.lower(), err


def _leftovers(folder: Path) -> list[str]:
    """Temporary or partial files an atomic writer could leave behind."""
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name or "~" in p.name)


# --------------------------------------------------------------------------- bad models, built once
@keras.saving.register_keras_serializable(package="hardening")
class Tripler(keras.layers.Layer):
    def call(self, x):
        return x * 3


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hard_models")
    paths: dict[str, Path] = {}

    def save(name: str, model: keras.Model) -> None:
        paths[name] = d / f"{name}.keras"
        model.save(paths[name])

    save("rgb", tiny_sequential(channels=3, size=16))
    save("gray", tiny_sequential(channels=1, size=16))
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(2048, 1, name="wide")(inp)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    save("wide", keras.Model(inp, L.Dense(3, activation="softmax", name="out")(x)))
    inp = keras.Input((8, 8, 3))
    x = L.Flatten(name="flat")(inp)
    save("dense", keras.Model(inp, L.Dense(3, activation="softmax", name="out")(L.Dense(4, name="h")(x))))
    nan = tiny_sequential(channels=3, size=16)
    nan.set_weights([np.full(w.shape, np.nan, np.float32) for w in nan.get_weights()])
    save("nan", nan)

    # not a model: a Git LFS pointer, a config bomb, a SavedModel folder, a text file, a truncated archive
    paths["lfs"] = d / "pointer.keras"
    paths["lfs"].write_text(LFS_POINTER)
    paths["config_bomb"] = d / "config_bomb.keras"
    write_config_bomb(paths["rgb"], paths["config_bomb"])
    # input layouts explain cannot read as an image: 4 channels first, 1000 flat values
    save("channels_first_4", keras.Sequential([keras.Input((4, 8, 8)), L.Conv2D(2, 3, data_format="channels_first")]))
    save("flat_1000", keras.Sequential([keras.Input((1000,)), L.Dense(3, activation="softmax")]))
    # a custom layer, and trusted code that does not define it or that fails to import
    save("custom", keras.Sequential([keras.Input((8, 8, 3)), Tripler(name="tripler"), L.Flatten(), L.Dense(3)]))
    paths["no_class.py"] = d / "no_class.py"
    paths["no_class.py"].write_text("import keras\n\nclass Doubler(keras.layers.Layer):\n    pass\n")
    paths["fails.py"] = d / "fails.py"
    paths["fails.py"].write_text("import no_such_module_here\n")
    paths["savedmodel"] = d / "exported"
    tiny_sequential().export(paths["savedmodel"], verbose=False)
    paths["text"] = d / "notes.keras"
    paths["text"].write_text("not a zip file")
    paths["empty"] = d / "zero.keras"
    paths["empty"].write_bytes(b"")
    paths["truncated"] = d / "half.keras"
    full = paths["rgb"].read_bytes()
    paths["truncated"].write_bytes(full[: len(full) // 2])
    paths["noconfig"] = d / "noconfig.keras"
    with zipfile.ZipFile(paths["noconfig"], "w") as zf:
        zf.writestr("hello.txt", "hi")

    # a zip bomb: a real config.json plus 20 MB of zeros deflated over 1000:1
    paths["bomb"] = d / "bomb.keras"
    with zipfile.ZipFile(paths["rgb"]) as src, zipfile.ZipFile(paths["bomb"], "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", src.read("config.json"))
        zf.writestr("metadata.json", src.read("metadata.json"))
        with zf.open("model.weights.h5", "w", force_zip64=True) as f:
            chunk = b"\0" * 2**20
            for _ in range(20):
                f.write(chunk)
    return paths


@pytest.fixture(scope="module")
def lambda_model(tmp_path_factory) -> tuple[Path, Path]:
    """A .keras file whose Lambda writes a marker file when its code runs."""
    d = tmp_path_factory.mktemp("lambda")
    marker = d / "lambda_ran.txt"
    # the path must be a constant inside the lambda's own bytecode, which is what Keras serialises
    fn = eval(f"lambda t: (open({str(marker)!r}, 'w').write('ran'), t)[1]")
    fn(np.zeros(1))
    assert marker.read_text() == "ran"  # honest: the code does write when it runs
    marker.unlink()
    inp = keras.Input((8, 8, 1))
    model = keras.Model(inp, L.Lambda(fn, name="evil")(inp))
    marker.unlink(missing_ok=True)  # building the graph called it once
    path = d / "lambda.keras"
    model.save(path)
    marker.unlink(missing_ok=True)
    return path, marker


# =========================================================================== Python API
@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_api_bad_images(name, tmp_path):
    data, message = BAD_IMAGES[name]
    with pytest.raises(ImageLoadError, match=message):
        explain.load_image(data)
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageLoadError, match=message):
        explain.load_image(path, target_size=(16, 16), channels=1)


def test_api_decompression_bomb_refused_from_its_header(monkeypatch):
    def no_decoding(self, *a, **k):
        raise AssertionError("the bomb was decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        explain.load_image(_png_header(30000, 30000))
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 0.5 and peak < 5 * 2**20, (elapsed, peak)


@pytest.mark.parametrize("name", sorted(GOOD_IMAGES))
@pytest.mark.parametrize("channels", [1, 3])
def test_api_odd_images_load(name, channels):
    arr = explain.load_image(GOOD_IMAGES[name], target_size=(16, 16), channels=channels)
    assert arr.dtype == np.uint8 and arr.shape == (16, 16, channels)


def test_api_exif_rotation_and_first_gif_frame():
    assert explain.load_image(GOOD_IMAGES["exif.jpg"]).shape == (20, 10, 3)  # upright: taller than wide
    first = explain.load_image(GOOD_IMAGES["animated.gif"])
    assert first[..., 0].mean() > 200 and first[..., 2].mean() < 50  # the red first frame


def test_api_sixteen_bit_keeps_its_range():
    arr = explain.load_image(GOOD_IMAGES["sixteen.png"], channels=1)
    assert arr.min() == 0 and arr.max() > 200


def test_api_huge_photo_is_resized(tmp_path):
    path = tmp_path / "huge.jpg"
    random_image(h=3000, w=4000).save(path, quality=70)
    arr = explain.load_image(path, target_size=(28, 28), channels=1)
    assert arr.shape == (28, 28, 1)


def test_api_grayscale_image_to_rgb_model_and_reverse(models):
    rgb, gray = explain.load_model(models["rgb"]), explain.load_model(models["gray"])
    g = explain.load_image(GOOD_IMAGES["gray.png"], target_size=(16, 16), channels=3)
    c = explain.load_image(GOOD_IMAGES["rgba.png"], target_size=(16, 16), channels=1)
    names = ["a", "b", "c"]
    assert explain.predict(rgb, g, names)[0].probabilities.shape == (3,)
    assert explain.predict(gray, c, names)[0].probabilities.shape == (3,)
    with pytest.raises(ValueError, match="do not fit the model input"):  # the wrong channels, unconverted
        METHODS["saliency"](rgb)(c[None])


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("lfs", "is a Git LFS pointer .*git lfs pull"),
        ("config_bomb", "config bomb"),
        ("savedmodel", "SavedModel directory"),
        ("text", "not a '.keras' archive"),
        ("empty", "empty"),
        ("truncated", "truncated"),
        ("noconfig", "no config.json"),
        ("bomb", "zip bomb"),
    ],
)
def test_api_bad_model_files(models, key, message):
    with pytest.raises(ModelLoadError, match=message):
        explain.load_model(models[key])


def test_api_zip_bomb_total_size_and_ratio_guards(models, monkeypatch):
    with pytest.raises(ModelLoadError, match=r"compressed \d+:1"):
        explain.load_model(models["bomb"])  # 20 MB at over 1000:1: the ratio guard
    monkeypatch.setattr(explain.archives, "MAX_UNCOMPRESSED_BYTES", 10 * 2**20)
    with pytest.raises(ModelLoadError, match="would unpack to"):
        explain.load_model(models["bomb"])  # the total-size guard


def test_api_missing_model_file(tmp_path):
    with pytest.raises(ModelLoadError, match="No such model file"):
        explain.load_model(tmp_path / "nope.keras")


def test_api_lambda_refused_without_running_its_code(lambda_model):
    path, marker = lambda_model
    with pytest.raises(ModelLoadError, match="Lambda"):
        explain.load_model(path)
    assert not marker.exists()


def test_api_layers(models):
    model = explain.load_model(models["rgb"])
    with pytest.raises(LayerError, match="out of range"):
        explain.resolve_layer(model, 99)
    with pytest.raises(LayerError, match="out of range"):
        explain.resolve_layer(model, -99)
    with pytest.raises(LayerError, match="No such layer: 'nope'"):
        explain.resolve_layer(model, "nope")
    info = explain.resolve_layer(model, "hidden")
    assert not info.is_spatial
    acts = explain.compute_activations(model, np.zeros((16, 16, 3), np.uint8), ["hidden"])["hidden"][0]
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        explain.feature_map_grid(acts)


def test_api_thousands_of_channels(models):
    model = explain.load_model(models["wide"])
    acts = explain.compute_activations(model, np.zeros((8, 8, 3), np.uint8) + 7, ["wide"])["wide"][0]
    assert acts.shape == (8, 8, 2048)
    fig = explain.feature_map_grid(acts, max_maps=64)
    assert "showing 64 of 2048" in fig.axes[0].get_title()


def test_api_gradcam_without_conv_and_class_out_of_range(models):
    dense = explain.load_model(models["dense"])
    with pytest.raises(LayerError, match="convolutional layer"):
        METHODS["gradcam"](dense)
    for name in ("gradcam", "scorecam"):
        with pytest.raises(LayerError):
            METHODS[name](dense)
    rgb = explain.load_model(models["rgb"])
    image = np.zeros((1, 16, 16, 3), np.float32)
    for name in ("gradcam", "saliency"):
        with pytest.raises(ExplainError, match="Class index 7 is out of range"):
            METHODS[name](rgb)(image, class_index=7)
        with pytest.raises(ExplainError, match="out of range"):
            METHODS[name](rgb)(image, class_index=-1)


def test_api_wrong_image_shape_for_method(models):
    rgb = explain.load_model(models["rgb"])
    with pytest.raises(ValueError, match="do not fit the model input"):
        METHODS["gradcam"](rgb)(np.zeros((1, 16, 16, 1), np.float32))


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "saliency", "integrated_gradients"])
def test_api_nan_weights_never_draw_nan(models, method):
    model = explain.load_model(models["nan"])
    image = np.full((1, 16, 16, 3), 100, np.float32)
    with pytest.raises(ValueError, match="not finite"):
        explain.predict(model, image[0], ["a", "b", "c"])
    try:
        result = METHODS[method](model)(image, class_index=0)
    except ExplainError as e:  # a clear error is fine too
        assert "finite" in str(e) or "NaN" in str(e)
        return
    assert np.isfinite(result.heatmap).all()
    assert result.flat.all()


# =========================================================================== CLIs in process
def _run_cli(main, argv, capsys) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


LAYERS_PROG = "python -m explain.layers"
ATTR_PROG = "python -m explain.attribute"
REPORT_PROG = "python -m explain.report"
TRAIN_PROG = "python -m training"
FILTERS_PROG = "python -m explain.filters"


def _write_bad_images(folder: Path) -> dict[str, Path]:
    paths = {}
    for name, (data, _) in BAD_IMAGES.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    return paths


BAD_MODEL_MESSAGES = {
    "lfs": "Git LFS pointer",
    "config_bomb": "config bomb",
    "channels_first_4": "channels-first images (4, 8, 8) with 4 channels",
    "flat_1000": "flat vectors of 1000 values",
    "custom": "uses custom code: 'hardening>Tripler' (layer 'tripler')",
    "savedmodel": "SavedModel directory",
    "text": "not a '.keras' archive",
    "truncated": "truncated",
    "bomb": "zip bomb",
}


def test_layers_cli_bad_inputs(models, lambda_model, tmp_path, capsys):
    from explain.layers import main

    imgs = _write_bad_images(tmp_path)
    good = tmp_path / "good.png"
    good.write_bytes(GOOD_IMAGES["rgba.png"])
    out = tmp_path / "out" / "grid.png"
    out.parent.mkdir()
    cases = [([models["rgb"], imgs[n], "--layer", 1], BAD_IMAGES[n][1]) for n in BAD_IMAGES]
    cases += [([models[k], good, "--layer", 1], m) for k, m in BAD_MODEL_MESSAGES.items()]
    cases += [
        ([lambda_model[0], good, "--layer", 1], "Lambda"),
        ([models["custom"], good, "--layer", 1, "--trust-code", models["no_class.py"]], "does not define: 'hardening"),
        ([models["custom"], good, "--layer", 1, "--trust-code", models["fails.py"]], "raised ModuleNotFoundError"),
        ([models["rgb"], good, "--layer", 99], "out of range"),
        ([models["rgb"], good, "--layer", "nope"], "No such layer"),
        ([models["rgb"], good, "--layer", "hidden"], "no feature maps"),
        ([models["rgb"], good, "--layer", 1, "--max-maps", 0], "--max-maps"),
        ([models["rgb"], tmp_path / "missing.png", "--layer", 1], "No such image file"),
    ]
    for argv, message in cases:
        code, _, err = _run_cli(main, [*argv, "--out", out], capsys)
        assert code == 2, (argv, err)
        _no_traceback(err)
        assert message.lower() in err.lower(), (argv, err)
        assert not out.exists() and not _leftovers(out.parent), argv
    assert not lambda_model[1].exists()
    test_layers_cli_bad_inputs.count = len(cases)


def test_layers_cli_thousands_of_channels_and_odd_images(models, tmp_path, capsys):
    from explain.layers import main

    img = tmp_path / "cmyk.jpg"
    img.write_bytes(GOOD_IMAGES["cmyk.jpg"])
    out = tmp_path / "grid.png"
    code, stdout, err = _run_cli(main, [models["wide"], img, "--layer", "wide", "--out", out], capsys)
    assert code == 0, err
    assert "64 of 2048 feature maps" in stdout and out.exists()
    gray = tmp_path / "gray.png"
    gray.write_bytes(GOOD_IMAGES["gray.png"])
    assert _run_cli(main, [models["rgb"], gray, "--layer", 1, "--out", out], capsys)[0] == 0


def test_attribute_cli_bad_inputs(models, lambda_model, tmp_path, capsys):
    from explain.attribute import main

    imgs = _write_bad_images(tmp_path)
    good = tmp_path / "good.png"
    good.write_bytes(GOOD_IMAGES["palette.png"])
    out = tmp_path / "out" / "a.png"
    npy = tmp_path / "out" / "a.npy"
    out.parent.mkdir()
    cases = [([models["rgb"], imgs[n]], BAD_IMAGES[n][1]) for n in BAD_IMAGES]
    cases += [([models[k], good], m) for k, m in BAD_MODEL_MESSAGES.items()]
    cases += [
        ([lambda_model[0], good], "Lambda"),
        ([models["rgb"], good, "--layer", 99], "out of range"),
        ([models["rgb"], good, "--layer", "nope"], "No such layer"),
        ([models["dense"], good], "convolutional layer"),
        ([models["rgb"], good, "--class", 7], "out of range"),
        ([models["rgb"], good, "--class", "zebra"], "No class named"),
        ([models["rgb"], good, "--alpha", 3], "--alpha"),
        ([models["rgb"], good, "--method", "nope"], "invalid choice"),
    ]
    for argv, message in cases:
        code, _, err = _run_cli(main, [*argv, "--out", out, "--npy", npy], capsys)
        assert code == 2, (argv, err)
        _no_traceback(err)
        assert message.lower() in err.lower(), (argv, err)
        assert not out.exists() and not npy.exists() and not _leftovers(out.parent), argv
    assert not lambda_model[1].exists()
    # NaN weights: a flat heatmap or a clear error, never a crash
    code, stdout, err = _run_cli(main, [models["nan"], good, "--class", 0, "--out", out], capsys)
    _no_traceback(err)
    assert (code == 0 and "flat heatmap" in stdout) or (code == 2 and "finite" in err), (code, stdout, err)
    test_attribute_cli_bad_inputs.count = len(cases) + 1


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory) -> Path:
    """Two classes of six small PNGs, the second holding two corrupt files."""
    root = tmp_path_factory.mktemp("folder")
    for k, name in enumerate(("a", "b")):
        (root / name).mkdir()
        for i in range(6):
            random_image(h=12, w=12, seed=10 * k + i).save(root / name / f"{i}.png")
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (root / "b" / "empty.jpg").write_bytes(b"")
    return root


def test_report_cli_bad_inputs(models, lambda_model, class_folder, tmp_path, capsys):
    from explain.cli.report import main

    empty = tmp_path / "empty_data"
    (empty / "class 0").mkdir(parents=True)
    out = tmp_path / "report"
    cases = [([models[k], class_folder], m) for k, m in BAD_MODEL_MESSAGES.items()]
    cases += [
        ([lambda_model[0], class_folder], "Lambda"),
        ([models["rgb"], tmp_path / "no_such_folder"], "no such"),
        ([models["rgb"], empty], "no image files"),
        ([models["rgb"], "nope:test"], "nope"),
        ([models["rgb"], class_folder, "--batch-size", 0], "--batch-size"),
    ]
    for argv, message in cases:
        code, _, err = _run_cli(main, [*argv, "--out", out, "--no-progress"], capsys)
        assert code == 2, (argv, err)
        _no_traceback(err)
        assert message.lower() in err.lower(), (argv, err)
        assert not out.exists() or not any(out.iterdir()), argv
    assert not lambda_model[1].exists()
    test_report_cli_bad_inputs.count = len(cases)


def test_training_cli_bad_inputs(tmp_path, class_folder, capsys):
    from training.__main__ import main

    empty = tmp_path / "empty"
    empty.mkdir()
    single = tmp_path / "single"
    (single / "only").mkdir(parents=True)
    random_image(h=12, w=12).save(single / "only" / "a.png")
    hollow = tmp_path / "hollow"
    (hollow / "a").mkdir(parents=True)
    (hollow / "b").mkdir()
    random_image(h=12, w=12).save(hollow / "a" / "a.png")
    out = tmp_path / "out" / "m.keras"
    common = ["--image-size", 12, 12, "--architecture", "mlp", "--epochs", 1]
    cases = [
        (["train", "--data", empty, *common], "class"),
        (["train", "--data", single, *common], "class"),
        (["train", "--data", hollow, *common], "b"),
        (["train", "--data", tmp_path / "nope", *common], "No such folder"),
        (["train", "--dataset", "fashion_mnist", "--data-dir", empty, "--epochs", 1], "IDX"),
        (["train", "--data", class_folder, "--epochs", 0], "--epochs"),
        (["train", "--data", class_folder, "--validation-split", 1.5], "--validation-split"),
    ]
    for argv, message in cases:
        code, _, err = _run_cli(main, [*argv, "--out", out], capsys)
        assert code == 2, (argv, err)
        _no_traceback(err)
        assert message.lower() in err.lower(), (argv, err)
        assert not out.parent.exists() or not any(out.parent.iterdir()), argv
    code, _, err = _run_cli(main, ["train", "--data", class_folder, *common, "--out", tmp_path / "o.h5"], capsys)
    assert code == 2 and "--out must end in .keras" in err, err
    assert not (tmp_path / "o.h5").exists()
    test_training_cli_bad_inputs.count = len(cases) + 1


def test_training_cli_skips_corrupt_files_inside_the_folder(tmp_path, class_folder, capsys):
    from training.__main__ import main

    out = tmp_path / "m.keras"
    argv = ["train", "--data", class_folder, "--image-size", 12, 12, "--architecture", "mlp", "--epochs", 1]
    code, stdout, err = _run_cli(main, [*argv, "--batch-size", 4, "--out", out], capsys)
    assert code == 0, err
    _no_traceback(err)
    said = stdout + err
    assert "broken.png" in said and "empty.jpg" in said
    assert out.exists() and explain.load_model(out)


# =========================================================================== python -m, each CLI
def _subprocess(args: list, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", *[str(a) for a in args]], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _as_main(args: list, capsys) -> tuple[int, str]:
    """``python -m MODULE ARGS`` in this process, as Python runs it (``runpy``: the module found as
    ``python -m`` finds it, run as ``__main__``): its exit code and what it wrote to stderr."""
    import runpy
    import warnings

    module, *rest = [str(a) for a in args]
    capsys.readouterr()
    argv = sys.argv
    sys.argv = [module, *rest]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "found in sys.modules": imported by other tests
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = argv
    return code, capsys.readouterr().err


def test_cli_processes_print_no_traceback(models, lambda_model, saved_models, tmp_path, capsys):
    """Each CLI run as ``python -m``: exit 2, one error line, no traceback on stderr. ``training`` as a real
    process: a fresh interpreter, where TensorFlow's import noise must not come first. It imports the whole
    ``explain`` package before it fails (``explain/__init__``, whose quiet import every ``explain.<command>``
    also starts with), so the one process covers their start too; the commands' ``python -m`` (the
    module found by ``explain``'s command finder, run as ``__main__``) runs in this process (a process
    costs 6 s of imports on 2 cores). Their other messages are checked in process (``main(argv)``) in their
    own test files."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(BAD_IMAGES["huge_header.png"][0])
    runs = [
        (["explain.layers", models["rgb"], bomb, "--layer", 1], LAYERS_PROG, "decompression bomb", False),
        (["training", "--data", tmp_path / "nope", "--out", tmp_path / "m.keras"], TRAIN_PROG, "No such folder", True),
        (["explain.attribute", lambda_model[0], bomb], ATTR_PROG, "Lambda", False),
        (["explain.report", models["truncated"], tmp_path], REPORT_PROG, "truncated", False),
        (["explain.filters", saved_models["sequential"], "--layer", "gap"], FILTERS_PROG, "Layer 'gap' (GlobalAv",
         False),
    ]
    for args, prog, message, real in runs:  # one by one: on 2 cores, TensorFlow's imports side by side are slower
        if real:
            proc = _subprocess(args, tmp_path)
            code, err = proc.returncode, proc.stderr
        else:
            code, err = _as_main(args, capsys)
        assert code == 2, (args, err)
        _one_error_line(err, prog, message)
    assert not lambda_model[1].exists()
    assert not (tmp_path / "m.keras").exists()


# =========================================================================== the dashboard
@pytest.mark.skipif(not DEMO_MODEL.exists(), reason="the bundled demo model is missing")
def test_dashboard_bad_uploads(models, lambda_model, monkeypatch):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.selectbox(key="image_choice").set_value("Upload…").run()
    tried = 0
    for name, (data, message) in BAD_IMAGES.items():
        at.file_uploader(key="image_upload").set_value((name, data, "image/jpeg")).run()
        tried += 1
        assert not at.exception, at.exception
        assert at.error and message in at.error[0].value, [e.value for e in at.error]
    for name, data in GOOD_IMAGES.items():
        at.file_uploader(key="image_upload").set_value((name, data, "image/png")).run()
        tried += 1
        assert not at.exception and not at.error, (name, [e.value for e in at.error])

    at.selectbox(key="model_choice").set_value("Upload…").run()
    model_cases = [
        ("pointer.keras", models["lfs"].read_bytes(), "Git LFS pointer"),
        ("config_bomb.keras", models["config_bomb"].read_bytes(), "config bomb"),
        ("cf4.keras", models["channels_first_4"].read_bytes(), "with 4 channels"),
        ("flat.keras", models["flat_1000"].read_bytes(), "flat vectors of 1000 values"),
        ("custom.keras", models["custom"].read_bytes(), "uses custom code"),
        ("half.keras", models["truncated"].read_bytes(), "truncated"),
        ("noconfig.keras", models["noconfig"].read_bytes(), "no config.json"),
        ("bomb.keras", models["bomb"].read_bytes(), "zip bomb"),
        ("lambda.keras", lambda_model[0].read_bytes(), "Lambda"),
    ]
    for name, data, message in model_cases:
        at.file_uploader(key="model_upload").set_value((name, data, "application/octet-stream")).run()
        tried += 1
        assert not at.exception, at.exception
        assert at.error and message in at.error[0].value, (name, [e.value for e in at.error])
    assert not lambda_model[1].exists()
    # NaN weights and thousands of channels: the app stays up
    for key in ("nan", "wide", "dense"):
        at.file_uploader(key="model_upload").set_value((f"{key}.keras", models[key].read_bytes(), "x")).run()
        tried += 1
        assert not at.exception, (key, at.exception)
        _no_traceback(" ".join(e.value for e in at.error))
    test_dashboard_bad_uploads.count = tried


# --------------------------------------------------------------------------- multi-input / multi-output
def _multi_input_model():
    a, b = keras.Input((16, 16, 3)), keras.Input((16, 16, 3))
    x = keras.layers.Concatenate()([a, b])
    x = keras.layers.Conv2D(2, 3, name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model([a, b], keras.layers.Dense(3, activation="softmax")(x))


def _multi_output_model():
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(2, 3, name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, [keras.layers.Dense(3, activation="softmax")(x), keras.layers.Dense(2)(x)])


def test_multi_input_model_is_refused_clearly(tmp_path, capsys):
    from explain import ModelLoadError, load_model_card
    from explain.layers import main as layers_main

    path = tmp_path / "two_inputs.keras"
    _multi_input_model().save(path)
    with pytest.raises(ModelLoadError, match="2 inputs"):
        load_model_card(path, explain.load_model(path))
    assert layers_main([str(path), str(tmp_path / "x.png"), "--layer", "1"]) == 2
    err = capsys.readouterr().err
    assert "2 inputs" in err and "Traceback" not in err


def test_multi_output_model_gets_a_clear_attribution_error(tmp_path, capsys):
    from explain.attribute import main as attribute_main
    from explain.attribution import GradCAM

    model = _multi_output_model()
    with pytest.raises(explain.ExplainError, match="2 outputs"):
        GradCAM(model)
    path = tmp_path / "two_outputs.keras"
    model.save(path)
    img = tmp_path / "i.png"
    Image.new("RGB", (16, 16), (10, 200, 30)).save(img)
    assert attribute_main([str(path), str(img), "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert "2 outputs" in err and "Traceback" not in err and not (tmp_path / "o.png").exists()
