"""Predictions of the tools researchers run (issue 29 item 1): each file is built by the test in
the tool's documented layout (contours by ``cv2.findContours`` as HoVer-Net, CellViT, Cellpose
and TIAToolbox make them; pixel-edge polygons for QuPath, HistomicsTK and ASAP) from a label
map, and must read back to the same objects, pixel-exact. Hostile versions of every format give
one clear error naming the file (those are in ``tests/test_hostile.py``).
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import sqlite3
import zlib

import cv2
import numpy as np
import pytest
from shapely.geometry import Polygon, mapping

from cellbench.core.errors import DataError
from cellbench.data.predictions import prediction_files, read_prediction
from cellbench.data.rasterize import instance_geometries
from cellbench.data.sample import Objects

H, W = 64, 80


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    """Seven hole-free nuclei: discs, a non-convex L, a thin bar, touching neighbours."""
    lab = np.zeros((H, W), np.int32)
    yy, xx = np.mgrid[:H, :W]
    for k, (cy, cx, r) in enumerate([(10, 10, 6), (12, 30, 5), (40, 15, 8), (50, 60, 7)], 1):
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = k
    lab[30:45, 40:44] = 5  # an L
    lab[41:45, 44:52] = 5
    lab[5:7, 50:75] = 6  # a thin bar
    lab[18:26, 22:30] = 7  # touches nucleus 2
    return lab


def _masks(inst) -> list[tuple]:
    """Each object's pixels, as a sorted list (object ids and order do not matter)."""
    if isinstance(inst, Objects):
        return sorted(tuple(np.flatnonzero(inst.full(i))) for i in inst.ids)
    return sorted(tuple(np.flatnonzero(inst == i)) for i in np.unique(inst) if i)


def _types(labels) -> dict[int, int]:
    return {i: 1 + i % 3 for i in range(1, int(labels.max()) + 1)}


def _cv_contour(mask: np.ndarray, mode=cv2.RETR_TREE, method=cv2.CHAIN_APPROX_SIMPLE):
    cs = cv2.findContours(mask.astype(np.uint8), mode, method)[-2]
    return max(cs, key=len)[:, 0, :]  # (K, 2) x, y


def _hovernet_json(labels) -> dict:
    """HoVer-Net's json/<stem>.json (models/hovernet/post_proc.py: process)."""
    nuc = {}
    for i in np.unique(labels)[1:]:
        m = labels == i
        rows, cols = np.nonzero(m)
        r0, c0, r1, c1 = int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1
        mom = cv2.moments(m.astype(np.uint8))
        nuc[str(int(i))] = {
            "bbox": [[r0, c0], [r1, c1]],
            "centroid": [mom["m10"] / mom["m00"], mom["m01"] / mom["m00"]],
            "contour": _cv_contour(m).tolist(),
            "type_prob": 0.75,
            "type": _types(labels)[int(i)],
        }
    return {"mag": None, "nuc": nuc}


def test_hovernet_json_reads_back_pixel_exact_with_types(tmp_path, labels):
    p = tmp_path / "img1.json"
    p.write_text(json.dumps(_hovernet_json(labels)))
    inst, classes, scores = read_prediction(p, (H, W))
    assert np.array_equal(inst, labels)
    assert classes == _types(labels) and set(scores.values()) == {0.75}
    # whole-slide mode: level-0 slide pixels, a region placed by its origin
    doc = _hovernet_json(labels)
    for n in doc["nuc"].values():
        n["contour"] = (np.asarray(n["contour"]) + [1000, 2000]).tolist()
    (tmp_path / "slide.json").write_text(json.dumps(doc))
    inst, _, _ = read_prediction(tmp_path / "slide.json", (H, W), origin=(1000, 2000))
    assert np.array_equal(inst, labels)


