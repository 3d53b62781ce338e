"""Cross-dataset comparisons over the metrics store (seed 003): which runs to compare, the train x
test matrix P(D_i, D_j), its normalisations C_ij, the ranking of training sets and top-k fusion.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from cellbench.analysis.groups import group_summary
from cellbench.runs.store import Store


def finished_runs(store: Store, preset: str | None = None) -> list[str]:
    """Ids of complete runs (optionally of one preset), newest first."""
    runs = store.runs()
    if runs.is_empty():
        return []
    runs = runs.filter(pl.col("status") == "complete")
    if preset is not None and "preset" in runs.columns:
        runs = runs.filter(pl.col("preset") == preset)
    return runs.get_column("run_id").to_list()


def latest_runs(store: Store, preset: str = "hovernet") -> list[str]:
    """For each (model, test dataset, split), the newest complete run of ``preset``."""
    runs = store.runs()
    if runs.is_empty() or "preset" not in runs.columns:
        return []
    runs = runs.filter((pl.col("status") == "complete") & (pl.col("preset") == preset))
    keys = ["model_id", "test_dataset", "split"]
    latest = runs.sort("finished", descending=True).unique(keys, keep="first")
    return latest.get_column("run_id").to_list()


def train_test_matrix(
    store: Store,
    metric: str = "pq",
    preset: str = "hovernet",
    run_ids: Sequence[str] | None = None,
    n_boot: int = 1000,
) -> pl.DataFrame:
    """P(D_i, D_j): mean per-sample ``metric`` of models trained on D_i tested on D_j.

    Long format (``model_id``, ``train_datasets``, ``test_dataset``, ``n``, ``mean``,
    ``ci_low``, ``ci_high``, ``resampled``) over the newest complete run of each model x test
    dataset (or ``run_ids``); runs of stored predictions (no training set) are left out.
    Pivot with :func:`as_matrix`.
    """
    ids = list(run_ids) if run_ids is not None else latest_runs(store, preset)
    keys = ("model_id", "train_datasets", "test_dataset")
    out = group_summary(store, ids, metric, keys, n_boot=n_boot)
    # stored predictions have no training set: they are not a row of the matrix
    return out.filter(pl.col("train_datasets").is_not_null() & (pl.col("train_datasets") != ""))


def as_matrix(
    long: pl.DataFrame, rows: str = "train_datasets", value: str = "mean"
) -> pl.DataFrame:
    """Pivot a long result to a matrix: one row per ``rows`` value, one column per test set."""
    if long.is_empty():
        return pl.DataFrame({rows: []})
    return long.pivot(on="test_dataset", index=rows, values=value, aggregate_function="mean")


# -- cross-dataset analysis (seed 003, shared/DESIGN.md §6) -----------------------------------

#: The normalisations of the train x test matrix, named as figures state them.
CROSS_FORMS: dict[str, str] = {
    "diagonal": "C_ij = P(D_i, D_j) / P(D_j, D_j): normalised by the diagonal "
    "(> 1: training on D_i beats training on D_j itself on D_j's test set)",
    "paper": "C_ij = (P(D_i, D_j) + P(D_j, D_i)) / (2 P(D_i, D_j)), as printed in NucFuseRank",
    "raw": "P(D_i, D_j): mean per-sample metric, no normalisation",
}


def cross_correlation(long: pl.DataFrame, form: str = "diagonal") -> pl.DataFrame:
    """C_ij over datasets that are both a single training set and a test set.

    ``long`` is :func:`train_test_matrix` output (``train_datasets``, ``test_dataset``,
    ``mean``); rows of models trained on several datasets are left out. Returns long
    ``train_datasets``, ``test_dataset``, ``value`` (null where a needed P is missing).
    Default ``diagonal``; see :data:`CROSS_FORMS` for the three forms.
    """
    if form not in CROSS_FORMS:
        raise KeyError(f"unknown normalisation '{form}' (choose {', '.join(CROSS_FORMS)})")
    p = {(r["train_datasets"], r["test_dataset"]): r["mean"] for r in long.iter_rows(named=True)}
    names = sorted({i for i, _ in p} & {j for _, j in p})
    rows = []
    for i in names:
        for j in names:
            pij, pjj, pji = p.get((i, j)), p.get((j, j)), p.get((j, i))
            if form == "raw":
                v = pij
            elif form == "diagonal":
                v = pij / pjj if pij is not None and pjj else None
            else:
                v = (pij + pji) / (2 * pij) if pij and pji is not None else None
            rows.append({"train_datasets": i, "test_dataset": j, "value": v})
    schema = {"train_datasets": pl.Utf8, "test_dataset": pl.Utf8, "value": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def ranking(
    store: Store,
    run_ids: Sequence[str] | None = None,
    metric: str = "pq",
    preset: str = "hovernet",
    test_datasets: Sequence[str] | None = None,
    n_boot: int = 1000,
) -> pl.DataFrame:
    """Training sets ranked by the mean per-sample metric over the unified test set.

    The unified test set is every sample of ``test_datasets`` (default: all tested) pooled,
    so larger test sets weigh more, as in NucFuseRank. Adds ``rank`` (1 = best) and ``k`` (the
    number of datasets fused in the training set).
    """
    ids = list(run_ids) if run_ids is not None else latest_runs(store, preset)
    if test_datasets is not None and ids:
        runs = store.runs().filter(pl.col("run_id").is_in(ids))
        ids = runs.filter(pl.col("test_dataset").is_in(list(test_datasets)))["run_id"].to_list()
    g = group_summary(store, ids, metric, ["train_datasets"], n_boot=n_boot)
    g = g.filter(pl.col("train_datasets").is_not_null() & (pl.col("train_datasets") != ""))
    g = g.sort("mean", descending=True).with_row_index("rank", offset=1)
    return g.with_columns(k=pl.col("train_datasets").str.count_matches(r"\+") + 1)


def fusion(rank: pl.DataFrame) -> pl.DataFrame:
    """Observed vs expected performance of fused training sets (seed 003).

    For each training set of ``k`` > 1 datasets: ``observed`` = its unified-test mean,
    ``expected`` = the best single-dataset result among its parts (the paper's "expected
    fusion improvement" baseline), ``gain`` = observed - expected; ``k = 1`` rows list the
    single datasets (observed = expected). Parts without a single-dataset model give null.
    """
    single = {r["train_datasets"]: r["mean"] for r in rank.iter_rows(named=True) if r["k"] == 1}
    rows = []
    for r in rank.iter_rows(named=True):
        parts = r["train_datasets"].split("+")
        known = [single[p] for p in parts if p in single]
        expected = max(known) if len(known) == len(parts) else None
        rows.append(
            {
                "train_datasets": r["train_datasets"],
                "k": r["k"],
                "observed": r["mean"],
                "ci_low": r["ci_low"],
                "ci_high": r["ci_high"],
                "expected": expected,
                "gain": None if expected is None else r["mean"] - expected,
            }
        )
    schema = {
        "train_datasets": pl.Utf8,
        "k": pl.Int64,
        "observed": pl.Float64,
        "ci_low": pl.Float64,
        "ci_high": pl.Float64,
        "expected": pl.Float64,
        "gain": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema).sort(["k", "observed"], descending=[False, True])
