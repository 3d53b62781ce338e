"""Which objects of one image are true positives, false positives and misses, under the
metrics engine's own matching (same preset, threshold, radius), so that what a review marks
is exactly what was counted. Used by the error views, the object table behind the grid's
object filters and the QuPath export of errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cellbench.data.sample import Objects, Points
from cellbench.metrics.instance import match_pairs, parse_thresholds
from cellbench.metrics.overlap import overlap_of
from cellbench.metrics.points import OCELOT_RADIUS_PX, match_class, resolve_radius


@dataclass
class InstanceErrors:
    """Matched and unmatched instances of one image (ids are the maps' own ids).

    Attributes
    ----------
    tp_true, tp_pred, tp_iou
        Matched pairs (GT id, predicted id, IoU), aligned.
    fp
        Predicted ids without a match.
    fn
        GT ids without a match.
    """

    tp_true: np.ndarray
    tp_pred: np.ndarray
    tp_iou: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    def counts(self) -> dict[str, int]:
        return {"tp": len(self.tp_true), "fp": len(self.fp), "fn": len(self.fn)}


def instance_errors(
    true: np.ndarray | Objects,
    pred: np.ndarray | Objects,
    preset: str = "hovernet",
    iou: float | str = 0.5,
) -> InstanceErrors:
    """TP / FP / FN instances under ``preset`` at the first threshold of ``iou``."""
    thr = parse_thresholds(iou)[0]
    ov = overlap_of(true, pred)
    m = match_pairs(ov, thr, preset)
    ti, pj = ov.ti[m], ov.pj[m]
    matched_t = np.zeros(len(ov.true_ids), bool)
    matched_p = np.zeros(len(ov.pred_ids), bool)
    matched_t[ti] = True
    matched_p[pj] = True
    return InstanceErrors(
        ov.true_ids[ti],
        ov.pred_ids[pj],
        ov.iou[m],
        ov.pred_ids[~matched_p],
        ov.true_ids[~matched_t],
    )


@dataclass
class PointErrors:
    """Indices into the GT and predicted point arrays: matched pairs, FP, FN (all classes)."""

    tp_true: np.ndarray
    tp_pred: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {"tp": len(self.tp_true), "fp": len(self.fp), "fn": len(self.fn)}


def point_errors(
    true: Points,
    pred: Points,
    preset: str = "ocelot",
    radius_px: float | None = None,
    radius_um: float | None = None,
    mpp: float | None = None,
) -> PointErrors:
    """TP / FP / FN points; a class is matched only to itself (OCELOT greedy by confidence,
    or Hungarian within the radius)."""
    r = resolve_radius(radius_px, radius_um, mpp, default_px=OCELOT_RADIUS_PX)
    pairs = [match_class(true, pred, c, preset, r) for c in np.union1d(true.cls, pred.cls)]
    t = np.concatenate([a for a, _ in pairs]) if pairs else np.zeros(0, np.intp)
    p = np.concatenate([b for _, b in pairs]) if pairs else np.zeros(0, np.intp)
    fn = np.setdiff1d(np.arange(len(true)), t)
    fp = np.setdiff1d(np.arange(len(pred)), p)
    return PointErrors(t, p, fp, fn, {"radius_px": r})
