"""Instance metrics: hand-worked cases that expose each preset's conventions."""

from __future__ import annotations

import numpy as np
import pytest

from cellbench.core.errors import CellbenchError, DataError
from cellbench.metrics import aggregate_instances, compare_presets, instance_scores

EPS = 1e-6


def rect(shape, boxes):
    """Label map from ``{id: (y0, y1, x0, x1)}``; later boxes overwrite earlier ones."""
    a = np.zeros(shape, dtype=np.int32)
    for i, (y0, y1, x0, x1) in boxes.items():
        a[y0:y1, x0:x1] = i
    return a


def test_iou_exactly_half_strict_vs_inclusive():
    # GT: one 2x2 nucleus (4 px); prediction covers 2 of its pixels: IoU = 2/4 = 0.5 exactly
    t = rect((8, 8), {1: (2, 4, 2, 4)})
    p = rect((8, 8), {9: (2, 3, 2, 4)})
    hv = instance_scores(t, p, "hovernet")
    sd = instance_scores(t, p, "stardist")
    cn = instance_scores(t, p, "conic")
    tm = instance_scores(t, p, "torchmetrics")
    assert (hv["tp"], hv["fp"], hv["fn"]) == (0, 1, 1)  # IoU > 0.5 required
    assert hv["pq"] == 0 and hv["dq"] == 0 and hv["sq"] == 0
    assert cn["tp"] == tm["tp"] == 0
    assert (sd["tp"], sd["fp"], sd["fn"]) == (1, 0, 0)  # IoU >= 0.5 matches
    assert sd["pq"] == pytest.approx(0.5) and sd["f1"] == 1.0
    assert sd["mean_true_score"] == pytest.approx(0.5)
    diff = compare_presets({"tie": (t, p)}, "hovernet", "stardist")
    rows = {r["metric"]: r for r in diff["per_image"]}
    assert rows["tp"]["hovernet"] == 0 and rows["tp"]["stardist"] == 1
    assert "IoU exactly 0.5" in rows["pq"]["reason"]


def test_two_predictions_tied_at_half_stardist_assigns_one():
    t = rect((8, 8), {1: (2, 4, 2, 4)})
    p = rect((8, 8), {3: (2, 3, 2, 4), 4: (3, 4, 2, 4)})  # both halves: IoU 0.5 each
    sd = instance_scores(t, p, "stardist")
    assert (sd["tp"], sd["fp"], sd["fn"]) == (1, 1, 0)
    assert sd["pq"] == pytest.approx(0.5 / 1.5)
    assert sd["f1"] == pytest.approx(2 / 3)


def test_merged_nuclei_aji_reuses_prediction():
    # two 10x10 GT side by side, one 10x20 prediction over both: IoU 100/200 = 0.5 each
    t = rect((20, 30), {1: (0, 10, 0, 10), 2: (0, 10, 10, 20)})
    p = rect((20, 30), {7: (0, 10, 0, 20)})
    s = instance_scores(t, p, "hovernet")
    assert (s["tp"], s["fp"], s["fn"]) == (0, 1, 2)
    # AJI: both GT take prediction 7 (reuse): (100 + 100) / (200 + 200)
    assert s["aji"] == pytest.approx(0.5)
    # AJI+: one pair (100/200); the other GT is unpaired and adds 100 to the union
    assert s["aji_plus"] == pytest.approx(100 / 300)
    assert s["dice1"] == pytest.approx(1.0)
    # Dice2 over overlapping pairs: 2 * 200 / ((100 + 200) + (100 + 200))
    assert s["dice2"] == pytest.approx(400 / 600)
    sd = instance_scores(t, p, "stardist")
    assert (sd["tp"], sd["fp"], sd["fn"]) == (1, 0, 1)
    assert sd["pq"] == pytest.approx(0.5 / 1.5)


