"""Many image pairs scored at once: :func:`instance_scores_many`.

Scoring a few hundred small tiles one call at a time spends most of its time on per-call
overhead (checks, small arrays, one assignment per tile). Two faster paths give the same
results as :func:`~cellbench.metrics.instance.instance_scores`, key for key and bit for bit:

- **compiled per tile** (numba loaded, or a batch of at least :data:`COMPILED_MIN_PIXELS`):
  each tile in one call of :mod:`cellbench.metrics._tile_kernel` (pixel pass, matching, AJI,
  AJI+, Dice, the IoU sum as numpy sums it), tiles spread over the CPU cores in threads (the
  kernel releases the GIL); one IoU threshold >= 0.5, no extra keyword arguments. A tile the
  kernel hands back (ambiguous matches, ids too sparse) is scored by ``instance_scores``.
- **stacked single pass** (tiny tiles without numba, several thresholds, ``centroid_f1``):
  every pair laid into one tall map (each tile's rows below the previous tile's, ids offset
  so that no two tiles share an id), its overlap computed once, matching, AJI / AJI+ and Dice
  run once on the whole graph (which never links two tiles), and the counts split per tile;
  each tile's figures are then computed from its own counts by the same functions as
  ``instance_scores``: sums of IoUs are taken per tile in the same order, integer counts are
  exact, and centroids come from exact integer coordinate sums. Taken for tiles of at most
  :data:`SINGLE_PASS_MAX_PIXELS` pixels on average, where it beats one call each.

Both cover label maps without classes, under the presets ``hovernet``, ``pannuke``,
``monuseg``, ``stardist``, ``conic`` and ``torchmetrics``. Anything else (classes, overlapping
objects, ``isbi2014``, the MoNuSAC presets, ``background_stuff``) is scored tile by tile with
:func:`instance_scores`: the same results, without the speed-up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core import config
from cellbench.data.sample import Objects
from cellbench.metrics import _kernels, _tile_kernel
from cellbench.metrics.instance import (
    _ratio,
    detection_terms,
    instance_scores,
    match_pairs,
    parse_thresholds,
    pq_terms,
)
from cellbench.metrics.matching import best_per_group, max_weight_matching
from cellbench.metrics.overlap import _check_same_shape, check_label_map, compute_overlap
from cellbench.metrics.presets import get_preset

FAST_PRESETS = ("hovernet", "pannuke", "monuseg", "stardist", "conic", "torchmetrics")
#: keyword arguments the single pass handles (the rest: tile by tile)
_FAST_KW = {"centroid_f1", "radius_px", "radius_um", "mpp", "type_pairing"}


def instance_scores_many(
    trues: Sequence[np.ndarray | Objects],
    preds: Sequence[np.ndarray | Objects],
    preset: str = "hovernet",
    *,
    iou: float | Sequence[float] | str = 0.5,
    names: Sequence[tuple[str | Path, str | Path]] | None = None,
    per_image: Sequence[Mapping[str, Any]] | None = None,
    single_pass: bool | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """``[instance_scores(t, p, preset, iou=iou, **kwargs, **per_image[k]) for each pair]``,
    computed by the faster paths where they apply (module docstring).

    ``names``: ``(true name, pred name)`` of each pair for error messages; ``per_image``:
    keyword arguments of each pair (e.g. its classes); ``kwargs``: those shared by all;
    ``single_pass``: False scores one call each; True takes the stacked pass wherever the
    compiled one does not apply; None (default) chooses by speed. The results are the same
    either way.
    """
    trues, preds = list(trues), list(preds)
    if len(trues) != len(preds):
        raise ValueError(f"{len(trues)} ground truths but {len(preds)} predictions")
    names = list(names) if names is not None else [("true", "pred")] * len(trues)
    extra = list(per_image) if per_image is not None else [{}] * len(trues)
    fast = (
        single_pass is not False
        and len(trues) > 1
        and preset in FAST_PRESETS
        and set(kwargs) <= _FAST_KW
        and not any(extra)
        and all(isinstance(x, np.ndarray) for x in (*trues, *preds))
    )
    thrs = parse_thresholds(iou)
    if fast and preset == "torchmetrics" and thrs != (0.5,):
        from cellbench.core.errors import CellbenchError

        raise CellbenchError("the torchmetrics preset matches at IoU > 0.5 only")
    if fast and len(thrs) == 1 and thrs[0] >= 0.5 and not kwargs and _compiled(trues):
        return _fused(trues, preds, preset, thrs[0], names)
    if fast and (single_pass or _small(trues)):
        return _one_pass(trues, preds, preset, thrs, names, kwargs)
    return [
        instance_scores(t, p, preset, iou=iou, true_name=tn, pred_name=pn, **kwargs, **dict(ex))
        for t, p, (tn, pn), ex in zip(trues, preds, names, extra, strict=True)
    ]


#: The single pass lays every pixel of every tile into one map; it pays where per-call
#: overhead dominates (measured, 2 cores: 64^2 tiles 0.042 vs 0.106 ms each, 128^2 0.106 vs
#: 0.124 ms) and costs more than it saves from 256^2 on (0.295 vs 0.186 ms).
SINGLE_PASS_MAX_PIXELS = 160 * 160


#: Pixels in a batch from which the compiled per-tile path loads numba (its start-up, ~0.35 s,
#: against ~0.3 ms saved per 256^2 tile); once loaded, every batch uses it.
COMPILED_MIN_PIXELS = 1 << 26


def _small(trues) -> bool:
    """The stacked single pass is faster than one call per tile (tiny tiles)."""
    return float(np.mean([np.prod(np.shape(t)) for t in trues])) <= SINGLE_PASS_MAX_PIXELS


def _compiled(trues) -> bool:
    """The compiled per-tile path is taken: its kernels are loaded, or worth loading."""
    return _tile_kernel.LOADED or (
        sum(int(np.prod(np.shape(t))) for t in trues) >= COMPILED_MIN_PIXELS and _tile_kernel.load()
    )


def _fused(trues, preds, preset: str, thr: float, names) -> list[dict[str, Any]]:
    """Each tile in one compiled call (:mod:`cellbench.metrics._tile_kernel`), chunks of tiles
    on the CPU cores (the kernel releases the GIL); each tile's figures formed from its counts
    by the expressions of ``instance_scores``."""
    p = get_preset(preset, "instance")
    maps = []
    for t, q, (tn, pn) in zip(trues, preds, names, strict=True):
        t = check_label_map(t, tn)
        q = check_label_map(q, pn)
        _check_same_shape(t.shape, q.shape, tn, pn)
        maps.append((t, q, tn, pn))

    def chunk(ks: range) -> list[dict[str, Any]]:
        return [_fused_one(*maps[k], p, thr) for k in ks]

    n = len(maps)
    pixels = sum(t.size for t, *_ in maps)
    # threads pay from ~2 M pixels
    workers = min(config.cpu_workers(), n) if pixels >= 1 << 21 else 1
    if workers == 1:
        return chunk(range(n))
    from concurrent.futures import ThreadPoolExecutor

    step = -(-n // (4 * workers))
    with ThreadPoolExecutor(workers) as pool:
        parts = pool.map(chunk, [range(i, min(n, i + step)) for i in range(0, n, step)])
        return [r for part in parts for r in part]


def compiled_scores(
    true: np.ndarray,
    pred: np.ndarray,
    preset: str,
    thr: float,
    true_name: str | Path = "true",
    pred_name: str | Path = "pred",
    full: bool = True,
) -> dict | None:
    """``instance_scores(true, pred, preset, iou=thr)`` of one label-map pair through the
    compiled per-tile kernel when it applies (kernels loaded, or the map is large enough to
    load them; a preset of :data:`FAST_PRESETS`; ``thr >= 0.5``), else None (the maps are
    checked either way: bad ones raise naming their file). ``full=False``:
    ``matching_scores``'s figures only."""
    t = check_label_map(true, true_name)
    q = check_label_map(pred, pred_name)
    _check_same_shape(t.shape, q.shape, true_name, pred_name)
    if preset not in FAST_PRESETS or thr < 0.5:
        return None
    if not (_tile_kernel.LOADED or (t.size >= _kernels.MIN_PIXELS and _tile_kernel.load())):
        return None
    return _fused_one(t, q, "", "", get_preset(preset, "instance"), thr, False, full)


