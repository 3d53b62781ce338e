"""Command-line speed (issue 17 item 5), measured in one run: fresh processes, wall clock.

Run by hand::

    CELLBENCH_DATA=../shared/data .venv/bin/python benchmarks/bench_cli.py [-n 5] \
        [--ref-python /tmp/venv-official/bin/python --official DIR]  # DIR/hover_net

- ``cellbench evaluate --dataset consep --split test --predictions DIR`` on 224 stored
  predictions (perturbed copies of the CoNSeP test maps, written to a temporary folder), into
  an empty store each time: the whole command, from process start (target <= 1.0 s); beside
  it the reference loop, in the same run: HoVer-Net's ``compute_stats.py``
  ``run_nuclei_inst_stat`` per-image loop (read both maps, ``remap_label``, ``get_fast_pq``,
  ``get_dice_1``, ``get_fast_aji``, ``get_fast_aji_plus``; its own code from the checkout, in
  the reference environment of ``benchmarks/setup_official.sh``), also a fresh process, on
  the same files (which computes fewer figures and stores nothing);
- the start of the commands that need no model: ``catalog list``, ``samples monuseg``,
  ``runs list``, ``results --run RUN`` (target <= 0.5 s each), with the record cache warm.

Each figure is the median of ``-n`` runs in a temporary workspace (``CELLBENCH_HOME``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cellbench.core.config import data_root
from cellbench.runs.synthetic import perturb_instances

CLI = [sys.executable, "-m", "cellbench.cli.main"]


def wall(args: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    r = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"cellbench {' '.join(args)} failed:\n{r.stderr[-2000:]}")
    return dt


REF_LOOP = r"""
import glob, os, sys
import numpy as np
sys.path.insert(0, os.path.join(sys.argv[3], "hover_net"))
from metrics.stats_utils import (
    get_dice_1, get_fast_aji, get_fast_aji_plus, get_fast_pq, remap_label,
)
metrics = [[], [], [], [], [], []]
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.npy"))):
    true = np.load(os.path.join(sys.argv[2], os.path.basename(f))).astype("int32")
    pred = np.load(f).astype("int32")
    pred = remap_label(pred, by_size=False)
    true = remap_label(true, by_size=False)
    pq_info = get_fast_pq(true, pred, match_iou=0.5)[0]
    metrics[0].append(get_dice_1(true, pred))
    metrics[1].append(get_fast_aji(true, pred))
    metrics[2].append(pq_info[0])
    metrics[3].append(pq_info[1])
    metrics[4].append(pq_info[2])
    metrics[5].append(get_fast_aji_plus(true, pred))
print(" ".join(f"{v:.4f}" for v in np.mean(np.array(metrics), axis=-1)))
"""


def reference_loop(pred: Path, gt: Path, ref_python: str, official: Path, tmp: Path) -> float:
    """Wall time of HoVer-Net's per-image loop over the same files, a fresh process."""
    (tmp / "ref_loop.py").write_text(REF_LOOP)
    t = time.perf_counter()
    r = subprocess.run(
        [ref_python, str(tmp / "ref_loop.py"), str(pred), str(gt), str(official)],
        capture_output=True,
        text=True,
    )
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"reference loop failed:\n{r.stderr[-2000:]}")
    print(f"  (HoVer-Net's means: dice1 aji dq sq pq aji+ = {r.stdout.strip()})")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--ref-python", help="python of benchmarks/setup_official.sh's environment")
    ap.add_argument("--official", type=Path, help="folder holding the hover_net checkout")
    a = ap.parse_args()
    n = a.n
    root = data_root()
    maps = sorted((root / "consep" / "inst" / "test").glob("*.npy")) if root else []
    if not maps:
        raise SystemExit("needs the shared data (CELLBENCH_DATA=../shared/data)")
    with tempfile.TemporaryDirectory() as tmp:
        pred = Path(tmp) / "pred"
        pred.mkdir()
        for i, f in enumerate(maps):
            np.save(pred / f.name, perturb_instances(np.load(f), seed=i).astype(np.int32))
        home = Path(tmp) / "home"
        env = {**os.environ, "CELLBENCH_HOME": str(home)}
        # Python caches compiled bytecode as on a user's machine (some sandboxes switch it
        # off, which recompiles cellbench's own modules in every process: ~0.1 s)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        ev = ["evaluate", "--dataset", "consep", "--split", "test", "--predictions", str(pred)]
        time.sleep(2.1)  # files settled: the first run may remember their hashes
        first = wall(ev, env)  # warms the record and hash caches and the OS file cache
        times = []
        for _ in range(n):
            shutil.rmtree(home / "store", ignore_errors=True)
            times.append(wall(ev, env))
        ours = statistics.median(times)
        print(f"evaluate, {len(maps)} stored CoNSeP predictions, fresh process and store:")
        print(f"  first run (record and hash caches cold): {first:.2f} s")
        print("  runs: " + ", ".join(f"{x:.2f}" for x in times))
        print(f"  {ours:.2f} s wall (median of {n}; target <= 1.0 s)")
        if a.ref_python and a.official:
            gt = maps[0].parent
            ref = [reference_loop(pred, gt, a.ref_python, a.official, Path(tmp)) for _ in "ab"]
            r = statistics.median(ref)
            print(
                f"  reference loop (HoVer-Net run_nuclei_inst_stat's, fresh process): {r:.2f} s "
                f"= {r / ours:.1f}x cellbench's time"
            )
        else:
            print("  reference loop skipped (--ref-python and --official)")
        run = next((home / "store" / "runs").glob("*.json")).stem
        print("command start (fresh process, warm record cache; target <= 0.5 s):")
        for args in (
            ["catalog", "list"],
            ["samples", "monuseg"],
            ["runs", "list"],
            ["results", "--run", run],
        ):
            wall(args, env)
            t = statistics.median(wall(args, env) for _ in range(n))
            print(f"  cellbench {' '.join(args[:2]):<16} {t:.2f} s")


if __name__ == "__main__":
    main()