def test_split_nucleus():
    t = rect((10, 30), {1: (0, 10, 0, 20)})  # 200 px
    p = rect((10, 30), {3: (0, 10, 0, 12), 5: (0, 10, 12, 20)})  # 120 px + 80 px
    s = instance_scores(t, p, "hovernet")
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 0)
    assert s["dq"] == pytest.approx(1 / 1.5)
    assert s["sq"] == pytest.approx(0.6 / (1 + EPS), abs=0)
    assert s["pq"] == pytest.approx((1 / 1.5) * 0.6 / (1 + EPS), abs=1e-15)
    assert s["aji"] == pytest.approx(120 / 280)
    assert s["aji_plus"] == pytest.approx(120 / 280)
    c = instance_scores(t, p, "conic")
    assert c["dq"] == pytest.approx(1 / (1.5 + EPS), abs=1e-15)


def test_perfect_prediction_hovernet_sq_epsilon():
    t = rect((10, 10), {1: (0, 3, 0, 3), 2: (5, 9, 5, 9)})
    s = instance_scores(t, t * 5, "hovernet")  # non-contiguous ids 5, 10
    assert s["dq"] == 1.0
    assert s["sq"] == pytest.approx(2 / (2 + EPS), abs=0)  # HoVer-Net's epsilon
    assert s["aji"] == s["aji_plus"] == s["dice1"] == s["dice2"] == 1.0
    assert instance_scores(t, t, "stardist")["pq"] == 1.0  # no epsilon


def test_non_contiguous_ids_do_not_change_scores():
    rng = np.random.default_rng(3)
    from cellbench.runs.synthetic import perturb_instances, random_instances

    t = random_instances((64, 64), 12, seed=4)
    p = perturb_instances(t, seed=5)
    a = instance_scores(t, p, "hovernet")
    lut_t = np.concatenate([[0], rng.permutation(np.arange(1, t.max() + 1)) * 97 + 1000])
    lut_p = np.concatenate([[0], np.arange(1, p.max() + 1) * 31 + 7])
    b = instance_scores(lut_t[t], lut_p[p].astype(np.uint32), "hovernet")
    for k in ("tp", "fp", "fn", "pq", "dq", "sq", "aji", "aji_plus", "dice1", "dice2"):
        assert a[k] == pytest.approx(b[k], abs=1e-15)


def test_empty_image_policy():
    z = np.zeros((6, 6), dtype=np.int32)
    one = rect((6, 6), {1: (1, 3, 1, 3)})
    both = instance_scores(z, z, "hovernet")
    assert both["pq"] is None and both["aji"] is None and both["dice1"] is None
    assert both["tp"] == both["fp"] == both["fn"] == 0
    gt_only = instance_scores(one, z, "hovernet")
    assert (gt_only["pq"], gt_only["aji"], gt_only["dice1"], gt_only["fn"]) == (0, 0, 0, 1)
    pred_only = instance_scores(z, one, "stardist")
    assert (pred_only["pq"], pred_only["aji"], pred_only["fp"]) == (0, 0, 1)
    agg = aggregate_instances(
        {"empty": both, "gt_only": gt_only, "perfect": instance_scores(one, one, "hovernet")},
        "hovernet",
    )
    assert agg["n_images"] == 3 and agg["n_scored"] == 2
    assert agg["pq"] == pytest.approx((0 + 1 / (1 + EPS)) / 2)  # empty image left out


def test_image_mean_vs_pooled():
    big = rect((40, 40), {i + 1: (4 * i, 4 * i + 3, 0, 3) for i in range(9)})
    miss = np.zeros_like(big)
    miss[big == 1] = 1  # predicts only the first of 9
    small = rect((10, 10), {1: (0, 3, 0, 3)})
    rows_hv = {
        "a": instance_scores(big, miss, "hovernet"),
        "b": instance_scores(small, small, "hovernet"),
    }
    rows_sd = {
        "a": instance_scores(big, miss, "stardist"),
        "b": instance_scores(small, small, "stardist"),
    }
    hv = aggregate_instances(rows_hv)
    sd = aggregate_instances(rows_sd)
    assert hv["dq"] == pytest.approx((1 / 5 + 1) / 2)  # mean of per-image DQ
    assert sd["f1"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 8))  # pooled: TP 2, FN 8
    assert sd["averaging"].startswith("pooled")
    by_img = aggregate_instances(rows_sd, by_image=True)
    assert by_img["f1"] == pytest.approx((1 / 5 + 1) / 2)


