"""How lazy is reading? Times catalog listing, the sample table and one sample load.

Run by hand: ``CELLBENCH_DATA=../shared/data .venv/bin/python benchmarks/bench_catalog.py``.
Prints wall-clock seconds of one cold run in a fresh process (caches empty) and a warm rerun.
"""

from __future__ import annotations

import time

from cellbench.data.catalog import load_catalog
from cellbench.data.samples import catalog_rows, load_sample, sample_table


def _t(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    cat, t_cat = _t(load_catalog)
    table, t_table = _t(lambda: sample_table(cat))
    _, t_table2 = _t(lambda: sample_table(cat))
    rows, t_list = _t(lambda: catalog_rows(cat))
    _, t_load = _t(lambda: load_sample(cat, "monuseg", "TCGA-2Z-A9J9-01A-01-TS1"))
    print(f"catalog load+validate ({len(cat)} datasets): {t_cat:.3f} s")
    print(f"sample table, all local data (cold):      {t_table:.3f} s ({table.height} rows)")
    print(f"sample table again (memoised parses):     {t_table2:.3f} s")
    print(
        f"catalog list with local sample counts:    {t_list:.3f} s "
        f"({sum(r['n_samples'] for r in rows)} samples)"
    )
    print(f"load one MoNuSeg tile (1000x1000):        {t_load:.3f} s")
    for ds in table["dataset"].unique(maintain_order=True):
        _, t = _t(lambda ds=ds: sample_table(cat, [ds]))
        print(f"  table {ds:<10} {t:.3f} s")


if __name__ == "__main__":
    main()
