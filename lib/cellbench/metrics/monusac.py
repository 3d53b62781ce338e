"""MoNuSAC 2020's PQ, as published and as corrected (Foucart et al., IEEE TMI 41(4), 2022).

The official notebook (ruchikaverma-iitg/MoNuSAC ``PQ_metric.ipynb``) scores each sub-image
and class separately: ground-truth and predicted instances of the class, predictions inside
the **ambiguous regions** removed, pairs with IoU > 0.5 (IoU = |G ∩ P| / |G ∪ P|, float64),
``PQ = sum IoU / (TP + FP/2 + FN/2)`` (no epsilon).

``monusac`` (as published: the notebook up to commit 3039c90, which computed the challenge's
results; its latest commit, 4d08291, removes the matched prediction's id instead):

- after pairing, the code removes from the list of predicted ids the id **of the ground-truth
  object** (``[indx][0]``) instead of its matched prediction's id, so a matched prediction whose
  id differs from its partner's stays counted as a false positive; the figure depends on how
  the ids of the two maps line up (Foucart et al. §II.A). Reproduced as such: it is exact when
  the maps carry the ids the official n-ary masks had;
- a class is scored in an image only when the ground truth has it: false positives of a class
  absent from the ground truth are never counted (§III);
- image PQ = mean over its scored classes; a-PQ = mean over sub-images (§IV: not over the 25
  patients the paper describes).

``monusac_corrected``: the matched prediction's id is removed (FP = predictions not matched);
a class present in the ground truth *or* the prediction is scored (FP-only classes score 0);
ambiguous regions are removed from both sides; a-PQ = mean over patients of their sub-images'
mean (patient = the TCGA participant barcode ``TCGA-XX-XXXX`` at the start of the sample id;
images without one count as their own patient).

Classes are the dataset's class ids (MoNuSAC: epithelial, lymphocyte, neutrophil, macrophage).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cellbench.metrics.overlap import compute_overlap

VARIANTS = ("monusac", "monusac_corrected")
_PATIENT = re.compile(r"TCGA-[A-Za-z0-9]{2}-[A-Za-z0-9]{4}")


def _lut(classes: Mapping[int, int] | None, top: int) -> np.ndarray:
    lut = np.zeros(top + 1, np.int64)
    for i, c in (classes or {}).items():
        if 0 < int(i) <= top:
            lut[int(i)] = int(c or 0)
    return lut


def class_pq(true_c: np.ndarray, pred_c: np.ndarray, published: bool) -> dict[str, Any]:
    """One class of one sub-image: counts and PQ under the variant (module docstring)."""
    ov = compute_overlap(np.ascontiguousarray(true_c), np.ascontiguousarray(pred_c))
    m = ov.iou > 0.5
    order = np.argsort(ov.ti[m], kind="stable")
    # the notebook adds IoUs one by one in GT id order: a sequential sum, to the last bit
    iou_sum = float(np.cumsum(ov.iou[m][order])[-1]) if m.any() else 0.0
    tp = int(m.sum())
    if published:  # the GT ids of matched objects are what gets removed from the pred ids
        removed = np.intersect1d(ov.true_ids[ov.ti[m]], ov.pred_ids).size
        fp = ov.n_pred - removed
    else:
        fp = ov.n_pred - tp
    fn = ov.n_true - tp
    den = tp + 0.5 * fp + 0.5 * fn
    return {
        "n_true": ov.n_true,
        "n_pred": ov.n_pred,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "iou_sum": iou_sum,
        "pq": float(iou_sum / den) if den else None,
    }


def monusac_scores(
    true: np.ndarray,
    pred: np.ndarray,
    true_classes: Mapping[int, int] | None,
    pred_classes: Mapping[int, int] | None,
    variant: str = "monusac",
    ambiguous: np.ndarray | None = None,
    classes: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Per-class and image PQ of one sub-image (instance maps with ``{id: class}``)."""
    published = variant == "monusac"
    t = np.asarray(true)
    p = np.asarray(pred)
    if ambiguous is not None:
        keep = ~np.asarray(ambiguous, bool)
        p = p * keep
        if not published:
            t = t * keep
    tcls = _lut(true_classes, int(t.max(initial=0)))[t]
    pcls = _lut(pred_classes, int(p.max(initial=0)))[p]
    if classes is None:
        classes = sorted(
            {int(c) for c in np.unique(tcls) if c} | {int(c) for c in np.unique(pcls) if c}
        )
    per_class: dict[str, Any] = {}
    for c in classes:
        tc = np.where(tcls == c, t, 0)
        pc = np.where(pcls == c, p, 0)
        if not tc.any() and (published or not pc.any()):
            continue  # not scored in this image
        per_class[str(int(c))] = class_pq(tc, pc, published)
    pqs = [r["pq"] for r in per_class.values()]
    out: dict[str, Any] = {"preset": variant, "per_class": per_class}
    for k in ("n_true", "n_pred", "tp", "fp", "fn", "iou_sum"):
        out[k] = sum(r[k] for r in per_class.values())
    out["pq"] = float(np.mean(pqs)) if pqs else None
    out["mpq"] = out["pq"]
    return out


def patient_of(sample_id: str) -> str:
    m = _PATIENT.search(sample_id)
    return m.group(0) if m else sample_id


def aggregate_monusac(per_image: Mapping[str, Mapping], variant: str) -> dict[str, Any]:
    """a-PQ and per-class means (over the images where a class is scored)."""
    rows = {k: r for k, r in per_image.items() if r.get("pq") is not None}
    names = sorted({c for r in rows.values() for c in r["per_class"]}, key=int)
    per_class = {}
    for c in names:
        vals = [r["per_class"][c]["pq"] for r in rows.values() if c in r["per_class"]]
        per_class[c] = {"pq": float(np.mean(vals)), "n_images": len(vals)}
    out: dict[str, Any] = {"preset": variant, "n_images": len(per_image), "n_scored": len(rows)}
    if variant == "monusac":
        out["pq"] = float(np.mean([r["pq"] for r in rows.values()])) if rows else None
        out["averaging"] = "mean over sub-images (as published)"
    else:
        by_patient: dict[str, list[float]] = {}
        for k, r in rows.items():
            by_patient.setdefault(patient_of(str(k)), []).append(r["pq"])
        means = [float(np.mean(v)) for v in by_patient.values()]
        out["pq"] = float(np.mean(means)) if means else None
        out["n_patients"] = len(means)
        out["averaging"] = "mean over patients of their sub-images' mean"
    out["mpq"] = out["pq"]
    out["per_class"] = per_class
    return out
