"""Per-object analyses of a stored run: the confusion matrix of matched objects and the
precision / recall / F1 curves against the score threshold (conventions in
:mod:`cellbench.metrics.classification`).

The store keeps per-sample figures, not every prediction, so these analyses **replay** the
run: the same request (:class:`~cellbench.runs.evaluate.Evaluation` rebuilt from the run's
recorded parameters, on exactly its samples) gives the predictions again: read back for stored
predictions, recomputed for a model (the weights' sha256 is checked against the run's). The
result is cached per run in ``$CELLBENCH_HOME/cache/analysis`` (keyed by the run's finish time),
so a page or a second command reads it at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from cellbench.core import config
from cellbench.core.atomic import write_json_atomic
from cellbench.core.errors import CellbenchError, DataError
from cellbench.core.safety import read_json
from cellbench.data.sample import Points
from cellbench.metrics.classification import (
    NONE,
    confusion_counts,
    curve_from_matches,
    curve_on_grid,
)
from cellbench.metrics.points import full_hungarian_match, hungarian_match, match_class
from cellbench.runs.store import Store

#: Centroid pairing radius of instance runs (HoVer-Net's type statistics), pixels.
INSTANCE_RADIUS_PX = 12.0
#: Default point radius when a run's results do not state one (OCELOT's), pixels.
POINT_RADIUS_PX = 15.0
#: Threshold grid size for presets whose matching is not greedy by confidence.
GRID = 21


def _evaluation(store: Store, run_id: str, catalog=None):
    from cellbench.runs.evaluate import Evaluation

    rec = store.get_run(run_id)
    return rec, Evaluation.of_run(rec, catalog, store)


def _as_points(ev, sample, pred) -> tuple[Points, Points]:
    """Ground truth and prediction of one sample as class-labelled points."""
    from cellbench.runs.evaluate import centroid_points

    if ev.task == "points":
        gt = sample.points if sample.points is not None else Points.empty()
        return gt, pred if isinstance(pred, Points) else centroid_points(*pred)
    labels, classes, scores = pred
    gt = centroid_points(sample.truth, sample.classes or {}, None)
    return gt, centroid_points(labels, classes or {}, scores)


def _cache_path(run_id: str):
    return config.home() / "cache" / "analysis" / f"{run_id}.json"


def run_analysis(
    store: Store,
    run_id: str,
    catalog=None,
    progress: Callable[[int, int], None] | None = None,
    refresh: bool = False,
) -> dict[str, Any]:
    """Confusion counts and threshold curves of one run (cached; see the module docstring).

    Returns
    -------
    dict
        ``classes`` (names, in the dataset's order), ``confusion`` (``(K+1) x (K+1)`` counts,
        last row / column ``(none)``), ``cells`` (per sample, its nonzero ``[row, column,
        count]`` of that matrix), ``pairing`` (how objects were paired), ``curves``
        (``{class: {threshold, precision, recall, f1, tp, fp, n_true}}`` for point runs with
        scores, else empty), ``operating_point`` (the threshold of the run's own figures:
        every prediction kept) and ``n_samples``.
    """
    rec = store.get_run(run_id)
    if rec.get("status") != "complete":
        raise CellbenchError(f"run '{run_id}' is {rec.get('status')}: analyse complete runs")
    path = _cache_path(run_id)
    if path.is_file() and not refresh:
        try:
            got = read_json(path, "analysis cache")
            if (
                isinstance(got, dict)
                and got.get("finished") == rec.get("finished")
                and "cells" in got  # written before the per-sample cells: recomputed
            ):
                return got
        except DataError:
            pass  # an unreadable cache is recomputed
    rec, ev = _evaluation(store, run_id, catalog)
    classes = list(ev.dataset.classes)
    if not classes:
        raise CellbenchError(f"dataset '{ev.spec.dataset}' declares no classes")
    ids = [c.id for c in classes]
    results = store.results(run_id)
    radius = INSTANCE_RADIUS_PX
    if ev.task == "points":
        radius = next(
            (r["radius_px"] for r in results.values() if r.get("radius_px")), POINT_RADIUS_PX
        )
    conf = np.zeros((len(ids) + 1, len(ids) + 1), dtype=np.int64)
    pooled: dict[int, list] = {c: [[], [], 0] for c in ids}  # scores, tp flags, n_true
    grids: list[tuple[Points, Points]] = []
    hovernet = ev.preset == "hovernet" and ev.task == "instances"
    cells: dict[str, list[list[int]]] = {}  # sample -> its nonzero (true, pred, count)
    stream = ev.replay()
    for k, (record, sample, pred) in enumerate(stream):
        if isinstance(pred, tuple) and pred[1] is None and len(ids) > 1:
            raise CellbenchError(
                f"run '{run_id}': its predictions carry no classes, so there is no confusion "
                f"between the {len(ids)} classes of '{ev.spec.dataset}'"
            )
        gt, pr = _as_points(ev, sample, pred)
        if hovernet:
            ia, ib = full_hungarian_match(np.trunc(gt.xy), np.trunc(pr.xy), radius)
        else:
            ia, ib = hungarian_match(gt.xy, pr.xy, radius)
        mine = confusion_counts(gt.cls, pr.cls, ia, ib, ids)
        conf += mine
        rows, cols = mine.nonzero()
        cells[record.sample_id] = [
            [int(i), int(j), int(mine[i, j])] for i, j in zip(rows, cols, strict=True)
        ]
        if ev.task == "points":
            if ev.preset == "ocelot":
                for c in ids:
                    _, pj = match_class(gt, pr, c, "ocelot", radius)
                    sel = np.flatnonzero(pr.cls == c)
                    flags = np.isin(sel, pj)
                    pooled[c][0].append(pr.score[sel])
                    pooled[c][1].append(flags)
                    pooled[c][2] += int((gt.cls == c).sum())
            else:
                grids.append((gt, pr))
        if progress:
            progress(k + 1, len(ev.records))
    names = [c.name for c in classes]
    curves = _curves(pooled, grids, ids, names, ev.preset, radius) if ev.task == "points" else {}
    out = {
        "run_id": run_id,
        "finished": rec.get("finished"),
        "dataset": ev.spec.dataset,
        "task": ev.task,
        "preset": ev.preset,
        "classes": names,
        "confusion": conf.tolist(),
        "cells": cells,
        "pairing": (
            f"class-agnostic, centroids within {radius:g} px "
            + ("(HoVer-Net: Hungarian over truncated centroids)" if hovernet else "(optimal)")
        ),
        "curves": curves,
        "operating_point": 0.0,
        "n_samples": len(ev.records),
    }
    write_json_atomic(path, out)
    return out


def cell_samples(analysis: dict, true: str, pred: str) -> dict[str, int]:
    """``{sample: count}`` of the samples with objects in one cell of the confusion matrix
    (class names as in ``analysis["classes"]``, ``(none)`` for unpaired objects)."""
    names = [*analysis["classes"], "(none)"]
    i, j = names.index(true), names.index(pred)
    return {
        sid: n
        for sid, cells in analysis.get("cells", {}).items()
        for a, b, n in cells
        if (a, b) == (i, j)
    }


def _curves(pooled, grids, ids, names, preset, radius) -> dict[str, dict[str, list]]:
    out: dict[str, dict[str, list]] = {}
    if preset == "ocelot":
        all_s, all_t, all_n = [], [], 0
        for c, name in zip(ids, names, strict=True):
            s = np.concatenate(pooled[c][0]) if pooled[c][0] else np.zeros(0)
            t = np.concatenate(pooled[c][1]) if pooled[c][1] else np.zeros(0, bool)
            out[name] = _listify(curve_from_matches(s, t, pooled[c][2]), pooled[c][2])
            all_s.append(s)
            all_t.append(t)
            all_n += pooled[c][2]
        # "all": classes matched to themselves, counts summed (OCELOT's class-agnostic block)
        s, t = np.concatenate(all_s), np.concatenate(all_t)
        out["all"] = _listify(curve_from_matches(s, t, all_n), all_n)
        return out
    scores = np.concatenate([p.score for _, p in grids]) if grids else np.zeros(0)
    thr = np.unique(np.quantile(scores, np.linspace(0, 1, GRID))) if len(scores) else []
    for c, name in [*zip(ids, names, strict=True), (None, "all")]:
        counts, n_true = [], 0
        for t in thr:
            tp = fp = 0
            for gt, pr in grids:
                keep = pr.score >= t
                sub = Points(pr.xy[keep], pr.cls[keep], pr.score[keep])
                for cc in ids if c is None else [c]:
                    ti, _ = match_class(gt, sub, cc, preset, radius)
                    tp += len(ti)
                    fp += int((sub.cls == cc).sum()) - len(ti)
            counts.append((float(t), tp, fp))
        n_true = sum(int(np.isin(gt.cls, ids if c is None else [c]).sum()) for gt, _ in grids)
        out[name] = _listify(curve_on_grid(counts, n_true), n_true)
    return out


def _listify(curve: dict[str, np.ndarray], n_true: int) -> dict[str, Any]:
    d = {k: [None if not np.isfinite(x) else float(x) for x in v] for k, v in curve.items()}
    d["n_true"] = n_true
    return d


def confusion_frame(analysis: dict[str, Any], normalise: str = "none") -> pl.DataFrame:
    """The confusion matrix as a table: ``true`` then one column per predicted class and
    ``(none)``. ``normalise``: ``none`` (counts), ``true`` (each row sums to 1: recall-like)
    or ``pred`` (each column sums to 1: precision-like)."""
    names = [*analysis["classes"], NONE]
    m = np.asarray(analysis["confusion"], dtype=float)
    if normalise == "true":
        s = m.sum(1, keepdims=True)
        m = np.divide(m, s, out=np.full_like(m, np.nan), where=s > 0)
    elif normalise == "pred":
        s = m.sum(0, keepdims=True)
        m = np.divide(m, s, out=np.full_like(m, np.nan), where=s > 0)
    elif normalise != "none":
        raise KeyError(f"unknown normalisation '{normalise}' (none, true or pred)")
    data = {"true": names, **{n: m[:, j].tolist() for j, n in enumerate(names)}}
    return pl.DataFrame(data)


def curve_frame(analysis: dict[str, Any]) -> pl.DataFrame:
    """The threshold curves as a long table: ``class``, ``threshold``, ``precision``,
    ``recall``, ``f1``, ``tp``, ``fp``, ``n_true``."""
    rows = []
    for cls, c in analysis.get("curves", {}).items():
        for i, t in enumerate(c["threshold"]):
            rows.append(
                {
                    "class": cls,
                    "threshold": t,
                    "precision": c["precision"][i],
                    "recall": c["recall"][i],
                    "f1": c["f1"][i],
                    "tp": c["tp"][i],
                    "fp": c["fp"][i],
                    "n_true": c["n_true"],
                }
            )
    schema = {
        "class": pl.Utf8,
        "threshold": pl.Float64,
        "precision": pl.Float64,
        "recall": pl.Float64,
        "f1": pl.Float64,
        "tp": pl.Float64,
        "fp": pl.Float64,
        "n_true": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema)


def best_thresholds(analysis: dict[str, Any]) -> pl.DataFrame:
    """Per class: F1 at the operating point (every prediction kept, the run's own figure) and
    the threshold with the best F1."""
    rows = []
    for cls, c in analysis.get("curves", {}).items():
        f1 = [x if x is not None else -1 for x in c["f1"]]
        if not f1:
            continue
        b = int(np.argmax(f1))
        rows.append(
            {
                "class": cls,
                "f1_operating": c["f1"][-1],
                "best_threshold": c["threshold"][b],
                "best_f1": c["f1"][b],
                "n_true": c["n_true"],
            }
        )
    return pl.DataFrame(rows)


def class_table(analysis: dict[str, Any]) -> pl.DataFrame:
    """Per class, from the confusion matrix of matched objects: ``n_true`` (ground-truth
    objects), ``n_pred`` (predicted objects), ``correct`` (paired and of the same class) and
    ``precision`` / ``recall`` / ``f1`` of the class over the paired-by-position objects (an
    unpaired object counts against its class). NaN where a count is 0."""
    m = np.asarray(analysis["confusion"], dtype=np.int64)
    rows = []
    for k, name in enumerate(analysis["classes"]):
        n_true, n_pred, tp = int(m[k, :].sum()), int(m[:, k].sum()), int(m[k, k])
        p = tp / n_pred if n_pred else float("nan")
        r = tp / n_true if n_true else float("nan")
        f = 2 * tp / (n_true + n_pred) if n_true + n_pred else float("nan")
        rows.append(
            {
                "class": name,
                "n_true": n_true,
                "n_pred": n_pred,
                "correct": tp,
                "precision": p,
                "recall": r,
                "f1": f,
            }
        )
    return pl.DataFrame(rows)
