"""Compiled kernels of the metrics engine (numba, optional): the joint histogram of two instance
maps, and connected components of a sparse bipartite graph.

:func:`joint_counts` reads both maps once and returns the areas of every id and the
intersections of every overlapping pair, without gathering the foreground or building a dense
``(n_true x n_pred)`` histogram. Its cost follows the pixels only, about 0.6 ns per pixel: a
branch-free pass finds where a run of pixels with one ``(true, pred)`` pair starts (along a
row, background above all, runs are long: ~5% of pixels start one on real maps), then each run
is counted once. PQ then costs less than one ``np.bincount`` over the same pixel pairs at
1000^2 and 2048^2 (``benchmarks/bench_metrics.py``). Per true id the counting keeps two partner
slots; the rare runs of a true id that meet a third partner go to an overflow list, merged in
when the pairs are assembled. Run starts are kept for one chunk of :data:`CHUNK` pixels at a
time, so memory stays bounded on whole-slide maps.

When numba is not installed (e.g. a minimal GPU image) :data:`AVAILABLE` is False and
:func:`cellbench.metrics.overlap.compute_overlap` uses its numpy path, which gives identical
results (tested); in a fresh process numba is loaded only for a map big enough to repay its
start-up (:func:`use_compiled`).
"""

from __future__ import annotations

import importlib.util

import numpy as np

#: numba is installed (a declared dependency; the numpy path covers environments without it).
AVAILABLE = importlib.util.find_spec("numba") is not None
#: The compiled functions are loaded in this process (:func:`load`).
LOADED = False
#: Smallest map (pixels) worth loading numba for: its start-up (~0.35 s: import, target set-up,
#: cached machine code) exceeds what it saves on a few hundred small tiles, and repays itself
#: within a few 1000^2 maps. Once loaded, every map uses it.
MIN_PIXELS = 1 << 18
#: Pixels per chunk of the counting pass (its run-start buffer: 8 bytes per pixel of a chunk).
CHUNK = 1 << 20
#: Status codes of :func:`_joint`.
_OK, _NEG_TRUE, _NEG_PRED, _TOO_MANY = 0, 1, 2, 3


def _range(tr, pr):  # pragma: no cover - compiled
    # min/max of both maps in one read of each (branch-free, so it vectorises)
    tmin = tmax = np.int64(tr[0])
    pmin = pmax = np.int64(pr[0])
    for i in range(tr.shape[0]):
        a = np.int64(tr[i])
        b = np.int64(pr[i])
        tmax = max(tmax, a)
        tmin = min(tmin, a)
        pmax = max(pmax, b)
        pmin = min(pmin, b)
    return tmin, tmax, pmin, pmax


def _heads(a, b, buf):  # pragma: no cover - compiled
    # starts of the runs of one (true, pred) pair in a chunk (zero-based views: this form
    # compiles to a tight loop), branch-free; buf[m] = the chunk's end
    buf[0] = 0
    m = 1
    for i in range(1, a.shape[0]):
        buf[m] = i
        m += (a[i] != a[i - 1]) | (b[i] != b[i - 1])
    buf[m] = a.shape[0]
    return m


def _moments(sx, sy, a, i, run, width):  # pragma: no cover - compiled
    # add the column and row sums of the flat pixels i .. i+run-1 to id a (a run may wrap
    # past the end of a row: split at each row end)
    while run > 0:
        r = i // width
        c = i - r * width
        n = min(run, width - c)
        sx[a] += n * c + n * (n - 1) // 2
        sy[a] += n * r
        i += n
        run -= n


