"""One-to-one assignment on sparse bipartite graphs (instances or points).

Reference implementations run ``scipy.optimize.linear_sum_assignment`` on a dense
``n_true x n_pred`` matrix. Pairs that do not overlap (or lie beyond the radius) have weight
zero there and never change the optimum, so the problem splits into the connected components
of the graph of candidate pairs. Most components are a single pair or a "star" (one object
overlapping several others, i.e. a split or a merge), whose optimum is simply its heaviest
edge; only the rest go to ``linear_sum_assignment`` (scipy's algorithm,
:func:`cellbench.metrics.lsap.solve`), each on its own small dense matrix.

The optimum value is identical to the dense solve. Where several assignments reach the same
optimum (exact ties), the one chosen may differ from a dense solve; for stars we take the
first heaviest edge in ``(true, pred)`` order.
"""

from __future__ import annotations

import numpy as np

from cellbench.metrics._kernels import components
from cellbench.metrics.lsap import solve as linear_sum_assignment

#: Largest dense matrix (rows x columns) of all ambiguous components solved as one assignment.
BLOCK_LIMIT = 1 << 16


def best_per_group(group: np.ndarray, value: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Index of the largest ``value`` in each ``group``; ties go to the smallest ``tiebreak``.

    Returns one index per distinct group, in increasing group order.
    """
    order = np.lexsort((tiebreak, -value, group))
    first = np.ones(len(order), dtype=bool)
    first[1:] = group[order[1:]] != group[order[:-1]]
    return order[first]


def max_weight_matching(
    ti: np.ndarray, pj: np.ndarray, w: np.ndarray, n_true: int, n_pred: int
) -> np.ndarray:
    """Choose a one-to-one set of edges maximising the total weight.

    Parameters
    ----------
    ti, pj
        ``(E,)`` endpoints of candidate edges (true index, pred index); no duplicates.
    w
        ``(E,)`` positive weights.
    n_true, n_pred
        Number of nodes on each side.

    Returns
    -------
    numpy.ndarray
        ``(E,)`` boolean mask of the chosen edges.
    """
    e = len(ti)
    chosen = np.zeros(e, dtype=bool)
    if e == 0:
        return chosen
    deg_t = np.bincount(ti, minlength=n_true)
    deg_p = np.bincount(pj, minlength=n_pred)
    single = (deg_t[ti] == 1) & (deg_p[pj] == 1)
    chosen[single] = True
    rest = np.flatnonzero(~single)
    if not len(rest):
        return chosen
    rt, rp, rw = ti[rest], pj[rest], w[rest]
    lab = components(rt, rp + n_true, n_true + n_pred)
    # int64: composite keys below (component x node count) exceed int32 on whole slides
    comp = lab[rt].astype(np.int64)
    n_comp = int(comp.max()) + 1
    n_edges = np.bincount(comp, minlength=n_comp)
    # A star: every edge shares one node, i.e. the node's degree equals the edge count.
    star_t = deg_t[rt] == n_edges[comp]
    star_p = deg_p[rp] == n_edges[comp]
    is_star = np.zeros(n_comp, dtype=bool)
    is_star[comp[star_t | star_p]] = True
    s_edges = np.flatnonzero(is_star[comp])
    if len(s_edges):
        # heaviest edge per star; ties -> first in (ti, pj) order (edges arrive sorted)
        best = best_per_group(comp[s_edges], rw[s_edges], s_edges)
        chosen[rest[s_edges[best]]] = True
    g_edges = np.flatnonzero(~is_star[comp])
    if len(g_edges):
        _solve_components(rest[g_edges], ti, pj, w, comp[g_edges], n_true, n_pred, chosen)
    return chosen


def _solve_components(
    edges: np.ndarray,
    ti: np.ndarray,
    pj: np.ndarray,
    w: np.ndarray,
    comp: np.ndarray,
    n_true: int,
    n_pred: int,
    chosen: np.ndarray,
) -> None:
    """``linear_sum_assignment`` on each component's own small dense matrix (in place)."""
    order = np.argsort(comp, kind="stable")
    edges, comp = edges[order], comp[order]
    et, ep, ew = ti[edges], pj[edges], w[edges]
    # local row/column index of every edge inside its component (int64 keys: no overflow)
    comp = comp.astype(np.int64, copy=False)
    ut, inv_t = np.unique(comp * n_true + et.astype(np.int64), return_inverse=True)
    up, inv_p = np.unique(comp * n_pred + ep.astype(np.int64), return_inverse=True)
    comps, first_edge = np.unique(comp, return_index=True)
    t_start = np.searchsorted(ut // n_true, comps)
    p_start = np.searchsorted(up // n_pred, comps)
    k = np.searchsorted(comps, comp)
    lt = inv_t - t_start[k]
    lp = inv_p - p_start[k]
    n_rows = np.diff(np.append(t_start, len(ut)))
    n_cols = np.diff(np.append(p_start, len(up)))
    if len(ut) * len(up) <= BLOCK_LIMIT:
        # one assignment over every component at once: each sits in its own block of rows
        # and columns, so the optimum is the union of the components' optima (zeros outside
        # the blocks are not edges), without a Python loop over components
        m = np.zeros((len(ut), len(up)))
        m[inv_t, inv_p] = ew
        r, col = linear_sum_assignment(m, maximize=True)
        pos = np.full(m.shape, -1, dtype=np.intp)
        pos[inv_t, inv_p] = edges
        sel = pos[r, col]
        chosen[sel[sel >= 0]] = True
        return
    bounds = np.append(first_edge, len(edges)).tolist()
    for c in range(len(comps)):
        s, e = bounds[c], bounds[c + 1]
        m = np.zeros((n_rows[c], n_cols[c]))
        m[lt[s:e], lp[s:e]] = ew[s:e]
        r, col = linear_sum_assignment(m, maximize=True)
        pos = np.full(m.shape, -1, dtype=np.intp)
        pos[lt[s:e], lp[s:e]] = edges[s:e]
        sel = pos[r, col]
        chosen[sel[sel >= 0]] = True