def _fused_one(
    t, q, tn, pn, p, thr: float, fallback: bool = True, full: bool = True
) -> dict[str, Any] | None:
    K = _tile_kernel
    c, s = K.tile_counts(t.ravel(), q.ravel(), thr, p, full)
    if c[K.STATUS] != K.OK:  # negative ids (its error), sparse ids, ambiguous matches
        if not fallback:
            return None
        return instance_scores(t, q, p.name, iou=thr, true_name=tn, pred_name=pn)
    nt, npd, tp = int(c[K.N_TRUE]), int(c[K.N_PRED]), int(c[K.TP])
    fp, fn = npd - tp, nt - tp
    r: dict[str, Any] = {"preset": p.name, "n_true": nt, "n_pred": npd, "iou_threshold": thr}
    r.update({"tp": tp, "fp": fp, "fn": fn, "iou_sum": s})
    r.update(pq_terms(tp, fp, fn, s, p.name))
    r.update(detection_terms(tp, fp, fn))
    empty = nt == 0 and npd == 0
    r["mean_matched_score"] = None if empty else _ratio(s, tp)
    r["mean_true_score"] = None if empty else _ratio(s, nt)
    if not full:
        return r
    if p.name == "torchmetrics":
        r["rq"] = r["dq"]
    if empty:
        r["aji"] = r["aji_plus"] = None
    else:
        for key, i in (("aji", K.AJI_I), ("aji_plus", K.PLUS_I)):
            u = int(c[i + 1])
            r[key] = int(c[i]) / u if u else 0.0
    at, ap, both, den2 = (int(c[i]) for i in (K.FG_T, K.FG_P, K.BOTH, K.DEN2))
    if at + ap == 0:
        r["dice1"] = r["dice2"] = None
    else:
        r["dice1"] = 2.0 * both / (at + ap)
        r["dice2"] = 2.0 * both / den2 if den2 else 0.0
    return r