def test_thresholds_range_and_below_half():
    t = rect((10, 30), {1: (0, 10, 0, 20)})
    p = rect((10, 30), {3: (0, 10, 0, 12), 5: (0, 10, 12, 20)})  # IoU 0.6 and 0.4
    s = instance_scores(t, p, "stardist", iou="0.5:0.95")
    assert list(s["by_threshold"]) == [f"{0.5 + 0.05 * i:.2f}" for i in range(10)]
    assert s["by_threshold"]["0.55"]["tp"] == 1 and s["by_threshold"]["0.60"]["tp"] == 1
    assert s["by_threshold"]["0.65"]["tp"] == 0
    # DSB 2018 score: mean over thresholds of TP/(TP+FP+FN)
    assert s["accuracy_mean"] == pytest.approx(3 * 0.5 / 10)
    # below 0.5 HoVer-Net runs Hungarian on IoU: still one pair (the 0.6 one)
    low = instance_scores(t, p, "hovernet", iou=0.3)
    assert (low["tp"], low["fp"]) == (1, 1)


def test_hungarian_below_half_prefers_total_iou():
    # t1 overlaps p1 (IoU 9/29) and p2 (8/20); t2 overlaps only p1 (9/29). Hungarian on
    # IoU pairs t1-p2 and t2-p1 (total 0.71) rather than t1-p1 alone.
    t = np.zeros((1, 40), dtype=np.int32)
    p = np.zeros((1, 40), dtype=np.int32)
    t[0, 0:20] = 1
    t[0, 20:40] = 2
    p[0, 11:29] = 1  # with t1: 9/29; with t2: 9/29
    p[0, 0:8] = 2  # with t1: 8/20 = 0.4
    s = instance_scores(t, p, "hovernet", iou=0.25)
    assert s["tp"] == 2


def test_multiclass_per_class_mpq_and_mpq_plus():
    t = rect((20, 40), {1: (0, 5, 0, 5), 2: (0, 5, 10, 15), 3: (10, 15, 0, 5)})
    p = rect((20, 40), {1: (0, 5, 0, 5), 2: (0, 5, 10, 15), 4: (10, 15, 20, 25)})
    tc = {1: 1, 2: 2, 3: 2}
    pc = {1: 1, 2: 1, 4: 2}  # nucleus 2 predicted as class 1; an FP of class 2
    s = instance_scores(t, p, "conic", true_classes=tc, pred_classes=pc)
    c1, c2 = s["per_class"]["1"], s["per_class"]["2"]
    assert (c1["tp"], c1["fp"], c1["fn"]) == (1, 1, 0)
    assert (c2["tp"], c2["fp"], c2["fn"]) == (0, 1, 2)
    assert s["bpq"] == s["pq"]
    z = instance_scores(t, t, "conic", true_classes=tc, pred_classes=tc)
    agg = aggregate_instances({"a": s, "b": z}, classes=[1, 2, 3])
    # pooled per class: class 1 TP 2 FP 1; class 2 TP 2 FP 1 FN 2; class 3 absent -> 0
    pq1 = (2 / (2 + 0.5 + EPS)) * (2 / (2 + EPS))
    pq2 = (2 / (2 + 0.5 + 1 + EPS)) * (2 / (2 + EPS))
    assert agg["per_class"]["1"]["pq"] == pytest.approx(pq1, abs=1e-12)
    assert agg["mpq_plus"] == pytest.approx((pq1 + pq2 + 0) / 3, abs=1e-12)
    hv = instance_scores(t, p, "hovernet", true_classes=tc, pred_classes=pc)
    # PanNuke-style image mPQ: classes present in the GT (1 and 2)
    assert hv["mpq"] == pytest.approx((hv["per_class"]["1"]["pq"] + 0.0) / 2)


