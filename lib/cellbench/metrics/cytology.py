"""Cytology protocols: the ISBI 2014 overlapping-cell challenge and APACS23 pixel scores.

ISBI 2014 (Lu et al., *Evaluation of three algorithms for the segmentation of overlapping
cervical cells*, IEEE JBHI 2016; the challenge's ``EvaluateSegmentation`` as distributed with
the ISBI 2015 data). Per image, on the objects themselves (they may overlap):

1. the Dice of every ground-truth object with every segmented object,
   ``2 |G ∩ S| / (|G| + |S|)``;
2. one-to-one assignment, greedily from the highest Dice down (ties: the lower ground-truth
   index, then the lower segmented index, as MATLAB's ``max`` returns the first);
3. a ground-truth object is *detected* ("good segmentation") when its assigned Dice is
   greater than the threshold (0.7, strict);
4. ``DSC`` = mean Dice of the detected objects; ``FNo`` = undetected / ground-truth objects;
   ``TPp`` = mean over detected objects of ``|G ∩ S| / |G|``; ``FPp`` = mean over detected
   objects of ``|S \\ G| / (H W - |G|)`` (false-positive pixels over the image's pixels outside
   the cell: the pixel false-positive *rate*, which gives the ~0.002 values the challenge
   papers report; ``|S \\ G| / |S|`` would give ~0.1); ``FDRo`` = (segmented - detected) /
   segmented objects.

Dataset figures (the reference's): DSC, TPp and FPp are means over every detected object of
every image, FNo and FDRo ratios of counts summed over images (``averaging="pooled"``);
``averaging="image"`` gives the mean of per-image values instead (images without ground
truth left out of FNo, without segmentation out of FDRo, without detections out of the rest).

Units: areas in pixels; all figures are fractions in [0, 1].
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from cellbench.metrics.overlap import Overlap

#: The challenge's "good segmentation" Dice threshold (strict).
ISBI_DICE = 0.7

#: Per-image result keys of :func:`isbi_scores` (also flattened into stored rows).
ISBI_KEYS = ("dsc", "fno", "tpp", "fpp", "fdro")


def greedy_dice_assignment(ov: Overlap) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``ov``'s pairs chosen one-to-one from the highest Dice down, and the Dice
    of every pair. Ties go to the lower ground-truth, then the lower predicted index."""
    dice = 2.0 * ov.inter / (ov.true_area[ov.ti] + ov.pred_area[ov.pj])
    order = np.lexsort((ov.pj, ov.ti, -dice))
    t_used = np.zeros(ov.n_true, bool)
    p_used = np.zeros(ov.n_pred, bool)
    chosen = []
    for e in order.tolist():
        i, j = ov.ti[e], ov.pj[e]
        if not (t_used[i] or p_used[j]):
            t_used[i] = p_used[j] = True
            chosen.append(e)
    return np.asarray(chosen, np.intp), dice


def isbi_scores(ov: Overlap, dice_threshold: float = ISBI_DICE) -> dict[str, Any]:
    """The ISBI 2014 figures of one image (see the module docstring).

    Returns
    -------
    dict
        ``n_detected`` and the sums ``dice_sum``, ``tpp_sum``, ``fpp_sum`` over detected objects
        (for pooling), and ``dsc``, ``fno``, ``tpp``, ``fpp``, ``fdro`` (None where undefined:
        no detection, no ground truth, no segmentation), ``dice_threshold``.
    """
    chosen, dice = greedy_dice_assignment(ov)
    good = chosen[dice[chosen] > dice_threshold]
    at = ov.true_area[ov.ti[good]].astype(np.float64)
    ap = ov.pred_area[ov.pj[good]].astype(np.float64)
    inter = ov.inter[good].astype(np.float64)
    n_px = float(ov.shape[0] * ov.shape[1])
    tpp = inter / at
    fpp = (ap - inter) / np.maximum(n_px - at, 1.0)
    n = len(good)
    return {
        "dice_threshold": dice_threshold,
        "n_detected": n,
        "dice_sum": float(dice[good].sum()),
        "tpp_sum": float(tpp.sum()),
        "fpp_sum": float(fpp.sum()),
        "dsc": float(dice[good].mean()) if n else None,
        "fno": (ov.n_true - n) / ov.n_true if ov.n_true else None,
        "tpp": float(tpp.mean()) if n else None,
        "fpp": float(fpp.mean()) if n else None,
        "fdro": (ov.n_pred - n) / ov.n_pred if ov.n_pred else None,
    }


def _mean(vals: Iterable[Any]) -> float | None:
    v = [x for x in vals if x is not None]
    return float(np.mean(v)) if v else None


def aggregate_isbi(rows: Iterable[Mapping[str, Any]], averaging: str = "pooled") -> dict[str, Any]:
    """Dataset ISBI figures from per-image results of :func:`isbi_scores` (or of
    :func:`~cellbench.metrics.instance.instance_scores` under the ``isbi2014`` preset).

    ``pooled`` (the reference): means over all detected objects, FNo / FDRo from summed
    counts; ``image``: means of the per-image values.
    """
    rows = list(rows)
    if averaging == "image":
        out = {k: _mean(r.get(k) for r in rows) for k in ISBI_KEYS}
    elif averaging == "pooled":
        n = sum(int(r.get("n_detected", 0)) for r in rows)
        nt = sum(int(r.get("n_true", 0)) for r in rows)
        npd = sum(int(r.get("n_pred", 0)) for r in rows)
        out = {
            "dsc": sum(r.get("dice_sum", 0.0) for r in rows) / n if n else None,
            "fno": (nt - n) / nt if nt else None,
            "tpp": sum(r.get("tpp_sum", 0.0) for r in rows) / n if n else None,
            "fpp": sum(r.get("fpp_sum", 0.0) for r in rows) / n if n else None,
            "fdro": (npd - n) / npd if npd else None,
        }
    else:
        raise ValueError("averaging must be 'pooled' or 'image'")
    out["n_detected"] = sum(int(r.get("n_detected", 0)) for r in rows)
    out["isbi_averaging"] = averaging
    return out