def _stack(trues, preds, names):
    """The pairs as one tall map each (ids offset per tile, rows below each other, padded to
    the widest tile); returns the maps and each tile's first row, id offsets and shape."""
    ts, ps, shapes = [], [], []
    for t, p, (tn, pn) in zip(trues, preds, names, strict=True):
        t = check_label_map(t, tn)
        p = check_label_map(p, pn)
        _check_same_shape(t.shape, p.shape, tn, pn)
        ts.append(t)
        ps.append(p)
        shapes.append(t.shape)
    width = max(s[1] for s in shapes)
    rows = np.cumsum([0] + [s[0] for s in shapes])
    t_off = np.cumsum([0] + [int(t.max(initial=0)) for t in ts])
    p_off = np.cumsum([0] + [int(p.max(initial=0)) for p in ps])
    dtype = np.dtype(np.int64 if max(t_off[-1], p_off[-1]) >= 2**31 - 1 else np.int32)
    T = np.zeros((rows[-1], width), dtype)
    P = np.zeros((rows[-1], width), dtype)
    for k, (t, p) in enumerate(zip(ts, ps, strict=True)):
        sl = np.s_[rows[k] : rows[k + 1], : t.shape[1]]
        # one pass each: ids + offset where there is an instance (T, P start at 0)
        np.add(t, dtype.type(t_off[k]), out=T[sl], where=t > 0, casting="unsafe")
        np.add(p, dtype.type(p_off[k]), out=P[sl], where=p > 0, casting="unsafe")
    return T, P, rows, t_off, p_off


