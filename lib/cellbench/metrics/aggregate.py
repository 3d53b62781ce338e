"""Dataset figures from per-image results, each preset its own way.

Inputs are the mappings returned by :func:`~cellbench.metrics.instance.instance_scores` and
:func:`~cellbench.metrics.points.point_scores` (or the same read back from JSON), so stored
per-image results can be re-aggregated without touching pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from cellbench.metrics.instance import detection_terms, pq_terms
from cellbench.metrics.points import prf, type_terms
from cellbench.metrics.presets import HOVERNET_LIKE, get_preset

#: Per-image values averaged by image-averaging presets (None values are left out).
MEAN_KEYS = (
    "pq",
    "dq",
    "sq",
    "aji",
    "aji_plus",
    "dice1",
    "dice2",
    "precision",
    "recall",
    "f1",
    "accuracy",
    "mean_matched_score",
    "mean_true_score",
    "accuracy_mean",
    "f1_mean",
    "pq_mean",
    "mpq",
    "bpq",
)


def _rows(per_image: Mapping[str, Mapping] | Iterable[Mapping]) -> list[Mapping]:
    return list(per_image.values()) if isinstance(per_image, Mapping) else list(per_image)


def _mean(vals: Iterable[Any]) -> float | None:
    v = [x for x in vals if x is not None]
    return float(np.mean(v)) if v else None


def _sum_counts(rows: Sequence[Mapping], keys=("n_true", "n_pred", "tp", "fp", "fn", "iou_sum")):
    return {k: (float if k == "iou_sum" else int)(sum(r.get(k, 0) for r in rows)) for k in keys}


def aggregate_instances(
    per_image: Mapping[str, Mapping] | Iterable[Mapping],
    preset: str | None = None,
    *,
    by_image: bool = False,
    classes: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Dataset-level instance metrics under ``preset`` (default: the rows' own preset).

    - ``hovernet``: arithmetic mean over scored images of every per-image value; per-class
      PQ averaged over the images whose GT has the class (PanNuke); ``mpq`` = mean of the
      per-image mPQ.
    - ``stardist``: ratios of counts pooled over images (``by_image=True``: mean of
      per-image ratios); AJI and Dice, which StarDist does not define, as means over images.
    - ``conic``: ``bpq`` = mean of per-image PQ; ``mpq_plus`` = PQ of per-class counts pooled
      over images, averaged over ``classes`` (all declared classes; default those seen).
    - ``torchmetrics``: pooled PQ, SQ, RQ; class mean over classes with a non-zero
      denominator.
    - ``isbi2014``: pooled counts as stardist, plus the challenge's DSC, TPp, FPp (means over
      detected objects) and FNo, FDRo (pooled counts); ``by_image=True``: per-image means.

    Every result also holds the pooled counts, ``n_images`` and ``n_scored`` (images with GT or
    prediction).
    """
    rows = _rows(per_image)
    if preset is None:
        preset = rows[0]["preset"] if rows else "hovernet"
    get_preset(preset, "instance")
    if preset in ("monusac", "monusac_corrected"):
        from cellbench.metrics.monusac import aggregate_monusac

        keyed = per_image if isinstance(per_image, Mapping) else dict(enumerate(rows))
        return aggregate_monusac({str(k): v for k, v in keyed.items()}, preset)
    scored = [r for r in rows if r.get("n_true", 0) + r.get("n_pred", 0) > 0]
    out: dict[str, Any] = {"preset": preset, "n_images": len(rows), "n_scored": len(scored)}
    counts = _sum_counts(rows)
    out.update(counts)
    means = {k: _mean(r.get(k) for r in scored) for k in MEAN_KEYS if any(k in r for r in rows)}
    pooled = pq_terms(counts["tp"], counts["fp"], counts["fn"], counts["iou_sum"], preset)
    pooled.update(detection_terms(counts["tp"], counts["fp"], counts["fn"]))
    tp = counts["tp"]
    pooled["mean_matched_score"] = counts["iou_sum"] / tp if tp else 0.0
    pooled["mean_true_score"] = counts["iou_sum"] / counts["n_true"] if counts["n_true"] else 0.0
    out.update(means)
    if preset in HOVERNET_LIKE or (preset == "stardist" and by_image):
        out["averaging"] = "mean over images"
    else:
        for k in (
            "pq",
            "dq",
            "sq",
            "precision",
            "recall",
            "f1",
            "accuracy",
            "mean_matched_score",
            "mean_true_score",
        ):
            out[k] = pooled[k]
        kept = "bPQ, AJI, Dice" if preset == "conic" else "AJI, Dice"
        out["averaging"] = f"pooled counts ({kept}: mean over images)"
        if preset == "torchmetrics":
            out["rq"] = out["dq"]
    if preset == "conic":
        out["bpq"] = means.get("pq")
    if preset == "conic" and any("counts" in r for r in rows):
        from cellbench.metrics.conic import counts_r2

        out.update(counts_r2([r["counts"] for r in rows if "counts" in r], classes))
    if preset == "pannuke":  # bPQ: images whose ground truth has nuclei (NaN otherwise)
        out["bpq"] = _mean(r.get("pq") for r in rows if r.get("n_true", 0) > 0)
    if any("by_threshold" in r for r in rows):
        out["by_threshold"] = _by_threshold(rows, scored, preset, by_image)
    if any("per_class" in r for r in rows):
        out.update(_classes(rows, scored, preset, classes))
    if any("types" in r for r in rows):
        out["types"] = type_terms([r["types"] for r in rows if "types" in r])
    if preset == "isbi2014":
        from cellbench.metrics.cytology import aggregate_isbi

        out.update(aggregate_isbi(rows, "image" if by_image else "pooled"))
    if any("background" in r for r in rows) and preset == "torchmetrics":
        bg = _sum_counts(
            [r["background"] for r in rows if "background" in r], ("tp", "fp", "fn", "iou_sum")
        )
        den = bg["tp"] + 0.5 * bg["fp"] + 0.5 * bg["fn"]
        out["background_pq"] = bg["iou_sum"] / den if den else None
    return out


