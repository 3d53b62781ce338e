"""Error review of one sample: a stored run's prediction read back, and its true positives,
false positives and misses drawn (the matching: :mod:`cellbench.metrics.errors`, the engine's
own preset, threshold and radius, so what is marked is exactly what was counted)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cellbench.data.sample import Points
from cellbench.metrics.errors import instance_errors, point_errors
from cellbench.metrics.instance import parse_thresholds

_EVALUATIONS: dict[tuple, Any] = {}


def _evaluation(run: dict[str, Any], catalog=None, store=None):
    """The run's :class:`~cellbench.runs.evaluate.Evaluation` (its reader keeps what it
    parsed, e.g. a points file of every sample), kept for the next sample of the same run."""
    from cellbench.runs.evaluate import Evaluation

    key = (
        run["run_id"],
        run.get("finished"),
        str(getattr(catalog, "path", None)),
        str(getattr(store, "root", None)),
    )
    if key not in _EVALUATIONS:
        if len(_EVALUATIONS) >= 4:
            _EVALUATIONS.pop(next(iter(_EVALUATIONS)))
        _EVALUATIONS[key] = Evaluation.of_run(run, catalog, store)
    return _EVALUATIONS[key]


def run_prediction(run: dict[str, Any], sample_id: str, catalog=None, store=None):
    """A stored run's prediction for one sample: read back (stored predictions, or the copy a
    model run kept), else recomputed by the model and kept.

    Returns ``(sample, prediction, evaluation)``; the prediction is ``(labels, classes,
    scores)`` or :class:`~cellbench.data.sample.Points`.
    """
    ev = _evaluation(run, catalog, store)
    recs = [r for r in ev.records if r.sample_id == sample_id]
    if not recs:
        raise KeyError(f"no sample '{sample_id}' in run '{run['run_id']}'")
    rec, sample, pred = next(ev.replay(recs))
    return sample, pred, ev


def prediction_ready(run: dict[str, Any], sample_id: str) -> bool:
    """Whether the run's prediction of a sample is read back without running a model (stored
    predictions, or kept by the evaluation)."""
    from cellbench.runs import predcache

    params = run.get("parameters") or {}
    return params.get("model") is None or predcache.has(run["run_id"], sample_id)


def error_view(
    run: dict[str, Any], sample_id: str, catalog=None, store=None, max_side: int | None = None
):
    """An RGB image of one sample's errors in a run, the counts, and a note on the matching.

    Instances: matched predictions outlined green, false positives red, missed GT yellow;
    points: discs in the same colours. ``max_side`` draws at that size (thumbnails). A sample
    without pixels (points only) is drawn on a grey canvas of its size.
    """
    from cellbench.runs.evaluate import within_region
    from cellbench.viz.overlay import canvas, error_overlay_instances, error_overlay_points

    sample, pred, ev = run_prediction(run, sample_id, catalog, store)
    if ev.task == "semantic":
        return _semantic_view(sample, pred, ev, max_side)
    if sample.annotated_region is not None:  # what was scored: objects inside the region
        pred = within_region(pred, sample.annotated_region)
    if ev.task == "instances":
        labels = pred[0]
        err = instance_errors(sample.truth, labels, ev.preset, ev.spec.iou)
        img = error_overlay_instances(
            canvas(sample), sample.truth, labels, err, max_side, sample.annotated_region
        )
        thr = parse_thresholds(ev.spec.iou)[0]
        note = f"preset {ev.preset}, IoU {'>=' if ev.preset == 'stardist' else '>'} {thr}"
    else:
        from cellbench.runs.evaluate import centroid_points

        pts = pred if isinstance(pred, Points) else centroid_points(*pred)
        gt = sample.points if sample.points is not None else Points.empty()
        if not isinstance(pred, Points) and pred[1] is None:
            gt = Points(gt.xy, np.ones(len(gt)), gt.score)
            pts = Points(pts.xy, np.ones(len(pts)), pts.score)
        kw = {}
        if ev.spec.radius_um is not None:
            kw = {"radius_um": ev.spec.radius_um, "mpp": sample.meta.get("mpp")}
        err = point_errors(gt, pts, ev.preset, **kw)
        img = error_overlay_points(
            canvas(sample), gt, pts, err, max_side=max_side, region=sample.annotated_region
        )
        note = f"preset {ev.preset}, radius {err.extra['radius_px']:.1f} px, same class only"
    return img, err.counts(), note


def _semantic_view(sample, pred, ev, max_side):
    """Pixel errors of a semantic run: correctly classed foreground green, predicted
    foreground of another class (or none) red, missed ground truth yellow (blended)."""
    from cellbench.runs.evaluate import semantic_pair
    from cellbench.viz.overlay import ERROR_COLORS, _dim_outside, _Fit, canvas, draw_mask

    truth, mask, _ = semantic_pair(sample, pred)
    tp = (truth > 0) & (mask == truth)
    fp = (mask > 0) & (mask != truth)
    fn = (truth > 0) & (mask == 0)
    fit = _Fit(canvas(sample).shape, max_side)
    img = _dim_outside(fit.image(canvas(sample)), fit, sample.annotated_region)
    for m, key in ((tp, "TP"), (fp, "FP"), (fn, "FN")):
        img = draw_mask(img, fit.labels(m.astype(np.uint8)), ERROR_COLORS[key], 0.45)
    counts = {"tp": int(tp.sum()), "fp": int(fp.sum()), "fn": int(fn.sum())}
    return img, counts, f"preset {ev.preset}, pixels (TP/FP/FN counts are pixels)"


#: Side (pixels) of the error thumbnails the app's sample grid shows.
THUMB_SIDE = 256


def keep_with_thumbnails(job: dict[str, Any], report, should_stop) -> dict[str, Any]:
    """The keep job (:func:`cellbench.runs.keep.keep_job`) drawing and keeping each sample's
    error thumbnail as it goes, so the run's grid reads them; a sample that cannot be drawn
    is left for the grid, which says why."""
    from cellbench.core.errors import CellbenchError
    from cellbench.runs import keep, predcache

    def thumbnail(run, sample_id, catalog, store) -> None:
        try:
            img = error_view(run, sample_id, catalog, store, THUMB_SIDE)[0]
        except (CellbenchError, OSError, ValueError):
            return
        predcache.save_thumb(run["run_id"], sample_id, THUMB_SIDE, img)

    return keep.keep_job(job, report, should_stop, thumbnail)