def _split(values: np.ndarray, tile: np.ndarray, n: int) -> list[np.ndarray]:
    """``values`` (sorted by ``tile``) cut into one array per tile."""
    bounds = np.searchsorted(tile, np.arange(n + 1))
    return [values[bounds[k] : bounds[k + 1]] for k in range(n)]


def _one_pass(trues, preds, preset: str, thrs, names, kwargs) -> list[dict[str, Any]]:
    p = get_preset(preset, "instance")
    n = len(trues)
    T, P, rows, t_off, p_off = _stack(trues, preds, names)
    want_cent = bool(kwargs.get("centroid_f1"))
    ov = compute_overlap(T, P, want_centroids=want_cent)
    # each instance's tile (ids were offset per tile, so they sort by tile)
    t_tile = np.searchsorted(t_off, ov.true_ids, side="left") - 1
    p_tile = np.searchsorted(p_off, ov.pred_ids, side="left") - 1
    e_tile = t_tile[ov.ti]  # pairs never cross tiles
    n_true = np.bincount(t_tile, minlength=n)
    n_pred = np.bincount(p_tile, minlength=n)
    iou = ov.iou_of(p)
    by_thr: list[dict[str, dict]] = [{} for _ in range(n)]
    sums0: list[float] = []
    for j, thr in enumerate(thrs):
        m = match_pairs(ov, thr, p.name)
        tp = np.bincount(e_tile[m], minlength=n)
        parts = _split(iou[m], e_tile[m], n)
        for k in range(n):
            s = float(parts[k].sum())  # per tile, in (true, pred) order, as one call sums
            if j == 0:
                sums0.append(s)
            t_k, fp, fn = int(tp[k]), int(n_pred[k] - tp[k]), int(n_true[k] - tp[k])
            row = {"tp": t_k, "fp": fp, "fn": fn, "iou_sum": s}
            row.update(pq_terms(t_k, fp, fn, s, p.name))
            row.update(detection_terms(t_k, fp, fn))
            by_thr[k][f"{thr:.2f}"] = row
    ajis = _aji_many(ov, e_tile, t_tile, p_tile, n, p.name == "monuseg")
    dice = _dice_many(ov, e_tile, t_tile, p_tile, n)
    types = _types_many(ov, rows, t_tile, p_tile, n, p.name, kwargs) if want_cent else None
    out = []
    for k in range(n):
        first = by_thr[k][f"{thrs[0]:.2f}"]
        r: dict[str, Any] = {"preset": p.name, "n_true": int(n_true[k]), "n_pred": int(n_pred[k])}
        r["iou_threshold"] = thrs[0]
        r.update(first)
        empty = n_true[k] == 0 and n_pred[k] == 0
        r["mean_matched_score"] = None if empty else _ratio(sums0[k], first["tp"])
        r["mean_true_score"] = None if empty else _ratio(sums0[k], int(n_true[k]))
        if p.name == "torchmetrics":
            r["rq"] = r["dq"]
        r.update(ajis[k])
        r.update(dice[k])
        if len(thrs) > 1:
            r["by_threshold"] = by_thr[k]
            for key in ("accuracy", "f1", "pq"):
                vals = [v[key] for v in by_thr[k].values()]
                r[f"{key}_mean"] = None if empty else float(np.mean(vals))
        if types is not None:
            r["types"] = types[k]
        out.append(r)
    return out


