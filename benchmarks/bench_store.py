"""The metrics store at scale (issue 17 item 3), measured in one run.

Run by hand: ``python benchmarks/bench_store.py [--samples 100000] [--per-part 16]
[--runs 36 --run-samples 6000]``.

1. One run of N samples (5 metrics each, 12 centers) written as the evaluation writes it (one
   part per ``--per-part`` samples); before and after compaction: listing the stored samples
   (what a resume does), a filtered scan of one metric, and ``group_summary`` per center
   (target: <= 1 s for a 100k-sample run).
2. Many complete runs (6 training sets x 6 test sets of ``--run-samples`` samples, 6 metrics:
   1M+ rows across runs, as the reference experiments grow): the runs table, a scan of one
   metric over every run, ``group_summary`` per run x center, the train x test matrix and the
   ranking (with bootstrap), as the Cross-dataset page asks them (target: <= 1 s each).

Prints the times and their ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from cellbench.analysis.groups import group_summary
from cellbench.runs.store import Store, frame


def build(store: Store, run_id: str, n: int, per_part: int) -> None:
    rng = np.random.default_rng(0)
    metrics = ("pq", "aji", "dice1", "f1", "dq")
    for s in range(0, n, per_part):
        rows = [
            {
                "run_id": run_id,
                "level": "sample",
                "sample_id": f"s{i:07d}",
                "center": f"C{i % 12}",
                "class": "all",
                "metric": m,
                "value": float(rng.random()),
            }
            for i in range(s, min(n, s + per_part))
            for m in metrics
        ]
        store.append(run_id, frame(rows))


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def queries(store: Store, run_id: str) -> dict[str, float]:
    t = {}
    t["resume listing"], _ = timed(lambda: store.done_samples(run_id))
    t["scan one metric"], _ = timed(
        lambda: store.scan([run_id]).filter(pl.col("metric") == "pq").collect()
    )
    t["group_summary by center"], _ = timed(
        lambda: group_summary(store, [run_id], "pq", ("run_id", "center"), n_boot=200)
    )
    return t


def many_runs(root: Path, n_samples: int) -> None:
    """Section 2 of the module docstring."""
    from cellbench.analysis.cross import ranking, train_test_matrix
    from cellbench.runs.synthetic import synthetic_store

    store = Store(root / "many", reference="")
    trains = ("a", "b", "c", "d", "e", "f")
    t_build, ids = timed(
        lambda: synthetic_store(store, trains, trains, n_samples=n_samples, family="bench")
    )
    for r in ids:  # complete runs are compacted into one part each
        store.compact(r)
    n_rows = store.scan(ids).select(pl.len()).collect().item()
    print(f"{len(ids)} runs, {n_rows:,} rows across them, written in {t_build:.1f} s")
    t = {}
    t["runs table"], _ = timed(store.runs)
    t["scan one metric, all runs"], _ = timed(
        lambda: store.scan(ids).filter(pl.col("metric") == "pq").collect()
    )
    t["group_summary run x center"], _ = timed(
        lambda: group_summary(store, ids, "pq", ("run_id", "center"), n_boot=200)
    )
    t["train x test matrix"], _ = timed(lambda: train_test_matrix(store, "pq", n_boot=200))
    t["ranking (bootstrap 200)"], _ = timed(lambda: ranking(store, n_boot=200))
    for k, v in t.items():
        print(f"  {k:<30}{v:>7.3f} s  (target <= 1 s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--per-part", type=int, default=16)
    ap.add_argument("--run-samples", type=int, default=6000)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cb-store-"))
    store = Store(root / "store", reference="")
    t_build, _ = timed(lambda: build(store, "big", args.samples, args.per_part))
    n_parts = len(store._parts("big"))
    print(f"{args.samples} samples in {n_parts} parts, written in {t_build:.1f} s")
    before = queries(store, "big")
    t_compact, _ = timed(lambda: store.compact("big"))
    after = queries(store, "big")
    print(f"compaction: {t_compact:.2f} s -> {len(store._parts('big'))} part")
    print(f"{'query':<26}{'parts':>10}{'compacted':>12}{'ratio':>8}")
    for k in before:
        print(f"{k:<26}{before[k]:>9.3f}s{after[k]:>11.3f}s{before[k] / after[k]:>7.1f}x")
    many_runs(root, args.run_samples)


if __name__ == "__main__":
    main()
