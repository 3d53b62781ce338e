"""Instance segmentation scores of one image pair: PQ/DQ/SQ, AJI, AJI+, Dice, F1, per class.

All numbers come from one :class:`~cellbench.metrics.overlap.Overlap` (areas and the
intersections of overlapping pairs); see :mod:`cellbench.metrics.presets` for what each preset
reproduces. Areas are pixel counts; IoU thresholds are fractions in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core.errors import CellbenchError, DataError
from cellbench.data.sample import Objects
from cellbench.metrics.matching import best_per_group, max_weight_matching
from cellbench.metrics.overlap import (
    Overlap,
    check_label_map,
    compute_overlap,
    object_overlap,
)
from cellbench.metrics.presets import HOVERNET_LIKE, get_preset

#: IoU thresholds of "0.5:0.95" (COCO / DSB 2018 style).
IOU_RANGE = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def parse_thresholds(iou: float | Sequence[float] | str) -> tuple[float, ...]:
    """``0.5``, ``[0.5, 0.75]``, ``"0.5"`` or ``"0.5:0.95"`` -> tuple of thresholds."""
    if isinstance(iou, str):
        s = iou.strip()
        if s in ("0.5:0.95", "0.50:0.95"):
            return IOU_RANGE
        try:
            vals = tuple(float(v) for v in s.split(","))
        except ValueError:
            raise CellbenchError(
                f"IoU threshold {iou!r}: give a number, a list or 0.5:0.95"
            ) from None
    elif np.isscalar(iou):
        vals = (float(iou),)
    else:
        vals = tuple(float(v) for v in iou)
    if not vals or any(not (0.0 <= v < 1.0) or np.isnan(v) for v in vals):
        raise CellbenchError(f"IoU thresholds must lie in [0, 1): {vals}")
    return vals


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


def pq_terms(tp: int, fp: int, fn: int, iou_sum: float, preset: str) -> dict[str, float | None]:
    """DQ, SQ, PQ (and RQ) from counts with the preset's epsilons; None if nothing to score."""
    if tp + fp + fn == 0:
        return {"dq": None, "sq": None, "pq": None}
    if preset in HOVERNET_LIKE:
        dq = tp / (tp + 0.5 * fp + 0.5 * fn)
        sq = iou_sum / (tp + 1.0e-6)
        pq = dq * sq
    elif preset == "conic":
        dq = tp / (tp + 0.5 * fp + 0.5 * fn + 1.0e-6)
        sq = iou_sum / (tp + 1.0e-6)
        pq = dq * sq
    else:  # stardist, torchmetrics: no epsilon, 0 when undefined
        den = tp + 0.5 * fp + 0.5 * fn
        dq = _ratio(tp, den)
        sq = _ratio(iou_sum, tp)
        pq = _ratio(iou_sum, den)
    return {"dq": float(dq), "sq": float(sq), "pq": float(pq)}


def detection_terms(tp: int, fp: int, fn: int) -> dict[str, float | None]:
    """Precision, recall, F1, accuracy = TP/(TP+FP+FN) (StarDist: 0 when TP = 0)."""
    if tp + fp + fn == 0:
        return {"precision": None, "recall": None, "f1": None, "accuracy": None}
    return {
        "precision": _ratio(tp, tp + fp) if tp else 0.0,
        "recall": _ratio(tp, tp + fn) if tp else 0.0,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn) if tp else 0.0,
        "accuracy": _ratio(tp, tp + fp + fn) if tp else 0.0,
    }


