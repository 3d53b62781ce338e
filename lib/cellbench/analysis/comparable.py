"""Which runs may be compared: coverage, sample sets and model families of the runs in a store.

Rules (seed 003's "identical test sets", issue 14):

- A run is **complete** when its status is ``complete`` and it covers a whole split (or every
  sample of its dataset): no ``--limit`` / ``--sample`` subset. A subset run is ``partial``
  wherever it is listed and never enters a matrix, ranking or fusion curve.
- Runs are compared only on **identical sample sets**. A run's sample set is the sorted list
  of the sample ids it scored, hashed (``sample_set``). For each test dataset the
  **reference sample set** is the one most complete runs of it share (ties: more samples,
  then the name); complete runs on another set (e.g. held-out centers only) are left out of
  comparisons and marked ``comparable = False``.
- On a **named test set** (:mod:`cellbench.data.testsets`, e.g. seed 003's NucFuse-test) the
  reference sample set of each dataset is the test set's member list instead: exactly the
  complete runs whose sample set equals it are compared, whether they were asked for with
  ``--test-set`` or cover the same samples as a split.
- A **model family** (architecture / recipe) groups models whose matrices are comparable:
  the card's ``training.family``, else its architecture, else ``<kind>:<model id>``. Two
  families trained on the same data give two matrices, never one cell overwritten.

Runs written before these fields were recorded get them derived: coverage from the run's
parameters, the sample set from its stored sample rows, the family from its model card.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from cellbench.runs.store import Store, coverage_of, sample_set_id

#: Coverages of a complete run: a whole split (or dataset), or exactly a stored test set.
WHOLE = ("split", "test-set")

#: Columns of :func:`run_table`.
RUN_TABLE_SCHEMA: dict[str, Any] = {
    "run_id": pl.Utf8,
    "status": pl.Utf8,
    "model_id": pl.Utf8,
    "family": pl.Utf8,
    "train_datasets": pl.Utf8,
    "test_dataset": pl.Utf8,
    "split": pl.Utf8,
    "preset": pl.Utf8,
    "iou": pl.Utf8,
    "coverage": pl.Utf8,
    "complete": pl.Boolean,
    "n_samples": pl.Int64,
    "sample_set": pl.Utf8,
    "comparable": pl.Boolean,
    "finished": pl.Utf8,
}


def _family(model_id: str, kind: str | None, cache: dict[str, str | None]) -> str | None:
    if kind == "predictions" or model_id is None or model_id.startswith("predictions:"):
        return None
    if model_id not in cache:
        from cellbench.core.errors import CellbenchError
        from cellbench.models.registry import get_model

        try:
            cache[model_id] = get_model(model_id).family
        except (CellbenchError, KeyError):
            cache[model_id] = f"{kind}:{model_id}" if kind else model_id
    return cache[model_id]


def _stored_sample_sets(store: Store, run_ids: list[str]) -> dict[str, tuple[str, int]]:
    if not run_ids:
        return {}
    ids = (
        store.scan(run_ids)
        .filter(pl.col("level") == "sample")
        .select("run_id", "sample_id")
        .unique()
        .group_by("run_id")
        .agg(pl.col("sample_id"))
        .collect()
    )
    return {r: (sample_set_id(s), len(s)) for r, s in ids.iter_rows()}


_CACHE: dict[tuple, pl.DataFrame] = {}


def run_table(store: Store, preset: str | None = None) -> pl.DataFrame:
    """One row per run with coverage, sample set, family and comparability (newest first).

    ``preset`` keeps only that preset's runs. See the module docstring for the rules. The
    table is kept while no run record of the store changes (names and modification times),
    so the matrix, ranking and fusion of one request derive it once.
    """
    files = sorted(
        (str(p), p.stat().st_mtime_ns) for r in store.roots() for p in (r / "runs").glob("*.json")
    )
    key = (preset, tuple(files))
    if key not in _CACHE:
        if len(_CACHE) > 8:
            _CACHE.clear()
        _CACHE[key] = _run_table(store, preset)
    return _CACHE[key]


def _run_table(store: Store, preset: str | None) -> pl.DataFrame:
    runs = store.runs()
    if runs.is_empty() or "preset" not in runs.columns:
        return pl.DataFrame(schema=RUN_TABLE_SCHEMA)
    if preset is not None:
        runs = runs.filter(pl.col("preset") == preset)
    recs = runs.to_dicts()
    need = [r["run_id"] for r in recs if not r.get("sample_set")]
    stored = _stored_sample_sets(store, need)
    fam_cache: dict[str, str | None] = {}
    rows = []
    for r in recs:
        params = r.get("parameters")
        params = json.loads(params) if isinstance(params, str) else params
        n = r.get("n_samples")
        sset = r.get("sample_set")
        if not sset:
            sset, n_rows = stored.get(r["run_id"], (None, 0))
            n = n if r.get("status") == "complete" else n_rows
        coverage = r.get("coverage") or coverage_of(params, n, r.get("n_split"))
        iou = r.get("iou")
        rows.append(
            {
                "run_id": r["run_id"],
                "status": r.get("status"),
                "model_id": r.get("model_id"),
                "family": r.get("family")
                or _family(r.get("model_id"), r.get("model_kind"), fam_cache),
                "train_datasets": r.get("train_datasets") or None,
                "test_dataset": r.get("test_dataset"),
                "split": r.get("split"),
                "preset": r.get("preset"),
                "iou": None if iou is None else str(iou),
                "coverage": coverage,
                "complete": r.get("status") == "complete" and coverage in WHOLE,
                "n_samples": n,
                "sample_set": sset,
                "comparable": False,
                "finished": r.get("finished"),
            }
        )
    table = pl.DataFrame(rows, schema=RUN_TABLE_SCHEMA)
    ref = pl.DataFrame(
        list(reference_sample_sets(table).items()),
        schema={"test_dataset": pl.Utf8, "ref_set": pl.Utf8},
        orient="row",
    )
    table = table.join(ref, on="test_dataset", how="left").with_columns(
        comparable=pl.col("complete") & (pl.col("sample_set") == pl.col("ref_set")).fill_null(False)
    )
    return table.drop("ref_set").sort("finished", descending=True, nulls_last=True)


def sample_sets(table: pl.DataFrame) -> pl.DataFrame:
    """The sample sets the runs of ``table`` (:func:`run_table` rows) were scored on:
    ``test_dataset``, ``sample_set``, ``runs``, ``n`` (samples), ``split``; most runs first
    (ties: more samples, then by name)."""
    return (
        table.group_by("test_dataset", "sample_set")
        .agg(runs=pl.len(), n=pl.col("n_samples").max(), split=pl.col("split").drop_nulls().first())
        .sort(
            ["runs", "n", "test_dataset", "sample_set"],
            descending=[True, True, False, False],
            nulls_last=True,
        )
    )


def reference_sample_sets(table: pl.DataFrame) -> dict[str, str]:
    """Per test dataset, the sample set most complete runs share (ties: larger, then name)."""
    done = table.filter(pl.col("complete") & pl.col("sample_set").is_not_null())
    if done.is_empty():
        return {}
    best = sample_sets(done).unique("test_dataset", keep="first", maintain_order=True)
    return dict(zip(best["test_dataset"], best["sample_set"], strict=True))


def test_set_of(test_set):
    """A :class:`~cellbench.data.testsets.TestSet` from a ref (``unified``, ``name@vN``), or
    None for ``None``."""
    if test_set is None or not isinstance(test_set, str):
        return test_set
    from cellbench.data.testsets import resolve

    return resolve(test_set)


def on_test_set(table: pl.DataFrame, test_set) -> pl.DataFrame:
    """The rows of ``table`` (a :func:`run_table`) whose sample set is the test set's members
    of their test dataset, with ``comparable`` set accordingly."""
    ts = test_set_of(test_set)
    sets = ts.sample_sets()
    member = pl.struct("test_dataset", "sample_set").map_elements(
        lambda r: sets.get(r["test_dataset"]) == r["sample_set"], return_dtype=pl.Boolean
    )
    return table.with_columns(comparable=(pl.col("status") == "complete") & member.fill_null(False))


def comparable_runs(
    store: Store,
    preset: str = "hovernet",
    family: str | None = None,
    run_ids=None,
    iou: str | None = "0.5",
    test_set=None,
) -> pl.DataFrame:
    """The run behind each (family, training set, test dataset) cell: the newest comparable run.

    Only runs of models with a training set; ``run_ids`` restricts the candidates (partial and
    non-comparable ones among them are still left out); ``iou`` keeps one IoU threshold
    (``None``: any); ``test_set`` (a ref or a ``TestSet``) compares on its member lists instead
    of the reference sample sets. Columns as :func:`run_table`.
    """
    t = run_table(store, preset)
    if test_set is not None:
        t = on_test_set(t, test_set)
    t = t.filter(
        pl.col("comparable")
        & pl.col("train_datasets").is_not_null()
        & pl.col("family").is_not_null()
    )
    if iou is not None:
        t = t.filter(pl.col("iou").is_null() | (pl.col("iou") == str(iou)))
    if family is not None:
        t = t.filter(pl.col("family") == family)
    if run_ids is not None:
        t = t.filter(pl.col("run_id").is_in(list(run_ids)))
    return t.sort("finished", descending=True, nulls_last=True).unique(
        ["family", "train_datasets", "test_dataset"], keep="first", maintain_order=True
    )
