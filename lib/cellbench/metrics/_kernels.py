"""Compiled kernels of the metrics engine (numba, optional): the joint histogram of two instance
maps, and connected components of a sparse bipartite graph.

:func:`joint_counts` reads both maps once and returns the areas of every id and the
intersections of every overlapping pair, without gathering the foreground or building a dense
``(n_true x n_pred)`` histogram. Its cost follows the pixels only, about 0.4 ns per pixel. The
maps are read in blocks of :data:`FLAG_BLOCK` pixels: one vectorised compare per 64 pixels gives
a word of bits where a run of pixels with one ``(true, pred)`` pair starts (along a row,
background above all, runs are long: ~5% of pixels start one on real maps), the set bits are
read off with count-trailing-zeros, then each run is counted once while the block is still in
the core's cache (branch-free: background runs go to an unused row). A large map scored from
the main thread is counted in two halves on two threads, whose tables are then
merged (:func:`joint_fields`). PQ then costs less than half of one ``np.bincount`` over the
same pixel pairs at 1000^2 (``benchmarks/bench_metrics.py``). Per true id the counting keeps
two partner slots; the rare runs of a true id that meet a third partner go to an overflow
list, merged in when the pairs are assembled. The per-id tables grow with the largest id
met, so memory follows the ids, not the pixels, on whole-slide maps.

When numba is not installed (e.g. a minimal GPU image) :data:`AVAILABLE` is False and
:func:`cellbench.metrics.overlap.compute_overlap` uses its numpy path, which gives identical
results (tested); in a fresh process numba is loaded only for a map big enough to repay its
start-up (:func:`use_compiled`).

The module is past 600 lines because numba's cache is per file: the counting pass, its
helpers and the merge of two halves stay together so that one file's stamp covers the
compiled code that calls them (callers in other files: :func:`drop_stale_cache`).
"""

from __future__ import annotations

import contextlib
import hashlib
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
#: Pixels per block of the counting pass (:func:`_heads`): its run starts stay in L1/L2.
FLAG_BLOCK = 8192
#: Status codes of :func:`_joint`.
_OK, _NEG_TRUE, _NEG_PRED, _TOO_MANY = 0, 1, 2, 3


def _range(tr, pr):  # pragma: no cover - compiled
    # min/max of both maps in one read of each (branch-free, so it vectorises); only read
    # to report which map is out of range
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


def _cttz(x):  # pragma: no cover - replaced by an LLVM intrinsic in load()
    # index of the lowest set bit of a non-zero uint64
    n = 0
    while not (x >> np.uint64(n)) & np.uint64(1):
        n += 1
    return n


def _mask64(a, b, g):  # pragma: no cover - compiled
    # bit j set where pixel g + j (g >= 1) starts a run: branch-free, so it vectorises
    mask = np.uint64(0)
    for j in range(64):
        d = (a[g + j] != a[g + j - 1]) | (b[g + j] != b[g + j - 1])
        mask |= np.uint64(d) << np.uint64(j)
    return mask


def _heads(a, b, buf):  # pragma: no cover - compiled
    # starts of the runs of one (true, pred) pair in a block (pixel 0 starts one);
    # buf[m] = the block's end. Each 64 pixels give one word of run-start bits (one
    # vectorised compare of both maps), whose set bits are then read off lowest first
    # (count trailing zeros, clear the lowest bit): the work follows the runs (~5% of
    # pixels start one on real maps), with one branch per word.
    n = a.shape[0]
    m = 0
    g = 0
    while g + 64 <= n:
        if g == 0:
            if n == 64:  # _mask64(a, b, 1) would read pixel 64
                break
            mask = (_mask64(a, b, 1) << np.uint64(1)) | np.uint64(1)  # pixels 0..63
        else:
            mask = _mask64(a, b, g)
        while mask:
            buf[m] = g + np.int64(_cttz(mask))
            m += 1
            mask &= mask - np.uint64(1)
        g += 64
    for k in range(g, n):
        if k == 0 or a[k] != a[k - 1] or b[k] != b[k - 1]:
            buf[m] = k
            m += 1
    buf[m] = n
    return m


