"""Semantic tasks end to end and classed predictions from other tools (issue 16, items 3-5):
class masks through ``evaluate`` into the store, APACS23 pooled vs per-image pixel figures,
per-instance classes from class maps / HoVer-Net .mat / QuPath GeoJSON, F_d without classes."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import scipy.io as sio
import tifffile
from hostile import catalog_entry, write_catalog
from typer.testing import CliRunner

from cellbench.cli.main import app
from cellbench.core.errors import DataError
from cellbench.data.catalog import load_catalog
from cellbench.data.readers import get_reader
from cellbench.metrics import aggregate_task, semantic_scores
from cellbench.runs.evaluate import EvalSpec, Evaluation, class_mask, semantic_truth

runner = CliRunner()


def _dataset_rows(ev) -> dict[tuple[str, str], float]:
    rows = ev.store.scan([ev.run_id]).filter(pl.col("level") == "dataset").collect()
    return {(c, m): v for c, m, v in rows.select("class", "metric", "value").iter_rows()}


def _classed_dataset(tmp_path, n=3):
    """A 3-class label-mask dataset: class masks whose components are the instances."""
    root = tmp_path / "data" / "cls"
    (root / "img").mkdir(parents=True)
    (root / "mask").mkdir()
    for k in range(n):
        m = np.zeros((40, 48), np.uint8)
        m[2:10, 2:10] = 1
        m[2:10, 20:28] = 2
        m[20:30, 5 + k : 15 + k] = 3
        m[25:35, 30:40] = 1
        tifffile.imwrite(root / "img" / f"s{k}.tif", np.full((40, 48, 3), 200, np.uint8))
        tifffile.imwrite(root / "mask" / f"s{k}.tif", m)
    opts = {
        "images": "img/*.tif",
        "masks": "mask/{key}.tif",
        "kind": "class",
        "class_values": {1: 1, 2: 2, 3: 3},
        "split": "test",
    }
    classes = [
        {"id": 1, "name": "epithelial", "nodes": ["neoplastic_epithelial"]},
        {"id": 2, "name": "lymphocyte", "nodes": ["lymphocyte"]},
        {"id": 3, "name": "macrophage", "nodes": ["macrophage"]},
    ]
    entry = catalog_entry(
        "cls", {"format": "label_tiff", "location": "cls", "options": opts}, classes=classes
    )
    cat = load_catalog(write_catalog(tmp_path / "c.yaml", [entry]), tmp_path / "data", user=False)
    return cat, get_reader(cat, "cls")


def test_pixel_figures_pooled_and_per_image():
    t1 = np.zeros((10, 10), np.uint8)
    t1[:5] = 1
    p1 = t1.copy()
    p1[0] = 0  # 10 FN of 50
    t2 = np.zeros((10, 10), np.uint8)
    t2[:2, :2] = 1
    p2 = np.zeros((10, 10), np.uint8)
    p2[:2, :4] = 1  # 4 TP, 4 FP
    per = [semantic_scores(t1, p1), semantic_scores(t2, p2)]
    pooled = aggregate_task("semantic", per, "apacs23")
    assert pooled["iou"] == pytest.approx(44 / 58) and pooled["pixel_accuracy"] == 0.93
    # pooled counts give seed 001's identity exactly; the mean of per-image values does not
    assert pooled["dice"] == pytest.approx(2 * pooled["iou"] / (1 + pooled["iou"]))
    image = aggregate_task("semantic", per, "pixels_image")
    assert image["iou"] == pytest.approx((0.8 + 0.5) / 2)
    assert image["dice"] != pytest.approx(2 * image["iou"] / (1 + image["iou"]))
    valid = np.zeros((10, 10), bool)
    valid[5:] = True  # only background there: every pixel right
    assert semantic_scores(t1, p1, valid=valid)["pixel_accuracy"] == 1.0


def test_semantic_run_of_stored_class_masks_is_stored_and_grouped(tmp_path):
    cat, reader = _classed_dataset(tmp_path)
    preds = tmp_path / "pred"
    preds.mkdir()
    for rec in reader.records():
        s = reader.load(rec)
        m = semantic_truth(s)
        if rec.sample_id == "s0":
            m = np.where(m == 3, 1, m)  # macrophages called epithelial in one image
        np.save(preds / f"{rec.sample_id}.npy", m.astype(np.uint8))
    ev = Evaluation(EvalSpec("cls", predictions=str(preds), preset="apacs23"), cat)
    assert ev.task == "semantic"
    assert ev.run()["status"] == "complete"
    got = _dataset_rows(ev)
    assert got[("lymphocyte", "iou")] == 1.0 and got[("macrophage", "dice")] < 1.0
    assert got[("all", "pixel_accuracy")] < 1.0
    from cellbench.analysis.groups import pooled_groups

    g = pooled_groups(ev.store, ev.run_id, "split", cat)
    assert set(g["metric"]) >= {"iou", "dice", "pixel_accuracy"}
    from cellbench.viz.review import error_view

    img, counts, note = error_view(ev.store.get_run(ev.run_id), "s0", cat, ev.store)
    assert img.shape == (40, 48, 3) and counts["fp"] == 100 and "pixels" in note
    # a stored map in a semantic run must be a 2-D integer image of the sample's size
    np.save(preds / "s1.npy", np.zeros((3, 3), np.uint8))
    with pytest.raises(DataError, match="differs from the ground truth"):
        Evaluation(EvalSpec("cls", predictions=str(preds), preset="apacs23"), cat).run()


def test_classed_predictions_of_other_tools_give_mpq_fd_ft(tmp_path):
    cat, reader = _classed_dataset(tmp_path)
    maps, mats, geo, plain = (tmp_path / d for d in ("maps", "mats", "geo", "plain"))
    for d in (maps, mats, geo, plain):
        d.mkdir()
    from cellbench.qupath.geojson import sample_features, write_geojson

    for rec in reader.records():
        s = reader.load(rec)
        np.save(maps / f"{rec.sample_id}.npy", s.instances)
        np.save(maps / f"{rec.sample_id}_class.npy", class_mask(s.instances, s.classes))
        ids = np.unique(s.instances[s.instances > 0])
        sio.savemat(
            mats / f"{rec.sample_id}.mat",
            {"inst_map": s.instances, "inst_type": [[s.classes[int(i)]] for i in ids]},
        )
        write_geojson(
            sample_features(cat, "cls", rec.sample_id, "gt"), geo / f"{rec.sample_id}.geojson"
        )
        np.save(plain / f"{rec.sample_id}.npy", s.instances)
    for folder in (maps, mats, geo):
        ev = Evaluation(EvalSpec("cls", predictions=str(folder)), cat)
        ev.run()
        got = _dataset_rows(ev)
        assert got[("all", "pq")] == pytest.approx(1.0, abs=1e-5), folder.name
        assert got[("all", "mpq")] == pytest.approx(1.0, abs=1e-5), folder.name
        assert got[("all", "f_d")] == 1.0 and got[("macrophage", "f_t")] == 1.0, folder.name
    ev = Evaluation(EvalSpec("cls", predictions=str(plain)), cat)  # class-agnostic
    ev.run()
    got = _dataset_rows(ev)
    assert got[("all", "f_d")] == 1.0 and got[("all", "type_acc")] is None
    assert not any(m == "f_t" for _, m in got)
    # a class id the dataset does not have is named with its file
    bad = tmp_path / "bad"
    bad.mkdir()
    for rec in reader.records():
        s = reader.load(rec)
        np.save(bad / f"{rec.sample_id}.npy", s.instances)
        np.save(bad / f"{rec.sample_id}_class.npy", (s.instances > 0).astype(np.uint8) * 7)
    with pytest.raises(DataError, match=r"class id\(s\) \[7\]"):
        Evaluation(EvalSpec("cls", predictions=str(bad)), cat).run()


def test_score_cli_with_classes_and_geojson(tmp_path):
    gt, pr = tmp_path / "gt", tmp_path / "pr"
    gt.mkdir()
    pr.mkdir()
    lab = np.zeros((30, 30), np.int32)
    lab[2:10, 2:10] = 1
    lab[15:25, 15:25] = 2
    sio.savemat(gt / "a.mat", {"inst_map": lab, "inst_type": [[1], [2]]})
    feats = [
        {
            "type": "Feature",
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]],
            },
            "properties": {"objectType": "detection", "classification": {"name": n}},
        }
        for (x0, y0, x1, y1), n in (((2, 2, 10, 10), "tumour"), ((15, 15, 25, 25), "tumour"))
    ]
    (pr / "a.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    (tmp_path / "classes.yaml").write_text("1: tumour\n2: immune\n")
    out = tmp_path / "s.json"
    r = runner.invoke(
        app,
        [
            "score",
            "instances",
            "--gt",
            str(gt),
            "--pred",
            str(pr),
            "--classes",
            str(tmp_path / "classes.yaml"),
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    agg = json.loads(out.read_text())["aggregate"]
    assert agg["pq"] == pytest.approx(1.0, abs=1e-5)  # QuPath pixel edges: exact round trip
    assert agg["types"]["f_d"] == 1.0 and agg["types"]["acc"] == 0.5
    r = runner.invoke(app, ["score", "instances", "--gt", str(gt), "--pred", str(pr)])
    assert r.exit_code != 0 and "unknown class name 'tumour'" in r.output


def test_isbi_cells_as_a_binary_semantic_task(catalog, tmp_path):
    """APACS23-style whole-cell binary segmentation on the real ISBI synthetic images."""
    reader = get_reader(catalog, "isbi2014_synthetic")
    recs = [r for r in reader.records() if r.split == "test"]
    for rec in recs:
        m = semantic_truth(reader.load(rec))
        np.save(tmp_path / f"{rec.sample_id}.npy", m.astype(np.uint8))
    ev = Evaluation(
        EvalSpec("isbi2014_synthetic", "test", predictions=str(tmp_path), task="semantic"),
        catalog,
    )
    assert ev.preset == "apacs23"
    ev.run()
    got = _dataset_rows(ev)
    assert (got[("all", "pixel_accuracy")], got[("all", "iou")], got[("cell", "dice")]) == (1, 1, 1)


def test_ocelot_unknown_tissue_is_left_out_of_cell_scoring(tmp_path):
    """Issue 16 item 6: tissue labels (1 BG, 2 CA, 255 unknown) give a cell patch its tissue
    mask and its annotated region (known tissue); cells predicted on unknown tissue do not
    count, and the run differs from one scored without regions."""
    from PIL import Image

    root = tmp_path / "data" / "oc"
    (root / "t").mkdir(parents=True)
    gt = {
        "type": "Multiple points",
        "num_images": 1,
        "points": [
            {"name": "image_0", "point": [10, 10, 1]},
            {"name": "image_0", "point": [50, 50, 2]},
        ],
    }
    pred = {
        "type": "Multiple points",
        "num_images": 1,
        "points": [
            {"name": "image_0", "point": [10, 10, 1], "probability": 0.9},
            {"name": "image_0", "point": [50, 50, 2], "probability": 0.9},
            {"name": "image_0", "point": [60, 10, 1], "probability": 0.9},  # on unknown tissue
        ],
    }
    (root / "gt.json").write_text(json.dumps(gt))
    (root / "pred.json").write_text(json.dumps(pred))
    meta = [
        {
            "slide_name": "TCGA-A3-3328-01Z",
            "organ": "kidney",
            "subset": "test",
            "cell": {
                "x_start": 0,
                "y_start": 0,
                "x_end": 64,
                "y_end": 64,
                "resized_mpp_x": 0.2,
                "resized_mpp_y": 0.2,
            },
            "tissue": {"resized_mpp_x": 0.8},
            "patch_x_offset": 0.625,  # the cell patch's centre, as OCELOT gives it
            "patch_y_offset": 0.375,
            "mpp_x": 0.2,
            "mpp_y": 0.2,
        }
    ]
    (root / "meta.json").write_text(json.dumps(meta))
    lab = np.ones((64, 64), np.uint8)  # the tissue field: 4x the cell patch's side
    lab[16:32, 32:48] = 2  # the cell patch's window: rows 16-31, columns 32-47
    lab[16:24, 40:48] = 255  # its top-right quarter unknown
    Image.fromarray(lab).save(root / "t" / "000.png")
    opts = {
        "ground_truth": "gt.json",
        "metadata": "meta.json",
        "predictions": {"model": "pred.json"},
        "images": {"tissue_mask": "t/{index:03d}.png"},
    }
    classes = [
        {"id": 1, "name": "BC", "nodes": ["other"]},
        {"id": 2, "name": "TC", "nodes": ["neoplastic"]},
    ]
    entry = catalog_entry(
        "oc",
        {"format": "gc_points", "location": "oc", "options": opts},
        classes=classes,
        tasks=["detection"],
    )
    cat = load_catalog(write_catalog(tmp_path / "c.yaml", [entry]), tmp_path / "data", user=False)
    reader = get_reader(cat, "oc")
    s = reader.load(reader.records()[0])
    assert s.tissue_mask.shape == (64, 64) and set(np.unique(s.tissue_mask)) == {0, 2}
    assert s.annotated_region[:32, 32:].sum() == 0 and s.annotated_region[40:, :].all()
    assert np.array_equal(semantic_truth(s), s.tissue_mask)  # what a semantic run scores
    ev = Evaluation(EvalSpec("oc", predictions="model"), cat)
    ev.run()
    got = _dataset_rows(ev)
    assert got[("all", "fp")] == 0 and got[("all", "tp")] == 2
    (root / "t" / "000.png").unlink()
    plain = Evaluation(EvalSpec("oc", predictions="model"), cat)
    assert plain.run_id != ev.run_id
