"""Official challenge protocols as presets (issue 29 item 3), each checked against answers
computed by hand from the official procedure."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

E = 1.0e-6  # get_fast_pq's SQ epsilon


def _fold() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four 16 x 16 images in PanNuke's layout (channels: neoplastic, inflammatory,
    connective, dead, epithelial, background), float64 as PanNuke stores them."""
    t = np.zeros((4, 16, 16, 6))
    p = np.zeros((4, 16, 16, 6))
    # image 0, Breast: a neoplastic nucleus found shifted by one column (IoU 12/20 = 0.6) and
    # an inflammatory false positive where the GT has no inflammatory nucleus
    t[0, 2:6, 2:6, 0] = 1
    p[0, 2:6, 3:7, 0] = 5
    p[0, 10:13, 10:13, 1] = 2
    # image 1, Breast: a connective nucleus missed
    t[1, 8:12, 8:12, 2] = 3
    # image 2, Kidney: no nucleus in the GT, one predicted
    p[2, 1:4, 1:4, 4] = 1
    # image 3, a tissue run.py does not list: a dead nucleus found exactly
    t[3, 5:9, 5:9, 3] = 7
    p[3, 5:9, 5:9, 3] = 9
    types = np.array(["Breast", "Breast", "Kidney", "Unknown_tissue"])
    return t, p, types


def test_pannuke_fold_by_hand():
    from cellbench.metrics.pannuke import pannuke_scores

    t, p, types = _fold()
    r = pannuke_scores(t, p, types)
    im = r["per_image"]
    assert im[0]["pq"][0] == pytest.approx(0.6 / (1 + E), abs=1e-15)
    assert math.isnan(im[0]["pq"][1])  # the false positive of an absent class is not counted
    assert im[0]["bpq"] == pytest.approx((1 / 1.5) * 0.6 / (1 + E), abs=1e-15)  # FP counts here
    assert im[1]["mpq"] == 0 and im[1]["bpq"] == 0
    assert math.isnan(im[2]["mpq"]) and math.isnan(im[2]["bpq"])
    pc = r["per_class"]
    assert pc["neoplastic"] == pytest.approx(0.6 / (1 + E), abs=1e-15)
    assert math.isnan(pc["inflammatory"]) and pc["connective"] == 0 and pc["dead"] == 1 / (1 + E)
    assert r["per_tissue"]["Breast"]["mPQ"] == pytest.approx(0.3 / (1 + E), abs=1e-15)
    assert r["per_tissue"]["Breast"]["bPQ"] == pytest.approx(0.2 / (1 + E), abs=1e-15)
    assert math.isnan(r["per_tissue"]["Kidney"]["mPQ"])
    assert r["mPQ"] == pytest.approx(0.3 / (1 + E), abs=1e-15)  # Breast only: NaNs skipped
    assert r["bPQ"] == pytest.approx(0.2 / (1 + E), abs=1e-15)
    assert r["left_out"] == ["Unknown_tissue"]


def test_pannuke_binarize_overwrites_in_channel_order():
    from cellbench.metrics.pannuke import binarize

    x = np.zeros((4, 4, 5))
    x[0:2, 0:2, 0] = 4
    x[1:3, 1:3, 2] = 1  # overlaps the first: a later channel wins
    b = binarize(x)
    assert b[0, 0] == 1 and b[1, 1] == 2 and b[2, 2] == 2 and (b > 0).sum() == 3 + 4


