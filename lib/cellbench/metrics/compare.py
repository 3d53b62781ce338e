"""Where two presets disagree on the same inputs, and why."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cellbench.metrics.aggregate import aggregate_instances
from cellbench.metrics.instance import instance_scores
from cellbench.metrics.overlap import compute_overlap
from cellbench.metrics.presets import get_preset

COMPARED = ("tp", "fp", "fn", "dq", "sq", "pq", "f1", "aji", "aji_plus", "dice1", "dice2")


def _differ(x: Any, y: Any, tol: float) -> bool:
    if x is None or y is None:
        return (x is None) != (y is None)
    return abs(float(x) - float(y)) > tol


def compare_presets(
    images: Mapping[str, tuple[np.ndarray, np.ndarray]],
    a: str = "hovernet",
    b: str = "stardist",
    *,
    iou: float = 0.5,
    tol: float = 1e-12,
) -> dict[str, list[dict[str, Any]]]:
    """Score every image under presets ``a`` and ``b`` and explain each difference.

    Parameters
    ----------
    images
        ``{name: (true instance map, pred instance map)}``.
    a, b
        Instance presets to compare.
    iou
        Matching threshold used by both.
    tol
        Absolute difference below which values count as equal.

    Returns
    -------
    dict
        ``per_image``: rows ``{image, metric, a, b, reason}``; ``aggregate``: the same for the
        dataset figures (reason: averaging and epsilons). Reasons name the convention, e.g.
        ``"2 pair(s) with IoU exactly 0.5: matched by stardist (IoU >= t), not by hovernet
        (IoU > t)"``.
    """
    pa, pb = get_preset(a, "instance"), get_preset(b, "instance")
    rows: list[dict[str, Any]] = []
    ra, rb = {}, {}
    for name, (t, p) in images.items():
        sa = instance_scores(t, p, a, iou=iou, true_name=f"{name} (true)", pred_name=name)
        sb = instance_scores(t, p, b, iou=iou, true_name=f"{name} (true)", pred_name=name)
        ra[name], rb[name] = sa, sb
        diffs = [m for m in COMPARED if _differ(sa.get(m), sb.get(m), tol)]
        if not diffs:
            continue
        ov = compute_overlap(t, p, f"{name} (true)", name)
        ties = int(np.count_nonzero(ov.iou == iou))
        if ties and pa.inclusive != pb.inclusive and sa["tp"] != sb["tp"]:
            inc, strict = (pa, pb) if pa.inclusive else (pb, pa)
            reason = (
                f"{ties} pair(s) with IoU exactly {iou}: matched by {inc.name} (IoU >= t), "
                f"not by {strict.name} (IoU > t)"
            )
        elif sa["tp"] == sb["tp"] and sa["fp"] == sb["fp"] and sa["fn"] == sb["fn"]:
            reason = f"epsilons: {pa.name}: {pa.epsilons} {pb.name}: {pb.epsilons}"
        else:
            reason = f"matching: {pa.name}: {pa.matching} {pb.name}: {pb.matching}"
        for m in diffs:
            rows.append({"image": name, "metric": m, a: sa.get(m), b: sb.get(m), "reason": reason})
    aa, ab = aggregate_instances(ra, a), aggregate_instances(rb, b)
    agg = []
    for m in ("pq", "dq", "sq", "f1", "aji", "aji_plus", "dice1", "dice2"):
        if _differ(aa.get(m), ab.get(m), tol):
            agg.append(
                {
                    "metric": m,
                    a: aa.get(m),
                    b: ab.get(m),
                    "reason": f"averaging: {a} {aa['averaging']}, {b} {ab['averaging']}"
                    + ("; per-image differences above" if rows else ""),
                }
            )
    return {"per_image": rows, "aggregate": agg}
