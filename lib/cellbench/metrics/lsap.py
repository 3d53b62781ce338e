"""Linear sum assignment as ``scipy.optimize.linear_sum_assignment`` solves it, without its
import.

The metrics solve many tiny assignment problems (the ambiguous components of AJI+ and of
StarDist's matching: a few rows each). Importing ``scipy.optimize`` for them costs ~0.2 s of a
command's start, more than all the solving. :func:`solve` is the algorithm scipy runs (the
shortest augmenting path method, Crouse 2016, as in scipy's ``rectangular_lsap.cpp``: a tall
matrix is transposed, ``maximize`` negates, no shift of the costs, ties broken by the same
scan orders), so it returns the same assignment as scipy, ties included (tested on tie-heavy
matrices). It runs compiled once the metrics kernels are loaded
(:mod:`cellbench.metrics._kernels`), in plain Python for small problems otherwise (until that
has cost about as much as importing scipy), and hands large ones to scipy.
"""

from __future__ import annotations

import sys
import time

import numpy as np

#: Largest matrix (rows x columns) solved in plain Python when the kernels are not loaded
#: (200 x 200: ~60 ms); larger ones go to scipy.
PY_MAX_CELLS = 40_000
#: Plain-Python solving time (seconds, this process) after which scipy is imported and used
#: instead: about its import's cost (~0.3 s), so that many mid-sized problems never cost
#: more than twice the better of the two (the "ski rental" rule).
PY_BUDGET_S = 0.3
#: Once scipy.optimize is imported anyway, only matrices up to this size stay in Python.
PY_MAX_CELLS_SCIPY_LOADED = 64
_py_seconds = 0.0


def _augment(c, nc, u, v, path, row4col, spc, sr, sc, rem, cur):  # pragma: no cover - compiled
    # one shortest augmenting path from row ``cur``; returns (sink column, its path cost).
    # Containers are numpy arrays (compiled) or lists (plain Python); c is row-major flat.
    for it in range(nc):
        rem[it] = nc - it - 1  # reverse order: a constant matrix gives the identity
        sc[it] = False
        spc[it] = np.inf
    for it in range(len(sr)):
        sr[it] = False
    n_rem = nc
    min_val = 0.0
    i = cur
    sink = -1
    while sink == -1:
        index = -1
        lowest = np.inf
        sr[i] = True
        base = i * nc
        ui = u[i]
        for it in range(n_rem):
            j = rem[it]
            r = min_val + c[base + j] - ui - v[j]  # scipy's order of operations
            sj = spc[j]
            if r < sj:
                path[j] = i
                spc[j] = r
                sj = r
            # among equal costs prefer a free column (a new sink)
            if sj < lowest or (sj == lowest and row4col[j] == -1):
                lowest = sj
                index = it
        min_val = lowest
        if min_val == np.inf:
            return -1, min_val
        j = rem[index]
        if row4col[j] == -1:
            sink = j
        else:
            i = row4col[j]
        sc[j] = True
        n_rem -= 1
        rem[index] = rem[n_rem]
    return sink, min_val


def _solve(c, nr, nc, u, v, spc, path, col4row, row4col, sr, sc, rem):  # pragma: no cover
    # c: flat (nr * nc) costs to minimise, nr <= nc; fills col4row (all -1: infeasible).
    # Work containers: u (nr), v, spc (nc) zeros; path, row4col (nc), col4row (nr) -1;
    # sr (nr), sc (nc) booleans; rem (nc) integers.
    for cur in range(nr):
        sink, min_val = _augment(c, nc, u, v, path, row4col, spc, sr, sc, rem, cur)
        if sink < 0:
            for i in range(nr):
                col4row[i] = -1
            return
        u[cur] += min_val
        for i in range(nr):
            if sr[i] and i != cur:
                u[i] += min_val - spc[col4row[i]]
        for j in range(nc):
            if sc[j]:
                v[j] -= min_val - spc[j]
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            nxt = col4row[i]
            col4row[i] = j
            j = nxt
            if i == cur:
                break


def _solve_array(c, nr, nc):  # pragma: no cover - compiled
    # :func:`_solve` on a flat float64 array with fresh numpy work arrays; returns col4row
    col4row = np.full(nr, -1, np.int64)
    _solve(
        c,
        nr,
        nc,
        np.zeros(nr),
        np.zeros(nc),
        np.zeros(nc),
        np.full(nc, -1, np.int64),
        col4row,
        np.full(nc, -1, np.int64),
        np.zeros(nr, np.bool_),
        np.zeros(nc, np.bool_),
        np.zeros(nc, np.int64),
    )
    return col4row


def _solve_list(c: list[float], nr: int, nc: int) -> list[int]:
    """:func:`_solve` in plain Python on lists (several times faster there than arrays)."""
    col4row = [-1] * nr
    _solve(
        c,
        nr,
        nc,
        [0.0] * nr,
        [0.0] * nc,
        [0.0] * nc,
        [-1] * nc,
        col4row,
        [-1] * nc,
        [False] * nr,
        [False] * nc,
        [0] * nc,
    )
    return col4row


_compiled = None


def _compiled_solve():
    """The compiled :func:`_solve_array` once the metrics kernels are loaded, else None.

    The compiled functions are copies bound to their own globals (the compiled callees), so
    the plain-Python functions of this module stay plain Python."""
    global _compiled
    from cellbench.metrics import _kernels

    if _compiled is None and _kernels.LOADED:
        import types

        import numba

        jit = numba.njit(cache=True, nogil=True)
        env = dict(globals())
        for fn in (_augment, _solve, _solve_array):  # callees first
            env[fn.__name__] = jit(types.FunctionType(fn.__code__, env, fn.__name__))
        _compiled = env["_solve_array"]
    return _compiled


def solve(weights: np.ndarray, maximize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.optimize.linear_sum_assignment(weights, maximize)``: the same ``(rows, cols)``.

    Parameters
    ----------
    weights
        ``(nr, nc)`` finite costs (or gains with ``maximize``).
    maximize
        Maximise the total instead of minimising it.
    """
    c = np.asarray(weights, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"expected a matrix, got shape {c.shape}")
    if c.size == 0:
        e = np.zeros(0, np.int64)
        return e, e
    fast = _compiled_solve()
    global _py_seconds
    if "scipy.optimize" in sys.modules or _py_seconds > PY_BUDGET_S:
        limit = PY_MAX_CELLS_SCIPY_LOADED
    else:
        limit = PY_MAX_CELLS
    if fast is None and c.size > limit:
        from scipy.optimize import linear_sum_assignment

        return linear_sum_assignment(c, maximize=maximize)
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    c = -c if maximize else c
    nr, nc = c.shape
    flat = np.ascontiguousarray(c).ravel()
    if fast is not None:
        col4row = fast(flat, nr, nc)
    else:
        t0 = time.perf_counter()
        col4row = np.asarray(_solve_list(flat.tolist(), nr, nc), dtype=np.int64)
        _py_seconds += time.perf_counter() - t0
    if transposed:
        order = np.argsort(col4row)
        return col4row[order], order
    return np.arange(nr), col4row
