"""One compiled call per image pair: every count behind ``instance_scores`` for many small
tiles (:func:`cellbench.metrics.batch.instance_scores_many`).

Scoring a 256^2 tile takes ~0.05 ms of pixel counting and ~0.3 ms of Python and numpy calls on
arrays of a few dozen pairs (matching, AJI, AJI+, Dice). :func:`tile_counts` does all of it in
one compiled function: the joint histogram of :mod:`cellbench.metrics._kernels`, the matching
at one IoU threshold >= 0.5, AJI (each ground truth's first best prediction), AJI+ (the same
sparse assignment as :func:`cellbench.metrics.matching.max_weight_matching`: single pairs,
stars, and the other components as one block-diagonal problem solved by scipy's algorithm,
:mod:`cellbench.metrics.lsap`) and the Dice sums. It returns the integer counts and the
summed IoU; the caller forms the figures with the same Python expressions as
:func:`~cellbench.metrics.instance.instance_scores`, so the results are identical. A tile the
kernel cannot decide alone (an instance with two candidate partners at the threshold, ids too
sparse for its tables) is flagged and scored by ``instance_scores``. The matched IoUs are
summed by numpy's own pairwise summation (:func:`_np_sum`), so even that float is the same.
"""

from __future__ import annotations

import numpy as np

from cellbench.metrics import _kernels, lsap
from cellbench.metrics.matching import BLOCK_LIMIT

#: Index of each count in the integer vector :func:`tile_counts` returns.
STATUS, N_TRUE, N_PRED, TP, AJI_I, AJI_U, PLUS_I, PLUS_U, FG_T, FG_P, BOTH, DEN2 = range(12)
#: Status: scored; an instance has two candidate partners (score it with the general path).
OK, AMBIGUOUS = 0, 10

LOADED = False
_JITTED = False
_joint = _kernels._joint
_union_find = _kernels._union_find
_lsap = lsap._solve_array


def _assign_block(rt, rp, rw, comp, n_true, n_pred, chosen, rest):  # pragma: no cover
    # matching.py ``_solve_components`` on one or more non-star components: rows ordered by
    # (component, true index), columns by (component, pred index); one dense problem when it
    # is small enough, else one per component
    order = np.argsort(comp, kind="mergesort")
    ne = order.shape[0]
    rk = np.empty(ne, np.int64)
    ck = np.empty(ne, np.int64)
    for q in range(ne):
        e = order[q]
        rk[q] = comp[e] * n_true + rt[e]
        ck[q] = comp[e] * n_pred + rp[e]
    ur = np.unique(rk)
    uc = np.unique(ck)
    li = np.searchsorted(ur, rk)
    lj = np.searchsorted(uc, ck)
    if ur.shape[0] * uc.shape[0] <= BLOCK_LIMIT:
        _solve_dense(li, lj, order, rw, ur.shape[0], uc.shape[0], chosen, rest)
        return
    cs = comp[order]
    s = 0
    while s < ne:
        t = s
        while t < ne and cs[t] == cs[s]:
            t += 1
        r0 = li[s:t].min()
        c0 = lj[s:t].min()
        nr = li[s:t].max() - r0 + 1
        nc = lj[s:t].max() - c0 + 1
        _solve_dense(li[s:t] - r0, lj[s:t] - c0, order[s:t], rw, nr, nc, chosen, rest)
        s = t


def _solve_dense(li, lj, edges, rw, nr, nc, chosen, rest):  # pragma: no cover - compiled
    # maximise the weights on an (nr, nc) matrix (0 = no edge); mark the chosen edges
    tall = nr > nc
    a, b = (nc, nr) if tall else (nr, nc)
    cost = np.zeros(a * b)
    pos = np.full(a * b, -1, np.int64)
    for q in range(li.shape[0]):
        i, j = (lj[q], li[q]) if tall else (li[q], lj[q])
        cost[i * b + j] = -rw[edges[q]]
        pos[i * b + j] = edges[q]
    col4row = _lsap(cost, a, b)
    for i in range(a):
        if col4row[i] >= 0 and pos[i * b + col4row[i]] >= 0:
            chosen[rest[pos[i * b + col4row[i]]]] = True


