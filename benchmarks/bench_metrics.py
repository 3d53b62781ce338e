"""Speed and memory of the metrics engine (issue 3 targets), measured in one run.

Run by hand::

    bash benchmarks/setup_official.sh /tmp/venv-official   # the reference code's environment
    CELLBENCH_DATA=../shared/data python benchmarks/bench_metrics.py \
        --ref-python /tmp/venv-official/bin/python --official DIR  # DIR/hover_net

Prints medians and ratios, each figure beside its reference measured in the same run:

- 1000x1000 tile, ~600 nuclei: PQ + AJI + AJI+ (target <= 10 ms); PQ alone against one
  ``np.bincount`` over the tile's (true, pred) pixel pairs (target <= 0.5x);
- 2048x2048 tile, ~2000 nuclei: all instance metrics (target <= 40 ms, <= 500 MB peak);
- points, 5000 vs 5000: OCELOT greedy matching (target <= 30 ms);
- a plain per-instance-mask implementation (the reference algorithm) on the same tiles;
- HoVer-Net's own ``metrics/stats_utils.py`` (``remap_label``, ``get_fast_pq``,
  ``get_fast_aji``, ``get_fast_aji_plus``, as ``compute_stats.py`` runs them) and StarDist's own
  ``matching``, each in the separate reference environment (another process, its own numpy),
  against cellbench scoring the same maps with every metric of the preset, values checked
  equal first: one 1000^2 map, the 14 MoNuSeg test maps, the 224 CoNSeP test maps (targets:
  HoVer-Net >= 500x on the CoNSeP maps, StarDist >= 20x on all). cellbench runs with its
  compiled kernels loaded, on all cores (threads; also shown on 1 thread);
- many small tiles: the per-map cost of one call each, the stacked single pass and the
  compiled per-tile path;
- with ``--slide``: a 12288x12288 map with ~90k nuclei scored as one image (whole-slide scale:
  int32 pair keys overflowed there before).

Peak memory is the tracemalloc peak of the call (numpy reports its buffers to tracemalloc).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from cellbench.core.config import cpu_workers
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
    return matching_scores(t, p, "hovernet")  # PQ, DQ, SQ and their counts


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


def monuseg_test_maps() -> list[tuple[np.ndarray, np.ndarray]]:
    """The 14 MoNuSeg test maps (1000^2), each against a perturbed copy of itself."""
    from cellbench.core.config import data_root

    if not data_root():
        return []
    from cellbench.data.catalog import load_catalog
    from cellbench.data.samples import iter_samples

    out = []
    for k, (_, s) in enumerate(iter_samples(load_catalog(), "monuseg", "test")):
        out.append((s.instances, perturb_instances(s.instances, seed=100 + k)))
    return out


def consep_test_maps() -> list[tuple[np.ndarray, np.ndarray]]:
    """The 224 CoNSeP test instance maps with ids as stored (cut from 1000^2 tiles, so ids are
    sparse and offset), each against a perturbed copy of itself."""
    from cellbench.core.config import data_root

    root = data_root()
    files = sorted((root / "consep" / "inst" / "test").glob("*.npy")) if root else []
    return [(t, perturb_instances(t, seed=i)) for i, t in enumerate(map(np.load, files))]


REF_DRIVER = r"""
import json, statistics, sys, time
import numpy as np
cfg = json.load(open(sys.argv[1]))
d = np.load(cfg["maps"])
n = len(d.files) // 2
T = [d[f"t{i}"] for i in range(n)]
P = [d[f"p{i}"] for i in range(n)]
if cfg["what"] == "hovernet":
    sys.path.insert(0, cfg["hover_net"])
    from metrics.stats_utils import get_fast_aji, get_fast_aji_plus, get_fast_pq, remap_label

    def one(t, p):  # compute_stats.run_nuclei_inst_stat's steps for PQ, AJI, AJI+
        p = remap_label(p.astype("int32"), by_size=False)
        t = remap_label(t.astype("int32"), by_size=False)
        dq, sq, pq = get_fast_pq(t, p, match_iou=0.5)[0]
        return [dq, sq, pq, get_fast_aji(t, p), get_fast_aji_plus(t, p)]
