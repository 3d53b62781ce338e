"""Cross-dataset comparisons over the metrics store (seed 003, ``shared/DESIGN.md`` §6).

- :func:`train_test_matrix`: P(D_i, D_j), the mean per-sample metric on the test subset of D_j
  of the model of a family trained on D_i (rows: training set, columns: test set, as in the
  paper's Fig. 3); one matrix per model family.
- :func:`cross_correlation`: its normalisations, named (:data:`CROSS_FORMS`).
- :func:`ranking`: training sets ranked on the unified test set, each test dataset weighted
  equally (``per-dataset``, NucFuse-test's design) or every sample pooled (``pooled``, where
  the largest test set decides); per family, with the mean rank across families.
- :func:`fusion`: top-k fusion, observed vs expected (Figs. 5-7).

Only complete runs on identical sample sets are used (:mod:`cellbench.analysis.comparable`);
every cell and bar carries its ``n`` and ``run_ids``. A sample whose metric is undefined for a
run (PQ of an image with neither GT nor prediction) is handled for every compared run of its
test dataset alike (:data:`EMPTY_POLICIES`), so all of them are compared on one sample set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from cellbench.analysis.comparable import comparable_runs, run_table, test_set_of
from cellbench.analysis.groups import (
    CI_MIN_N,
    CLUSTER_KEYS,
    cluster_column,
    sample_values,
    summarise,
)
from cellbench.runs.store import Store

#: The weightings of the unified test set.
WEIGHTINGS: dict[str, str] = {
    "per-dataset": "each test dataset weighs the same (mean of the per-dataset means, "
    "seed 003's NucFuse-test design)",
    "pooled": "every test sample weighs the same (the largest test set dominates)",
}


#: What a comparison does with a sample whose metric is undefined for some compared run.
EMPTY_POLICIES: dict[str, str] = {
    "drop": "a sample whose metric is undefined for any compared run of its test dataset "
    "(e.g. PQ of an image with neither GT nor prediction) is left out for every run alike",
    "perfect": "an undefined value (nothing to score: the image has neither GT nor "
    "prediction) counts as 1.0, a correct empty answer; a model that predicts nuclei there "
    "keeps its 0",
}


def compared_values(
    store: Store, cells: pl.DataFrame, metric: str = "pq", empty: str = "drop"
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Per-sample values of the runs of ``cells`` (:func:`comparable_runs` rows) on one
    sample set per test dataset, under the ``empty`` policy (:data:`EMPTY_POLICIES`).

    Returns the rows (``run_id``, ``test_dataset``, ``sample_id``, cluster columns,
    ``value``; no nulls) and, per run, how many of its samples had an undefined value
    (dropped for every run of the test dataset, or counted as 1.0).
    """
    if empty not in EMPTY_POLICIES:
        raise KeyError(
            f"unknown empty-sample policy '{empty}' (choose {', '.join(EMPTY_POLICIES)})"
        )
    cols = ["run_id", "test_dataset", "sample_id", *CLUSTER_KEYS, "value"]
    ids = cells["run_id"].to_list() if cells.height else []
    if not ids:
        return pl.DataFrame(schema={c: pl.Utf8 for c in cols[:-1]} | {"value": pl.Float64}), {}
    df = (
        sample_values(store, ids, metric)
        .select(cols)
        .collect()
        .with_columns(undefined=pl.col("value").is_null() | pl.col("value").is_nan())
    )
    # the test dataset of each run as the comparison sees it (a run's rows carry the same)
    df = df.drop("test_dataset").join(
        cells.select("run_id", "test_dataset"), on="run_id", how="inner"
    )
    counts = df.group_by("run_id").agg(pl.col("undefined").sum())
    undefined = dict(zip(counts["run_id"], counts["undefined"].cast(int), strict=True))
    if empty == "perfect":
        df = df.with_columns(
            value=pl.when(pl.col("undefined")).then(1.0).otherwise(pl.col("value"))
        )
    else:
        bad = df.filter(pl.col("undefined")).select("test_dataset", "sample_id").unique()
        df = df.join(bad, on=["test_dataset", "sample_id"], how="anti")
    return df.drop("undefined"), undefined


