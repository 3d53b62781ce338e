"""Results page first render with 1,000,000 metric rows in the store (issue 6 target <= 2 s).

Run by hand: ``python benchmarks/bench_results_page.py [--rows-scale 1.0]``. Builds a
synthetic store (20 runs x 1000 samples x 10 metrics x 5 classes = 1,000,000 rows) in a
temporary workspace, then renders ``pages/4_Results.py`` with Streamlit's AppTest in this
fresh process (empty caches): first render, a re-render (cached), and a metric change.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=1000)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="cellbench_bench_"))
    os.environ["CELLBENCH_HOME"] = str(home)
    os.environ.setdefault("CELLBENCH_DATA", str(home / "nodata"))
    from cellbench.runs.store import Store
    from cellbench.runs.synthetic import synthetic_store

    t0 = time.perf_counter()
    store = Store()
    synthetic_store(
        store,
        train_sets=("a", "b", "c", "d", "a+b"),
        test_sets=("a", "b", "c", "d"),
        n_samples=args.samples,
        metrics=(
            "pq",
            "dq",
            "sq",
            "aji",
            "aji_plus",
            "dice1",
            "dice2",
            "f1",
            "precision",
            "recall",
        ),
        classes=("epithelial", "inflammatory", "connective", "other"),
    )
    n = store.scan().select("value").collect().height
    print(
        f"store: {n:,} rows in {len(store.run_ids())} runs, built in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "pages/4_Results.py"), default_timeout=300)
    t0 = time.perf_counter()
    at.run()
    first = time.perf_counter() - t0
    assert not at.exception, at.exception
    t0 = time.perf_counter()
    at.run()
    again = time.perf_counter() - t0
    t0 = time.perf_counter()
    at.selectbox(key="r_metric").set_value("aji").run()
    change = time.perf_counter() - t0
    print(
        f"Results page, 4 runs selected: first render {first:.2f} s (target <= 2 s, "
        f"{first / 2:.2f}x of it); re-render {again:.2f} s; metric change {change:.2f} s"
    )


if __name__ == "__main__":
    main()
