"""``cellbench score``: files in, JSON out, clear errors; real data where available."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from cellbench.cli import app
from cellbench.metrics import aggregate_groups, instance_scores
from cellbench.runs.synthetic import perturb_instances, random_instances

runner = CliRunner()


def _write_pair(tmp_path):
    gt, pr = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pr.mkdir()
    maps = {}
    for k in range(3):
        t = random_instances((64, 64), 12, seed=k)
        p = perturb_instances(t, seed=k + 10, id_stride=5)  # non-contiguous ids
        maps[f"img{k}"] = (t, p)
    np.save(gt / "img0.npy", maps["img0"][0])
    np.save(pr / "img0.npy", maps["img0"][1])
    Image.fromarray(maps["img1"][0].astype(np.uint16)).save(gt / "img1.png")
    tifffile.imwrite(pr / "img1.tif", maps["img1"][1])
    tifffile.imwrite(gt / "img2.tif", maps["img2"][0])
    np.save(pr / "img2.npy", maps["img2"][1])
    return gt, pr, maps


def test_score_instances_cli(tmp_path):
    gt, pr, maps = _write_pair(tmp_path)
    out = tmp_path / "res.json"
    r = runner.invoke(
        app,
        [
            "score",
            "instances",
            "--gt",
            str(gt),
            "--pred",
            str(pr),
            "--preset",
            "stardist",
            "--iou",
            "0.5:0.95",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["preset"] == "stardist" and len(res["iou"]) == 10
    assert set(res["per_image"]) == {"img0", "img1", "img2"}
    for stem, (t, p) in maps.items():
        exp = instance_scores(t, p, "stardist", iou="0.5:0.95")
        got = res["per_image"][stem]
        for k in ("pq", "dq", "sq", "aji", "aji_plus", "dice1", "dice2", "tp", "fp", "fn"):
            assert got[k] == pytest.approx(exp[k])
    tp = sum(v["tp"] for v in res["per_image"].values())
    assert res["aggregate"]["tp"] == tp and "by_threshold" in res["aggregate"]


def test_score_instances_errors_name_the_file(tmp_path):
    gt, pr, _ = _write_pair(tmp_path)
    np.save(pr / "img0.npy", np.zeros((64, 64), np.float32))
    r = runner.invoke(app, ["score", "instances", "--gt", str(gt), "--pred", str(pr)])
    assert r.exit_code == 2 and "img0.npy" in r.output and "float" in r.output
    np.save(pr / "img0.npy", np.zeros((32, 64), np.int32))
    r = runner.invoke(app, ["score", "instances", "--gt", str(gt), "--pred", str(pr)])
    assert r.exit_code == 2 and "img0.npy" in r.output and "differs" in r.output
    (pr / "img0.npy").unlink()
    r = runner.invoke(app, ["score", "instances", "--gt", str(gt), "--pred", str(pr)])
    assert r.exit_code == 2 and "no prediction for 1 of 3 images: img0" in r.output
    r = runner.invoke(
        app, ["score", "instances", "--gt", str(gt), "--pred", str(pr), "--preset", "coco"]
    )
    assert r.exit_code == 2 and "unknown instance metric preset 'coco'" in r.output


def _gc(points, n=1):
    return {
        "type": "Multiple points",
        "num_images": n,
        "version": {"major": 1, "minor": 0},
        "points": [
            {
                "name": f"image_{q[0]}",
                "point": list(q[1:4]),
                "probability": q[4] if len(q) > 4 else 1.0,
            }
            for q in points
        ],
    }


def test_score_points_cli(tmp_path):
    g, p = tmp_path / "gt.json", tmp_path / "pred.json"
    g.write_text(json.dumps(_gc([(0, 10, 10, 1), (0, 100, 100, 2), (1, 5, 5, 1)], n=2)))
    p.write_text(json.dumps(_gc([(0, 12, 10, 1, 0.9), (0, 100, 130, 2, 0.8)], n=2)))
    out = tmp_path / "r.json"
    r = runner.invoke(app, ["score", "points", "--gt", str(g), "--pred", str(p), "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    agg = res["aggregate"]
    assert agg["per_class"]["1"]["tp"] == 1 and agg["per_class"]["1"]["fn"] == 1
    assert agg["per_class"]["2"]["fp"] == 1  # 30 px away > 15 px
    assert res["per_image"]["image_1"]["per_class"]["1"]["fn"] == 1
    r = runner.invoke(
        app,
        ["score", "points", "--gt", str(g), "--pred", str(p), "--radius-um", "8", "--mpp", "0.25"],
    )  # 32 px
    assert json.loads(r.stdout)["aggregate"]["per_class"]["2"]["tp"] == 1


def test_score_points_errors(tmp_path):
    g, p = tmp_path / "gt.json", tmp_path / "pred.json"
    g.write_text(json.dumps(_gc([(0, 10, 10, 1)])))
    p.write_text(json.dumps({"type": "Multiple polygons", "polygons": []}))
    r = runner.invoke(app, ["score", "points", "--gt", str(g), "--pred", str(p)])
    assert r.exit_code == 2 and "pred.json" in r.output and "Multiple points" in r.output
    p.write_text(json.dumps(_gc([(0, 1030, 10, 1, 0.5)])))
    r = runner.invoke(app, ["score", "points", "--gt", str(g), "--pred", str(p)])
    assert r.exit_code == 2 and "pred.json" in r.output and "outside" in r.output
    p.write_text("{")
    r = runner.invoke(app, ["score", "points", "--gt", str(g), "--pred", str(p)])
    assert r.exit_code == 2 and "malformed JSON" in r.output
    p.write_text(json.dumps(_gc([(0, 10, 10, 1, 0.5)])))
    r = runner.invoke(
        app, ["score", "points", "--gt", str(g), "--pred", str(p), "--radius-um", "3"]
    )
    assert r.exit_code == 2 and "mpp" in r.output


def test_score_presets_lists_conventions():
    r = runner.invoke(app, ["score", "presets"])
    assert r.exit_code == 0
    for name in ("hovernet", "stardist", "conic", "torchmetrics", "ocelot", "hungarian"):
        assert name in r.output
    assert "IoU > t (strict)" in r.output and "IoU >= t (inclusive)" in r.output


# --- real data ------------------------------------------------------------------------------


def test_consep_gt_against_itself(shared_data, tmp_path):
    d = shared_data / "consep" / "inst" / "test"
    out = tmp_path / "self.json"
    r = runner.invoke(
        app, ["score", "instances", "--gt", str(d), "--pred", str(d), "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    agg = json.loads(out.read_text())["aggregate"]
    assert agg["n_images"] == 224
    assert agg["pq"] == pytest.approx(1.0, abs=1e-6)  # HoVer-Net's SQ epsilon: 1 - ~1e-7
    assert agg["aji"] == agg["aji_plus"] == agg["dice1"] == agg["dice2"] == 1.0
    assert agg["fp"] == agg["fn"] == 0


def test_ocelot_fold0_predictions(shared_data, tmp_path):
    fold = shared_data / "ocelot" / "fold_0"
    out = tmp_path / "oc.json"
    r = runner.invoke(
        app,
        [
            "score",
            "points",
            "--gt",
            str(fold / "gt.json"),
            "--pred",
            str(fold / "predictions.json"),
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    agg = res["aggregate"]
    # Same values as lunit-io/ocelot23algo evaluation/eval.py with the probability column.
    assert agg["per_class"]["1"]["f1"] == 0.6403 and agg["per_class"]["2"]["f1"] == 0.7439
    assert agg["mf1"] == pytest.approx(0.6921)
    assert agg["per_class"]["1"]["n_true"] + agg["per_class"]["2"]["n_true"] == 12677
    assert agg["all"]["n_pred"] == 13570
    from cellbench.metrics.io import score_point_files

    off = score_point_files(fold / "gt.json", fold / "predictions.json", order="official")
    assert off["aggregate"]["per_class"]["2"]["f1"] == pytest.approx(0.744, abs=1e-4)
    # per organ, from the fold's metadata
    meta = json.loads((fold / "metadata.json").read_text())
    organ = {f"image_{k}": m.get("organ") for k, m in enumerate(meta)}
    by = aggregate_groups(res["per_image"], organ, kind="points")
    assert len(by) >= 5 and "unknown" not in by
    assert sum(v["all"]["n_true"] for v in by.values()) == 12677
    assert all(0 < v["mf1"] < 1 for v in by.values())
