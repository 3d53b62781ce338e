"""The PanNuke protocol exactly as TissueImageAnalytics/PanNuke-metrics ``run.py`` scores a fold.

Inputs are the fold's arrays: ``masks.npy`` ``(N, H, W, 6)`` (channels 0-4: instance ids of
neoplastic, inflammatory, connective, dead and non-neoplastic epithelial nuclei; channel 5:
background), ``types.npy`` ``(N,)`` tissue names, and the prediction's ``masks.npy`` of the same
layout.

Per image ``i`` and class ``j``: PQ of channel ``j`` (ids remapped; IoU > 0.5, HoVer-Net's
``get_fast_pq``), NaN when the ground truth has no nucleus of the class. bPQ: PQ of the
binarised maps (channels 0-4 painted in channel order, each id a new instance, a later channel
overwriting), NaN when the ground truth has no nucleus. Image mPQ = nan-mean over the 5 classes;
class PQ = nan-mean over images; tissue mPQ / bPQ = nan-mean of its images' values; the
reported mPQ / bPQ = nan-mean over the 19 tissues listed in ``run.py`` (an image of another
tissue name is left out of the tissue figures, as there; a listed tissue without images is NaN
and skipped).

Documented differences from the script, none of which changes its printed figures: its
``class_stats.csv`` writes the connective PQ in the inflammatory row (the printed value is
right; cellbench reports the right one); its binarised PQ indexes instances by id and would
fail if an instance were entirely overwritten (non-contiguous ids) - cellbench scores such
maps correctly.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core.errors import DataError
from cellbench.metrics.instance import match_pairs, pq_terms
from cellbench.metrics.overlap import compute_overlap

TISSUES = (
    "Adrenal_gland",
    "Bile-duct",
    "Bladder",
    "Breast",
    "Cervix",
    "Colon",
    "Esophagus",
    "HeadNeck",
    "Kidney",
    "Liver",
    "Lung",
    "Ovarian",
    "Pancreatic",
    "Prostate",
    "Skin",
    "Stomach",
    "Testis",
    "Thyroid",
    "Uterus",
)
CLASSES = ("neoplastic", "inflammatory", "connective", "dead", "epithelial")


def _nanmean(values) -> float:
    a = np.asarray(list(values), np.float64)
    if not a.size or np.isnan(a).all():
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(a))


def fast_pq(true: np.ndarray, pred: np.ndarray) -> float:
    """PQ at IoU > 0.5 as ``get_fast_pq``; NaN when ``true`` has no instance.

    Matched IoUs are summed in the script's order (true id, then prediction id), so the value
    is the script's to the last bit."""
    ov = compute_overlap(np.ascontiguousarray(true), np.ascontiguousarray(pred))
    if ov.n_true == 0:
        return float("nan")
    m = match_pairs(ov, 0.5, "pannuke")
    order = np.lexsort((ov.pj[m], ov.ti[m]))
    iou = ov.iou[m][order]
    tp = int(m.sum())
    return float(pq_terms(tp, ov.n_pred - tp, ov.n_true - tp, iou.sum(), "pannuke")["pq"])


def binarize(x: np.ndarray) -> np.ndarray:
    """``run.py``'s ``binarize``: channels painted in order, each (channel, id) a new instance
    numbered from 1 in that order, later ones overwriting earlier ones."""
    out = np.zeros(x.shape[:2], np.int32)
    count = 1
    for c in range(x.shape[2]):
        ch = x[:, :, c]
        for v in np.unique(ch):
            if v == 0:
                continue
            out[ch == v] = count
            count += 1
    return out


def _ids(x: np.ndarray) -> np.ndarray:
    """One image's channels as int32 instance ids (PanNuke stores them as float64)."""
    a = np.asarray(x)
    if a.dtype.kind == "f" and not (np.isfinite(a).all() and np.all(a == np.round(a))):
        raise DataError(Path("masks.npy"), "instance ids must be finite whole numbers")
    if a.size and a.min() < 0:
        raise DataError(Path("masks.npy"), "instance ids must not be negative")
    return a.astype(np.int32)


