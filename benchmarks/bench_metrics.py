"""Speed and memory of the metrics engine (issue 3 targets), measured in one run.

Run by hand: ``python benchmarks/bench_metrics.py [--repeat N]``. Prints medians and ratios:

- 1000x1000 tile, ~600 nuclei: PQ + AJI + AJI+ (target <= 10 ms); PQ alone against one
  ``np.bincount`` over the tile's (true, pred) pixel pairs (target <= 1.5x);
- 2048x2048 tile, ~2000 nuclei: all instance metrics (target <= 40 ms, <= 500 MB peak);
- points, 5000 vs 5000: OCELOT greedy matching (target <= 30 ms);
- a plain per-instance-mask implementation (the reference algorithm) on the same tiles for
  the speed-up, as HoVer-Net's ``get_fast_pq`` computes it;
- StarDist's own ``matching`` (when ``benchmarks/requirements.txt`` is installed) against
  ``matching_scores`` (the same outputs) and ``instance_scores`` (every metric) under the
  ``stardist`` preset, at 1000x1000 and on the 224 CoNSeP test maps (target >= 10x);
- with ``--slide``: a 12288x12288 map with ~90k nuclei scored as one image (whole-slide scale:
  int32 pair keys overflowed there before).

Peak memory is the tracemalloc peak of the call (numpy reports its buffers to tracemalloc).
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

from cellbench.data.sample import Points
from cellbench.metrics import compute_overlap, instance_scores, matching_scores, point_scores
from cellbench.metrics.instance import aji_scores, match_pairs
from cellbench.runs.synthetic import perturb_instances, random_instances


def median_ms(fn, repeat: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def paired_ms(fa, fb, repeat: int) -> tuple[float, float, float]:
    """Medians of ``fa`` and ``fb`` timed alternately, and the median of their ratios.

    Alternating makes both see the same machine state (noisy neighbours, page cache)."""
    fa()
    fb()
    ta, tb = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fa()
        t1 = time.perf_counter()
        fb()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    ratio = statistics.median(b / a for a, b in zip(ta, tb, strict=True))
    return statistics.median(ta) * 1e3, statistics.median(tb) * 1e3, ratio


def peak_mb(fn) -> float:
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def pq_aji(t, p):
    ov = compute_overlap(t, p)
    m = match_pairs(ov, 0.5, "hovernet")
    return m, aji_scores(ov)


def pq_only(t, p):
    ov = compute_overlap(t, p)
    return match_pairs(ov, 0.5, "hovernet")


def naive_pq(t, p):
    """Per-GT-instance masks, as the reference implementations do (IoU > 0.5 pairs)."""
    tp = 0
    for i in np.unique(t)[1:]:
        tm = t == i
        for j in np.unique(p[tm]):
            if j == 0:
                continue
            pm = p == j
            inter = np.count_nonzero(tm & pm)
            if inter / (np.count_nonzero(tm | pm)) > 0.5:
                tp += 1
    return tp


def consep_test_maps() -> list[tuple[np.ndarray, np.ndarray]]:
    """The 224 CoNSeP test instance maps with ids as stored (cut from 1000^2 tiles, so ids are
    sparse and offset), each against a perturbed copy of itself."""
    from cellbench.core.config import data_root

    root = data_root()
    files = sorted((root / "consep" / "inst" / "test").glob("*.npy")) if root else []
    return [(t, perturb_instances(t, seed=i)) for i, t in enumerate(map(np.load, files))]


def stardist_comparison(t, p, r: int) -> None:
    """cellbench against StarDist's own ``matching`` (IoU 0.5) on the same pairs: the same
    outputs (``matching_scores``, stardist preset) and every instance metric at once."""
    try:
        from stardist.matching import matching
    except ImportError:
        print("StarDist not installed (pip install -r benchmarks/requirements.txt): skipped")
        return
    print("vs StarDist matching (stardist.matching.matching, thresh 0.5; target >= 10x)")
    sd, cb, ratio = paired_ms(
        lambda: matching(t, p, thresh=0.5), lambda: matching_scores(t, p, "stardist"), r
    )
    full = median_ms(lambda: instance_scores(t, p, "stardist"), r)
    print(
        f"  1000x1000: StarDist {sd:8.2f} ms, cellbench matching_scores {cb:6.2f} ms = "
        f"{1 / ratio:.1f}x faster; instance_scores (all metrics) {full:6.2f} ms = "
        f"{sd / full:.1f}x"
    )
    maps = consep_test_maps()
    if not maps:
        print("  CoNSeP test maps: ../shared/data not found, skipped")
        return

    def all_sd():
        for a, b in maps:
            matching(a, b, thresh=0.5)

    def all_cb():
        for a, b in maps:
            matching_scores(a, b, "stardist")

    def all_full():
        for a, b in maps:
            instance_scores(a, b, "stardist")

    sd, cb, ratio = paired_ms(all_sd, all_cb, max(r // 5, 3))
    full = median_ms(all_full, max(r // 5, 3))
    print(
        f"  CoNSeP test, {len(maps)} maps (ids as stored): StarDist {sd:7.1f} ms, cellbench "
        f"matching_scores {cb:6.1f} ms = {1 / ratio:.1f}x faster; instance_scores (all "
        f"metrics) {full:6.1f} ms = {sd / full:.1f}x"
    )


def many_tiles(r: int) -> None:
    """Per-map cost of scoring many small tiles: one ``instance_scores`` call each against
    ``instance_scores_many`` (one pass where it pays, identical results), HoVer-Net preset."""
    from cellbench.metrics import instance_scores_many

    print("many tiles, per map (hovernet: PQ, AJI, AJI+, Dice; identical results checked)")
    for side, n, count in ((64, 600, 8), (128, 300, 25), (256, 224, 80)):
        pairs = [tile((side, side), count, k) for k in range(n)]
        ts, ps = [a for a, _ in pairs], [b for _, b in pairs]
        one = [instance_scores(a, b, "hovernet") for a, b in pairs]
        assert instance_scores_many(ts, ps, single_pass=True) == one
        each, batch, ratio = paired_ms(
            lambda pairs=pairs: [instance_scores(a, b, "hovernet") for a, b in pairs],
            lambda ts=ts, ps=ps: instance_scores_many(ts, ps, single_pass=True),
            r,
        )
        print(
            f"  {n} maps of {side}^2: one call each {each / n:6.3f} ms, one pass "
            f"{batch / n:6.3f} ms ({1 / ratio:.2f}x; used automatically up to 160^2)"
        )


def slide_scale() -> None:
    """A 12288x12288 map with ~90k nuclei scored as one image (a whole slide at 40x):
    a 2048^2 tile of 2500 nuclei and its perturbed prediction repeated 6 x 6 with offset ids."""
    t0, p0 = tile((2048, 2048), 2500, 7)
    k = 6
    t = np.zeros((2048 * k, 2048 * k), np.int32)
    p = np.zeros_like(t)
    for i in range(k):
        for j in range(k):
            off = (i * k + j) * 3000
            sl = np.s_[i * 2048 : (i + 1) * 2048, j * 2048 : (j + 1) * 2048]
            t[sl] = np.where(t0 > 0, t0 + off, 0)
            p[sl] = np.where(p0 > 0, p0 + off, 0)
    n_true = len(np.unique(t)) - 1
    t_start = time.perf_counter()
    r = instance_scores(t, p, "hovernet")
    dt = time.perf_counter() - t_start
    mem = peak_mb(lambda: instance_scores(t, p, "hovernet"))
    print(f"{t.shape[0]}x{t.shape[1]} as one map, {n_true} GT nuclei (whole-slide scale)")
    print(
        f"  instance_scores hovernet          {dt:8.2f} s   PQ {r['pq']:.4f}, peak "
        f"{mem:.0f} MB beyond the inputs ({(t.nbytes + p.nbytes) / 2**20:.0f} MB)"
    )


def tile(shape, n, seed):
    t = random_instances(shape, n, radius=(6.0, 14.0), seed=seed)
    return t, perturb_instances(t, seed=seed + 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument(
        "--slide", action="store_true", help="also score a 12288^2 map with ~90k nuclei"
    )
    a = ap.parse_args()
    r = a.repeat

    t, p = tile((1000, 1000), 600, 1)
    nt, npd = len(np.unique(t)) - 1, len(np.unique(p)) - 1
    k = int(p.max()) + 1
    keys = (t.astype(np.intp) * k + p).ravel()
    bins = (int(t.max()) + 1) * k
    base, pq, ratio = paired_ms(
        lambda: np.bincount(keys, minlength=bins), lambda: pq_only(t, p), 3 * r
    )
    three = median_ms(lambda: pq_aji(t, p), r)
    full = median_ms(lambda: instance_scores(t, p, "hovernet"), r)
    naive = median_ms(lambda: naive_pq(t, p), 3)
    print(f"1000x1000, {nt} GT / {npd} predicted nuclei")
    print(f"  np.bincount over the pixel pairs  {base:8.2f} ms  (baseline)")
    print(
        f"  PQ                                {pq:8.2f} ms  = {ratio:.2f}x bincount "
        "(median of alternated pairs; target <= 1.5x)"
    )
    print(f"  PQ + AJI + AJI+                   {three:8.2f} ms  (target <= 10 ms)")
    print(f"  instance_scores (all metrics)     {full:8.2f} ms")
    print(
        f"  per-instance masks (reference)    {naive:8.2f} ms  = {naive / pq:.0f}x slower than PQ"
    )

    t2, p2 = tile((2048, 2048), 2000, 3)
    nt2 = len(np.unique(t2)) - 1
    k2 = int(p2.max()) + 1
    keys2 = (t2.astype(np.intp) * k2 + p2).ravel()
    bins2 = (int(t2.max()) + 1) * k2
    base2, pq2, ratio2 = paired_ms(
        lambda: np.bincount(keys2, minlength=bins2), lambda: pq_only(t2, p2), r
    )
    full2 = median_ms(lambda: instance_scores(t2, p2, "hovernet"), max(r // 3, 5))
    sd2 = median_ms(lambda: instance_scores(t2, p2, "stardist"), max(r // 3, 5))
    mem = peak_mb(lambda: instance_scores(t2, p2, "hovernet"))
    print(f"2048x2048, {nt2} GT nuclei")
    print(f"  np.bincount over the pixel pairs  {base2:8.2f} ms  (baseline)")
    print(
        f"  PQ                                {pq2:8.2f} ms  = {ratio2:.2f}x bincount "
        "(target <= 1.5x)"
    )
    print(f"  instance_scores hovernet          {full2:8.2f} ms  (target <= 40 ms)")
    print(f"  instance_scores stardist          {sd2:8.2f} ms")
    print(
        f"  peak memory                       {mem:8.1f} MB  (target <= 500 MB; inputs "
        f"{(t2.nbytes + p2.nbytes) / 2**20:.0f} MB)"
    )

    stardist_comparison(t, p, r)
    many_tiles(max(r // 5, 3))
    if a.slide:
        slide_scale()

    rng = np.random.default_rng(0)
    gxy = rng.uniform(0, 1024 * 4, (5000, 2))
    pxy = gxy + rng.normal(0, 4, gxy.shape)
    gt = Points(gxy, rng.integers(1, 3, 5000).astype(np.int32), np.ones(5000))
    pr = Points(pxy, gt.cls.copy(), rng.random(5000))
    pts = median_ms(lambda: point_scores(gt, pr, "ocelot"), r)
    hun = median_ms(lambda: point_scores(gt, pr, "hungarian"), r)
    print("points, 5000 vs 5000 (2 classes)")
    print(f"  ocelot greedy                     {pts:8.2f} ms  (target <= 30 ms)")
    print(f"  hungarian within radius           {hun:8.2f} ms")


if __name__ == "__main__":
    main()