def test_pixel_class_maps_split_mixed_instances():
    t = rect((10, 20), {1: (0, 4, 0, 8)})
    cls_t = np.where(t > 0, 1, 0)
    cls_t[0:4, 4:8] = 2  # half of the nucleus is class 2: CoNIC treats it as two
    s = instance_scores(t, t, "conic", true_class_map=cls_t, pred_class_map=cls_t)
    assert s["per_class"]["1"]["tp"] == 1 and s["per_class"]["2"]["tp"] == 1
    assert s["types"]["per_type"]["1"]["tp"] == 1  # majority class (tie -> lower class)


def test_type_classification_weights():
    from cellbench.metrics import type_counts, type_terms

    txy = np.array([[10, 10], [50, 50], [90, 90], [130, 130]], dtype=float)
    tcl = np.array([1, 1, 2, 2])
    pxy = np.array([[11, 10], [51, 52], [91, 90], [300, 300]], dtype=float)
    pcl = np.array([1, 2, 2, 1])
    c = type_counts(txy, tcl, pxy, pcl, radius_px=12)
    assert (c["tp_d"], c["fp_d"], c["fn_d"], c["correct"]) == (3, 1, 1, 2)
    assert c["f_d"] == pytest.approx(6 / 8)
    t1 = c["per_type"]["1"]  # tp 1; fn 1 (true 1 -> pred 2); fp_d 1 (unpaired pred 1)
    assert (t1["tp"], t1["fp"], t1["fn"], t1["fp_d"], t1["fn_d"]) == (1, 0, 1, 1, 0)
    assert c["f_t"]["1"] == pytest.approx(2 / (2 + 0 + 2 + 1 + 0))
    t2 = c["per_type"]["2"]  # tp 1; fp 1; fn_d 1 (unpaired true 2)
    assert c["f_t"]["2"] == pytest.approx(2 / (2 + 2 + 0 + 0 + 1))
    assert t2["fn_d"] == 1
    pooled = type_terms([c, c])
    assert pooled["f_d"] == pytest.approx(c["f_d"])


def test_hovernet_type_pairing_is_unrestricted_hungarian():
    # HoVer-Net pairs centroids by Hungarian over all distances and drops far pairs after:
    # a near pair can be displaced. a0-b0 = 10 and a1-b1 = 12.54 are both within r = 12.6,
    # but a0-b1 (13) + a1-b0 (0.5) is the smaller total, and a0-b1 is then dropped.
    from cellbench.metrics.points import full_hungarian_match, hungarian_match

    a = np.array([[0.0, 0.0], [10.0, 0.5]])
    b = np.array([[10.0, 0.0], [5.0, 12.0]])
    ia, ib = full_hungarian_match(a, b, 12.6)
    assert list(zip(ia.tolist(), ib.tolist(), strict=False)) == [(1, 0)]
    ra, rb = hungarian_match(a, b, 12.6)  # restricted to the radius: both pairs
    assert sorted(zip(ra.tolist(), rb.tolist(), strict=False)) == [(0, 0), (1, 1)]


def test_bad_inputs_name_the_file():
    t = np.zeros((4, 4), dtype=np.int32)
    with pytest.raises(DataError, match="p.npy.*differs"):
        instance_scores(t, np.zeros((4, 5), np.int32), pred_name="p.npy")
    with pytest.raises(DataError, match="p.tif.*float"):
        instance_scores(t, np.zeros((4, 4), np.float32), pred_name="p.tif")
    with pytest.raises(DataError, match="NaN"):
        instance_scores(t, np.full((4, 4), np.nan), pred_name="p.tif")
    neg = t.copy()
    neg[0, 0] = -3
    with pytest.raises(DataError, match="g.png.*negative"):
        instance_scores(neg, t, true_name="g.png")
    with pytest.raises(DataError, match="boolean"):
        instance_scores(t.astype(bool), t)
    with pytest.raises(CellbenchError, match="unknown instance metric preset"):
        instance_scores(t, t, "nope")
    with pytest.raises(CellbenchError, match="IoU"):
        instance_scores(t, t, iou=1.5)
    with pytest.raises(CellbenchError, match="0.5 only"):
        instance_scores(t, t, "torchmetrics", iou=0.6)