def pannuke_scores(
    true: np.ndarray, pred: np.ndarray, types: np.ndarray, names: tuple[str, ...] = CLASSES
) -> dict[str, Any]:
    """The PanNuke figures of one fold (module docstring). Returns ``mPQ``, ``bPQ``,
    ``per_class`` ``{name: PQ}``, ``per_tissue`` ``{tissue: {mPQ, bPQ, n_images}}``,
    ``per_image`` (``pq`` per class, ``mpq``, ``bpq``, ``tissue``) and ``left_out``
    (images whose tissue is not one of the 19)."""
    n = true.shape[0]
    per_image = []
    for i in range(n):
        t, q = _ids(true[i, :, :, :5]), _ids(pred[i, :, :, :5])
        pq = [fast_pq(t[:, :, j], q[:, :, j]) for j in range(5)]
        bpq = fast_pq(binarize(t), binarize(q))
        per_image.append({"tissue": str(types[i]), "pq": pq, "mpq": _nanmean(pq), "bpq": bpq})
    per_class = {names[j]: _nanmean(r["pq"][j] for r in per_image) for j in range(5)}
    per_tissue = {}
    for t in TISSUES:
        rows = [r for r in per_image if r["tissue"] == t]
        per_tissue[t] = {
            "mPQ": _nanmean(r["mpq"] for r in rows),
            "bPQ": _nanmean(r["bpq"] for r in rows),
            "n_images": len(rows),
        }
    return {
        "preset": "pannuke",
        "mPQ": _nanmean(v["mPQ"] for v in per_tissue.values()),
        "bPQ": _nanmean(v["bPQ"] for v in per_tissue.values()),
        "per_class": per_class,
        "per_tissue": per_tissue,
        "per_image": per_image,
        "left_out": sorted({r["tissue"] for r in per_image} - set(TISSUES)),
        "n_images": n,
    }


def load_fold(gt_dir: str | Path, pred_dir: str | Path):
    """``(true masks, predicted masks, types)`` of a PanNuke fold folder and a prediction
    folder (``masks.npy`` each; ``types.npy`` beside the ground truth), shapes checked."""
    g, p = Path(gt_dir), Path(pred_dir)
    arrays = []
    for f in (g / "masks.npy", p / "masks.npy"):
        if not f.is_file():
            raise DataError(f, "file not found (a PanNuke fold folder holds masks.npy)")
        try:  # mapped, not loaded: a fold is 8 GB of float64; images are read one by one
            a = np.load(f, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as e:
            raise DataError(f, f"unreadable .npy ({e})") from None
        if a.ndim != 4 or a.shape[3] < 5 or a.dtype.kind not in "iuf":
            raise DataError(f, f"expected (N, H, W, 6) PanNuke masks, got {a.dtype} {a.shape}")
        arrays.append(a)
    true, pred = arrays
    if true.shape[:3] != pred.shape[:3]:
        raise DataError(
            p / "masks.npy", f"shape {pred.shape} differs from the ground truth {true.shape}"
        )
    tf = g / "types.npy"
    if not tf.is_file():
        raise DataError(tf, "file not found (the tissue of each image)")
    try:
        types = np.load(tf, allow_pickle=False)
    except ValueError as e:
        raise DataError(tf, f"unreadable ({e})") from None
    if types.shape != (true.shape[0],) or types.dtype.kind not in "US":
        raise DataError(
            tf, f"expected {true.shape[0]} tissue names, got {types.dtype} {types.shape}"
        )
    return true, pred, types


def score_fold(gt_dir: str | Path, pred_dir: str | Path, progress=None) -> dict[str, Any]:
    """:func:`pannuke_scores` of a fold folder and a prediction folder, JSON-ready (NaN ->
    None)."""
    true, pred, types = load_fold(gt_dir, pred_dir)
    res = pannuke_scores(true, pred, types)
    res.update(gt=str(gt_dir), pred=str(pred_dir))
    return _no_nan(res)


def _no_nan(x):
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, dict):
        return {k: _no_nan(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_no_nan(v) for v in x]
    return x