def _count(  # pragma: no cover - compiled
    tr, pr, lo, buf, n_runs, ta, pa, s1, c1, s2, c2, over_a, over_b, over_n, m
):
    # the runs of one block (starts lo + buf[r]) into the areas, the two partner slots per
    # true id and the overflow list (room for n_runs more); returns the overflow's length
    for r in range(n_runs):
        i = lo + buf[r]
        run = buf[r + 1] - buf[r]
        a = np.int64(tr[i])
        b = np.int64(pr[i])
        ta[a] += run
        pa[b] += run
        # a run on background in either map goes to the unused row 0 as pair (0, 0): its
        # first slot matches (s1[0] stays 0), so no branch depends on the pixels' ids
        keep = (a != 0) & (b != 0)
        m = _add_pair(s1, c1, s2, c2, over_a, over_b, over_n, m, a * keep, b * keep, run)
    return m


def _centroid_sums(tr, pr, lo, buf, n_runs, tsx, tsy, psx, psy, width):  # pragma: no cover
    # compiled: the coordinate sums of one block's runs, per id
    for r in range(n_runs):
        i = lo + buf[r]
        run = buf[r + 1] - buf[r]
        a = np.int64(tr[i])
        b = np.int64(pr[i])
        if a != 0:
            _moments(tsx, tsy, a, i, run, width)
        if b != 0:
            _moments(psx, psy, b, i, run, width)


def _grown(x, n):  # pragma: no cover - compiled
    y = np.zeros(n, np.int64)
    y[: x.shape[0]] = x
    return y


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