def _joint(tr, pr, max_ids, width):  # pragma: no cover - compiled
    n = tr.shape[0]
    buf = np.empty(min(n, CHUNK) + 2, np.int64)
    if n <= CHUNK:
        # one chunk: its run starts first, the id range from the first pixel of each run
        n_first = _heads(tr, pr, buf)
        tmin = tmax = np.int64(tr[0])
        pmin = pmax = np.int64(pr[0])
        for r in range(n_first):
            a = np.int64(tr[buf[r]])
            b = np.int64(pr[buf[r]])
            tmax = max(tmax, a)
            tmin = min(tmin, a)
            pmax = max(pmax, b)
            pmin = min(pmin, b)
    else:
        n_first = -1
        tmin, tmax, pmin, pmax = _range(tr, pr)
    e = np.zeros(0, np.int64)
    f = np.zeros((0, 2), np.float64)
    if tmin < 0:
        return _NEG_TRUE, e, e, e, e, e, e, e, f, f
    if pmin < 0:
        return _NEG_PRED, e, e, e, e, e, e, e, f, f
    if tmax + 1 > max_ids or pmax + 1 > max_ids:
        return _TOO_MANY, e, e, e, e, e, e, e, f, f
    # coordinate sums per id (centroids), when a width is given
    cent = width > 0
    ns_t = tmax + 1 if cent else 0
    ns_p = pmax + 1 if cent else 0
    tsx = np.zeros(ns_t, np.int64)
    tsy = np.zeros(ns_t, np.int64)
    psx = np.zeros(ns_p, np.int64)
    psy = np.zeros(ns_p, np.int64)

    ta = np.zeros(tmax + 1, np.int64)
    pa = np.zeros(pmax + 1, np.int64)
    # two partner slots per true id (a nucleus rarely meets more than two predictions)
    s1 = np.zeros(tmax + 1, np.int64)
    c1 = np.zeros(tmax + 1, np.int64)
    s2 = np.zeros(tmax + 1, np.int64)
    c2 = np.zeros(tmax + 1, np.int64)
    over = np.empty(64, np.int64)  # (pair key, count) of third and later partners
    over_n = np.empty(64, np.int64)
    m = 0
    k = pmax + 1
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        n_runs = n_first if n_first >= 0 else _heads(tr[lo:hi], pr[lo:hi], buf)
        for r in range(n_runs):
            i = lo + buf[r]
            run = buf[r + 1] - buf[r]
            a = np.int64(tr[i])
            b = np.int64(pr[i])
            ta[a] += run
            pa[b] += run
            if cent:
                if a != 0:
                    _moments(tsx, tsy, a, i, run, width)
                if b != 0:
                    _moments(psx, psy, b, i, run, width)
            if a == 0 or b == 0:
                continue
            if s1[a] == b:
                c1[a] += run
            elif s2[a] == b:
                c2[a] += run
            elif s1[a] == 0:
                s1[a] = b
                c1[a] = run
            elif s2[a] == 0:
                s2[a] = b
                c2[a] = run
            else:
                if m == over.shape[0]:
                    grown = np.empty(2 * m, np.int64)
                    grown[:m] = over
                    over = grown
                    grown_n = np.empty(2 * m, np.int64)
                    grown_n[:m] = over_n
                    over_n = grown_n
                over[m] = a * k + b
                over_n[m] = run
                m += 1

    # overflow pairs summed by key, in (true, pred) order
    order = np.argsort(over[:m], kind="mergesort")
    ok = np.empty(m, np.int64)
    on = np.empty(m, np.int64)
    q = 0
    for r in range(m):
        key = over[order[r]]
        if q and ok[q - 1] == key:
            on[q - 1] += over_n[order[r]]
        else:
            ok[q] = key
            on[q] = over_n[order[r]]
            q += 1

    # ids present (> 0, increasing), areas, and the pairs as compact indices in (ti, pj) order
    nt = 0
    for a in range(1, tmax + 1):
        nt += ta[a] > 0
    n_pred = 0
    for b in range(1, pmax + 1):
        n_pred += pa[b] > 0
    tids = np.empty(nt, np.int64)
    tarea = np.empty(nt, np.int64)
    pids = np.empty(n_pred, np.int64)
    parea = np.empty(n_pred, np.int64)
    plut = np.zeros(pmax + 1, np.int64)
    j = 0
    for b in range(1, pmax + 1):
        if pa[b] > 0:
            pids[j] = b
            parea[j] = pa[b]
            plut[b] = j
            j += 1
    ne = q
    for a in range(1, tmax + 1):
        ne += int(s1[a] != 0) + int(s2[a] != 0)
    ti = np.empty(ne, np.int64)
    pj = np.empty(ne, np.int64)
    inter = np.empty(ne, np.int64)
    cols = np.empty(2 + q, np.int64)  # one row's partners, sorted by insertion
    cnts = np.empty(2 + q, np.int64)
    t = 0
    e_out = 0
    o = 0
    for a in range(1, tmax + 1):
        if ta[a] == 0:
            continue
        tids[t] = a
        tarea[t] = ta[a]
        c = 0
        if s1[a] != 0:
            cols[c] = s1[a]
            cnts[c] = c1[a]
            c += 1
        if s2[a] != 0:
            cols[c] = s2[a]
            cnts[c] = c2[a]
            c += 1
        while o < q and ok[o] // k == a:
            cols[c] = ok[o] % k
            cnts[c] = on[o]
            c += 1
            o += 1
        for x in range(1, c):  # insertion sort by pred id (c is 1-3 almost always)
            cv = cols[x]
            nv = cnts[x]
            y = x - 1
            while y >= 0 and cols[y] > cv:
                cols[y + 1] = cols[y]
                cnts[y + 1] = cnts[y]
                y -= 1
            cols[y + 1] = cv
            cnts[y + 1] = nv
        for x in range(c):
            ti[e_out] = t
            pj[e_out] = plut[cols[x]]
            inter[e_out] = cnts[x]
            e_out += 1
        t += 1
    tcent = np.empty((nt if cent else 0, 2), np.float64)
    pcent = np.empty((n_pred if cent else 0, 2), np.float64)
    if cent:
        for q in range(nt):
            tcent[q, 0] = tsx[tids[q]] / tarea[q]
            tcent[q, 1] = tsy[tids[q]] / tarea[q]
        for q in range(n_pred):
            pcent[q, 0] = psx[pids[q]] / parea[q]
            pcent[q, 1] = psy[pids[q]] / parea[q]
    return _OK, tids, pids, tarea, parea, ti, pj, inter, tcent, pcent