def test_cellvit_cells_json_and_geojson(tmp_path, labels):
    names = {"Background": 0, "Neoplastic": 1, "Inflammatory": 2, "Connective": 3}
    cells = [
        {
            "bbox": [[0, 0], [1, 1]],
            "centroid": [0, 0],
            "contour": _cv_contour(labels == i).tolist(),
            "type_prob": 0.5,
            "type": _types(labels)[int(i)],
            "patch_coordinates": [0, 0],
            "cell_status": 0,
            "offset_global": [0, 0],
        }
        for i in np.unique(labels)[1:]
    ]
    p = tmp_path / "img1.json"
    p.write_text(json.dumps({"wsi_metadata": {}, "type_map": names, "cells": cells}))
    by_name = {"Neoplastic": 11, "Inflammatory": 12, "Connective": 13}
    inst, classes, _ = read_prediction(p, (H, W), by_name.__getitem__)
    assert np.array_equal(inst, labels)
    assert classes == {i: 10 + t for i, t in _types(labels).items()}
    # without a class lookup the type ids are the dataset's class ids
    assert read_prediction(p, (H, W))[1] == _types(labels)
    # cells.geojson: one MultiPolygon annotation per class, one nucleus per closed polygon
    feats = []
    for t, name in ((1, "Neoplastic"), (2, "Inflammatory"), (3, "Connective")):
        polys = []
        for c in cells:
            if c["type"] == t:
                ring = c["contour"] + [c["contour"][0]]
                polys.append([ring])
        feats.append(
            {
                "type": "Feature",
                "id": "0b3b7f1e-uuid",
                "geometry": {"type": "MultiPolygon", "coordinates": polys},
                "properties": {
                    "objectType": "annotation",
                    "classification": {"name": name, "color": [255, 0, 0]},
                },
            }
        )
    g = tmp_path / "img2.geojson"
    g.write_text(json.dumps(feats))  # CellViT writes a bare list of features
    inst, classes, _ = read_prediction(g, (H, W), by_name.__getitem__)
    assert _masks(inst) == _masks(labels) and len(classes) == labels.max()


def _seg_dict(labels) -> dict:
    """What cellpose.io.masks_flows_to_seg saves (np.save of a dict)."""
    return {
        "outlines": labels.astype(np.uint16),
        "masks": labels.astype(np.uint16),
        "chan_choose": [0, 0],
        "ismanual": np.zeros(int(labels.max()), bool),
        "filename": "img1.png",
        "flows": [np.zeros((H, W, 3), np.uint8), np.zeros((2, H, W), np.float32), []],
        "diameter": np.nan,
        "est_diam": np.float64(12.5),
    }


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned_by_pickle",))