def test_torchmetrics_background_stuff():
    t = rect((10, 10), {1: (0, 3, 0, 3)})
    s = instance_scores(t, t, "torchmetrics", background_stuff=True)
    assert s["background"]["tp"] == 1 and s["rq"] == 1.0 and s["pq"] == 1.0
    agg = aggregate_instances([s])
    assert agg["background_pq"] == 1.0 and agg["rq"] == 1.0


def test_class_maps_with_different_class_ranges():
    # GT uses classes up to 1, the prediction up to 5: types must still map to instances
    t = rect((10, 30), {1: (0, 4, 0, 4), 2: (0, 4, 10, 14)})
    p = rect((10, 30), {1: (0, 4, 0, 4), 2: (0, 4, 10, 14)})
    ct = np.where(t > 0, 1, 0)
    cp = np.where(p == 1, 1, np.where(p == 2, 5, 0))
    cp[0, 10] = 1  # one pixel of nucleus 2 disagrees: majority stays 5
    s = instance_scores(t, p, "hovernet", true_class_map=ct, pred_class_map=cp)
    ty = s["types"]
    assert ty["tp_d"] == 2 and ty["correct"] == 1
    assert ty["per_type"]["1"]["fn"] == 1  # true class 1 predicted as 5


def test_stardist_decides_with_float32_iou_as_stardist_does():
    """k / (2k + 1) lies below 0.5 in float64 but rounds to 0.5 in float32 (StarDist's IoU
    dtype) for large k: StarDist matches the pair, a strict or float64 scorer does not."""
    from cellbench.metrics.instance import match_pairs
    from cellbench.metrics.overlap import Overlap

    k = 20_000_000
    one = np.array([1])
    ov = Overlap(
        one,
        one,
        np.array([2 * k]),
        np.array([k + 1]),
        np.array([0]),
        np.array([0]),
        np.array([k]),
        (8000, 8000),
    )
    assert ov.iou[0] < 0.5 and ov.iou32[0] == np.float32(0.5)
    assert match_pairs(ov, 0.5, "stardist").tolist() == [True]
    assert match_pairs(ov, 0.5, "hovernet").tolist() == [False]


def test_matching_scores_are_instance_scores_matching_part():
    from cellbench.metrics import matching_scores
    from cellbench.runs.synthetic import perturb_instances, random_instances

    t = random_instances((200, 220), 60, seed=5)
    p = perturb_instances(t, seed=6, p_merge=0.2, p_split=0.2)
    for preset in ("hovernet", "stardist", "conic"):
        m = matching_scores(t, p, preset, iou="0.5:0.95")
        full = instance_scores(t, p, preset, iou="0.5:0.95")
        assert m["by_threshold"] == full["by_threshold"]
        assert {k: full[k] for k in m if k != "by_threshold"} == {
            k: v for k, v in m.items() if k != "by_threshold"
        }
        assert "aji" not in m and "dice1" not in m


def test_stardist_preset_equals_stardist_itself():
    """Where StarDist is installed (``benchmarks/requirements.txt``; not in CI's set), the
    stardist preset gives StarDist's own numbers on real CoNSeP maps, float32 IoU and all."""
    matching = pytest.importorskip("stardist.matching", reason="StarDist is not installed").matching
    from cellbench.metrics import matching_scores
    from cellbench.runs.synthetic import perturb_instances, random_instances

    pairs = [
        (t, perturb_instances(t, seed=s))
        for s, t in enumerate(random_instances((256, 256), 40, seed=s) for s in range(20))
    ]
    for t, p in pairs:
        ref = matching(t, p, thresh=0.5)
        got = matching_scores(t, p, "stardist")
        for key in (
            "tp",
            "fp",
            "fn",
            "precision",
            "recall",
            "f1",
            "accuracy",
            "mean_matched_score",
            "mean_true_score",
        ):
            assert got[key] == pytest.approx(getattr(ref, key), abs=1e-12), key
        assert got["pq"] == pytest.approx(ref.panoptic_quality, abs=1e-12)