def finished_runs(store: Store, preset: str | None = None) -> list[str]:
    """Ids of complete runs (whole split; optionally of one preset), newest first."""
    t = run_table(store, preset)
    return t.filter(pl.col("complete"))["run_id"].to_list()


def latest_runs(store: Store, preset: str = "hovernet") -> list[str]:
    """For each (model, test dataset, split), the newest complete (whole-split) run."""
    t = run_table(store, preset).filter(pl.col("complete"))
    keys = ["model_id", "test_dataset", "split"]
    return t.unique(keys, keep="first", maintain_order=True)["run_id"].to_list()


_CELL_SCHEMA = {
    "family": pl.Utf8,
    "model_id": pl.Utf8,
    "train_datasets": pl.Utf8,
    "test_dataset": pl.Utf8,
    "n": pl.Int64,
    "mean": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "resampled": pl.Utf8,
    "run_ids": pl.List(pl.Utf8),
    "complete": pl.Boolean,
    "undefined": pl.Int64,
    "empty": pl.Utf8,
}


def train_test_matrix(
    store: Store,
    metric: str = "pq",
    preset: str = "hovernet",
    run_ids: Sequence[str] | None = None,
    n_boot: int = 1000,
    family: str | None = None,
    test_set=None,
    empty: str = "drop",
) -> pl.DataFrame:
    """P(D_i, D_j) in long format, one row per (family, training set, test set) cell.

    Each cell is the newest complete run on the test dataset's reference sample set, or on
    the members of ``test_set`` (a stored test set's ref, e.g. ``nucfuse-test``) when given
    (``run_ids`` restricts the candidates). Columns: ``family``, ``model_id``,
    ``train_datasets``, ``test_dataset``, ``n`` (samples with a value), ``mean`` (the mean
    per-sample ``metric``), ``ci_low``/``ci_high`` (bootstrap 95%, null for n < 5),
    ``resampled``, ``run_ids``, ``complete`` (always true: partial runs never enter),
    ``undefined`` (the run's samples with an undefined metric) and ``empty`` (the policy
    applied to them, :data:`EMPTY_POLICIES`: under ``drop`` every cell of a test dataset
    has the same ``n``, whichever family it belongs to).
    Runs of stored predictions (no training set) are not rows. Pivot with :func:`as_matrix`.
    """
    cells = comparable_runs(store, preset, family, run_ids, test_set=test_set)
    if cells.is_empty():
        return pl.DataFrame(schema=_CELL_SCHEMA)
    values, undefined = compared_values(store, cells, metric, empty)
    s = summarise(values, ["run_id"], n_boot=n_boot)
    out = cells.select("run_id", "family", "model_id", "train_datasets", "test_dataset").join(
        s, on="run_id", how="inner"
    )
    out = out.with_columns(
        run_ids=pl.concat_list("run_id"),
        complete=pl.lit(True),
        undefined=pl.col("run_id").replace_strict(undefined, default=0, return_dtype=pl.Int64),
        empty=pl.lit(empty),
    )
    return out.select(list(_CELL_SCHEMA)).sort(["family", "train_datasets", "test_dataset"])


def as_matrix(
    long: pl.DataFrame, rows: str = "train_datasets", value: str = "mean"
) -> pl.DataFrame:
    """Pivot a long result to a matrix: one row per ``rows`` value, one column per test set.

    With several families the family is part of the row index, so none overwrites another.
    """
    if long.is_empty():
        return pl.DataFrame({rows: []})
    index = [rows]
    if "family" in long.columns and long["family"].n_unique() > 1:
        index = ["family", rows]
    return long.pivot(on="test_dataset", index=index, values=value, aggregate_function=None)


