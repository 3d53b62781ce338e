"""Semantic (pixel) segmentation scores: accuracy, IoU and Dice per class (APACS23 style).

A binary mask is the two-class case (0 = background, 1 = foreground); APACS23 reports the
foreground class. Counts are pixels. Presets (:mod:`cellbench.metrics.presets`): ``apacs23``
pools pixel counts over the images (seed 001's figures: its reported pairs satisfy
Dice = 2 IoU / (1 + IoU), which holds for one pooled count and not in general for means of
per-image values), ``pixels_image`` averages per-image values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core.errors import DataError


def _as_classes(arr: np.ndarray, name: str | Path) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype.kind == "b":
        return arr.astype(np.intp)
    if arr.dtype.kind == "f":
        raise DataError(name, f"class mask has float values (dtype {arr.dtype})")
    if arr.dtype.kind not in "iu":
        raise DataError(name, f"class mask has unsupported dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise DataError(name, "class mask has negative classes")
    return arr


def semantic_scores(
    true: np.ndarray,
    pred: np.ndarray,
    classes: Sequence[int] | None = None,
    true_name: str | Path = "true",
    pred_name: str | Path = "pred",
    valid: np.ndarray | None = None,
) -> dict[str, Any]:
    """Pixel accuracy and per-class IoU and Dice of one image.

    Parameters
    ----------
    true, pred
        ``(H, W)`` class masks (bool or non-negative integers).
    classes
        Classes to report (default: every non-zero class present in either mask).
    valid
        ``(H, W)`` bool: only these pixels are scored (a partly annotated image's annotated
        region); None scores every pixel.

    Returns
    -------
    dict
        ``pixel_accuracy``; ``per_class: {c: {tp, fp, fn, iou, dice}}`` (None where the class
        is in neither mask); ``iou``/``dice`` = the foreground class for binary masks, else the
        mean over reported classes.
    """
    t = _as_classes(true, true_name)
    p = _as_classes(pred, pred_name)
    if t.shape != p.shape:
        raise DataError(pred_name, f"shape {p.shape} differs from the ground truth's {t.shape}")
    if valid is not None:
        keep = np.asarray(valid, bool)
        if keep.shape != t.shape:
            raise DataError(true_name, f"valid mask {keep.shape} differs from the mask {t.shape}")
        t, p = t[keep], p[keep]
    k = int(max(t.max(initial=0), p.max(initial=0))) + 1
    cm = np.bincount(
        t.ravel().astype(np.intp) * k + p.ravel().astype(np.intp), minlength=k * k
    ).reshape(k, k)
    if classes is None:
        classes = [c for c in range(1, k) if cm[c, :].sum() + cm[:, c].sum() > 0] or [1]
    per_class = {}
    for c in classes:
        tp = int(cm[c, c]) if c < k else 0
        fn = int(cm[c, :].sum()) - tp if c < k else 0
        fp = int(cm[:, c].sum()) - tp if c < k else 0
        den = tp + fp + fn
        per_class[str(int(c))] = {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "iou": tp / den if den else None,
            "dice": 2 * tp / (2 * tp + fp + fn) if den else None,
        }
    vals = list(per_class.values())
    n = int(t.size)
    return {
        "n_pixels": n,
        "correct": int(np.trace(cm)),
        "pixel_accuracy": float(np.trace(cm)) / n if n else None,
        "per_class": per_class,
        "iou": _mean([v["iou"] for v in vals]),
        "dice": _mean([v["dice"] for v in vals]),
    }


def _mean(v: Iterable[float | None]) -> float | None:
    x = [a for a in v if a is not None]
    return float(np.mean(x)) if x else None


def aggregate_semantic(
    per_image: Mapping[str, Mapping] | Iterable[Mapping], averaging: str = "image"
) -> dict[str, Any]:
    """Dataset figures: ``averaging="image"`` (mean of per-image values; the
    ``pixels_image`` preset) or ``"pooled"`` (pixel counts summed first; APACS23, whose
    reported pairs satisfy Dice = 2 IoU / (1 + IoU), which only pooled counts do)."""
    rows = list(per_image.values()) if isinstance(per_image, Mapping) else list(per_image)
    if averaging not in ("image", "pooled"):
        raise ValueError("averaging must be 'image' or 'pooled'")
    names = sorted({c for r in rows for c in r["per_class"]}, key=int)
    per_class = {}
    for c in names:
        sub = [r["per_class"][c] for r in rows if c in r["per_class"]]
        if averaging == "image":
            per_class[c] = {k: _mean(s[k] for s in sub) for k in ("iou", "dice")}
        else:
            tp, fp, fn = (sum(s[k] for s in sub) for k in ("tp", "fp", "fn"))
            den = tp + fp + fn
            per_class[c] = {
                "iou": tp / den if den else None,
                "dice": 2 * tp / (2 * tp + fp + fn) if den else None,
            }
    if averaging == "image":
        acc = _mean(r["pixel_accuracy"] for r in rows)
    else:
        n = sum(r["n_pixels"] for r in rows)
        acc = sum(r["correct"] for r in rows) / n if n else None
    return {
        "averaging": averaging,
        "n_images": len(rows),
        "pixel_accuracy": acc,
        "per_class": per_class,
        "iou": _mean(v["iou"] for v in per_class.values()),
        "dice": _mean(v["dice"] for v in per_class.values()),
    }