def _aji_many(ov, e_tile, t_tile, p_tile, n: int, monuseg: bool) -> list[dict]:
    """:func:`~cellbench.metrics.instance.aji_scores` of every tile from one graph."""
    w = ov.iou if monuseg else ov.inter / (ov.union + 1.0e-6)
    aji_sel = np.zeros(len(w), dtype=bool)
    aji_sel[best_per_group(ov.ti, w, ov.pj)] = True
    plus_sel = max_weight_matching(ov.ti, ov.pj, w, ov.n_true, ov.n_pred)
    res: list[dict] = [{} for _ in range(n)]
    n_t = np.bincount(t_tile, minlength=n)
    n_p = np.bincount(p_tile, minlength=n)
    for key, sel in (("aji", aji_sel), ("aji_plus", plus_sel)):
        t_used = np.zeros(ov.n_true, dtype=bool)
        p_used = np.zeros(ov.n_pred, dtype=bool)
        t_used[ov.ti[sel]] = True
        p_used[ov.pj[sel]] = True
        inter = _int_sums(ov.inter[sel], e_tile[sel], n)
        union = _int_sums(ov.union[sel], e_tile[sel], n)
        union += _int_sums(ov.true_area[~t_used], t_tile[~t_used], n)
        union += _int_sums(ov.pred_area[~p_used], p_tile[~p_used], n)
        for k in range(n):
            if n_t[k] == 0 and n_p[k] == 0:
                res[k] = {"aji": None, "aji_plus": None}
            else:
                res[k][key] = int(inter[k]) / int(union[k]) if union[k] else 0.0
    return res


def _int_sums(values: np.ndarray, tile: np.ndarray, n: int) -> np.ndarray:
    """Exact per-tile sums of integer ``values``."""
    out = np.zeros(n, np.int64)
    np.add.at(out, tile, values.astype(np.int64))
    return out


def _dice_many(ov, e_tile, t_tile, p_tile, n: int) -> list[dict]:
    """:func:`~cellbench.metrics.instance.dice_scores` of every tile."""
    at = _int_sums(ov.true_area, t_tile, n)
    ap = _int_sums(ov.pred_area, p_tile, n)
    both = _int_sums(ov.inter, e_tile, n)
    den2 = _int_sums(ov.true_area[ov.ti] + ov.pred_area[ov.pj], e_tile, n)
    out = []
    for k in range(n):
        if at[k] + ap[k] == 0:
            out.append({"dice1": None, "dice2": None})
        else:
            d2 = 2.0 * int(both[k]) / int(den2[k]) if den2[k] else 0.0
            out.append({"dice1": 2.0 * int(both[k]) / int(at[k] + ap[k]), "dice2": d2})
    return out


def _local_centroids(cent, area, tile, rows) -> np.ndarray:
    """Each instance's centroid in its own tile: the tall map's exact integer coordinate sums
    (recovered from its centroids: they are integers far below 2^52) less the tile's first
    row, over the area, as the tile alone computes them."""
    s_x = np.rint(cent[:, 0] * area)
    s_y = np.rint(cent[:, 1] * area) - area * rows[tile]
    return np.stack([s_x / area, s_y / area], axis=1)


def _types_many(ov, rows, t_tile, p_tile, n: int, preset: str, kwargs) -> list[dict]:
    """HoVer-Net's class-agnostic detection counts (``centroid_f1``) of every tile."""
    from cellbench.metrics.points import resolve_radius, type_counts
    from cellbench.metrics.presets import HOVERNET_LIKE

    rows = np.asarray(rows, np.float64)
    tc = _local_centroids(ov.centroids[0], ov.true_area.astype(np.float64), t_tile, rows)
    pc = _local_centroids(ov.centroids[1], ov.pred_area.astype(np.float64), p_tile, rows)
    r = resolve_radius(
        kwargs.get("radius_px"), kwargs.get("radius_um"), kwargs.get("mpp"), default_px=12.0
    )
    t_parts = _split(np.arange(len(t_tile)), t_tile, n)
    p_parts = _split(np.arange(len(p_tile)), p_tile, n)
    out = []
    for k in range(n):
        zt = np.zeros(len(t_parts[k]), np.int64)
        zp = np.zeros(len(p_parts[k]), np.int64)
        types = type_counts(
            tc[t_parts[k]],
            zt,
            pc[p_parts[k]],
            zp,
            r,
            hovernet=preset in HOVERNET_LIKE,
            classes=[],
            pairing=kwargs.get("type_pairing", "auto"),
        )
        out.append({**types, "correct": None, "acc": None})
    return out