else:
    from stardist.matching import matching

    def one(t, p):
        m = matching(t, p, thresh=0.5)
        return [m.tp, m.fp, m.fn, m.mean_true_score, m.mean_matched_score, m.panoptic_quality]
vals = [[float(v) for v in one(t, p)] for t, p in zip(T, P)]
times = []
for _ in range(cfg["repeat"]):
    t0 = time.perf_counter()
    for t, p in zip(T, P):
        one(t, p)
    times.append(time.perf_counter() - t0)
print(json.dumps({"values": vals, "seconds": statistics.median(times)}))
"""

#: Our keys for the values the reference driver returns, per reference.
REF_KEYS = {
    "hovernet": ("dq", "sq", "pq", "aji", "aji_plus"),
    "stardist": ("tp", "fp", "fn", "mean_true_score", "mean_matched_score", "pq"),
}


def run_reference(what: str, maps, ref_python: str, official: Path, repeat: int) -> dict:
    """Time the reference code on ``maps`` in its own environment (a separate process)."""
    with tempfile.TemporaryDirectory() as tmp:
        arrays = {f"t{i}": t for i, (t, _) in enumerate(maps)}
        arrays.update({f"p{i}": p for i, (_, p) in enumerate(maps)})
        np.savez(Path(tmp) / "maps.npz", **arrays)
        cfg = {
            "what": what,
            "maps": str(Path(tmp) / "maps.npz"),
            "hover_net": str(official / "hover_net"),
            "repeat": repeat,
        }
        (Path(tmp) / "cfg.json").write_text(json.dumps(cfg))
        (Path(tmp) / "driver.py").write_text(REF_DRIVER)
        res = subprocess.run(
            [ref_python, str(Path(tmp) / "driver.py"), str(Path(tmp) / "cfg.json")],
            capture_output=True,
            text=True,
        )
        if res.returncode:
            raise SystemExit(f"reference driver failed:\n{res.stderr[-3000:]}")
        return json.loads(res.stdout.strip().splitlines()[-1])


def against_reference(name: str, maps, what: str, ref_python: str, official: Path, r: int):
    """One row: the reference (HoVer-Net's PQ + AJI + AJI+, or StarDist's matching) on
    ``maps`` in its environment, beside cellbench scoring the same maps (every instance
    metric of the preset), values checked equal first."""
    from cellbench.metrics import instance_scores_many

    preset = what
    ours = instance_scores_many([t for t, _ in maps], [p for _, p in maps], preset)
    first = run_reference(what, maps, ref_python, official, 1)
    reps = max(1, min(5, round(3.0 / max(first["seconds"], 1e-3))))
    ref = run_reference(what, maps, ref_python, official, reps) if reps > 1 else first
    got = [[float(o[k]) for k in REF_KEYS[what]] for o in ours]
    diff = max(
        abs(a - b)
        for g, v in zip(got, ref["values"], strict=True)
        for a, b in zip(g, v, strict=True)
    )
    # StarDist returns some means in float32, depending on the labels' dtype: within its
    # precision; HoVer-Net: identical
    if diff > (1e-6 if what == "stardist" else 0.0):
        raise SystemExit(f"{name}: values differ from the reference by up to {diff}")

    def many():
        if len(maps) == 1:
            return [instance_scores(maps[0][0], maps[0][1], preset)]
        return instance_scores_many([t for t, _ in maps], [p for _, p in maps], preset)

    def each():
        return [instance_scores(t, p, preset) for t, p in maps]

    rr = max(3, min(r, int(2.0 / max(median_ms(many, 1) / 1e3, 1e-4))))
    both = median_ms(many, rr)
    os.environ["CELLBENCH_WORKERS"] = "1"
    try:
        single = median_ms(many, rr)
    finally:
        del os.environ["CELLBENCH_WORKERS"]
    one_each = median_ms(each, max(3, rr // 4))
    ref_ms = ref["seconds"] * 1e3
    n = len(maps)
    label = "identical" if diff == 0 else f"max |diff| {diff:.1e}"
    print(f"  {name} ({label})")
    print(
        f"    reference {ref_ms / n:8.3f} ms/map | cellbench {both / n:7.4f} ms/map = "
        f"{ref_ms / both:6.0f}x ({cpu_workers()} threads), {ref_ms / single:6.0f}x on 1 thread, "
        f"{ref_ms / one_each:5.0f}x one instance_scores call each"
    )


def reference_rows(t, p, r: int, ref_python: str | None, official: Path | None) -> None:
    """HoVer-Net's and StarDist's own code, in the separate environment of
    ``benchmarks/setup_official.sh``, against cellbench on one 1000^2 map, the 14 MoNuSeg test
    maps and the 224 CoNSeP test maps (targets: HoVer-Net >= 500x on CoNSeP, StarDist >= 20x
    on both)."""
    if not ref_python or not Path(ref_python).exists():
        print("reference environment not given (--ref-python; benchmarks/setup_official.sh)")
        return
    from cellbench.metrics import _tile_kernel

    _tile_kernel.load()  # compiled paths (a long-running scorer has them loaded)
    sets = [("1000x1000, one synthetic map", [(t, p)])]
    mon = monuseg_test_maps()
    if mon:
        sets.append((f"MoNuSeg test, {len(mon)} maps of 1000^2 (ground truth vs perturbed)", mon))
    con = consep_test_maps()
    if con:
        sets.append((f"CoNSeP test, {len(con)} maps of 256^2 (ids as stored)", con))
    if len(sets) == 1:
        print("  ../shared/data not found: real maps skipped")
    for what, title in (
        ("hovernet", "vs HoVer-Net metrics/stats_utils (remap_label, get_fast_pq, AJI, AJI+)"),
        ("stardist", "vs StarDist stardist.matching.matching (thresh 0.5)"),
    ):
        if what == "hovernet" and not (official and (official / "hover_net").is_dir()):
            print("HoVer-Net checkout not found (--official DIR with DIR/hover_net): skipped")
            continue
        print(title)
        for name, maps in sets:
            against_reference(name, maps, what, ref_python, official or Path("."), r)


def many_tiles(r: int) -> None:
    """Per-map cost of scoring many small tiles, HoVer-Net preset (identical results
    checked): one ``instance_scores`` call each, the stacked single pass (all tiles laid into
    one map; the default for tiny tiles without numba), and the compiled per-tile path (the
    default once numba is loaded or the batch is large)."""
    from cellbench.metrics import _tile_kernel, batch, instance_scores_many

    compiled = _tile_kernel.load()
    print("many tiles, per map (hovernet: PQ, AJI, AJI+, Dice)")
    for side, n, count in ((64, 600, 8), (128, 300, 25), (256, 224, 80)):
        pairs = [tile((side, side), count, k) for k in range(n)]
        ts, ps = [a for a, _ in pairs], [b for _, b in pairs]
        names = [("true", "pred")] * n
        one = [instance_scores(a, b, "hovernet") for a, b in pairs]
        assert batch._one_pass(ts, ps, "hovernet", (0.5,), names, {}) == one
        each = median_ms(lambda pairs=pairs: [instance_scores(a, b) for a, b in pairs], r)
        stacked = median_ms(
            lambda ts=ts, ps=ps, nm=names: batch._one_pass(ts, ps, "hovernet", (0.5,), nm, {}), r
        )
        line = (
            f"  {n} maps of {side}^2: one call each {each / n:6.3f} ms, stacked pass "
            f"{stacked / n:6.3f} ms"
        )
        if compiled:
            assert instance_scores_many(ts, ps) == one
            fused = median_ms(lambda ts=ts, ps=ps: instance_scores_many(ts, ps), r)
            line += f", compiled per tile {fused / n:6.3f} ms ({each / fused:.1f}x one call each)"
        print(line)


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
    ap.add_argument("--ref-python", help="python of the reference environment (setup_official.sh)")
    ap.add_argument("--official", type=Path, help="folder holding the hover_net checkout")
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
        "(median of alternated pairs; target <= 0.5x)"
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
        "(target <= 0.5x)"
    )
    print(f"  instance_scores hovernet          {full2:8.2f} ms  (target <= 40 ms)")
    print(f"  instance_scores stardist          {sd2:8.2f} ms")
    print(
        f"  peak memory                       {mem:8.1f} MB  (target <= 500 MB; inputs "
        f"{(t2.nbytes + p2.nbytes) / 2**20:.0f} MB)"
    )

    reference_rows(t, p, r, a.ref_python, a.official)
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
