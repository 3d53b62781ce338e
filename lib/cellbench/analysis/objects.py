"""Every object of a run, as the metrics engine matched it: the table behind object filters.

One row per object of every sample: ``sample_id``, ``kind`` (``TP``: a matched prediction,
``FP``: an unmatched prediction, ``FN``: an unmatched ground-truth object), ``object_id`` (its
id in the prediction map for TP / FP, in the ground truth for FN; for points, its row), the
object's ``class`` (predicted for TP / FP, ground truth for FN; class names of the test
dataset), ``true_class`` (TP), ``area_px`` (pixels; null for points), ``probability`` (the
model's score where it gave one) and ``iou`` (TP of instance runs). The matching is the run's
own preset, threshold and radius (:mod:`cellbench.viz.review`), so the rows add up to the
run's TP / FP / FN counts.

Needs the run's predictions at hand (stored, or kept: :mod:`cellbench.runs.keep`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

SCHEMA = {
    "sample_id": pl.Utf8,
    "kind": pl.Utf8,
    "object_id": pl.Int64,
    "class": pl.Utf8,
    "true_class": pl.Utf8,
    "area_px": pl.Float64,
    "probability": pl.Float64,
    "iou": pl.Float64,
}


def object_table(run: dict[str, Any], catalog=None, store=None) -> pl.DataFrame:
    """The objects of every sample of ``run`` (see the module docstring)."""
    from cellbench.data.sample import Points
    from cellbench.metrics.errors import instance_errors, point_errors
    from cellbench.runs.evaluate import Evaluation, centroid_points, within_region

    ev = Evaluation.of_run(run, catalog, store)
    names = {c.id: c.name for c in ev.dataset.classes}

    def name(c) -> str | None:
        return None if c is None else names.get(int(c))

    rows: list[dict[str, Any]] = []

    def add(sid, kind, i, cls, area=None, true_cls=None, prob=None, iou=None) -> None:
        rows.append(
            {
                "sample_id": sid,
                "kind": kind,
                "object_id": int(i),
                "class": name(cls),
                "true_class": name(true_cls),
                "area_px": None if area is None else float(area),
                "probability": None if prob is None else float(prob),
                "iou": iou,
            }
        )

    for rec, sample, pred in ev.replay():
        sid = rec.sample_id
        if sample.annotated_region is not None:
            pred = within_region(pred, sample.annotated_region)
        if ev.task == "instances":
            labels, classes, scores = pred
            err = instance_errors(sample.truth, labels, ev.preset, ev.spec.iou)
            truth = sample.truth
            truth = truth.to_label_map() if hasattr(truth, "to_label_map") else truth
            area_p = np.bincount(np.asarray(labels).ravel())
            area_t = np.bincount(np.asarray(truth).ravel())
            tc, pc, sc = sample.classes or {}, classes or {}, scores or {}
            for t, p, v in zip(err.tp_true.tolist(), err.tp_pred.tolist(), err.tp_iou, strict=True):
                add(sid, "TP", p, pc.get(p), area_p[p], tc.get(t), sc.get(p), float(v))
            for p in err.fp.tolist():
                add(sid, "FP", p, pc.get(p), area_p[p], prob=sc.get(p))
            for t in err.fn.tolist():
                add(sid, "FN", t, tc.get(t), area_t[t])
        else:
            pts = pred if isinstance(pred, Points) else centroid_points(*pred)
            gt = sample.points if sample.points is not None else Points.empty()
            kw = {}
            if ev.spec.radius_um is not None:
                kw = {"radius_um": ev.spec.radius_um, "mpp": sample.meta.get("mpp")}
            err = point_errors(gt, pts, ev.preset, **kw)
            for t, p in zip(err.tp_true.tolist(), err.tp_pred.tolist(), strict=True):
                add(sid, "TP", p, pts.cls[p], true_cls=gt.cls[t], prob=pts.score[p])
            for p in err.fp.tolist():
                add(sid, "FP", p, pts.cls[p], prob=pts.score[p])
            for t in err.fn.tolist():
                add(sid, "FN", t, gt.cls[t])
    return pl.DataFrame(rows, schema=SCHEMA) if rows else pl.DataFrame(schema=SCHEMA)