def _plus(ti, pj, w, nt, npd):  # pragma: no cover - compiled
    # matching.max_weight_matching, compiled
    e = ti.shape[0]
    chosen = np.zeros(e, np.bool_)
    deg_t = np.zeros(nt, np.int64)
    deg_p = np.zeros(npd, np.int64)
    for q in range(e):
        deg_t[ti[q]] += 1
        deg_p[pj[q]] += 1
    n_rest = 0
    for q in range(e):
        if deg_t[ti[q]] == 1 and deg_p[pj[q]] == 1:
            chosen[q] = True
        else:
            n_rest += 1
    if n_rest == 0:
        return chosen
    rest = np.empty(n_rest, np.int64)
    k = 0
    for q in range(e):
        if not chosen[q]:
            rest[k] = q
            k += 1
    rt = ti[rest]
    rp = pj[rest]
    rw = w[rest]
    lab = _union_find(rt, rp + nt, nt + npd)
    comp = lab[rt]
    n_comp = comp.max() + 1
    n_edges = np.zeros(n_comp, np.int64)
    for q in range(n_rest):
        n_edges[comp[q]] += 1
    star = np.zeros(n_comp, np.bool_)
    for q in range(n_rest):
        c = comp[q]
        if deg_t[rt[q]] == n_edges[c] or deg_p[rp[q]] == n_edges[c]:
            star[c] = True
    best = np.full(n_comp, -1, np.int64)
    n_other = 0
    for q in range(n_rest):  # heaviest edge per star, the first of equal weights
        c = comp[q]
        if star[c]:
            if best[c] < 0 or rw[q] > rw[best[c]]:
                best[c] = q
        else:
            n_other += 1
    for c in range(n_comp):
        if best[c] >= 0:
            chosen[rest[best[c]]] = True
    if n_other:
        sel = np.empty(n_other, np.int64)
        k = 0
        for q in range(n_rest):
            if not star[comp[q]]:
                sel[k] = q
                k += 1
        _assign_block(rt[sel], rp[sel], rw[sel], comp[sel], nt, npd, chosen, rest[sel])
    return chosen


def _block_sum(a, lo, n):  # pragma: no cover - compiled
    # numpy's pairwise summation of a block of at most 128 values (8 running sums)
    if n < 8:
        res = a.dtype.type(0.0)
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - (n % 8):
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


def _np_sum(a):  # pragma: no cover - compiled
    # ``a.sum()`` of a contiguous float array exactly as numpy computes it (pairwise: blocks of
    # <= 128 values, larger ranges split in two at a multiple of 8, the halves added), in a's
    # dtype; the recursion unrolled (numba caches no recursive functions)
    lo_s = np.empty(128, np.int64)
    n_s = np.empty(128, np.int64)
    stage = np.empty(128, np.int64)
    vals = np.empty(128, a.dtype)
    top = 0
    nv = 0
    lo_s[0], n_s[0], stage[0] = 0, a.shape[0], 0
    top = 1
    while top:
        top -= 1
        lo, n, st = lo_s[top], n_s[top], stage[top]
        if n <= 128:
            vals[nv] = _block_sum(a, lo, n)
            nv += 1
        elif st == 0:
            n2 = n // 2
            n2 -= n2 % 8
            lo_s[top], n_s[top], stage[top] = lo, n, 1  # combine after both halves
            lo_s[top + 1], n_s[top + 1], stage[top + 1] = lo + n2, n - n2, 0
            lo_s[top + 2], n_s[top + 2], stage[top + 2] = lo, n2, 0  # the left half first
            top += 3
        else:
            nv -= 1
            vals[nv - 1] = vals[nv - 1] + vals[nv]  # left + right
    return vals[0]


def _tile(tr, pr, max_ids, thr, inclusive, iou32, monuseg, full):  # pragma: no cover
    # compiled: one tile's counting pass and _tile_of
    return _tile_of(_joint(tr, pr, max_ids, 0), thr, inclusive, iou32, monuseg, full)