#: The normalisations of the train x test matrix, named as figures state them.
CROSS_FORMS: dict[str, str] = {
    "diagonal": "C_ij = P(D_i, D_j) / P(D_j, D_j): normalised by the diagonal "
    "(> 1: training on D_i beats training on D_j itself on D_j's test set)",
    "paper": "C_ij = (P(D_i, D_j) + P(D_j, D_i)) / (2 P(D_i, D_j)), as printed in NucFuseRank",
    "raw": "P(D_i, D_j): mean per-sample metric, no normalisation",
}


def cross_correlation(long: pl.DataFrame, form: str = "diagonal") -> pl.DataFrame:
    """C_ij, per family, over datasets that are both a training set and a test set.

    ``long`` is :func:`train_test_matrix` output. Returns long ``family``,
    ``train_datasets`` (i, rows), ``test_dataset`` (j, columns), ``value`` (null where a
    needed P is missing). Default ``diagonal``; see :data:`CROSS_FORMS`.
    """
    if form not in CROSS_FORMS:
        raise KeyError(f"unknown normalisation '{form}' (choose {', '.join(CROSS_FORMS)})")
    if "family" not in long.columns:
        long = long.with_columns(family=pl.lit(None, pl.Utf8))
    rows = []
    for (fam,), g in long.group_by(["family"], maintain_order=True):
        p = {(r["train_datasets"], r["test_dataset"]): r["mean"] for r in g.iter_rows(named=True)}
        names = sorted({i for i, _ in p} & {j for _, j in p})
        for i in names:
            for j in names:
                pij, pjj, pji = p.get((i, j)), p.get((j, j)), p.get((j, i))
                if form == "raw":
                    v = pij
                elif form == "diagonal":
                    v = pij / pjj if pij is not None and pjj else None
                else:
                    v = (pij + pji) / (2 * pij) if pij and pji is not None else None
                rows.append({"family": fam, "train_datasets": i, "test_dataset": j, "value": v})
    schema = {
        "family": pl.Utf8,
        "train_datasets": pl.Utf8,
        "test_dataset": pl.Utf8,
        "value": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


# -- the unified test set: ranking and fusion ---------------------------------------------------


def _parts(train: str) -> frozenset[str] | None:
    """The datasets of a plain (fused) training set ``a+b``; None for recipes (``>``, ``@``)."""
    if any(c in train for c in ">@"):
        return None
    return frozenset(train.split("+"))


class _Unified:
    """Per-sample values of one family's comparable runs, by training set and test dataset."""

    def models_of(self, train: str) -> list[str]:
        """The model ids of a training set's runs in this family."""
        return self._models.get(train, [])

    def __init__(self, cells: pl.DataFrame, df: pl.DataFrame, test_datasets):
        self.cells = cells
        self._models = (
            {
                t: sorted(set(g["model_id"].to_list()))
                for (t,), g in (cells.partition_by("train_datasets", as_dict=True).items())
            }
            if cells.height and "model_id" in cells.columns
            else {}
        )
        self.values: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self.run_of: dict[tuple[str, str], str] = {}
        by_run = df.partition_by("run_id", as_dict=True) if df.height else {}
        for r in cells.iter_rows(named=True):
            g = by_run.get((r["run_id"],))
            if g is None:
                continue
            key = (r["train_datasets"], r["test_dataset"])
            unit = cluster_column(g)
            self.values[key] = (g["value"].to_numpy(), g[unit].to_numpy())
            self.run_of[key] = r["run_id"]
        self.tests = sorted(
            set(test_datasets) if test_datasets is not None else {j for _, j in self.values}
        )
        self.trains = sorted({i for i, _ in self.values})

    def covers(self, train: str) -> bool:
        return all((train, j) in self.values for j in self.tests)

    def p(self, train: str, test: str) -> float:
        return float(self.values[(train, test)][0].mean())

    def score(self, train: str, weighting: str) -> float:
        vals = [self.values[(train, j)][0] for j in self.tests]
        if weighting == "pooled":
            return float(np.concatenate(vals).mean())
        return float(np.mean([v.mean() for v in vals]))

    def bootstrap(self, train: str, weighting: str, n_boot: int, seed: int = 0) -> np.ndarray:
        """Resampled unified scores: clusters are drawn within each test dataset."""
        rng = np.random.default_rng(seed)
        sums = np.zeros((len(self.tests), n_boot))
        counts = np.zeros((len(self.tests), n_boot))
        for d, j in enumerate(self.tests):
            v, cl = self.values[(train, j)]
            _, inv = np.unique(cl.astype(str), return_inverse=True)
            cs, cn = np.bincount(inv, weights=v), np.bincount(inv).astype(float)
            idx = rng.integers(0, len(cs), size=(n_boot, len(cs)))
            sums[d], counts[d] = cs[idx].sum(1), cn[idx].sum(1)
        if weighting == "pooled":
            return sums.sum(0) / counts.sum(0)
        return (sums / counts).mean(0)


_RANK_SCHEMA = {
    "family": pl.Utf8,
    "rank": pl.Int64,
    "train_datasets": pl.Utf8,
    "k": pl.Int64,
    "mean": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "n": pl.Int64,
    "n_datasets": pl.Int64,
    "test_datasets": pl.Utf8,
    "weighting": pl.Utf8,
    "run_ids": pl.List(pl.Utf8),
    "mean_rank": pl.Float64,
    "test_set": pl.Utf8,
    "missing": pl.List(pl.Utf8),
    "model_ids": pl.List(pl.Utf8),
}


def _unified(
    store, metric, preset, family, test_datasets, run_ids, test_set=None, empty="drop"
) -> dict[str, _Unified]:
    """One :class:`_Unified` per model family (sorted), every family on the same samples of
    each test dataset (:func:`compared_values` over all compared runs at once)."""
    cells = comparable_runs(store, preset, family, run_ids, test_set=test_set)
    if test_datasets is None and test_set is not None:
        test_datasets = test_set.datasets
    if test_datasets is not None:
        cells = cells.filter(pl.col("test_dataset").is_in(list(test_datasets)))
    df, _ = compared_values(store, cells, metric, empty)
    out = {}
    for fam in sorted(f for f in cells["family"].unique().to_list() if f is not None):
        mine = cells.filter(pl.col("family") == fam)
        out[fam] = _Unified(
            mine, df.filter(pl.col("run_id").is_in(mine["run_id"].to_list())), test_datasets
        )
    return out


def ranking(
    store: Store,
    run_ids: Sequence[str] | None = None,
    metric: str = "pq",
    preset: str = "hovernet",
    test_datasets: Sequence[str] | None = None,
    n_boot: int = 1000,
    weighting: str = "per-dataset",
    family: str | None = None,
    level: float = 0.95,
    test_set=None,
    empty: str = "drop",
) -> pl.DataFrame:
    """Training sets ranked on the unified test set, per model family.

    The unified test set is a stored test set (``test_set``, e.g. ``nucfuse-test``: runs on
    exactly its members, every dataset of it with members) or, without one, ``test_datasets``
    (default: every dataset a comparable run of the family was tested on, on its reference
    sample set); a training set is ranked only when it has a comparable run on each
    of them (the others are listed with ``rank`` null and their ``n_datasets``). ``mean`` is
    the per-dataset-weighted or pooled mean of the per-sample ``metric``
    (:data:`WEIGHTINGS`); the bootstrap interval resamples clusters (patients, else slides,
    else samples) within each test dataset. ``mean_rank`` is seed 003 Table 2's last column,
    "Mean Rank": the rank of the training set's *mean score over the model families* that
    score it (the paper: "ranked based on their mean PQ scores"), not the mean of the
    per-family ranks (:func:`mean_rank`); ``k`` the number of datasets in a plain fused
    training set (null for recipes such as ``a>b``). Samples with an undefined metric follow
    ``empty`` (:data:`EMPTY_POLICIES`) for every family alike.
    """
    if weighting not in WEIGHTINGS:
        raise KeyError(f"unknown weighting '{weighting}' (choose {', '.join(WEIGHTINGS)})")
    ts = test_set_of(test_set)
    rows = []
    for fam, u in _unified(
        store, metric, preset, family, test_datasets, run_ids, ts, empty
    ).items():
        rows += _rank_family(u, fam, weighting, n_boot, level)
    overall = mean_rank(rows)
    for r in rows:
        got = overall.get(r["train_datasets"])
        r["mean_rank"] = None if got is None else float(got)
        r["test_set"] = ts.ref if ts is not None else None
    return pl.DataFrame(rows, schema=_RANK_SCHEMA).sort(
        ["family", "rank", "train_datasets"], nulls_last=True
    )


def mean_rank(rows) -> dict[str, int]:
    """``{training set: rank}`` of the training sets by their mean score over the families
    that score them (1 = best; equal means share the better rank). ``rows``: ranking rows
    (``train_datasets``, ``mean``). Seed 003 Table 2: PCNS (55.66 + 55.14) / 2 = 55.40 ranks
    1, PUMA 55.25 ranks 2 although its family ranks (1, 3) average more than PCNS's (2, 1)."""
    scores: dict[str, list[float]] = {}
    for r in rows:
        if r["mean"] is not None:
            scores.setdefault(r["train_datasets"], []).append(float(r["mean"]))
    means = {t: float(np.mean(v)) for t, v in scores.items()}
    ordered = sorted(means.values(), reverse=True)
    return {t: 1 + ordered.index(m) for t, m in means.items()}


def _rank_family(u: _Unified, fam: str, weighting: str, n_boot: int, level: float = 0.95):
    """Ranking rows of one family's training sets (``mean_rank`` filled in by the caller)."""
    rows = []
    for t in u.trains:
        have = [j for j in u.tests if (t, j) in u.values]
        parts = _parts(t)
        row = {
            "family": fam,
            "rank": None,
            "train_datasets": t,
            "k": None if parts is None else len(parts),
            "mean": None,
            "ci_low": None,
            "ci_high": None,
            "n": int(sum(len(u.values[(t, j)][0]) for j in have)),
            "n_datasets": len(have),
            "test_datasets": "+".join(u.tests),
            "weighting": weighting,
            "run_ids": [u.run_of[(t, j)] for j in have],
            "mean_rank": None,
            # why a training set is not ranked: the test datasets it has no comparable run on
            "missing": [j for j in u.tests if (t, j) not in u.values],
            "model_ids": u.models_of(t),
        }
        if u.covers(t):
            row["mean"] = u.score(t, weighting)
            if row["n"] >= CI_MIN_N:
                boot = u.bootstrap(t, weighting, n_boot)
                a = (1 - level) / 2
                row["ci_low"], row["ci_high"] = map(float, np.quantile(boot, [a, 1 - a]))
        rows.append(row)
    ranked = sorted((r for r in rows if r["mean"] is not None), key=lambda r: -r["mean"])
    for i, r in enumerate(ranked, 1):
        r["rank"] = i
    return rows


def _to_do(row, prefix, fam: str, tests) -> str:
    """What a fusion step lacks: a model (train one), or runs of a model that exists."""
    if row is not None and row["model_ids"]:
        m = row["model_ids"][0]
        missing = " ".join(f"--dataset {j}" for j in row["missing"])
        return f"cellbench evaluate --model {m} {missing}  # the model exists; runs are missing"
    return (
        f"cellbench train --config C.yaml  # C.yaml: datasets {prefix}, family {fam}; then "
        f"evaluate it on {', '.join(tests)}"
    )


_FUSION_SCHEMA = {
    "family": pl.Utf8,
    "k": pl.Int64,
    "train": pl.Utf8,
    "train_datasets": pl.Utf8,
    "observed": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "expected": pl.Float64,
    "observed_increment": pl.Float64,
    "expected_increment": pl.Float64,
    "gain": pl.Float64,
    "run_ids": pl.List(pl.Utf8),
    "command": pl.Utf8,
}


def fusion(
    store: Store,
    run_ids: Sequence[str] | None = None,
    metric: str = "pq",
    preset: str = "hovernet",
    test_datasets: Sequence[str] | None = None,
    n_boot: int = 1000,
    weighting: str = "per-dataset",
    family: str | None = None,
    test_set=None,
    empty: str = "drop",
) -> pl.DataFrame:
    """Top-k fusion (seed 003 §3.2, Figs. 5-7), per family, on the unified test set
    (``test_set`` / ``test_datasets`` / ``empty`` as in :func:`ranking`).

    The single-dataset training sets are ranked on the unified test set (:func:`ranking`) by
    their mean score over the families (:func:`mean_rank`, seed 003's "Mean Rank"); the fused
    set of step k is the **prefix** of that one overall order, the top k datasets merged, for
    every family alike (a family's own order may differ; seed 003 uses the overall one).

    - ``observed`` (k): the unified-test score of the family's model trained on exactly the
      top-k datasets (any order of the ``+`` parts); null where none is stored, with
      ``command`` saying what to train.
    - ``expected`` (k): for each test subset j, the best P(i, j) among the k single-dataset
      models i of the prefix, then averaged over the subsets with the ranking's weighting
      (each subset equally for ``per-dataset``; by its sample count for ``pooled``). This is
      the reading under which the paper's expected curve changes with k; the alternative
      reading, the best single model's unified score (constant in k), is
      ``expected`` at k = 1.
    - ``observed_increment`` / ``expected_increment``: the change from step k - 1 (Fig. 7);
      ``gain`` = observed - expected.
    """
    if weighting not in WEIGHTINGS:
        raise KeyError(f"unknown weighting '{weighting}' (choose {', '.join(WEIGHTINGS)})")
    ts = test_set_of(test_set)
    rows = []
    fams = _unified(store, metric, preset, family, test_datasets, run_ids, ts, empty)
    ranked_rows = {fam: _rank_family(u, fam, weighting, n_boot) for fam, u in fams.items()}
    # one order for every family: the overall ranking of the single-dataset training sets
    # (seed 003 §3.2/§4.2: the order of Experiment 1's overall ranking, "Mean Rank")
    overall = mean_rank([r for rs in ranked_rows.values() for r in rs if r["k"] == 1])
    common = sorted(overall, key=lambda t: (overall[t], t))
    for fam, u in fams.items():
        every = ranked_rows[fam]
        have = {r["train_datasets"] for r in every if r["rank"] is not None and r["k"] == 1}
        order = [t for t in common if t in have]
        if not order:
            continue
        by_parts = {_parts(r["train_datasets"]): r for r in every if r["k"] is not None}
        prev_obs = prev_exp = None
        for k in range(1, len(order) + 1):
            prefix = order[:k]
            per_test = [max(u.p(i, j) for i in prefix) for j in u.tests]
            if weighting == "pooled":
                w = np.array([len(u.values[(prefix[0], j)][0]) for j in u.tests], float)
                expected = float(np.dot(per_test, w) / w.sum())
            else:
                expected = float(np.mean(per_test))
            row = by_parts.get(frozenset(prefix))
            obs = row if row is not None and row["mean"] is not None else None
            observed = None if obs is None else obs["mean"]
            rows.append(
                {
                    "family": fam,
                    "k": k,
                    "train": "+".join(prefix),
                    "train_datasets": None if obs is None else obs["train_datasets"],
                    "observed": observed,
                    "ci_low": None if obs is None else obs["ci_low"],
                    "ci_high": None if obs is None else obs["ci_high"],
                    "expected": expected,
                    "observed_increment": None
                    if observed is None or prev_obs is None
                    else observed - prev_obs,
                    "expected_increment": None if prev_exp is None else expected - prev_exp,
                    "gain": None if observed is None else observed - expected,
                    "run_ids": [] if obs is None else obs["run_ids"],
                    "command": None if obs is not None else _to_do(row, prefix, fam, u.tests),
                }
            )
            prev_obs, prev_exp = observed, expected
    return pl.DataFrame(rows, schema=_FUSION_SCHEMA)
