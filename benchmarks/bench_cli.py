"""Command-line speed (issue 17 item 5), measured in one run: fresh processes, wall clock.

Run by hand: ``CELLBENCH_DATA=../shared/data .venv/bin/python benchmarks/bench_cli.py [-n 5]``.

- ``cellbench evaluate --dataset consep --split test --predictions DIR`` on 224 stored
  predictions (perturbed copies of the CoNSeP test maps, written to a temporary folder), into
  an empty store each time: the whole command, from process start (target <= 1.5 s);
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5)
    n = ap.parse_args().n
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
        ev = ["evaluate", "--dataset", "consep", "--split", "test", "--predictions", str(pred)]
        wall(ev, env)  # warm: record cache, numba's compiled kernels, the OS file cache
        times = []
        for _ in range(n):
            shutil.rmtree(home / "store", ignore_errors=True)
            times.append(wall(ev, env))
        print(f"evaluate, {len(maps)} stored CoNSeP predictions, fresh process and store:")
        print("  runs: " + ", ".join(f"{x:.2f}" for x in times))
        print(f"  {statistics.median(times):.2f} s wall (median of {n}; target <= 1.5 s)")
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