def _by_threshold(rows, scored, preset, by_image) -> dict[str, dict[str, Any]]:
    out = {}
    keys = rows[0]["by_threshold"].keys() if rows else []
    for t in keys:
        sub = [r["by_threshold"][t] for r in rows]
        c = _sum_counts(sub, ("tp", "fp", "fn", "iou_sum"))
        if preset in HOVERNET_LIKE or by_image:
            ssub = [r["by_threshold"][t] for r in scored]
            v = {
                k: _mean(s[k] for s in ssub)
                for k in ("pq", "dq", "sq", "precision", "recall", "f1", "accuracy")
            }
        else:
            v = pq_terms(c["tp"], c["fp"], c["fn"], c["iou_sum"], preset)
            v.update(detection_terms(c["tp"], c["fp"], c["fn"]))
        out[t] = {**c, **v}
    return out


def _classes(rows, scored, preset, classes) -> dict[str, Any]:
    names = sorted({k for r in rows for k in r.get("per_class", {})}, key=int)
    if classes is not None:
        names = [str(int(c)) for c in classes]
    per_class: dict[str, Any] = {}
    for c in names:
        sub = [r["per_class"].get(c, {}) for r in rows if "per_class" in r]
        cnt = _sum_counts(sub)
        pooled = pq_terms(cnt["tp"], cnt["fp"], cnt["fn"], cnt["iou_sum"], preset)
        if preset == "conic" and pooled["pq"] is None:
            pooled = {"dq": 0.0, "sq": 0.0, "pq": 0.0}  # CoNIC: absent class scores 0
        if preset in HOVERNET_LIKE:
            with_gt = [s for s in sub if s.get("n_true", 0) > 0]
            pooled = {k: _mean(s.get(k) for s in with_gt) for k in ("dq", "sq", "pq")}
        per_class[c] = {**cnt, **pooled}
    out: dict[str, Any] = {"per_class": per_class}
    if preset in HOVERNET_LIKE:
        out["mpq"] = _mean(r.get("mpq") for r in scored)
    elif preset == "conic":
        out["mpq_plus"] = _mean(v["pq"] for v in per_class.values())
        out["mpq"] = out["mpq_plus"]
    elif preset == "torchmetrics":
        vals = [v["pq"] for v in per_class.values() if v["tp"] + v["fp"] + v["fn"] > 0]
        out["mpq"] = _mean(vals)
    else:
        out["mpq"] = _mean(v["pq"] for v in per_class.values())
    return out


def aggregate_points(
    per_image: Mapping[str, Mapping] | Iterable[Mapping], preset: str | None = None
) -> dict[str, Any]:
    """Pooled point-detection scores: per class, class-agnostic (``all``) and ``mf1``.

    Counts are summed over images per class, then P/R/F1 computed with the preset's epsilons
    (OCELOT: 1e-7 and 4-decimal rounding, ``mf1`` = mean of the rounded class F1s).
    """
    rows = _rows(per_image)
    if preset is None:
        preset = rows[0]["preset"] if rows else "ocelot"
    get_preset(preset, "points")
    names = sorted({k for r in rows for k in r["per_class"]}, key=int)
    per_class = {}
    for c in names:
        sub = [r["per_class"][c] for r in rows if c in r["per_class"]]
        cnt = _sum_counts(sub, ("n_true", "n_pred", "tp", "fp", "fn"))
        per_class[c] = {**cnt, **prf(cnt["tp"], cnt["fp"], cnt["n_true"], preset)}
    tot = _sum_counts([r["all"] for r in rows], ("n_true", "n_pred", "tp", "fp", "fn"))
    tot.update(prf(tot["tp"], tot["fp"], tot["n_true"], preset))
    f1s = [v["f1"] for v in per_class.values() if v["f1"] is not None]
    return {
        "preset": preset,
        "n_images": len(rows),
        "per_class": per_class,
        "all": tot,
        "mf1": float(sum(f1s) / len(f1s)) if f1s else None,
    }


def aggregate_groups(
    per_image: Mapping[str, Mapping],
    groups: Mapping[str, Any],
    kind: str = "instances",
    preset: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Aggregate per group (center, organ, stain...): ``{group: dataset figures}``.

    ``groups`` maps image name to its group; images without a group (missing or None) go to
    ``"unknown"``. ``kind`` is ``"instances"`` or ``"points"``.
    """
    fn = {"instances": aggregate_instances, "points": aggregate_points}[kind]
    by: dict[str, dict[str, Mapping]] = {}
    for name, row in per_image.items():
        g = groups.get(name)
        by.setdefault("unknown" if g is None else str(g), {})[name] = row
    return {g: fn(rows, preset) for g, rows in sorted(by.items())}


def aggregate_task(
    task: str,
    per_image: Mapping[str, Mapping] | Iterable[Mapping],
    preset: str,
    classes: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Dataset figures of one evaluation task (``instances``, ``points`` or ``semantic``) under
    its preset: one entry point for runs, groups and analyses."""
    if task == "instances":
        return aggregate_instances(per_image, preset, classes=classes)
    if task == "semantic":
        from cellbench.metrics.semantic import aggregate_semantic

        out = aggregate_semantic(per_image, get_preset(preset, "semantic").averaging)
        return {"preset": preset, **out}
    return aggregate_points(per_image, preset)