def test_pannuke_fold_from_the_cli(tmp_path):
    from cellbench.cli.main import app

    t, p, types = _fold()
    gt, pred = tmp_path / "fold1", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    np.save(gt / "masks.npy", t)
    np.save(gt / "types.npy", types)
    np.save(pred / "masks.npy", p)
    out = tmp_path / "scores.json"
    res = CliRunner().invoke(
        app,
        [
            "score",
            "instances",
            "--preset",
            "pannuke",
            "--gt",
            str(gt),
            "--pred",
            str(pred),
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["mPQ"] == pytest.approx(0.3 / (1 + E)) and doc["per_class"]["inflammatory"] is None
    assert doc["per_tissue"]["Breast"]["n_images"] == 2 and "mPQ=0.3000 bPQ=0.2000" in res.output
    np.save(pred / "masks.npy", p[:3])
    res = CliRunner().invoke(
        app, ["score", "instances", "--preset", "pannuke", "--gt", str(gt), "--pred", str(pred)]
    )
    assert res.exit_code == 2 and "differs from the ground truth" in res.output


def test_pannuke_per_image_preset_agrees_with_the_fold_protocol():
    """evaluate's per-image pannuke figures: hovernet's, mPQ over GT classes, bPQ over images
    with nuclei; equal to the fold protocol on label maps whose classes do not overlap."""
    from cellbench.metrics import aggregate_instances, instance_scores
    from cellbench.metrics.pannuke import binarize, pannuke_scores

    t, p, types = _fold()
    rows = []
    for i in range(3):
        tl, pl_ = binarize(t[i, :, :, :5]), binarize(p[i, :, :, :5])
        tc = {int(v): int(np.argmax(t[i][tl == v][0, :5] > 0)) + 1 for v in np.unique(tl) if v}
        pc = {int(v): int(np.argmax(p[i][pl_ == v][0, :5] > 0)) + 1 for v in np.unique(pl_) if v}
        rows.append(
            instance_scores(
                tl, pl_, "pannuke", true_classes=tc, pred_classes=pc, classes=[1, 2, 3, 4, 5]
            )
        )
    agg = aggregate_instances(rows, "pannuke")
    ref = pannuke_scores(t[:3], p[:3], np.array(["Breast"] * 3))
    assert agg["bpq"] == pytest.approx(ref["bPQ"]) and agg["mpq"] == pytest.approx(ref["mPQ"])
    assert agg["per_class"]["1"]["pq"] == pytest.approx(ref["per_class"]["neoplastic"])


def _square(m, r, c, v, size=8):
    m[r : r + size, c : c + size] = v


def test_conic_counts_in_the_central_224_and_r2_by_hand():
    """CoNIC composition: instances present in the central 224 x 224 of a 256 x 256 patch
    (rows/cols 16..239), by class; R2 per class (sklearn's r2_score), multi_r2 = mean."""
    from cellbench.metrics import aggregate_instances, instance_scores

    rows = []
    true_c1 = [1, 2, 3]
    for k in range(3):
        t = np.zeros((256, 256), np.int32)
        tc: dict[int, int] = {}
        _square(t, 0, 100, 1)  # rows 0-7: outside the crop, never counted
        tc[1] = 1
        _square(t, 10, 40, 2)  # rows 10-17: reaches into the crop, counted
        tc[2] = 1
        for j in range(true_c1[k] - 1):
            _square(t, 50 + 20 * j, 50, 3 + j)
            tc[3 + j] = 1
        for j in range(2):  # two class-2 nuclei in every image
            _square(t, 200, 60 + 20 * j, 10 + j)
            tc[10 + j] = 2
        p, pc = t.copy(), dict(tc)
        if k == 2:  # one extra class-1 prediction in the last image
            _square(p, 120, 200, 20)
            pc[20] = 1
        r = instance_scores(t, p, "conic", true_classes=tc, pred_classes=pc, classes=[1, 2])
        assert r["counts"]["true"] == {"1": true_c1[k], "2": 2}
        rows.append(r)
    agg = aggregate_instances(rows, "conic", classes=[1, 2])
    # class 1: true (1, 2, 3), predicted (1, 2, 4): 1 - 1/2; class 2 constant and exact: 1.0
    assert agg["r2"] == {"1": pytest.approx(0.5), "2": 1.0}
    assert agg["multi_r2"] == pytest.approx(0.75) and agg["n_count_images"] == 3


def _three(ids) -> np.ndarray:
    m = np.zeros((20, 30), np.int32)
    for k, i in enumerate(ids):
        m[2:8, 2 + 9 * k : 8 + 9 * k] = i
    return m


def test_monusac_as_published_and_corrected_by_hand():
    """Foucart et al.'s fabricated case: the same three nuclei under other ids. As published,
    the GT ids are removed from the predicted ids, so none is and all three count as FP too:
    PQ = 3 / (3 + 1.5) = 2/3; corrected: 1. Ids that happen to line up hide the error."""
    from cellbench.metrics import instance_scores

    t = _three([1, 2, 3])
    cls = {1: 1, 2: 1, 3: 1}
    for pred_ids, published in (([4, 5, 6], 2 / 3), ([2, 3, 1], 1.0)):
        p = _three(pred_ids)
        pc = dict.fromkeys(pred_ids, 1)
        r = instance_scores(t, p, "monusac", true_classes=cls, pred_classes=pc)
        assert r["pq"] == pytest.approx(published)
        r = instance_scores(t, p, "monusac_corrected", true_classes=cls, pred_classes=pc)
        assert r["pq"] == 1.0
    # a class only predicted: not scored as published (its FPs are missed), 0 when corrected
    p = _three([1, 2, 3])
    p[12:18, 2:8] = 9
    pc = {1: 1, 2: 1, 3: 1, 9: 2}
    r = instance_scores(t, p, "monusac", true_classes=cls, pred_classes=pc)
    assert list(r["per_class"]) == ["1"] and r["pq"] == 1.0
    r = instance_scores(t, p, "monusac_corrected", true_classes=cls, pred_classes=pc)
    assert r["per_class"]["2"]["pq"] == 0.0 and r["pq"] == 0.5
    # a prediction inside an ambiguous region is removed before scoring
    amb = np.zeros(t.shape, bool)
    amb[10:20, 0:10] = True
    r = instance_scores(t, p, "monusac_corrected", true_classes=cls, pred_classes=pc, ambiguous=amb)
    assert r["pq"] == 1.0 and list(r["per_class"]) == ["1"]


def test_monusac_aggregation_per_sub_image_or_per_patient():
    from cellbench.metrics import aggregate_instances, instance_scores

    t = _three([1, 2, 3])
    cls = {1: 1, 2: 1, 3: 1}
    empty = np.zeros_like(t)
    rows = {}
    for sid, p in (
        ("TCGA-AA-0001-01Z_1", t),
        ("TCGA-AA-0001-01Z_2", empty),
        ("TCGA-BB-0002-01Z_1", t),
    ):
        pc = {i: 1 for i in np.unique(p) if i}
        for v in ("monusac", "monusac_corrected"):
            rows.setdefault(v, {})[sid] = instance_scores(
                t, p, v, true_classes=cls, pred_classes=pc
            )
    pub = aggregate_instances(rows["monusac"], "monusac")
    cor = aggregate_instances(rows["monusac_corrected"], "monusac_corrected")
    assert pub["pq"] == pytest.approx(2 / 3)  # mean over the three sub-images
    assert cor["pq"] == pytest.approx(0.75) and cor["n_patients"] == 2  # (0.5 + 1) / 2


def test_monusac_scored_from_folders_with_ambiguous_masks(tmp_path):
    import tifffile

    from cellbench.metrics.io import score_instance_dirs

    gt, pr = tmp_path / "gt", tmp_path / "pr"
    gt.mkdir()
    pr.mkdir()
    t = _three([1, 2, 3])
    p = _three([4, 5, 6])
    p[12:18, 2:8] = 7  # a false positive inside the ambiguous region
    np.save(gt / "s1.npy", t)
    np.save(gt / "s1_class.npy", (t > 0).astype(np.int32))
    amb = np.zeros(t.shape, np.uint8)
    amb[10:20, 0:10] = 255
    tifffile.imwrite(gt / "s1_ambiguous.tif", amb)
    np.save(pr / "s1.npy", p)
    np.save(pr / "s1_class.npy", (p > 0).astype(np.int32))
    res = score_instance_dirs(gt, pr, "monusac_corrected")
    assert list(res["per_image"]) == ["s1"] and res["aggregate"]["pq"] == 1.0
    res = score_instance_dirs(gt, pr, "monusac")
    assert res["aggregate"]["pq"] == pytest.approx(2 / 3)


def test_monuseg_aji_by_hand_and_where_it_differs_from_hovernet():
    from cellbench.metrics import aggregate_instances, instance_scores

    t = np.zeros((20, 20), np.int32)
    p = np.zeros_like(t)
    t[0:4, 0:4] = 1  # G1, 16 px
    t[10:14, 10:14] = 2  # G2, 16 px, no prediction overlaps it
    p[0:4, 0:2] = 1  # P1: 8 px of G1 (JI 0.5)
    p[0:4, 2:4] = 2  # P2: the other 8 px of G1 and 16 px outside: JI 8/32 = 0.25
    p[4:8, 0:4] = 2
    p[16:18, 0:5] = 3  # P3, 10 px, unused
    r = instance_scores(t, p, "monuseg")
    # G1 takes P1 (C 8, U 16); G2 adds 16; unused P2 (24) and P3 (10): 8 / 66
    assert r["aji"] == pytest.approx(8 / 66)
    # equal Jaccard indices with different unions: HoVer-Net's epsilon prefers the larger
    # prediction, the challenge's strict comparison keeps the lower id
    t = np.zeros((3, 20), np.int32)
    p = np.zeros_like(t)
    t[0, 0:10] = 1
    p[0, 0:4] = 1  # inter 4, union 10: JI 0.4
    p[0, 4:10] = 2  # inter 6, union 15: JI 0.4
    p[1, 4:9] = 2
    assert instance_scores(t, p, "monuseg")["aji"] == pytest.approx(4 / 21)
    assert instance_scores(t, p, "hovernet")["aji"] == pytest.approx(6 / 19)
    agg = aggregate_instances([instance_scores(t, p, "monuseg"), r], "monuseg")
    assert agg["aji"] == pytest.approx((4 / 21 + 8 / 66) / 2)  # mean over images


def test_seed_000_per_category_detection_of_a_class_agnostic_model():
    """F_I..F_IV for models without classes (issue 31 item 5): per ground-truth category k,
    TP_k / FN_k = paired / unpaired GT nuclei of k; FP_k = unpaired predictions whose nearest
    GT nucleus is of k ('nearest'), or none ('none')."""
    from cellbench.metrics import aggregate_instances, instance_scores

    t = np.zeros((100, 100), np.int32)
    p = np.zeros_like(t)
    for i, (r, c) in enumerate([(10, 10), (40, 10), (70, 70)], start=1):
        t[r : r + 6, c : c + 6] = i
    p[10:16, 10:16] = 1  # finds GT 1
    p[40:46, 10:16] = 2  # finds GT 2
    p[70:76, 45:51] = 3  # a false positive, 25 px from GT 3 (beyond the 12 px radius)
    cats = {1: 1, 2: 2, 3: 2}
    r = instance_scores(t, p, "hovernet", centroid_f1=True, true_categories=cats)
    assert r["types"]["f_cat"] == {"1": 1.0, "2": pytest.approx(2 / 4)}
    r2 = instance_scores(
        t, p, "hovernet", centroid_f1=True, true_categories=cats, category_fp="none"
    )
    assert r2["types"]["f_cat"]["2"] == pytest.approx(2 / 3)
    agg = aggregate_instances([r, r], "hovernet")  # pooled over images
    assert agg["types"]["f_cat"]["2"] == pytest.approx(4 / 8)