def test_type_pairing_dense_up_to_the_limit_then_within_the_radius(monkeypatch):
    from cellbench.metrics import points as P

    # a displaced pair on integer centroids (HoVer-Net truncates them): a0-b0 = 10 and a1-b1 =
    # 12.08 lie within r = 12.6, but a0-b1 (13) + a1-b0 (1) is the smaller total; dense gives
    # HoVer-Net's one pair, radius keeps both; auto is dense at this size
    a = np.array([[0.0, 0.0], [10.0, 1.0]])
    b = np.array([[10.0, 0.0], [5.0, 12.0]])
    one = np.ones(2, np.int64)
    got = {m: P.type_counts(a, one, b, one, 12.6, pairing=m) for m in P.PAIRINGS}
    assert got["auto"]["pairing"] == "dense" and got["auto"]["tp_d"] == 1
    assert (got["dense"]["tp_d"], got["radius"]["tp_d"]) == (1, 2)
    # where HoVer-Net's assignment keeps every pair within the radius (jittered centroids,
    # one prediction each) the two pair identically; above the limit auto goes sparse
    rng = np.random.default_rng(3)
    t = rng.uniform(0, 2000, (1300, 2))
    p = t + rng.normal(0, 2.5, t.shape)
    tc, pc = rng.integers(1, 4, len(t)), rng.integers(1, 4, len(p))
    dense = P.type_counts(t, tc, p, pc, 12.0, pairing="dense")
    auto = P.type_counts(t, tc, p, pc, 12.0)
    assert auto["pairing"] == "radius" and len(t) * len(p) > P.DENSE_PAIRING_LIMIT
    assert dense["fn_d"] == dense["fp_d"] == 0  # HoVer-Net kept all its pairs
    for k in ("tp_d", "fp_d", "fn_d", "correct", "per_type"):
        assert auto[k] == dense[k], k
    # with misses and scattered false positives HoVer-Net's unrestricted assignment gives up
    # pairs within the radius to lower its total (the documented difference): radius keeps them
    keep = rng.random(len(t)) > 0.1
    p2 = np.concatenate([p[keep], rng.uniform(0, 2000, (80, 2))])
    pc2 = np.concatenate([pc[keep], rng.integers(1, 4, 80)])
    dense = P.type_counts(t, tc, p2, pc2, 12.0, pairing="dense")
    sparse = P.type_counts(t, tc, p2, pc2, 12.0, pairing="radius")
    assert sparse["tp_d"] >= keep.sum() > dense["tp_d"]
    with pytest.raises(CellbenchError, match="pairing"):
        P.type_counts(a, one, b, one, 12.6, pairing="nearest")


def test_type_pairing_of_a_whole_slide_sized_image_is_sparse():
    # 20k nuclei: the dense matrix would be 3.2 GB; the sparse pairing takes well under a second
    from cellbench.metrics.points import type_counts

    rng = np.random.default_rng(0)
    t = rng.uniform(0, 30_000, (20_000, 2))
    p = t + rng.normal(0, 2, t.shape)
    c = np.ones(len(t), np.int64)
    tracemalloc_peak = _peak_mb(lambda: type_counts(t, c, p, c, 12.0))
    r = type_counts(t, c, p, c, 12.0)
    assert r["pairing"] == "radius" and r["tp_d"] == 20_000 and tracemalloc_peak < 200


def _peak_mb(fn) -> float:
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


# -- many maps at once (issue 30 item 1) -------------------------------------------------------


@pytest.mark.parametrize(
    "preset, kw",
    [
        ("hovernet", {}),
        ("hovernet", {"centroid_f1": True}),
        ("stardist", {"iou": "0.5:0.95"}),
        ("conic", {}),
        ("torchmetrics", {}),
        ("pannuke", {"centroid_f1": True, "radius_px": 6}),
        ("monuseg", {}),
    ],
)
def test_scoring_many_maps_in_one_pass_equals_one_call_each(preset, kw, monkeypatch):
    """Random maps of mixed sizes (ids sparse, some empty): every key, every bit."""
    from cellbench.metrics import instance_scores_many
    from cellbench.runs.synthetic import perturb_instances, random_instances

    trues, preds = [], []
    for k, (h, w) in enumerate([(40, 50), (64, 64), (30, 90), (64, 64), (20, 20), (50, 40)]):
        t = random_instances((h, w), 3 + k, radius=(3.0, 7.0), seed=k) * (k + 1)
        trues.append(t)
        preds.append(perturb_instances(t, seed=k + 7, n_false=2, id_stride=3))
    trues[4][:] = 0  # no ground truth
    preds[4][:] = 0  # and no prediction
    preds[5][:] = 0  # ground truth only
    ref = [
        _general(monkeypatch, instance_scores, t, p, preset, **kw)
        for t, p in zip(trues, preds, strict=True)
    ]
    many = instance_scores_many
    assert _general(monkeypatch, many, trues, preds, preset, single_pass=True, **kw) == ref
    assert _general(monkeypatch, many, trues, preds, preset, single_pass=False, **kw) == ref