def match_pairs(ov: Overlap, thr: float, preset: str) -> np.ndarray:
    """Boolean mask over ``ov``'s pairs: the matched (true positive) pairs at threshold ``thr``.

    Strict presets (``IoU > thr``) need no assignment for ``thr >= 0.5`` (such pairs are
    unique); below it HoVer-Net's rule applies (Hungarian on -IoU, then ``IoU > thr``).
    StarDist (``IoU >= thr``) maximises the number of matches with IoU as tie-breaker; an
    assignment step is only needed where a candidate shares a node (IoU exactly 0.5 or
    ``thr < 0.5``).
    """
    p = get_preset(preset, "instance")
    iou = ov.iou_of(p)
    if p.inclusive:
        ok = iou >= thr
        cand_t = np.bincount(ov.ti[ok], minlength=ov.n_true)
        cand_p = np.bincount(ov.pj[ok], minlength=ov.n_pred)
        if (cand_t.max(initial=0) <= 1) and (cand_p.max(initial=0) <= 1):
            return ok
        n_matched = min(ov.n_true, ov.n_pred)
        w = ok + iou / (2 * n_matched)
        return max_weight_matching(ov.ti, ov.pj, w, ov.n_true, ov.n_pred) & ok
    if thr >= 0.5:
        ok = iou > thr
        # unique for label maps; overlapping objects may give an object two such partners
        if (
            np.bincount(ov.ti[ok], minlength=ov.n_true).max(initial=0) <= 1
            and np.bincount(ov.pj[ok], minlength=ov.n_pred).max(initial=0) <= 1
        ):
            return ok
    chosen = max_weight_matching(ov.ti, ov.pj, iou, ov.n_true, ov.n_pred)
    return chosen & (iou > thr)


def aji_scores(ov: Overlap, monuseg: bool = False) -> dict[str, float | None]:
    """AJI and AJI+ exactly as HoVer-Net ``get_fast_aji`` / ``get_fast_aji_plus``.

    Both pair instances by ``inter / (union + 1e-6)``; AJI lets every GT take its best
    prediction (a prediction may be reused, its union counted again), AJI+ pairs one-to-one
    (Hungarian). Unpaired GT and unused predictions add their areas to the union.

    ``monuseg``: AJI as the MoNuSeg challenge's ``Aggregated_Jaccard_Index_v1_0.m`` (the
    organisers' final version): the best prediction by the exact Jaccard index, ties to the
    lowest prediction id (MATLAB's strict ``nJI > JI`` over ascending ids), otherwise as above.
    The epsilon can make HoVer-Net prefer the larger of two predictions with equal JI.
    """
    if ov.n_true == 0 and ov.n_pred == 0:
        return {"aji": None, "aji_plus": None}
    w = ov.iou if monuseg else ov.inter / (ov.union + 1.0e-6)
    out = {}
    # AJI: first pair of highest weight per GT (HoVer-Net's argmax keeps the first index)
    aji_sel = np.zeros(len(w), dtype=bool)
    aji_sel[best_per_group(ov.ti, w, ov.pj)] = True
    plus_sel = max_weight_matching(ov.ti, ov.pj, w, ov.n_true, ov.n_pred)
    for key, sel in (("aji", aji_sel), ("aji_plus", plus_sel)):
        t_used = np.zeros(ov.n_true, dtype=bool)
        p_used = np.zeros(ov.n_pred, dtype=bool)
        t_used[ov.ti[sel]] = True
        p_used[ov.pj[sel]] = True
        inter = int(ov.inter[sel].sum())
        union = int(ov.union[sel].sum())
        union += int(ov.true_area[~t_used].sum()) + int(ov.pred_area[~p_used].sum())
        out[key] = inter / union if union else 0.0
    return out


def dice_scores(ov: Overlap) -> dict[str, float | None]:
    """Dice1 (binary, of the foregrounds) and Dice2 (ensemble over overlapping pairs)."""
    at, ap, both = ov.foreground
    if at + ap == 0:
        return {"dice1": None, "dice2": None}
    inter = int(ov.inter.sum())
    den2 = int(ov.true_area[ov.ti].sum() + ov.pred_area[ov.pj].sum())
    return {"dice1": 2.0 * both / (at + ap), "dice2": 2.0 * inter / den2 if den2 else 0.0}


def _class_lookup(classes: Any, ids: np.ndarray, name: str | Path) -> np.ndarray:
    """Class of each instance id from a mapping ``{id: class}`` or an array indexed by id."""
    if isinstance(classes, Mapping):
        missing = [int(i) for i in ids if int(i) not in classes]
        if missing:
            raise DataError(name, f"no class given for instance ids {missing[:5]}")
        return np.array([int(classes[int(i)]) for i in ids], dtype=np.int64)
    arr = np.asarray(classes)
    if arr.dtype.kind not in "iu":
        raise DataError(name, f"classes must be integers, got dtype {arr.dtype}")
    if len(ids) and ids.max() >= len(arr):
        raise DataError(name, f"no class given for instance id {int(ids.max())}")
    return arr[ids].astype(np.int64)


