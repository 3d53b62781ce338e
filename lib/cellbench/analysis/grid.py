"""The sample grid of a run: one row per sample with its metadata and every per-sample value,
sorted and filtered the way the app's grid shows it.

Columns: ``sample_id``, the run's metadata columns (``center``, ``organ``, ``stain``,
``category``, ``slide_id``, ``patient_id``), every metric of class ``all`` under its own name
(``pq``, ``f1``, ``n_true`` ...) and the ground-truth count of each class as ``n_true[<class>]``
(class counts, where the run's dataset has classes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

META = ("center", "organ", "stain", "category", "slide_id", "patient_id")


def sample_grid(store, run_id: str) -> pl.DataFrame:
    """One row per sample of ``run_id`` (see the module docstring), in sample-id order."""
    rows = store.scan([run_id]).filter(pl.col("level") == "sample").collect()
    if rows.is_empty():
        return pl.DataFrame({"sample_id": []}, schema={"sample_id": pl.Utf8})
    meta = rows.group_by("sample_id").agg(pl.col(c).drop_nulls().first() for c in META)
    overall = rows.filter(pl.col("class") == "all").pivot(
        on="metric", index="sample_id", values="value", aggregate_function="first"
    )
    out = meta.join(overall, on="sample_id", how="left")
    counts = rows.filter((pl.col("class") != "all") & (pl.col("metric") == "n_true"))
    if not counts.is_empty():
        wide = counts.with_columns(key=pl.format("n_true[{}]", pl.col("class"))).pivot(
            on="key", index="sample_id", values="value", aggregate_function="first"
        )
        out = out.join(wide, on="sample_id", how="left")
    return out.sort("sample_id")


def select(
    grid: pl.DataFrame,
    sort_by: str | None = None,
    descending: bool = False,
    equals: Mapping[str, Sequence] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> pl.DataFrame:
    """Rows whose columns are among ``equals[col]`` and within ``ranges[col]`` (inclusive),
    sorted by ``sort_by`` (missing values last)."""
    out = grid
    for col, vals in (equals or {}).items():
        if vals:
            out = out.filter(pl.col(col).is_in(list(vals)))
    for col, (lo, hi) in (ranges or {}).items():
        out = out.filter(pl.col(col).is_between(lo, hi))
    if sort_by:
        out = out.sort(sort_by, descending=descending, nulls_last=True, maintain_order=True)
    return out