def test_scoring_many_real_maps_and_with_classes(data_env, catalog):
    from cellbench.data.samples import iter_samples
    from cellbench.metrics import instance_scores_many
    from cellbench.runs.synthetic import perturb_instances

    pairs = []
    for k, (_, s) in enumerate(iter_samples(catalog, "consep", "test")):
        if k == 12:
            break
        pairs.append((s.instances, perturb_instances(s.instances, seed=k), s.classes))
    trues = [t for t, _, _ in pairs]
    preds = [p for _, p, _ in pairs]
    ref = [
        instance_scores(t, p, "hovernet", centroid_f1=True)
        for t, p in zip(trues, preds, strict=True)
    ]
    assert instance_scores_many(trues, preds, centroid_f1=True, single_pass=True) == ref
    # classes: one call each, the same results
    per = [
        {"true_classes": c, "pred_classes": {i: 1 for i in np.unique(p) if i}} for _, p, c in pairs
    ]
    ref = [
        instance_scores(t, p, "hovernet", **kw) for t, p, kw in zip(trues, preds, per, strict=True)
    ]
    assert instance_scores_many(trues, preds, per_image=per) == ref


def _general(monkeypatch, fn, *args, **kw):
    """``fn(*args, **kw)`` through the general (numpy) scoring path: the compiled per-tile
    kernel off, so that it is compared against something other than itself."""
    from cellbench.metrics import _tile_kernel

    with monkeypatch.context() as m:
        m.setattr(_tile_kernel, "LOADED", False)
        m.setattr(_tile_kernel, "load", lambda: False)
        return fn(*args, **kw)


def _skip_without_numba():
    from cellbench.metrics import _tile_kernel

    if not _tile_kernel.load():
        pytest.skip("numba not installed: the compiled per-tile path is not available")