def _class_restricted(
    true: np.ndarray, pred: np.ndarray, tcls: np.ndarray, pcls: np.ndarray, names: tuple
) -> tuple[Overlap, np.ndarray, np.ndarray, int]:
    """Overlap of the (instance, class) composites of pixel class maps (CoNIC's definition).

    ``inst * (class == c)`` for every class c: an instance whose pixels carry several classes
    becomes several class-restricted instances; pixels of class 0 belong to none.
    """
    for arr, cm, nm in ((true, tcls, names[0]), (pred, pcls, names[1])):
        check_label_map(cm, nm)
        if cm.shape != arr.shape:
            raise DataError(nm, f"class map shape {cm.shape} differs from instance map {arr.shape}")
    m = int(max(tcls.max(initial=0), pcls.max(initial=0))) + 1
    if min(tcls.min(initial=0), pcls.min(initial=0)) < 0:
        raise DataError(names[0], "class map has negative classes")
    ct = np.where(tcls > 0, true.astype(np.int64) * m + tcls, 0)
    cp = np.where(pcls > 0, pred.astype(np.int64) * m + pcls, 0)
    ct[true == 0] = 0
    cp[pred == 0] = 0
    ov = compute_overlap(ct, cp, names[0], names[1])
    return ov, ov.true_ids % m, ov.pred_ids % m, m


def _per_class(
    ov: Overlap, tc: np.ndarray, pc: np.ndarray, thr: float, preset: str, classes: Sequence[int]
) -> dict[str, dict[str, Any]]:
    same = tc[ov.ti] == pc[ov.pj]
    sub = Overlap(
        ov.true_ids,
        ov.pred_ids,
        ov.true_area,
        ov.pred_area,
        ov.ti[same],
        ov.pj[same],
        ov.inter[same],
        ov.shape,
    )
    matched = match_pairs(sub, thr, preset)
    mc = tc[sub.ti[matched]]
    out = {}
    for c in classes:
        nt = int((tc == c).sum())
        npd = int((pc == c).sum())
        sel = mc == c
        tp = int(sel.sum())
        iou_sum = float(sub.iou[matched][sel].sum())
        row = {
            "n_true": nt,
            "n_pred": npd,
            "tp": tp,
            "fp": npd - tp,
            "fn": nt - tp,
            "iou_sum": iou_sum,
        }
        row.update(pq_terms(tp, npd - tp, nt - tp, iou_sum, preset))
        out[str(int(c))] = row
    return out


