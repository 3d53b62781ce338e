"""Queries over the metrics store (polars lazy) with bootstrap confidence intervals.

Used by the app, notebooks and CLI alike.

Conventions
-----------
- Group figures are **means over samples** of a per-sample metric (HoVer-Net's dataset
  convention), class ``all`` unless a class is given; samples where the metric is undefined
  (null, e.g. an image with neither GT nor prediction) are left out and not counted.
- Confidence intervals are given only for groups of at least :data:`CI_MIN_N` (5) samples;
  below that the interval is null and ``n`` says why (with 2 samples a bootstrap interval is
  just their min and max). They are percentile bootstrap intervals (``n_boot`` resamples,
  default 1000, fixed seed). Resampling is by **cluster**: whole patients (``patient_id``)
  when every sample of the group has one and there are fewer patients than samples, else whole
  slides (``slide_id``) on the same rule, else single samples; the column says which. Resampling
  patients keeps correlated tiles of one patient together, so intervals are honest about
  how many independent units there are.
- The preset's own dataset-level figures (pooled counts, mPQ+) are the rows with
  ``level = dataset``: :func:`dataset_figures`; the same figure computed per group from the
  pooled per-image counts (OCELOT's per-organ F1, seed 004 Table 6) is :func:`pooled_groups`.
  The two differ: on OCELOT fold 0, bladder BC F1 is 0.389 as a mean of per-image F1 and
  0.607 pooled.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from cellbench.runs.store import Store

CLUSTER_KEYS = ("patient_id", "slide_id")
#: Smallest group given a bootstrap interval.
CI_MIN_N = 5


#: Resampled indices held at once by :func:`bootstrap_mean` (8 bytes each: ~32 MB).
_BOOT_CELLS = 1 << 22


def bootstrap_mean(
    values: np.ndarray,
    clusters: np.ndarray | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling whole clusters.

    The resampled statistic is ``sum of values / number of values`` over the drawn clusters,
    i.e. the sample mean of the resample; with one sample per cluster it is the ordinary
    bootstrap. Returns ``(low, high)``; NaNs for fewer than 2 values.
    """
    v = np.asarray(values, np.float64)
    if len(v) < 2:
        return (float("nan"), float("nan"))
    if clusters is None:
        sums, counts = v, np.ones_like(v)
    else:
        _, inv = np.unique(np.asarray(clusters), return_inverse=True)
        sums = np.bincount(inv, weights=v)
        counts = np.bincount(inv).astype(np.float64)
    k = len(sums)
    rng = np.random.default_rng(seed)
    # resamples drawn in blocks of rows (the same stream as one draw): memory stays near
    # _BOOT_CELLS values whatever n_boot x k
    stats = np.empty(n_boot)
    step = max(1, _BOOT_CELLS // k)
    for s in range(0, n_boot, step):
        idx = rng.integers(0, k, size=(min(step, n_boot - s), k))
        stats[s : s + len(idx)] = sums[idx].sum(1) / counts[idx].sum(1)
    a = (1 - level) / 2
    lo, hi = np.quantile(stats, [a, 1 - a])
    return float(lo), float(hi)


def cluster_column(df: pl.DataFrame) -> str:
    """The resampling unit of a group: patients, else slides, else samples (see above)."""
    n = df.height
    for key in CLUSTER_KEYS:
        col = df.get_column(key)
        if col.null_count() == 0 and 1 < col.n_unique() < n:
            return key
    return "sample_id"


def sample_values(
    store: Store,
    run_ids: Sequence[str] | None = None,
    metric: str = "pq",
    cls: str | None = "all",
) -> pl.LazyFrame:
    """Per-sample rows of one metric and class (lazy; ``cls=None``: every class)."""
    cond = (pl.col("level") == "sample") & (pl.col("metric") == metric)
    if cls is not None:
        cond = cond & (pl.col("class") == cls)
    return store.scan(run_ids).filter(cond)


def group_summary(
    store: Store,
    run_ids: Sequence[str] | None = None,
    metric: str = "pq",
    by: Sequence[str] = ("run_id",),
    cls: str | None = "all",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    min_n_ci: int = CI_MIN_N,
) -> pl.DataFrame:
    """Mean of a per-sample metric per group, with n and a bootstrap interval (n >= min_n_ci).

    ``by`` are metric-row columns (``run_id``, ``model_id``, ``train_datasets``,
    ``test_dataset``, ``center``, ``organ``, ``stain``, ``category``, ``class`` ...); with
    ``cls=None`` every class is kept (group by ``class`` then). Result
    columns: the keys, ``n`` (samples with a value), ``mean``, ``ci_low``, ``ci_high``,
    ``resampled`` (the cluster unit), sorted by the keys.
    """
    by = list(by)
    need = list(dict.fromkeys([*by, "sample_id", *CLUSTER_KEYS, "value"]))
    df = (
        sample_values(store, run_ids, metric, cls)
        .filter(pl.col("value").is_not_null() & pl.col("value").is_not_nan())
        .select(need)
        .collect()
    )
    return summarise(df, by, n_boot, level, seed, min_n_ci)


def summarise(
    df: pl.DataFrame,
    by: Sequence[str],
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    min_n_ci: int = CI_MIN_N,
) -> pl.DataFrame:
    """:func:`group_summary` of per-sample rows already read (``value`` without nulls, the
    ``by`` keys and the cluster columns)."""
    by = list(by)
    schema = {
        **{k: df.schema.get(k, pl.Utf8) for k in by},
        "n": pl.Int64,
        "mean": pl.Float64,
        "ci_low": pl.Float64,
        "ci_high": pl.Float64,
        "resampled": pl.Utf8,
    }
    if df.is_empty():
        return pl.DataFrame(schema=schema)
    rows = []
    for key, g in df.group_by(by, maintain_order=False):
        unit = cluster_column(g)
        v = g.get_column("value").to_numpy()
        lo, hi = (None, None)
        if len(v) >= min_n_ci:
            lo, hi = bootstrap_mean(v, g.get_column(unit).to_numpy(), n_boot, level, seed)
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "n": len(v),
                "mean": float(v.mean()),
                "ci_low": lo,
                "ci_high": hi,
                "resampled": unit,
            }
        )
    return pl.DataFrame(rows, schema=schema).sort(by, nulls_last=True)


