"""CoNIC's counting task (cellular composition), as TissueImageAnalytics/CoNIC scores it.

Counts: the nuclei of each class in the **central 224 x 224 px** of a 256 x 256 patch (the
baseline notebook's ``process_composition``: ``cropping_center(pred_map, [224, 224])``, every
instance id present in the crop counted once, by its class). A smaller image is counted whole.

Score (``compute_stats.py --mode regression``, ``get_multi_r2``): per class, scikit-learn's
``r2_score`` of the per-image true counts against the predicted counts (a class whose true
counts are constant scores 1.0 when predicted exactly, else 0.0: sklearn's ``force_finite``),
then ``multi_r2`` = mean over the classes (CoNIC's six: all declared classes, default those
seen in either side).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

CROP = 224


def central_crop(labels: np.ndarray, size: int = CROP) -> np.ndarray:
    """The central ``size`` x ``size`` px (CoNIC's ``cropping_center``: offsets
    ``(H - size) // 2``); the whole map when it is smaller."""
    h, w = labels.shape[:2]
    if h < size or w < size:
        return labels
    r0, c0 = (h - size) // 2, (w - size) // 2
    return labels[r0 : r0 + size, c0 : c0 + size]


def composition(
    labels: np.ndarray, ids: np.ndarray, cls: np.ndarray, classes: Sequence[int]
) -> dict[str, int]:
    """``{class: count}`` of the instances present in the central crop; ``ids`` / ``cls``:
    each instance id and its class."""
    present = np.unique(central_crop(labels))
    present = present[present > 0]
    lut = dict(zip(np.asarray(ids).tolist(), np.asarray(cls).tolist(), strict=True))
    got = np.array([lut.get(int(i), 0) for i in present], np.int64)
    return {str(int(c)): int((got == c).sum()) for c in classes}


def counts_r2(
    counts: Iterable[Mapping[str, Mapping[str, int]]], classes: Sequence[int] | None = None
) -> dict[str, Any]:
    """``r2`` per class and ``multi_r2`` from per-image ``{"true": {c: n}, "pred": {c: n}}``."""
    from sklearn.metrics import r2_score

    rows = list(counts)
    names = (
        [str(int(c)) for c in classes]
        if classes is not None
        else sorted({c for r in rows for side in r.values() for c in side}, key=int)
    )
    if len(rows) < 2 or not names:
        return {"r2": {}, "multi_r2": None, "n_count_images": len(rows)}
    r2 = {
        c: float(r2_score([r["true"].get(c, 0) for r in rows], [r["pred"].get(c, 0) for r in rows]))
        for c in names
    }
    return {"r2": r2, "multi_r2": float(np.mean(list(r2.values()))), "n_count_images": len(rows)}