def instance_scores(
    true: np.ndarray | Objects,
    pred: np.ndarray | Objects,
    preset: str = "hovernet",
    *,
    iou: float | Sequence[float] | str = 0.5,
    true_classes: Mapping[int, int] | Sequence[int] | np.ndarray | None = None,
    pred_classes: Mapping[int, int] | Sequence[int] | np.ndarray | None = None,
    true_class_map: np.ndarray | None = None,
    pred_class_map: np.ndarray | None = None,
    classes: Sequence[int] | None = None,
    radius_px: float | None = None,
    radius_um: float | None = None,
    mpp: float | None = None,
    background_stuff: bool = False,
    centroid_f1: bool = False,
    type_pairing: str = "auto",
    true_categories: Mapping[int, int] | None = None,
    category_fp: str = "nearest",
    ambiguous: np.ndarray | None = None,
    true_name: str | Path = "true",
    pred_name: str | Path = "pred",
) -> dict[str, Any]:
    """Every instance metric of one image pair under one preset.

    Parameters
    ----------
    true, pred
        ``(H, W)`` integer instance maps, 0 = background; ids need not be contiguous. Either
        may be :class:`~cellbench.data.sample.Objects` (instances that overlap, e.g. whole
        cells): then every figure is computed on the objects themselves (IoU, Dice, AJI
        unions per object pair; Dice1 on the foreground unions) and matching always resolves
        an object with two partners above the threshold by assignment.
    preset
        ``hovernet``, ``stardist``, ``conic``, ``torchmetrics`` or ``isbi2014`` (see
        :func:`describe`); ``isbi2014`` adds the challenge's ``dsc, fno, tpp, fpp, fdro``
        (:mod:`cellbench.metrics.cytology`) to PQ/AJI at IoU > 0.5.
    iou
        Matching threshold(s): a number, a list, or ``"0.5:0.95"``. The first is the primary
        one (top-level ``tp``, ``pq``...); with several, ``by_threshold`` holds each and
        ``*_mean`` the averages (``accuracy_mean`` is the DSB 2018 score).
    true_classes, pred_classes
        Class of each instance: ``{id: class}`` or an array indexed by id.
    true_class_map, pred_class_map
        Alternatively ``(H, W)`` pixel class maps (CoNIC/PanNuke style; 0 = no class).
    classes
        Class ids to report (default: those present in either image).
    radius_px, radius_um, mpp
        Centroid pairing radius of the type classification (default 12 px, HoVer-Net at 40x);
        ``radius_um`` needs ``mpp`` (microns per pixel).
    background_stuff
        ``torchmetrics`` only: also score the background as a "stuff" segment.
    centroid_f1
        Without classes, still pair centroids as HoVer-Net's classification does and report
        its detection ``types.f_d`` (seed 000's F_d for class-agnostic models).
    true_categories, category_fp
        With ``centroid_f1``: the ground truth's category of each instance (``{id: class}``);
        adds ``types.f_cat``, the detection F per category (seed 000's F_I..F_IV for models
        without classes), false positives counted by ``category_fp``
        (:data:`cellbench.metrics.points.CATEGORY_FP`).
    type_pairing
        ``hovernet`` preset: how centroids are paired for F_d / F_t (``auto``, ``dense`` or
        ``radius``; :func:`cellbench.metrics.points.type_counts`). ``auto`` is HoVer-Net's
        dense Hungarian up to ~1200 x 1200 nuclei, pairs within the radius beyond.
    ambiguous
        ``monusac`` presets: boolean mask of the image's ambiguous regions (MoNuSAC's
        "Ambiguous" annotations), removed before scoring (:mod:`cellbench.metrics.monusac`).
    true_name, pred_name
        Names (file paths) used in error messages.

    Returns
    -------
    dict
        Counts (``n_true, n_pred, tp, fp, fn, iou_sum``), ``dq, sq, pq`` (``rq`` too for
        torchmetrics), ``precision, recall, f1, accuracy, mean_matched_score,
        mean_true_score, aji, aji_plus, dice1, dice2``; with classes also ``per_class``,
        ``mpq``, ``bpq`` and ``types`` (HoVer-Net classification counts, ``f_d``, ``f_t``).
        Ratios are ``None`` for an image with neither GT nor prediction.
    """
    p = get_preset(preset, "instance")
    thrs = parse_thresholds(iou)
    if preset in ("monusac", "monusac_corrected"):
        from cellbench.metrics.monusac import monusac_scores

        if isinstance(true, Objects) or isinstance(pred, Objects) or thrs != (0.5,):
            raise CellbenchError("the MoNuSAC presets score label maps at IoU > 0.5")
        if true_classes is None or pred_classes is None:
            raise CellbenchError("the MoNuSAC presets need classes on both sides")
        return monusac_scores(true, pred, true_classes, pred_classes, preset, ambiguous, classes)
    if preset == "torchmetrics" and thrs != (0.5,):
        raise CellbenchError("the torchmetrics preset matches at IoU > 0.5 only")
    if background_stuff and preset != "torchmetrics":
        raise CellbenchError("background_stuff applies to the torchmetrics preset only")
    has_cls = true_classes is not None or pred_classes is not None
    has_map = true_class_map is not None or pred_class_map is not None
    if has_cls and has_map:
        raise CellbenchError("give classes per instance or pixel class maps, not both")
    if (has_cls and (true_classes is None or pred_classes is None)) or (
        has_map and (true_class_map is None or pred_class_map is None)
    ):
        raise CellbenchError("classes are needed for both the ground truth and the prediction")

    if isinstance(true, Objects) or isinstance(pred, Objects):
        if has_map:
            raise CellbenchError(
                "pixel class maps cannot describe overlapping objects; give classes per instance"
            )
        ov = object_overlap(true, pred, true_name, pred_name)
    else:
        if len(thrs) == 1 and not (has_cls or has_map or centroid_f1 or background_stuff):
            from cellbench.metrics.batch import compiled_scores

            got = compiled_scores(true, pred, p.name, thrs[0], true_name, pred_name)
            if got is not None:  # the same figures, compiled
                return got
        ov = compute_overlap(
            true, pred, true_name, pred_name, want_centroids=has_cls or has_map or centroid_f1
        )
    out, by_thr = _matching(ov, thrs, p.name)
    empty = ov.n_true == 0 and ov.n_pred == 0
    if preset == "torchmetrics":
        out["rq"] = out["dq"]
        if background_stuff:
            out["background"] = _background_stuff(ov)
    out.update(aji_scores(ov, monuseg=preset == "monuseg"))
    out.update(dice_scores(ov))
    if preset == "isbi2014":
        from cellbench.metrics.cytology import isbi_scores

        out.update(isbi_scores(ov))
    if len(thrs) > 1:
        out["by_threshold"] = by_thr
        for k in ("accuracy", "f1", "pq"):
            vals = [r[k] for r in by_thr.values()]
            out[f"{k}_mean"] = None if empty else float(np.mean(vals))
    if centroid_f1 and not (has_cls or has_map):
        from cellbench.metrics.points import resolve_radius, type_counts

        tcent, pcent = _centroids(true, pred, ov)
        r = resolve_radius(radius_px, radius_um, mpp, default_px=12.0)
        zt, zp = np.zeros(ov.n_true, np.int64), np.zeros(ov.n_pred, np.int64)
        if true_categories is not None:
            zt = _class_lookup(true_categories, ov.true_ids, true_name).astype(np.int64)
        types = type_counts(
            tcent,
            zt,
            pcent,
            zp,
            r,
            hovernet=preset in HOVERNET_LIKE,
            classes=[],
            pairing=type_pairing,
            category_fp=category_fp if true_categories is not None else None,
        )
        out["types"] = {**types, "correct": None, "acc": None}
    if has_cls or has_map:
        out["bpq"] = out["pq"]
        out.update(
            _class_scores(
                ov,
                true,
                pred,
                preset,
                thrs[0],
                (true_classes, pred_classes, true_class_map, pred_class_map),
                classes,
                (radius_px, radius_um, mpp, type_pairing),
                (true_name, pred_name),
            )
        )
    return out


