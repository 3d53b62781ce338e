"""Classification and detection analysis beyond the challenge figures: confusion matrices of
matched objects and precision / recall / F1 against the score threshold.

Conventions
-----------
- **Confusion of matched objects.** Objects are paired class-agnostically, by centroid
  within a radius (HoVer-Net's pairing for instance runs: Hungarian over truncated centroids,
  12 px; for points, optimal within the preset's radius, 15 px for OCELOT, because OCELOT's
  own scorer matches only within a class and so never sees a confusion). Rows are true
  classes plus ``(none)`` for predictions paired with nothing; columns are predicted classes
  plus ``(none)`` for true objects paired with nothing. Counts are pooled over images.
- **Threshold curves.** For each threshold t, the predictions with score >= t are matched to
  the ground truth with the preset's rule and P = TP / (TP + FP), R = TP / n_true,
  F1 = 2PR / (P + R), counts pooled over images (OCELOT's averaging). For the ``ocelot``
  preset (greedy by descending confidence) dropping the predictions below t never changes the
  matches of those above it, so one matching gives the exact curve at every distinct score;
  other presets are re-matched on a grid of thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NONE = "(none)"


def confusion_counts(
    true_cls: np.ndarray,
    pred_cls: np.ndarray,
    ia: np.ndarray,
    ib: np.ndarray,
    classes: Sequence[int],
) -> np.ndarray:
    """``(K + 1, K + 1)`` counts for one image: ``[i, j]`` = true class ``classes[i]`` paired
    with predicted class ``classes[j]``; index K is ``(none)`` (unpaired). Objects of a class
    not in ``classes`` are left out."""
    k = len(classes)
    pos = {int(c): i for i, c in enumerate(classes)}
    true_cls = np.asarray(true_cls).astype(np.int64)
    pred_cls = np.asarray(pred_cls).astype(np.int64)
    m = np.zeros((k + 1, k + 1), dtype=np.int64)
    for t, p in zip(true_cls[ia], pred_cls[ib], strict=True):
        if int(t) in pos and int(p) in pos:
            m[pos[int(t)], pos[int(p)]] += 1
    ut = np.ones(len(true_cls), bool)
    ut[ia] = False
    up = np.ones(len(pred_cls), bool)
    up[ib] = False
    for t in true_cls[ut]:
        if int(t) in pos:
            m[pos[int(t)], k] += 1
    for p in pred_cls[up]:
        if int(p) in pos:
            m[k, pos[int(p)]] += 1
    return m


def curve_from_matches(scores: np.ndarray, tp: np.ndarray, n_true: int) -> dict[str, np.ndarray]:
    """Exact P / R / F1 at every distinct score from one greedy matching (see module notes).

    ``scores``: every prediction's confidence (pooled over images); ``tp``: whether it was
    matched. Returns arrays ``threshold`` (descending), ``precision``, ``recall``, ``f1``,
    ``tp``, ``fp``: the figures when every prediction with score >= threshold is kept.
    """
    scores = np.asarray(scores, dtype=np.float64)
    tp = np.asarray(tp, dtype=bool)
    if len(scores) == 0:
        z = np.zeros(0)
        return {"threshold": z, "precision": z, "recall": z, "f1": z, "tp": z, "fp": z}
    o = np.argsort(-scores, kind="stable")
    s, t = scores[o], tp[o]
    ctp = np.cumsum(t)
    cfp = np.cumsum(~t)
    last = np.r_[s[1:] != s[:-1], True]  # keep the last index of each tie group
    ctp, cfp, thr = ctp[last], cfp[last], s[last]
    return _prf(thr, ctp, cfp, n_true)


def _prf(thr, ctp, cfp, n_true) -> dict[str, np.ndarray]:
    ctp = np.asarray(ctp, float)
    cfp = np.asarray(cfp, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.where(ctp + cfp > 0, ctp / (ctp + cfp), np.nan)
        rec = ctp / n_true if n_true else np.full_like(ctp, np.nan)
        f1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)
    return {
        "threshold": np.asarray(thr, float),
        "precision": prec,
        "recall": rec,
        "f1": f1,
        "tp": ctp,
        "fp": cfp,
    }


def curve_on_grid(counts: Sequence[tuple[float, int, int]], n_true: int) -> dict[str, np.ndarray]:
    """P / R / F1 from ``(threshold, tp, fp)`` counts re-matched at each threshold."""
    c = sorted(counts, key=lambda x: -x[0])
    return _prf([x[0] for x in c], [x[1] for x in c], [x[2] for x in c], n_true)