def test_cellpose_seg_npy_masks_and_outlines(tmp_path, labels, monkeypatch):
    np.save(tmp_path / "img1_seg.npy", _seg_dict(labels), allow_pickle=True)
    inst, classes, _ = read_prediction(tmp_path / "img1_seg.npy", (H, W))
    assert np.array_equal(inst, labels) and classes is None
    cv2.imwrite(str(tmp_path / "img2_cp_masks.png"), labels.astype(np.uint16))
    inst, _, _ = read_prediction(tmp_path / "img2_cp_masks.png", (H, W))
    assert np.array_equal(inst, labels)
    # outlines_to_text: the largest RETR_EXTERNAL / CHAIN_APPROX_NONE contour per mask
    lines = []
    for i in np.unique(labels)[1:]:
        c = _cv_contour(labels == i, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        lines.append(",".join(map(str, c.flatten())) if len(c) > 4 else "")
    (tmp_path / "img3_cp_outlines.txt").write_text("\n".join(lines) + "\n")
    inst, _, _ = read_prediction(tmp_path / "img3_cp_outlines.txt", (H, W))
    assert np.array_equal(inst, labels)
    files = prediction_files(tmp_path)
    assert sorted(files) == ["img1", "img2", "img3"]
    # a pickle that would run code is refused before anything runs
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil_seg.npy"
    np.save(evil, np.array({"masks": _Evil()}, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"evil_seg\.npy: the pickle asks for '(posix|nt)\.system'"):
        read_prediction(evil, (H, W))
    assert not (tmp_path / "pwned_by_pickle").exists()
    with open(tmp_path / "e2_seg.npy", "wb") as f:  # a bare pickle, not .npy
        pickle.dump({"masks": labels}, f)
    with pytest.raises(DataError, match="e2_seg.npy: unreadable _seg.npy"):
        read_prediction(tmp_path / "e2_seg.npy", (H, W))


def _store(path, polys, compression="zlib") -> None:
    """A TIAToolbox SQLiteStore (annotation/storage.py schema)."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE metadata (key TEXT UNIQUE, value TEXT)")
    for k, v in {"version": "1.0.1", "compression": compression, "compression_level": 9}.items():
        con.execute("INSERT INTO metadata VALUES (?, ?)", (k, json.dumps(v)))
    con.execute(
        "CREATE TABLE annotations(id INTEGER PRIMARY KEY, key TEXT UNIQUE, objtype TEXT, "
        "cx FLOAT NOT NULL, cy FLOAT NOT NULL, geometry BLOB, properties TEXT, "
        "area FLOAT NOT NULL)"
    )
    for k, (poly, props) in enumerate(polys):
        blob = poly.wkb if compression is None else zlib.compress(poly.wkb, 9)
        c = poly.centroid
        con.execute(
            "INSERT INTO annotations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (k + 1, f"uuid{k}", "Polygon", c.x, c.y, blob, json.dumps(props), poly.area),
        )
    con.commit()
    con.close()


def test_tiatoolbox_store_and_dict(tmp_path, labels):
    polys = [
        (Polygon(_cv_contour(labels == i)), {"type": _types(labels)[int(i)], "prob": 0.9})
        for i in np.unique(labels)[1:]
    ]
    _store(tmp_path / "img1.db", polys)
    inst, classes, scores = read_prediction(tmp_path / "img1.db", (H, W))
    assert np.array_equal(inst, labels) and classes == _types(labels)
    assert set(scores.values()) == {0.9}
    _store(tmp_path / "img2.db", polys, compression=None)
    assert np.array_equal(read_prediction(tmp_path / "img2.db", (H, W))[0], labels)
    d = {
        str(int(i)): {
            "box": [0, 0, 1, 1],
            "centroid": [0, 0],
            "contour": _cv_contour(labels == i).tolist(),
            "prob": 0.5,
            "type": _types(labels)[int(i)],
        }
        for i in np.unique(labels)[1:]
    }
    (tmp_path / "img3.json").write_text(json.dumps(d))
    inst, classes, _ = read_prediction(tmp_path / "img3.json", (H, W))
    assert np.array_equal(inst, labels) and classes == _types(labels)
    (tmp_path / "bad.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 50)
    with pytest.raises(DataError, match=r"bad\.db: "):
        read_prediction(tmp_path / "bad.db", (H, W))


def _edge_rings(labels) -> dict[int, np.ndarray]:
    """Pixel-edge exteriors of each nucleus (the QuPath / DSA / ASAP frame)."""
    return {i: np.asarray(g.exterior.coords)[:-1] for i, g in instance_geometries(labels).items()}


def test_histomicstk_and_asap(tmp_path, labels):
    rings = _edge_rings(labels)
    els = [
        {
            "type": "polyline",
            "closed": True,
            "points": [[x, y, 0] for x, y in ring],
            "label": {"value": f"t{_types(labels)[i]}"},
            "group": "nuclei",
        }
        for i, ring in rings.items()
    ]
    els.append({"type": "point", "center": [3, 3, 0]})  # not an area: left out
    (tmp_path / "img1.json").write_text(json.dumps({"annotation": {"name": "x", "elements": els}}))
    lookup = {"t1": 1, "t2": 2, "t3": 3}.__getitem__
    inst, classes, _ = read_prediction(tmp_path / "img1.json", (H, W), lookup)
    assert np.array_equal(inst, labels) and classes == _types(labels)
    anns = "".join(
        f'<Annotation Name="n{i}" Type="Polygon" PartOfGroup="t{_types(labels)[i]}" '
        'Color="#F4FA58"><Coordinates>'
        + "".join(f'<Coordinate Order="{k}" X="{x}" Y="{y}"/>' for k, (x, y) in enumerate(ring))
        + "</Coordinates></Annotation>"
        for i, ring in rings.items()
    )
    xml = f'<?xml version="1.0"?><ASAP_Annotations><Annotations>{anns}</Annotations>'
    xml += '<AnnotationGroups><Group Name="t1" PartOfGroup="None"/></AnnotationGroups>'
    (tmp_path / "img2.xml").write_text(xml + "</ASAP_Annotations>")
    inst, classes, _ = read_prediction(tmp_path / "img2.xml", (H, W), lookup)
    assert np.array_equal(inst, labels) and classes == _types(labels)
    (tmp_path / "bomb.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaa">]><ASAP_Annotations/>'
    )
    with pytest.raises(DataError, match=r"bomb\.xml: DOCTYPE / ENTITY"):
        read_prediction(tmp_path / "bomb.xml", (H, W))


def test_qupath_geojson_as_qupath_and_qubalab_write_it(tmp_path, labels):
    """gzip, bare NaN measurements, metadata twice, a bare list, qubalab's variant,
    cells with a nucleus, MultiPolygon as one object; one bad feature skipped on request."""
    feats = []
    for g in instance_geometries(labels).values():
        props = {
            "objectType": "cell",
            "classification": {"names": ["Tumor"], "color": [200, 0, 0]},
            "measurements": {"probability": 0.8, "Nucleus: Area": float("nan")},
        }
        cell = g.buffer(2, join_style="mitre")
        props["nucleusGeometry"] = mapping(g)
        feats.append({"type": "Feature", "geometry": mapping(cell), "properties": props})
    text = json.dumps(feats)  # json writes NaN bare, as QuPath's Gson may
    assert "NaN" in text
    text = text.replace('"objectType"', '"metadata": {"a": 1}, "metadata": {"a": 2}, "objectType"')
    (tmp_path / "img1.geojson.gz").write_bytes(gzip.compress(text.encode()))
    inst, classes, scores = read_prediction(tmp_path / "img1.geojson.gz", (H, W), {"Tumor": 4}.get)
    assert _masks(inst) == _masks(labels)
    assert set(classes.values()) == {4} and set(scores.values()) == {0.8}
    qb = [
        {
            "type": "Feature",
            "geometry": mapping(g.buffer(1, join_style="mitre")),
            "properties": {"object_type": "DETECTION", "extra_geometries": {"nucleus": mapping(g)}},
        }
        for g in instance_geometries(labels).values()
    ]
    (tmp_path / "img2.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": qb})
    )
    assert _masks(read_prediction(tmp_path / "img2.geojson", (H, W))[0]) == _masks(labels)
    # one bad feature: refused whole by default, named and skipped with skip_bad
    qb.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0]]]}})
    (tmp_path / "img3.geojson").write_text(json.dumps(qb))
    with pytest.raises(DataError, match=r"img3\.geojson: features\[7\]"):
        read_prediction(tmp_path / "img3.geojson", (H, W))
    bad: list[str] = []
    inst, _, _ = read_prediction(tmp_path / "img3.geojson", (H, W), skip_bad=bad)
    assert _masks(inst) == _masks(labels) and len(bad) == 1 and bad[0].startswith("features[7]")


def test_pairing_by_tool_names_and_by_pattern(tmp_path, labels):
    from cellbench.metrics.io import score_instance_dirs

    gt, pr = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pr.mkdir()
    for s in ("image01", "image02"):
        cv2.imwrite(str(gt / f"{s}_label.png"), labels.astype(np.uint16))
        cv2.imwrite(str(pr / f"{s}_cp_masks.png"), labels.astype(np.uint16))
    (pr / "image01.ome.tif").mkdir()  # a folder named like a prediction: skipped, named
    res = score_instance_dirs(gt, pr, gt_pattern="{stem}_label.png")
    assert sorted(res["per_image"]) == ["image01", "image02"]
    assert res["aggregate"]["pq"] == pytest.approx(1.0)
    os.remove(pr / "image02_cp_masks.png")
    os.mkfifo(pr / "image02.npy")
    with pytest.raises(
        DataError,
        match=r"no prediction for 1 of 2 images: image02; skipped: "
        r"image02\.npy \(a FIFO\)",
    ):
        score_instance_dirs(gt, pr, gt_pattern="{stem}_label.png")
    with pytest.raises(DataError, match="must hold '{stem}' once"):
        prediction_files(gt, "label.png")


# -- end to end: evaluate --predictions on a folder of each format ----------------------------


def _write_as(fmt: str, folder, stem: str, labels: np.ndarray, types: dict, names: dict) -> None:
    """``labels`` with ``types`` ({id: class id}; ``names``: {class id: name}) as ``fmt``."""
    ids = [int(i) for i in np.unique(labels)[1:]]
    if fmt == "hovernet":
        nuc = {
            str(i): {"contour": _cv_contour(labels == i).tolist(), "type": types.get(i, 0)}
            for i in ids
        }
        (folder / f"{stem}.json").write_text(json.dumps({"mag": 40, "nuc": nuc}))
    elif fmt == "cellvit":
        cells = [
            {"contour": _cv_contour(labels == i).tolist(), "type": types.get(i, 0)} for i in ids
        ]
        tmap = {"Background": 0, **{n: c for c, n in names.items()}}
        (folder / f"{stem}.json").write_text(json.dumps({"type_map": tmap, "cells": cells}))
    elif fmt == "cellpose-seg":
        np.save(folder / f"{stem}_seg.npy", _seg_dict(labels), allow_pickle=True)
    elif fmt == "cellpose-masks":
        cv2.imwrite(str(folder / f"{stem}_cp_masks.png"), labels.astype(np.uint16))
    elif fmt == "tiatoolbox":
        polys = [
            (Polygon(_cv_contour(labels == i)), {"type": types.get(i, 0), "prob": 1.0})
            for i in ids
            if len(_cv_contour(labels == i)) >= 3
        ]
        _store(folder / f"{stem}.db", polys)
    elif fmt == "histomicstk":
        els = [
            {
                "type": "polyline",
                "closed": True,
                "points": [[x, y, 0] for x, y in np.asarray(g.exterior.coords)[:-1]],
                "label": {"value": names[types[i]]},
            }
            for i, g in instance_geometries(labels).items()
            if g.geom_type == "Polygon"
        ]
        (folder / f"{stem}.json").write_text(json.dumps({"elements": els}))
    elif fmt == "cellpose-outlines":
        lines = []
        for i in ids:
            c = _cv_contour(labels == i, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            lines.append(",".join(map(str, c.flatten())) if len(c) > 4 else "")
        (folder / f"{stem}_cp_outlines.txt").write_text("\n".join(lines) + "\n")
    elif fmt == "tiatoolbox-dict":
        d = {
            str(i): {"box": [0, 0, 1, 1], "contour": _cv_contour(labels == i).tolist(), "type": 0}
            for i in ids
        }
        (folder / f"{stem}.json").write_text(json.dumps(d))
    elif fmt == "asap":
        anns = "".join(
            f'<Annotation Name="n{i}" Type="Polygon" PartOfGroup="{names[types[i]]}">'
            "<Coordinates>"
            + "".join(
                f'<Coordinate Order="{k}" X="{x}" Y="{y}"/>'
                for k, (x, y) in enumerate(np.asarray(g.exterior.coords)[:-1])
            )
            + "</Coordinates></Annotation>"
            for i, g in instance_geometries(labels).items()
            if g.geom_type == "Polygon"
        )
        xml = f"<ASAP_Annotations><Annotations>{anns}</Annotations></ASAP_Annotations>"
        (folder / f"{stem}.xml").write_text(xml)
    elif fmt == "cellvit-geojson":
        feats = []
        for c, name in names.items():
            polys = []
            for i in ids:
                if types.get(i) == c:
                    ring = _cv_contour(labels == i).tolist()
                    polys.append([[*ring, ring[0]]])
            if polys:
                feats.append(
                    {
                        "type": "Feature",
                        "geometry": {"type": "MultiPolygon", "coordinates": polys},
                        "properties": {
                            "objectType": "annotation",
                            "classification": {"name": name},
                        },
                    }
                )
        (folder / f"{stem}.geojson").write_text(json.dumps(feats))
    elif fmt == "qupath-gz":
        feats = [
            {
                "type": "Feature",
                "geometry": mapping(g),
                "properties": {
                    "objectType": "detection",
                    "classification": {"name": names[types[i]]},
                    "measurements": {"probability": float("nan")},
                },
            }
            for i, g in instance_geometries(labels).items()
        ]
        data = json.dumps({"type": "FeatureCollection", "features": feats}).encode()
        (folder / f"{stem}.geojson.gz").write_bytes(gzip.compress(data))


@pytest.mark.parametrize(
    "fmt",
    [
        "hovernet",
        "cellvit",
        "cellpose-seg",
        "cellpose-masks",
        "tiatoolbox",
        "histomicstk",
        "qupath-gz",
        "cellpose-outlines",
        "tiatoolbox-dict",
        "asap",
        "cellvit-geojson",
    ],
)
def test_evaluate_a_folder_of_each_format_enters_the_store(data_env, catalog, tmp_path, fmt):
    """Real CoNSeP ground truth written as each tool writes it: PQ 1 where the format holds
    the exact objects (maps, pixel-edge polygons, QuPath), >= 0.97 for outer contours (a
    CoNSeP nucleus with a hole or in two parts loses them, as in the tool itself)."""
    import polars as pl

    from cellbench.data.samples import iter_samples
    from cellbench.runs.evaluate import EvalSpec, evaluate
    from cellbench.runs.store import Store

    names = {c.id: c.name for c in catalog.get("consep").classes}
    folder = tmp_path / fmt
    folder.mkdir()
    sids = []
    for k, (rec, s) in enumerate(iter_samples(catalog, "consep", "test")):
        if k == 2:
            break
        _write_as(fmt, folder, rec.sample_id, s.instances, s.classes, names)
        sids.append(rec.sample_id)
    st = Store(tmp_path / "store")
    run = evaluate(
        EvalSpec(dataset="consep", split="test", predictions=str(folder), samples=sids),
        catalog,
        st,
    )
    assert run["status"] == "complete"
    rows = st.scan([run["run_id"]]).filter(pl.col("level") == "sample").collect()
    pq = rows.filter((pl.col("metric") == "pq") & (pl.col("class") == "all"))
    assert pq.height == 2
    exact = fmt in ("cellpose-seg", "cellpose-masks", "histomicstk", "qupath-gz", "asap")
    assert pq.get_column("value").min() >= (0.9999 if exact else 0.97), pq
    if not fmt.startswith("cellpose") and fmt != "tiatoolbox-dict":  # written without classes
        f_d = rows.filter(pl.col("metric") == "f_d")
        assert f_d.height == 2 and f_d.get_column("value").min() > 0.97


def test_qupath_import_takes_other_tools_files_and_skips_bad_features_on_request(tmp_path, labels):
    """Issue 29: each reader is usable by `qupath import`; a bad feature is named, not silent."""
    from PIL import Image
    from typer.testing import CliRunner

    from cellbench.cli import app
    from cellbench.data.catalog import load_catalog
    from cellbench.data.samples import load_sample

    img = tmp_path / "tile.png"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(img)
    hv = tmp_path / "tile.json"
    hv.write_text(json.dumps(_hovernet_json(labels)))
    run = CliRunner().invoke
    res = run(app, ["qupath", "import", str(hv), "--image", str(img), "--dataset-id", "hv"])
    assert res.exit_code == 0, res.output
    s = load_sample(load_catalog(), "hv", "tile")
    assert _masks(s.truth) == _masks(labels)
    assert {c.name for c in load_catalog().get("hv").classes} == {"type 1", "type 2", "type 3"}
    # a gzipped QuPath file with one bad feature: refused whole, or imported with --skip-bad
    feats = [
        {"type": "Feature", "geometry": mapping(g), "properties": {"objectType": "detection"}}
        for g in instance_geometries(labels).values()
    ]
    feats.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[1, 2]]]}})
    gz = tmp_path / "tile.geojson.gz"
    gz.write_bytes(gzip.compress(json.dumps(feats).encode()))
    args = ["qupath", "import", str(gz), "--image", str(img), "--dataset-id", "qp"]
    res = run(app, args)
    assert res.exit_code == 2 and "tile.geojson.gz: features[7]" in res.output
    assert "qp" not in load_catalog().ids  # nothing written
    res = run(app, [*args, "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert "skipped features[7]: invalid Polygon geometry" in res.output
    assert _masks(load_sample(load_catalog(), "qp", "tile").truth) == _masks(labels)