def _matching(ov: Overlap, thrs: Sequence[float], preset: str) -> tuple[dict, dict]:
    """Counts and ratios at each threshold; the first threshold's also at the top level."""
    iou = ov.iou_of(get_preset(preset, "instance"))
    by_thr = {}
    sums = []
    for thr in thrs:
        m = match_pairs(ov, thr, preset)
        tp = int(m.sum())
        s = float(iou[m].sum())  # summed in float32 for StarDist, as it does
        sums.append(s)
        row = {"tp": tp, "fp": ov.n_pred - tp, "fn": ov.n_true - tp, "iou_sum": s}
        row.update(pq_terms(tp, row["fp"], row["fn"], s, preset))
        row.update(detection_terms(tp, row["fp"], row["fn"]))
        by_thr[f"{thr:.2f}"] = row
    first = by_thr[f"{thrs[0]:.2f}"]
    out: dict[str, Any] = {"preset": preset, "n_true": ov.n_true, "n_pred": ov.n_pred}
    out["iou_threshold"] = thrs[0]
    out.update(first)
    empty = ov.n_true == 0 and ov.n_pred == 0
    out["mean_matched_score"] = None if empty else _ratio(sums[0], first["tp"])
    out["mean_true_score"] = None if empty else _ratio(sums[0], ov.n_true)
    return out, by_thr


def matching_scores(
    true: np.ndarray | Objects,
    pred: np.ndarray | Objects,
    preset: str = "stardist",
    *,
    iou: float | Sequence[float] | str = 0.5,
    true_name: str | Path = "true",
    pred_name: str | Path = "pred",
) -> dict[str, Any]:
    """The matching statistics of one image pair, and nothing else (no AJI, Dice, classes).

    What StarDist's ``stardist.matching.matching`` returns, under any preset's matching rule
    and epsilons: ``n_true, n_pred, tp, fp, fn, iou_sum, precision, recall, f1, accuracy,
    dq, sq, pq, mean_matched_score, mean_true_score`` at the first threshold, and with
    several thresholds ``by_threshold``. The same numbers as :func:`instance_scores` gives
    for them; use it when only these are needed (threshold sweeps, large batches).
    """
    p = get_preset(preset, "instance")
    thrs = parse_thresholds(iou)
    if isinstance(true, Objects) or isinstance(pred, Objects):
        ov = object_overlap(true, pred, true_name, pred_name)
    else:
        if len(thrs) == 1:
            from cellbench.metrics.batch import compiled_scores

            got = compiled_scores(true, pred, p.name, thrs[0], true_name, pred_name, full=False)
            if got is not None:
                return got
        ov = compute_overlap(true, pred, true_name, pred_name)
    out, by_thr = _matching(ov, thrs, p.name)
    if len(thrs) > 1:
        out["by_threshold"] = by_thr
    return out