def _pass(tr, pr, lo0, hi0, max_ids, width):  # pragma: no cover - compiled
    # the counting pass over pixels lo0 .. hi0-1: (in range, tables). Not in range: an id of
    # this part is negative or >= max_ids (the caller reads the whole maps to say which)
    # per-id tables, grown as larger ids appear (up to max_ids); first sized for one id per
    # 256 pixels (small tiles clear little memory)
    cent = width > 0  # coordinate sums per id (centroids), when a width is given
    cap_t = min(max_ids, max(64, (hi0 - lo0) // 256))
    cap_p = cap_t
    ta = np.zeros(cap_t, np.int64)
    pa = np.zeros(cap_p, np.int64)
    tsx = np.zeros(cap_t if cent else 0, np.int64)
    tsy = np.zeros(cap_t if cent else 0, np.int64)
    psx = np.zeros(cap_p if cent else 0, np.int64)
    psy = np.zeros(cap_p if cent else 0, np.int64)
    # two partner slots per true id (a nucleus rarely meets more than two predictions)
    s1 = np.zeros(cap_t, np.int64)
    c1 = np.zeros(cap_t, np.int64)
    s2 = np.zeros(cap_t, np.int64)
    c2 = np.zeros(cap_t, np.int64)
    over_a = np.empty(0, np.int64)  # (true, pred, count) of third and later partners
    over_b = np.empty(0, np.int64)
    over_n = np.empty(0, np.int64)
    m = 0
    tmax = 0
    pmax = 0
    buf = np.empty(FLAG_BLOCK + 1, np.int64)
    # block by block: the run starts, the tables grown to the block's ids, then each run
    # counted while the block is in cache (a run crossing a block's end is counted as two:
    # every sum is additive). Tables are only replaced here, outside the counting loop.
    for lo in range(lo0, hi0, FLAG_BLOCK):
        hi = min(hi0, lo + FLAG_BLOCK)
        n_runs = _heads(tr[lo:hi], pr[lo:hi], buf)
        bt_min = bt_max = np.int64(tr[lo])
        bp_min = bp_max = np.int64(pr[lo])
        for r in range(n_runs):
            bt_max = max(bt_max, np.int64(tr[lo + buf[r]]))
            bt_min = min(bt_min, np.int64(tr[lo + buf[r]]))
            bp_max = max(bp_max, np.int64(pr[lo + buf[r]]))
            bp_min = min(bp_min, np.int64(pr[lo + buf[r]]))
        if bt_min < 0 or bp_min < 0 or bt_max >= max_ids or bp_max >= max_ids:
            return (
                False,
                (ta, pa, s1, c1, s2, c2, over_a, over_b, over_n, m, tmax, pmax),
                (tsx, tsy, psx, psy),
            )
        if bt_max >= cap_t:
            cap_t = min(max_ids, max(2 * cap_t, bt_max + 1))
            ta = _grown(ta, cap_t)
            s1 = _grown(s1, cap_t)
            c1 = _grown(c1, cap_t)
            s2 = _grown(s2, cap_t)
            c2 = _grown(c2, cap_t)
            if cent:
                tsx = _grown(tsx, cap_t)
                tsy = _grown(tsy, cap_t)
        if bp_max >= cap_p:
            cap_p = min(max_ids, max(2 * cap_p, bp_max + 1))
            pa = _grown(pa, cap_p)
            if cent:
                psx = _grown(psx, cap_p)
                psy = _grown(psy, cap_p)
        tmax = max(tmax, bt_max)
        pmax = max(pmax, bp_max)
        if over_a.shape[0] < m + n_runs:
            over_a = _grown(over_a, 2 * (m + n_runs))
            over_b = _grown(over_b, 2 * (m + n_runs))
            over_n = _grown(over_n, 2 * (m + n_runs))
        m = _count(tr, pr, lo, buf, n_runs, ta, pa, s1, c1, s2, c2, over_a, over_b, over_n, m)
        if cent:
            _centroid_sums(tr, pr, lo, buf, n_runs, tsx, tsy, psx, psy, width)
    return (
        True,
        (ta, pa, s1, c1, s2, c2, over_a, over_b, over_n, m, tmax, pmax),
        (tsx, tsy, psx, psy),
    )


def _joint(tr, pr, max_ids, width):  # pragma: no cover - compiled
    ok, tables, sums = _pass(tr, pr, 0, tr.shape[0], max_ids, width)
    if not ok:
        return _status(tr, pr)
    return _assemble(tables, sums, width > 0)


def _status(tr, pr):  # pragma: no cover - compiled
    # the out-of-range result, the whole maps deciding which problem is reported (true first)
    e = np.zeros(0, np.int64)
    f = np.zeros((0, 2), np.float64)
    tmin, _, pmin, _ = _range(tr, pr)
    if tmin < 0:
        return _NEG_TRUE, e, e, e, e, e, e, e, f, f
    if pmin < 0:
        return _NEG_PRED, e, e, e, e, e, e, e, f, f
    return _TOO_MANY, e, e, e, e, e, e, e, f, f


def _add_pair(s1, c1, s2, c2, over_a, over_b, over_n, m, a, b, cnt):  # pragma: no cover
    # compiled: cnt pixels of pair (a, b) into the partner slots or the overflow (room for
    # one more); returns the overflow's length
    if s1[a] == b:
        c1[a] += cnt
    elif s2[a] == b:
        c2[a] += cnt
    elif s1[a] == 0:
        s1[a] = b
        c1[a] = cnt
    elif s2[a] == 0:
        s2[a] = b
        c2[a] = cnt
    else:
        over_a[m] = a
        over_b[m] = b
        over_n[m] = cnt
        m += 1
    return m


def _merge(x, xs, y, ys, cent):  # pragma: no cover - compiled
    # the tables of two parts of the maps as one (x's grown and added to)
    ta, pa, s1, c1, s2, c2, over_a, over_b, over_n, m, tmax, pmax = x
    yta, ypa, ys1, yc1, ys2, yc2, yoa, yob, yon, ym, ytmax, ypmax = y
    tsx, tsy, psx, psy = xs
    if yta.shape[0] > ta.shape[0]:
        ta = _grown(ta, yta.shape[0])
        s1 = _grown(s1, yta.shape[0])
        c1 = _grown(c1, yta.shape[0])
        s2 = _grown(s2, yta.shape[0])
        c2 = _grown(c2, yta.shape[0])
        if cent:
            tsx = _grown(tsx, yta.shape[0])
            tsy = _grown(tsy, yta.shape[0])
    if ypa.shape[0] > pa.shape[0]:
        pa = _grown(pa, ypa.shape[0])
        if cent:
            psx = _grown(psx, ypa.shape[0])
            psy = _grown(psy, ypa.shape[0])
    room = m + 2 * (ytmax + 1) + ym
    if over_a.shape[0] < room:
        over_a = _grown(over_a, room)
        over_b = _grown(over_b, room)
        over_n = _grown(over_n, room)
    for a in range(yta.shape[0]):
        ta[a] += yta[a]
        if cent:
            tsx[a] += ys[0][a]
            tsy[a] += ys[1][a]
        if ys1[a] != 0:
            m = _add_pair(s1, c1, s2, c2, over_a, over_b, over_n, m, a, ys1[a], yc1[a])
        if ys2[a] != 0:
            m = _add_pair(s1, c1, s2, c2, over_a, over_b, over_n, m, a, ys2[a], yc2[a])
    for b in range(ypa.shape[0]):
        pa[b] += ypa[b]
        if cent:
            psx[b] += ys[2][b]
            psy[b] += ys[3][b]
    for q in range(ym):
        m = _add_pair(s1, c1, s2, c2, over_a, over_b, over_n, m, yoa[q], yob[q], yon[q])
    tables = (ta, pa, s1, c1, s2, c2, over_a, over_b, over_n, m, max(tmax, ytmax))
    return tables + (max(pmax, ypmax),), (tsx, tsy, psx, psy)


def _assemble(tables, sums, cent):  # pragma: no cover - compiled
    # the pass's tables as _joint's result: ids, areas, pairs in (ti, pj) order, centroids
    ta, pa, s1, c1, s2, c2, over_a, over_b, over_n, m, tmax, pmax = tables
    tsx, tsy, psx, psy = sums
    k = pmax + 1
    over = over_a[:m] * k + over_b[:m]

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


def _cttz_intrinsic():
    """LLVM's count-trailing-zeros of a uint64 (one instruction), as a numba intrinsic."""
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def cttz(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

        return types.uint64(types.uint64), codegen

    return cttz


def load() -> bool:
    """Compile (or load from numba's cache) the kernels of this module; True when they are.
    Idempotent; called by :func:`use_compiled` when a map is worth it."""
    global LOADED, _union_find, _range, _cttz, _mask64, _heads, _grown, _count, _centroid_sums
    global _moments, _joint, _add_pair
    if LOADED or not AVAILABLE:
        return LOADED
    import numba

    _union_find = numba.njit(cache=True, nogil=True)(_union_find)
    _range = numba.njit(cache=True, nogil=True)(_range)
    _cttz = _cttz_intrinsic()
    _mask64 = numba.njit(cache=True, nogil=True, inline="always")(_mask64)
    _heads = numba.njit(cache=True, nogil=True)(_heads)
    _grown = numba.njit(cache=True, nogil=True)(_grown)
    _count = numba.njit(cache=True, nogil=True)(_count)
    _centroid_sums = numba.njit(cache=True, nogil=True)(_centroid_sums)
    _moments = numba.njit(cache=True, nogil=True, inline="always")(_moments)
    _add_pair = numba.njit(cache=True, nogil=True, inline="always")(_add_pair)
    for name in ("_pass", "_status", "_merge", "_assemble"):
        globals()[name] = numba.njit(cache=True, nogil=True)(globals()[name])
    _joint = numba.njit(cache=True, nogil=True)(_joint)
    LOADED = True
    return True


def drop_stale_cache(dispatchers, name: str) -> None:
    """Forget numba's cached machine code of ``dispatchers`` (functions of module ``name``)
    when a kernel they call from another file has changed since it was compiled.

    numba keys its cache on the source file of each function only: after an upgrade that
    changes :func:`_joint` (this file) or :mod:`cellbench.metrics.lsap` but not the caller's
    file, the caller would run its stale copy of the old callee. A digest of these sources is
    kept beside the cache (``<name>.deps``); on a mismatch the callers' cache indexes are
    emptied before their first call, so they are compiled afresh."""
    from pathlib import Path

    from cellbench.metrics import lsap

    digest = hashlib.sha256()
    for mod in (__name__, lsap.__name__):
        digest.update(Path(importlib.util.find_spec(mod).origin).read_bytes())
    stamp = digest.hexdigest()
    try:
        marker = Path(dispatchers[0]._cache._cache_path) / f"{name}.deps"
        if marker.is_file() and marker.read_text() == stamp:
            return
    except (AttributeError, OSError):  # no cache (numba internals moved): nothing stale kept
        return
    for d in dispatchers:
        d._cache.flush()
    with contextlib.suppress(OSError):  # a read-only cache: compiled afresh in each process
        marker.write_text(stamp)


def use_compiled(n_pixels: int) -> bool:
    """Whether a map of ``n_pixels`` goes through the compiled pass: always once the kernels
    are loaded, and maps of at least :data:`MIN_PIXELS` load them. The results are the same
    either way (tested); only the speed differs."""
    if LOADED:
        return True
    return AVAILABLE and n_pixels >= MIN_PIXELS and load()


#: Pixels from which one map's counting pass is split between two threads (when two cores
#: are usable): the pass is bound by how fast one core reads memory, two read faster.
SPLIT_MIN_PIXELS = 1 << 19


def split_here(n_pixels: int) -> bool:
    """Whether a map of ``n_pixels`` is counted on two threads here: a large map, two usable
    cores, and the main thread (work already spread over threads, e.g. a batch of tiles or a
    server's page, is not split again)."""
    import threading

    from cellbench.core.config import cpu_workers

    return (
        n_pixels >= SPLIT_MIN_PIXELS
        and threading.current_thread() is threading.main_thread()
        and cpu_workers() >= 2
    )


def joint_fields(tr: np.ndarray, pr: np.ndarray, max_ids: int, width: int = 0):
    """The compiled pass's raw result (status first) of :func:`joint_counts`. Where
    :func:`split_here`, the map is counted in two halves at once on two threads (the kernel
    releases the GIL) and the halves' tables merged: the same result."""
    import threading

    n = tr.shape[0]
    if not split_here(n):
        return _joint(tr, pr, max_ids, width)
    mid = n // 2
    second: list = []
    th = threading.Thread(
        target=lambda: second.append(_pass(tr, pr, mid, n, max_ids, width)),
        name="cellbench-pass",
        daemon=True,  # never holds up a fork of the evaluation's workers
    )
    th.start()
    ok, tables, sums = _pass(tr, pr, 0, mid, max_ids, width)
    th.join()
    if not second:  # pragma: no cover - the thread failed: count in one pass
        return _joint(tr, pr, max_ids, width)
    ok2, tables2, sums2 = second[0]
    if not (ok and ok2):
        return _status(tr, pr)
    return _assemble(*_merge(tables, sums, tables2, sums2, width > 0), width > 0)


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
        names the map (``"true"`` / ``"pred"``) that has negative ids. A large map is
        counted on two threads (:func:`joint_fields`).
    """
    status, *fields = joint_fields(tr, pr, max_ids, width)
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