def dataset_figures(store: Store, run_ids: Sequence[str] | None = None) -> pl.DataFrame:
    """The preset's dataset-level rows (``level = dataset``) of the given runs."""
    return (
        store.scan(run_ids)
        .filter(pl.col("level") == "dataset")
        .select(
            "run_id",
            "model_id",
            "train_datasets",
            "test_dataset",
            "split",
            "class",
            "metric",
            "value",
        )
        .collect()
    )


def model_summary(store: Store, ids: Sequence[str], metrics=("pq", "aji", "dice1")) -> pl.DataFrame:
    """Mean per-sample metrics (class ``all``) of runs: one row per model x test dataset, one
    column per metric (the reference experiments' table)."""
    frames = [
        group_summary(store, ids, m, ["model_id", "test_dataset"], n_boot=1000).with_columns(
            metric=pl.lit(m)
        )
        for m in metrics
    ]
    long = pl.concat(frames)
    return long.pivot(on="metric", index=["model_id", "test_dataset"], values="mean").sort(
        ["model_id", "test_dataset"]
    )


def pooled_groups(store: Store, run_id: str, by: str, catalog=None) -> pl.DataFrame:
    """The run's preset dataset figure computed per group from its pooled per-image results.

    For each value of the sample metadata column ``by`` (``organ``, ``center``, ``stain`` ...),
    the per-image results of that group's samples are aggregated exactly as the preset
    aggregates a whole dataset (OCELOT: counts pooled per class, P/R/F1 rounded, mF1;
    CoNIC: mPQ+ from pooled per-class counts; HoVer-Net: its mean over images). Returns long
    rows ``group``, ``n`` (samples), ``class``, ``metric``, ``value``.

    Needs the run's per-image results, which the compact reference export leaves out: such a
    run raises :class:`~cellbench.core.errors.CellbenchError` saying to re-run it.
    """
    from cellbench.core.errors import CellbenchError
    from cellbench.data.catalog import load_catalog
    from cellbench.metrics import aggregate_task
    from cellbench.runs.evaluate import flatten

    info = store.get_run(run_id)
    results = store.results(run_id)
    if not results:
        raise CellbenchError(
            f"run '{run_id}' has no per-image results stored (a compact reference export): "
            "re-run it with `cellbench evaluate` to pool its counts per group"
        )
    meta = (
        store.scan([run_id])
        .filter(pl.col("level") == "sample")
        .select("sample_id", by)
        .unique("sample_id")
        .collect()
    )
    cat = catalog or load_catalog()
    ds = cat.get(info["test_dataset"])
    names = {str(c.id): c.name for c in ds.classes}
    declared = [c.id for c in ds.classes] if len(ds.classes) > 1 else None
    rows = []
    for (group,), g in meta.group_by([by], maintain_order=True):
        sub = {s: results[s] for s in g["sample_id"].to_list() if s in results}
        agg = aggregate_task(info.get("task") or "points", sub, info["preset"], declared)
        rows += [
            {"group": group, "n": len(sub), "class": c, "metric": m, "value": v}
            for c, m, v in flatten(agg, names)
        ]
    schema = {
        "group": pl.Utf8,
        "n": pl.Int64,
        "class": pl.Utf8,
        "metric": pl.Utf8,
        "value": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema).sort(["group", "class", "metric"], nulls_last=True)