def _background_stuff(ov: Overlap) -> dict[str, Any]:
    """torchmetrics' background 'stuff' segment: all pixels with id 0 in each map."""
    h, w = ov.shape
    ft, fp_, both = ov.foreground
    bt = h * w - ft
    bp = h * w - fp_
    # background intersection = pixels background in both
    fg_union = ft + fp_ - both
    inter = h * w - fg_union
    union = bt + bp - inter
    iou = inter / union if union else 0.0
    tp = int(bt > 0 and bp > 0 and iou > 0.5)
    return {
        "tp": tp,
        "fp": int(bp > 0) - tp,
        "fn": int(bt > 0) - tp,
        "iou_sum": float(iou) if tp else 0.0,
    }


def _class_scores(
    ov, true, pred, preset, thr, cls_in, classes, pairing_args, names
) -> dict[str, Any]:
    from cellbench.metrics.points import resolve_radius, type_counts

    true_classes, pred_classes, tmap, pmap = cls_in
    radius_px, radius_um, mpp, type_pairing = pairing_args
    if true_classes is not None:
        tc = _class_lookup(true_classes, ov.true_ids, names[0])
        pc = _class_lookup(pred_classes, ov.pred_ids, names[1])
        cov, ctc, cpc = ov, tc, pc
    else:
        tmap = np.asarray(tmap)
        pmap = np.asarray(pmap)
        cov, ctc, cpc, m = _class_restricted(np.asarray(true), np.asarray(pred), tmap, pmap, names)
        tc = _majority(cov.true_ids, cov.true_area, m, ov.true_ids)
        pc = _majority(cov.pred_ids, cov.pred_area, m, ov.pred_ids)
    if classes is None:
        present = np.union1d(ctc, cpc)
        classes = [int(c) for c in present if c > 0]
    per_class = _per_class(cov, ctc, cpc, thr, preset, classes)
    in_gt = [r["pq"] for r in per_class.values() if r["n_true"] > 0]
    scored = [r["pq"] for r in per_class.values() if r["pq"] is not None]
    out: dict[str, Any] = {"per_class": per_class}
    if preset == "conic" and not (isinstance(true, Objects) or isinstance(pred, Objects)):
        from cellbench.metrics.conic import composition

        out["counts"] = {
            "true": composition(np.asarray(true), ov.true_ids, tc, classes),
            "pred": composition(np.asarray(pred), ov.pred_ids, pc, classes),
        }
    # image mPQ: PanNuke convention (classes present in the GT) for hovernet, else all scored
    vals = in_gt if preset in HOVERNET_LIKE else scored
    out["mpq"] = float(np.mean(vals)) if vals else None
    tcent, pcent = _centroids(true, pred, ov)
    r = resolve_radius(radius_px, radius_um, mpp, default_px=12.0)
    out["types"] = type_counts(
        tcent,
        tc,
        pcent,
        pc,
        r,
        hovernet=preset in HOVERNET_LIKE,
        classes=classes,
        pairing=type_pairing,
    )
    return out


def _majority(comp_ids: np.ndarray, area: np.ndarray, m: int, ids: np.ndarray) -> np.ndarray:
    """Majority pixel class of each instance ``ids`` from its class-restricted parts.

    ``comp_ids`` are composite ids ``instance * m + class`` with their ``area``; instances
    without a classed pixel get class 0; ties go to the lower class.
    """
    inst, comp_cls = np.divmod(comp_ids, m)
    pos = np.searchsorted(ids, inst)
    out = np.zeros(len(ids), dtype=np.int64)
    best = best_per_group(pos, area, comp_cls)
    out[pos[best]] = comp_cls[best]
    return out


def _centroids(true, pred, ov: Overlap) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 2)`` centroids ``(x, y)`` of the true and predicted instances of ``ov``: those
    computed with the overlap of two maps, or from the objects' own masks."""
    if ov.centroids is not None:
        return ov.centroids
    from cellbench.metrics.overlap import as_objects

    return as_objects(true).centroids(), as_objects(pred).centroids()