@pytest.mark.parametrize(
    "preset", ["hovernet", "stardist", "conic", "torchmetrics", "pannuke", "monuseg"]
)
def test_scoring_many_maps_compiled_equals_one_call_each(preset, monkeypatch):
    """The compiled per-tile path (one kernel call per tile, threads): every key, every bit,
    on maps with sparse ids, empty maps, several dtypes, splits and merges that make AJI+
    solve assignments, and a tile it must hand back (IoU exactly 0.5 under StarDist)."""
    from cellbench.metrics import _tile_kernel, batch, instance_scores_many
    from cellbench.runs.synthetic import perturb_instances, random_instances

    _skip_without_numba()
    trues, preds = [], []
    for k in range(40):
        side = (32, 64, 128, 256)[k % 4]
        t = random_instances((side, side), side // 4, radius=(2.0, 9.0), seed=k) * (k % 3 + 1)
        p = perturb_instances(t, seed=k + 50, n_false=3, id_stride=2 + k % 2)
        dt = (np.uint16, np.int32, np.int64, np.uint8)[k % 4]
        if dt is np.uint8 and max(t.max(), p.max()) > 255:
            dt = np.int32
        trues.append(t.astype(dt))
        preds.append(p.astype(dt))
    trues[4][:] = 0
    preds[4][:] = 0
    preds[5][:] = 0
    trues[6][:] = 0
    # two one-pixel nuclei and a prediction over both: IoU exactly 0.5 with each
    t = np.zeros((8, 8), np.int32)
    t[2, 2], t[2, 3] = 1, 2
    p = np.zeros_like(t)
    p[2, 2:4] = 5
    trues.append(t)
    preds.append(p)
    ref = [
        _general(monkeypatch, instance_scores, a, b, preset)
        for a, b in zip(trues, preds, strict=True)
    ]
    calls = []
    real = _tile_kernel.tile_counts
    monkeypatch.setattr(_tile_kernel, "tile_counts", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(batch, "COMPILED_MIN_PIXELS", 0)
    assert instance_scores_many(trues, preds, preset) == ref
    assert len(calls) >= len(trues)  # every tile (the one handed back: twice)
    # and one pair alone: instance_scores itself takes the compiled path
    assert [instance_scores(a, b, preset) for a, b in zip(trues, preds, strict=True)] == ref


def test_scoring_many_compiled_names_the_bad_file():
    from cellbench.core.errors import DataError
    from cellbench.metrics import instance_scores_many

    _skip_without_numba()
    good = np.zeros((16, 16), np.int32)
    bad = good.copy()
    bad[3, 3] = -2
    with pytest.raises(DataError, match="b.npy.*negative ids"):
        instance_scores_many(
            [good, good], [good, bad], names=[("a.npy", "a.npy"), ("b.npy", "b.npy")]
        )
    with pytest.raises(DataError, match="c.npy.*differs"):
        instance_scores_many([good, good], [good, bad[:8]], names=[("x", "x"), ("t", "c.npy")])


@pytest.mark.parametrize("compiled", [False, True])
def test_assignment_is_scipys_ties_included(compiled, monkeypatch):
    """cellbench.metrics.lsap returns scipy's assignment, on matrices full of ties."""
    from scipy.optimize import linear_sum_assignment

    from cellbench.metrics import _kernels, lsap

    if compiled:
        _skip_without_numba()
    else:
        monkeypatch.setattr(lsap, "_compiled", None)
        monkeypatch.setattr(_kernels, "LOADED", False)
        monkeypatch.setattr(lsap, "PY_MAX_CELLS_SCIPY_LOADED", 10**6)  # plain Python for all
    rng = np.random.default_rng(3)
    for trial in range(600):
        nr, nc = (int(x) for x in rng.integers(1, 9, 2))
        if trial % 3 == 0:
            m = rng.integers(0, 3, (nr, nc)) * rng.choice([1.0, 0.1, 1 / 3])
        elif trial % 3 == 1:
            m = rng.random((nr, nc)) * (rng.random((nr, nc)) < 0.5)
        else:
            m = np.round(rng.random((nr, nc)), 1)
        for mx in (False, True):
            want = linear_sum_assignment(m, maximize=mx)
            got = lsap.solve(m, maximize=mx)
            assert all(np.array_equal(a, b) for a, b in zip(want, got, strict=True)), (m, mx)
    big = rng.random((60, 45))
    want = linear_sum_assignment(big, maximize=True)
    assert all(np.array_equal(a, b) for a, b in zip(want, lsap.solve(big, True), strict=True))


def test_compiled_sum_is_numpys_bit_for_bit():
    """The per-tile kernel sums matched IoUs as numpy's pairwise summation does."""
    from cellbench.metrics import _tile_kernel

    _skip_without_numba()
    rng = np.random.default_rng(11)
    for dt in (np.float64, np.float32):
        for n in [*range(0, 140), 255, 256, 257, 1000, 4099]:
            a = (rng.random(n) * rng.choice([1.0, 1e-3, 1e5])).astype(dt)
            assert _tile_kernel._np_sum(a) == a.sum(), (dt, n)


@pytest.mark.parametrize("preset", ["hovernet", "stardist", "torchmetrics"])
def test_matching_scores_compiled_equal_the_general_path(preset, monkeypatch):
    from cellbench.metrics import matching_scores
    from cellbench.runs.synthetic import perturb_instances, random_instances

    _skip_without_numba()
    t = random_instances((600, 600), 300, radius=(3.0, 12.0), seed=4)
    p = perturb_instances(t, seed=5, n_false=10)
    want = _general(monkeypatch, matching_scores, t, p, preset)
    assert matching_scores(t, p, preset) == want
