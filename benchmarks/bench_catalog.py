"""How lazy is reading? Times catalog listing, the sample table and one sample load.

Run by hand: ``CELLBENCH_DATA=../shared/data .venv/bin/python benchmarks/bench_catalog.py``.
Prints wall-clock seconds of one cold run in a fresh process (caches empty) and a warm rerun.
"""

from __future__ import annotations

import os
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
    big_catalog()


def big_catalog(n: int = 10_000) -> None:
    """An institutional catalog: ``n`` plain entries (no aliases), parsed and validated the
    first time (fresh workspace cache) and again (target: under a second), against PyYAML's
    own ``safe_load`` of the same text."""
    import tempfile
    from pathlib import Path

    import yaml

    from cellbench.data.catalog import parse_catalog

    entry = {
        "name": "Dataset",
        "citation": "x",
        "license": "CC-BY",
        "url": "",
        "tasks": ["instance_segmentation"],
        "stain": ["H&E"],
        "modality": "brightfield",
        "organs": ["breast"],
        "mpp": 0.25,
        "obtain": "ask",
        "classes": [{"id": 1, "name": "nucleus", "nodes": ["nucleus"]}],
    }
    import copy

    # a copy per entry: shared lists would be written as YAML anchors and aliases
    entries = [{"id": f"d{i:05d}", **copy.deepcopy(entry)} for i in range(n)]
    text = yaml.safe_dump({"datasets": entries})
    _, t_yaml = _t(lambda: yaml.safe_load(text))
    with tempfile.TemporaryDirectory() as d:
        os.environ["CELLBENCH_HOME"] = d
        _, t_first = _t(lambda: parse_catalog(text, Path(d) / "big.yaml", Path(d)))
        _, t_again = _t(lambda: parse_catalog(text, Path(d) / "big.yaml", Path(d)))
    print(
        f"{n} plain catalog entries: first load {t_first:.2f} s, again {t_again:.2f} s "
        f"(target < 1 s); yaml.safe_load alone {t_yaml:.2f} s"
    )


if __name__ == "__main__":
    main()