def _union_find(a, b, n):  # pragma: no cover - compiled
    parent = np.arange(n)
    for e in range(a.shape[0]):
        x = a[e]
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        y = b[e]
        while parent[y] != y:
            parent[y] = parent[parent[y]]
            y = parent[y]
        if x != y:
            if x < y:
                parent[y] = x
            else:
                parent[x] = y
    label = np.empty(n, np.int64)
    k = 0
    for i in range(n):
        r = i
        while parent[r] != r:
            r = parent[r]
        if r == i:
            label[i] = k
            k += 1
        else:
            label[i] = label[r]
    return label


def load() -> bool:
    """Compile (or load from numba's cache) the kernels of this module; True when they are.
    Idempotent; called by :func:`use_compiled` when a map is worth it."""
    global LOADED, _union_find, _range, _heads, _moments, _joint
    if LOADED or not AVAILABLE:
        return LOADED
    import numba

    _union_find = numba.njit(cache=True, nogil=True)(_union_find)
    _range = numba.njit(cache=True, nogil=True)(_range)
    _heads = numba.njit(cache=True, nogil=True)(_heads)
    _moments = numba.njit(cache=True, nogil=True, inline="always")(_moments)
    _joint = numba.njit(cache=True, nogil=True)(_joint)
    LOADED = True
    return True


def use_compiled(n_pixels: int) -> bool:
    """Whether a map of ``n_pixels`` goes through the compiled pass: always once the kernels
    are loaded, and maps of at least :data:`MIN_PIXELS` load them. The results are the same
    either way (tested); only the speed differs."""
    if LOADED:
        return True
    return AVAILABLE and n_pixels >= MIN_PIXELS and load()


def joint_counts(tr: np.ndarray, pr: np.ndarray, max_ids: int, width: int = 0):
    """Areas and pair intersections of two flat integer maps, or None when not applicable.

    Parameters
    ----------
    tr, pr
        Flat (1-D, contiguous) integer instance maps of equal length (> 0), 0 = background.
    max_ids
        Largest id range (``max id + 1`` of either map) worth arrays of that length; beyond
        it (sparse or offset ids) None is returned and the caller compacts ids first.
    width
        The maps' row length in pixels: also compute every instance's centroid. 0: do not.

    Returns
    -------
    tuple or None
        ``(true_ids, pred_ids, true_area, pred_area, ti, pj, inter, true_xy, pred_xy)``: the
        ids present (> 0, increasing), their areas in pixels, the overlapping pairs as indices
        into those ids with their intersections, sorted by ``(ti, pj)`` (the fields of
        :class:`cellbench.metrics.overlap.Overlap`), and with ``width`` the ``(n, 2)``
        centroids ``(x, y)`` (pixel centres at integers; empty without). A string instead
        names the map (``"true"`` / ``"pred"``) that has negative ids.
    """
    status, *fields = _joint(tr, pr, max_ids, width)
    if status == _NEG_TRUE:
        return "true"
    if status == _NEG_PRED:
        return "pred"
    if status == _TOO_MANY:
        return None
    return tuple(fields)


def components(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Connected-component label (``0..k-1``, in order of each component's smallest node) of
    every node ``0..n-1`` of the undirected graph with edges ``(a[e], b[e])``.

    Union-find (compiled) once the kernels are loaded, else ``scipy.sparse.csgraph``; both
    number components by their smallest node, so labels are identical."""
    if LOADED:
        return _union_find(a.astype(np.int64, copy=False), b.astype(np.int64, copy=False), n)
    if len(a) <= SMALL_GRAPH:
        return _small_components(a, b, n)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    return connected_components(g, directed=False)[1]


#: Edge count up to which :func:`components` links nodes in plain Python (scipy's sparse
#: graph set-up costs ~0.4 ms a call; the ambiguous pairs of one tile are a few dozen).
SMALL_GRAPH = 2048


def _small_components(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """:func:`components` by union-find over the edges (each component's root is its smallest
    node, so the numbering is scipy's)."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    rep = np.arange(n)
    if parent:
        nodes = np.fromiter(parent, np.int64, len(parent))
        rep[nodes] = [find(int(x)) for x in nodes]
    return np.unique(rep, return_inverse=True)[1]
