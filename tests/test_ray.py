"""The Ray engine (explain.dataset.ray_engine, the ``[scale]`` extra): the same rows as the local engine on a
local Ray with 2 CPUs, the planted Clever Hans found with ``--engine ray``, and the refusals (Ray missing,
RAY_ADDRESS unreachable, data or model it cannot send)."""

from __future__ import annotations

import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import tiny_sequential
from PIL import Image
from planted import REGION

import explain
from explain.dataset import ray_engine
from explain.dataset.ray_engine import attribute_dataset_ray
from explain.errors import ExplainError

CLASSES = ("a", "b", "c")


@pytest.fixture(scope="module")
def ray():
    ray = pytest.importorskip("ray")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for i in range(30):
        d = root / CLASSES[i % 3]
        d.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(d / f"{i:03d}.png")
    (root / "a" / "broken.png").write_bytes(b"not an image")  # skipped by both engines
    return root


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tiny_sequential().save(path)
    return path


def test_ray_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ExplainError, match=r'pip install -e "\.\[scale\]"') as e:
        ray_engine.connect()
    assert "\n" not in str(e.value)


def test_an_unreachable_ray_address_is_one_line_and_quick(monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")  # the discard port: nothing listens
    import ray

    if ray.is_initialized():
        pytest.skip("Ray already running in this process")
    with pytest.raises(ExplainError, match=r"RAY_ADDRESS=127\.0\.0\.1:9 is unreachable .*ray start --head") as e:
        ray_engine.connect()
    assert "\n" not in str(e.value)


def _same_rows(local, remote, rows: int, added: tuple[str, ...] = ()) -> None:
    """The two tables (Parquet paths) hold the same rows, schema and metadata, to float rounding; ``added``: columns
    only ``remote`` has (the audit's ``cluster`` and ``share``)."""
    a, b = pq.read_table(local), pq.read_table(remote)
    assert set(added) <= set(b.column_names)
    b = b.drop_columns(list(added))
    assert b.num_rows == a.num_rows == rows and b.schema.equals(a.schema, check_metadata=False)
    for col in ("id", "path", "true", "pred", "explained", "h", "w"):
        assert a.column(col).to_pylist() == b.column(col).to_pylist(), col
    for col in ("heatmap", "features"):
        np.testing.assert_allclose(np.array(b.column(col).to_pylist()), np.array(a.column(col).to_pylist()),
                                   atol=1e-5, rtol=1e-5)  # fmt: skip
    np.testing.assert_allclose(b.column("confidence").to_numpy(), a.column("confidence").to_numpy(), atol=1e-6)
    assert a.schema.metadata == b.schema.metadata


def test_ray_rows_equal_the_local_rows(ray, folder, model_file, tmp_path):
    """Grad-CAM (a target layer resolved on each worker); saliency's rows are compared on the planted data set
    in :func:`test_the_cli_finds_the_planted_clever_hans_on_ray` (each Ray run starts its actors: ~20 s)."""
    model = explain.load_model(model_file)
    local = explain.attribute_dataset(model, str(folder), method="gradcam", out=tmp_path / "l.parquet",
                                      class_names=CLASSES, batch_size=8, progress=False)  # fmt: skip
    remote = attribute_dataset_ray(model_file, str(folder), model=model, method="gradcam", out=tmp_path / "r.parquet",
                                   class_names=CLASSES, batch_size=8, progress=False)  # fmt: skip
    _same_rows(local, remote, 30)
    assert not (tmp_path / "r.parquet.ray").exists()


def test_ray_refuses_what_it_cannot_send(ray, folder, model_file, tmp_path):
    model = explain.load_model(model_file)
    with pytest.raises(ExplainError, match="folder of class subfolders"):
        attribute_dataset_ray(model_file, "fashion_mnist:test", model=model, out=tmp_path / "x.parquet")
    with pytest.raises(ExplainError, match="model FILE"):
        attribute_dataset_ray(tmp_path, str(folder), model=model, out=tmp_path / "x.parquet")
    with pytest.raises(ExplainError, match="Unknown method"):
        attribute_dataset_ray(model_file, str(folder), model=model, method="gradcm", out=tmp_path / "x.parquet")


def test_the_cli_finds_the_planted_clever_hans_on_ray(ray, tmp_path, capsys, planted_clever_hans):
    from explain.cli.audit import main

    planted = planted_clever_hans
    region = ",".join(str(v) for v in REGION)
    code = main([str(planted.model_path), str(planted.test_dir), "--out", str(tmp_path / "audit"), "--engine", "ray",
                 "--region", region, "--projection", "none", "--no-progress"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.split("Looking most at the")[1].splitlines()[1].strip().startswith("shirt cluster"), out
    # its rows (saliency, the audit's method, explaining the true class) are the local engine's
    local = explain.attribute_dataset(explain.load_model(planted.model_path), str(planted.test_dir), method="saliency",
                                      target="true", out=tmp_path / "local.parquet", progress=False)  # fmt: skip
    _same_rows(local, tmp_path / "audit" / "explanations.parquet", 400, added=("cluster", "share"))
