"""SpRAy and where the model looks (explain.dataset.spray, explain.dataset.audit, python -m explain.audit):
the numbers of each step against computations written here, a planted Clever Hans found (and not found on a
clean model), the files written, and the refusals."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from planted import MARKED_CLASS, REGION, make_planted

import explain
from explain.dataset.audit import audit
from explain.dataset.explanations import table_schema
from explain.dataset.spray import (
    choose_clusters,
    normalize_maps,
    parse_region,
    region_weights,
    relevance_share,
    resize_maps,
    spray,
)
from explain.errors import ExplainError


# -- the steps, by hand ------------------------------------------------------------------------------
def test_shrinking_averages_areas_and_keeps_the_total():
    m = np.arange(49, dtype=np.float32).reshape(1, 7, 7)
    out = resize_maps(m, (1, 1))
    assert out[0, 0, 0] == pytest.approx(m.mean())
    two = resize_maps(np.ones((1, 4, 4)), (2, 2))
    np.testing.assert_allclose(two, np.ones((1, 2, 2)))
    # 4 -> 2 is a 2x2 block mean
    m4 = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    np.testing.assert_allclose(resize_maps(m4, (2, 2))[0], m4[0].reshape(2, 2, 2, 2).mean(axis=(1, 3)))


def test_enlarging_is_bilinear_between_cell_centres():
    m = np.array([[[0.0, 1.0]]])  # 1 x 2
    out = resize_maps(m, (1, 4))[0, 0]
    np.testing.assert_allclose(out, [0.0, 0.25, 0.75, 1.0])


def test_relevance_share_weights_each_cell_by_its_area_inside():
    maps = np.zeros((2, 4, 4))
    maps[0, 0, 0] = 1.0  # all in the corner cell
    maps[1] = 1.0  # uniform
    share = relevance_share(maps, region=(0, 0, 0.125, 0.125))  # half of the corner cell's side
    np.testing.assert_allclose(share, [0.25, 1 / 64], rtol=1e-6)
    border = relevance_share(maps, border=0.25)  # the outer ring of a 4x4 map: 12 of 16 cells
    np.testing.assert_allclose(border, [1.0, 12 / 16], rtol=1e-6)
    # the same picture at two resolutions gives the same share
    fine = np.kron(maps[0], np.ones((7, 7)))[None]
    assert relevance_share(fine, region=(0, 0, 0.125, 0.125))[0] == pytest.approx(0.25, rel=1e-6)
    assert region_weights(2, 2, region=(0, 0, 1, 1)).sum() == pytest.approx(4)


def test_normalisations():
    m = np.array([[[3.0, -1.0]], [[0.0, 0.0]]], np.float32)
    np.testing.assert_allclose(normalize_maps(m, "sum")[0], [[0.75, -0.25]])
    np.testing.assert_allclose(normalize_maps(m, "max")[0], [[1.0, -1 / 3]], rtol=1e-6)
    np.testing.assert_allclose(normalize_maps(m, "l2")[0], [[3 / np.sqrt(10), -1 / np.sqrt(10)]], rtol=1e-6)
    np.testing.assert_allclose(normalize_maps(m, "none"), m)
    assert not normalize_maps(m, "sum")[1].any()  # no relevance stays zero
    with pytest.raises(ExplainError, match="normalisation"):
        normalize_maps(m, "softmax")


def test_the_eigengap_picks_the_clusters_after_the_largest_gap():
    assert choose_clusters(np.array([0, 0, 0, 0.9, 0.95, 1.0])) == (3, pytest.approx(0.9))
    assert choose_clusters(np.array([0, 0.01, 0.5, 0.52]))[0] == 2


def _table(maps: np.ndarray, explained: np.ndarray, true=None, names=("a", "b")) -> pa.Table:
    n, h, w = maps.shape
    true = explained if true is None else true
    cols = {
        "id": pa.array(np.arange(n), pa.int64()),
        "path": pa.array([None] * n, pa.string()),
        "true": pa.array(true, pa.int32()),
        "pred": pa.array(explained, pa.int32()),
        "confidence": pa.array(np.ones(n), pa.float32()),
        "explained": pa.array(explained, pa.int32()),
        "heatmap": pa.array(maps.reshape(n, -1).tolist(), pa.list_(pa.float32())),
        "h": pa.array(np.full(n, h), pa.int32()),
        "w": pa.array(np.full(n, w), pa.int32()),
        "features": pa.array([[0.0]] * n, pa.list_(pa.float32())),
    }
    meta = {b"explain.class_names": json.dumps(list(names)).encode(), b"explain.method": b"saliency"}
    return pa.Table.from_pydict(cols, schema=table_schema().with_metadata(meta))


def _two_strategies(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: half its maps on the top-left corner, half on the centre (noisy); class 1: the centre."""
    rng = np.random.default_rng(seed)
    maps = rng.uniform(0, 0.05, (2 * n, 8, 8)).astype(np.float32)
    corner = np.zeros(2 * n, bool)
    corner[: n // 2] = True
    maps[corner, :2, :2] += 1.0
    maps[~corner, 3:5, 3:5] += 1.0
    return maps, np.repeat([0, 1], n), corner


def test_spray_finds_two_strategies_and_ranks_the_corner_first():
    maps, explained, corner = _two_strategies()
    result = spray(_table(maps, explained), projection=None, region=(0, 0, 0.25, 0.25), clusters=2)
    a = result.by_class("a")
    # two strategies that never meet: two connected components, so the Laplacian's 2 smallest eigenvalues are 0
    assert a.eigenvalues[1] == pytest.approx(0, abs=1e-6) and result.by_class("b").eigenvalues[1] > 0.1
    assert len(a.clusters) == 2 and a.eigengap > 0.2
    corner_cluster = a.labels[corner[explained == 0]]
    assert len(set(corner_cluster.tolist())) == 1  # every corner map together...
    k = a.clusters[int(corner_cluster[0])]
    assert k.size == 30 and set(k.prototypes) <= set(np.flatnonzero(corner).tolist())  # ...and nothing else
    assert k.share > 0.7 and np.unravel_index(np.argmax(k.mean_heatmap), (8, 8)) in {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert [c.name for c in result.looks_at_region()] == ["a", "b"]
    assert result.clusters_at_region()[0][1] is k
    assert result.most_distinct(1)[0].name in ("a", "b")
    doc = result.as_dict()
    assert doc["classes"][0]["clusters"][int(corner_cluster[0])]["size"] == 30


def test_accuracy_is_the_share_classified_right_and_sizes_come_largest_first():
    maps, explained, _ = _two_strategies()
    pred = explained.copy()
    pred[:10] = 1  # ten corner images of class a predicted as b
    t = _table(maps, explained, true=explained)
    t = t.set_column(t.schema.get_field_index("pred"), "pred", pa.array(pred, pa.int32()))
    a = spray(t, projection=None, clusters=2).by_class("a")
    sizes = [k.size for k in a.clusters]
    assert sizes == sorted(sizes, reverse=True)
    k = a.clusters[int(a.labels[0])]
    assert k.accuracy == pytest.approx(20 / 30)


def test_a_projection_gives_one_point_per_heatmap():
    maps, explained, _ = _two_strategies(30)
    a = spray(_table(maps, explained), projection="pca").by_class(0)
    assert a.coords.shape == (30, 2)


def test_bad_inputs_are_one_line(tmp_path):
    maps, explained, _ = _two_strategies(10)
    t = _table(maps, explained)
    for kwargs, match in (
        ({"clusters": 12}, "has 10 image"),
        ({"clusters": 1}, "at least 2"),
        ({"border": 0.7}, "border band"),
        ({"region": "0,0,1"}, "four fractions"),
        ({"region": "0.5,0,0.2,1"}, "x0 < x1"),
        ({"classes": ["zebra"]}, "Unknown class 'zebra'"),
        ({"projection": "mds"}, "Unknown projection"),
    ):
        with pytest.raises(ExplainError, match=match) as e:
            spray(t, **{"projection": None, **kwargs})
        assert "\n" not in str(e.value)
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(ExplainError, match="as Parquet"):
        spray(tmp_path / "x.parquet")
    pq.write_table(pa.table({"a": [1]}), tmp_path / "y.parquet")
    with pytest.raises(ExplainError, match="lacks the column"):
        spray(tmp_path / "y.parquet")
    assert parse_region("0,0,0.5,0.25") == (0, 0, 0.5, 0.25)


# -- a planted Clever Hans ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted(planted_clever_hans):
    return planted_clever_hans


@pytest.fixture(scope="module")
def planted_audit(planted, tmp_path_factory):
    model = explain.load_model(planted.model_path)
    out = tmp_path_factory.mktemp("audit")
    return audit(model, planted.test_dir, out, class_names=planted.class_names, region=REGION, projection="pca",
                 progress=False)  # fmt: skip


def _marked_split(result, table_path, marked) -> tuple[object, np.ndarray]:
    shirts = result.spray.by_class(MARKED_CLASS)
    paths = dict(zip(*pq.read_table(table_path, columns=["id", "path"]).to_pydict().values(), strict=True))
    return shirts, np.array([paths[int(i)] in marked for i in shirts.ids])


def test_the_planted_watermark_is_a_strategy_of_its_own(planted, planted_audit):
    shirts, is_marked = _marked_split(planted_audit, planted_audit.out_dir / "explanations.parquet", planted.marked)
    assert is_marked.sum() == 50
    best = max(shirts.clusters, key=lambda k: is_marked[shirts.labels == k.index].sum())
    members = shirts.labels == best.index
    purity, held = is_marked[members].mean(), is_marked[members].sum() / is_marked.sum()
    print(f"watermark cluster: purity {purity:.2f}, {held:.0%} of the marked, share {best.share:.2f}")
    assert purity >= 0.9 and held >= 0.5
    # its mean heatmap peaks on the mark, and the mark's corner (3% of the area) holds a large share
    peak = np.unravel_index(np.argmax(best.mean_heatmap), best.mean_heatmap.shape)
    assert peak[0] < 6 and peak[1] < 6
    assert best.share >= 0.15
    ranked = planted_audit.spray.looks_at_region()
    assert ranked[0].name == MARKED_CLASS
    assert planted_audit.spray.clusters_at_region()[0][1] is best


def test_the_audit_folder(planted, planted_audit):
    out = planted_audit.out_dir
    names = {p.name for p in planted_audit.files}
    assert {"explanations.parquet", "clusters.json", "looks.png", "clusters_shirt.png", "map_shirt.png"} <= names
    t = pq.read_table(out / "explanations.parquet")
    assert {"cluster", "share"} <= set(t.column_names) and t.num_rows == 400
    assert t.schema.metadata[b"explain.method"] == b"saliency"
    doc = json.loads((out / "clusters.json").read_text())
    shirt = next(c for c in doc["classes"] if c["class"] == MARKED_CLASS)
    assert shirt["eigengap"] > 0 and sum(k["size"] for k in shirt["clusters"]) == 100
    assert all(len(k["prototypes"]) == 8 for k in shirt["clusters"])
    clusters = t.filter(pa.compute.equal(t.column("explained"), planted.class_names.index(MARKED_CLASS)))
    assert sorted(set(clusters.column("cluster").to_pylist())) == list(range(len(shirt["clusters"])))


def test_a_second_audit_reuses_the_rows(planted, planted_audit):
    model = explain.load_model(planted.model_path)
    again = audit(model, planted.test_dir, planted_audit.out_dir, class_names=planted.class_names, clusters=3,
                  projection=None, progress=False, figures=False)  # fmt: skip
    assert again.reused and all(len(c.clusters) == 3 for c in again.spray.classes)


def test_a_model_trained_on_clean_data_has_no_watermark_cluster(tmp_path, planted):
    clean = make_planted(tmp_path, frac=0.0)
    model = explain.load_model(clean.model_path)
    result = audit(model, clean.test_dir, tmp_path / "audit", class_names=clean.class_names, region=REGION,
                   projection=None, progress=False, figures=False)  # fmt: skip
    shirts, is_marked = _marked_split(result, tmp_path / "audit" / "explanations.parquet", clean.marked)
    for k in shirts.clusters:
        assert k.share < 0.1, f"cluster {k.index} looks at the corner on a clean model: {k.share:.2f}"
        members = shirts.labels == k.index
        assert not (is_marked[members].mean() >= 0.9 and is_marked[members].sum() >= 25)


def test_the_cli_finds_it_and_refuses_bad_input(planted, tmp_path, capsys):
    from explain.cli.audit import main

    code = main([str(planted.model_path), str(planted.test_dir), "--out", str(tmp_path / "a"), "--region",
                 "0,0,0.18,0.18", "--projection", "none", "--no-progress"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    first = out.split("Looking most at the")[1].splitlines()[1]
    assert first.strip().startswith("shirt cluster"), out
    for args, match in (
        (["--method", "gradcm"], "Unknown method 'gradcm'"),
        (["--clusters", "150"], "not more than the 150 clusters"),
        (["--class", "dress"], "Unknown class 'dress'"),
    ):
        code = main([str(planted.model_path), str(planted.test_dir), "--out", str(tmp_path / "a"), "--projection",
                     "none", "--no-progress", *args])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err


def test_the_report_has_an_audit_section(planted, tmp_path):
    from explain.dataset.report import AUDIT_LOOKS_PNG, write_report

    model = explain.load_model(planted.model_path)
    report = write_report(model, explain.open_data(str(planted.test_dir)), tmp_path, model_path=planted.model_path,
                          embedding=False, audit=True, progress=False, confusions=1)  # fmt: skip
    names = {p.name for p in report.files}
    assert AUDIT_LOOKS_PNG in names and "audit_shirt.png" in names
    page = (tmp_path / "report.html").read_text()
    assert 'id="audit"' in page and '<a href="#audit">' in page
    first_shown = page.split('id="audit"')[1].split("<h3>")[1]
    assert first_shown.startswith("shirt</h3>")  # the most distinct strategies come first
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["audit"]["classes"] and max(doc["audit"]["classes"], key=lambda c: c["eigengap"])["class"] == "shirt"


def test_an_audit_folder_of_another_model_is_not_replaced(planted, planted_audit, tmp_path):
    out = tmp_path / "a"
    out.mkdir()
    theirs = (planted_audit.out_dir / "explanations.parquet").read_bytes()
    (out / "explanations.parquet").write_bytes(theirs)
    other = explain.load_model(planted.model_path)
    other.set_weights([w * 0.5 for w in other.get_weights()])  # another model: other weights, another hash
    with pytest.raises(ExplainError, match="holds the explanations of another model") as e:
        audit(other, planted.test_dir, out, class_names=planted.class_names, projection=None, progress=False)
    assert "\n" not in str(e.value)
    assert (out / "explanations.parquet").read_bytes() == theirs