def _tile_of(jo, thr, inclusive, iou32, monuseg, full):  # pragma: no cover - compiled
    # the counts from the counting pass's result ``jo``; ``full``: also AJI, AJI+ and the
    # Dice sums (else the matching only); returns (counts, the matched pairs' summed IoU as
    # the preset sums it)
    out = np.zeros(12, np.int64)
    status, tids, pids, ta, pa, ti, pj, inter, _, _ = jo
    e = ti.shape[0]
    iou = np.empty(e)
    m = np.zeros(e, np.bool_)
    out[STATUS] = status
    if status != OK:
        return out, 0.0
    nt = tids.shape[0]
    npd = pids.shape[0]
    out[N_TRUE] = nt
    out[N_PRED] = npd
    union = np.empty(e, np.int64)
    w = np.empty(e)
    for q in range(e):
        union[q] = ta[ti[q]] + pa[pj[q]] - inter[q]
        iou[q] = inter[q] / union[q]
        w[q] = iou[q] if monuseg else inter[q] / (union[q] + 1.0e-6)
    # matching at thr >= 0.5: unique partners, except where IoU ties the threshold
    cand_t = np.zeros(nt, np.int64)
    cand_p = np.zeros(npd, np.int64)
    for q in range(e):
        d = np.float64(np.float32(iou[q])) if iou32 else iou[q]
        hit = d >= thr if inclusive else d > thr
        if hit:
            m[q] = True
            out[TP] += 1
            cand_t[ti[q]] += 1
            cand_p[pj[q]] += 1
            if cand_t[ti[q]] > 1 or cand_p[pj[q]] > 1:
                out[STATUS] = AMBIGUOUS
                return out, 0.0
    # the matched IoUs summed in (ti, pj) order, as numpy sums iou[m] (float32 for StarDist)
    if iou32:
        v32 = np.empty(out[TP], np.float32)
        k = 0
        for q in range(e):
            if m[q]:
                v32[k] = np.float32(iou[q])
                k += 1
        iou_sum = np.float64(_np_sum(v32))
    else:
        v64 = np.empty(out[TP])
        k = 0
        for q in range(e):
            if m[q]:
                v64[k] = iou[q]
                k += 1
        iou_sum = _np_sum(v64)
    if not full:
        return out, iou_sum
    # AJI: each ground truth's first best prediction (edges are in (ti, pj) order)
    best = np.full(nt, -1, np.int64)
    for q in range(e):
        b = best[ti[q]]
        if b < 0 or w[q] > w[b]:
            best[ti[q]] = q
    plus = _plus(ti, pj, w, nt, npd)
    for k in range(2):
        t_used = np.zeros(nt, np.bool_)
        p_used = np.zeros(npd, np.int64)
        s_i = 0
        s_u = 0
        for q in range(e):
            if (best[ti[q]] == q) if k == 0 else plus[q]:
                t_used[ti[q]] = True
                p_used[pj[q]] = 1
                s_i += inter[q]
                s_u += union[q]
        for a in range(nt):
            if not t_used[a]:
                s_u += ta[a]
        for b in range(npd):
            if p_used[b] == 0:
                s_u += pa[b]
        out[AJI_I + 2 * k] = s_i
        out[AJI_U + 2 * k] = s_u
    out[FG_T] = ta.sum()
    out[FG_P] = pa.sum()
    out[BOTH] = inter.sum()
    for q in range(e):
        out[DEN2] += ta[ti[q]] + pa[pj[q]]
    return out, iou_sum


def load() -> bool:
    """Compile (or load from numba's cache) :func:`tile_counts`; True when it is available."""
    global LOADED, _JITTED, _joint, _union_find, _lsap, _tile, _plus, _assign_block
    global _solve_dense, _block_sum, _np_sum, _tile_of
    if LOADED:
        return True
    if not _kernels.load():
        return False
    if _JITTED:  # compiled before (LOADED was switched off, e.g. by a test)
        LOADED = True
        return True
    import numba

    _joint, _union_find = _kernels._joint, _kernels._union_find
    _lsap = lsap._compiled_solve()
    jit = numba.njit(cache=True, nogil=True)
    _block_sum = jit(_block_sum)
    _np_sum = jit(_np_sum)
    _solve_dense = jit(_solve_dense)
    _assign_block = jit(_assign_block)
    _plus = jit(_plus)
    _tile_of = jit(_tile_of)
    _tile = jit(_tile)
    _kernels.drop_stale_cache(
        [_block_sum, _np_sum, _solve_dense, _assign_block, _plus, _tile_of, _tile],
        "_tile_kernel",
    )
    LOADED = _JITTED = True
    return True


def tile_counts(
    tr: np.ndarray, pr: np.ndarray, thr: float, preset, full: bool = True
) -> tuple[np.ndarray, float]:
    """The counts of one tile pair (:data:`STATUS` ... :data:`DEN2`) and the matched pairs'
    summed IoU (float32 where the preset decides in float32), summed as numpy sums them;
    ``full=False``: the matching counts only (AJI, AJI+ and Dice sums left at 0).

    Parameters
    ----------
    tr, pr
        Flat contiguous integer instance maps of one tile (0 = background).
    thr
        IoU threshold, >= 0.5.
    preset
        The :class:`~cellbench.metrics.presets.Preset` (its ``inclusive``, ``iou_float32``
        and the MoNuSeg AJI rule by name).

    A large map scored from the main thread is counted on two threads
    (:func:`cellbench.metrics._kernels.joint_fields`).
    """
    max_ids = min(1 << 24, max(4 * len(tr), 1 << 16))
    if preset.iou_float32:
        thr = float(np.float32(thr))  # the float32 comparison, exactly
    flags = (preset.inclusive, preset.iou_float32, preset.name == "monuseg", full)
    if _kernels.split_here(len(tr)):
        return _tile_of(_kernels.joint_fields(tr, pr, max_ids), thr, *flags)
    return _tile(tr, pr, max_ids, thr, *flags)
