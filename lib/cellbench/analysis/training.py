"""Training analyses: loss curves from ``train_log.jsonl`` and aggregation over repeated
training runs (seeds).

- :func:`training_log`: one model's log as a long table (``epoch``, ``split`` train / val,
  ``term`` loss / np_bce / ..., ``value``).
- :func:`aggregate_logs`: several models' logs (repeats of one recipe with different seeds)
  as mean, standard deviation and a 95% t-interval per epoch and term, with n (the number of
  runs that reached that epoch: early stopping ends runs at different epochs).
- :func:`seed_summary`: the preset's dataset figure of comparable runs, aggregated over the
  models of one (family, training set) that differ only by seed (seed 004 Tables 5-7 report
  mean and spread over 5 runs): ``mean``, ``sd``, 95% t-interval (n >= 2), n_runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats

from cellbench.analysis.comparable import run_table
from cellbench.core.errors import DataError
from cellbench.runs.store import Store

LOG_NAME = "train_log.jsonl"
_LOG_SCHEMA = {
    "model_id": pl.Utf8,
    "seed": pl.Int64,
    "epoch": pl.Int64,
    "split": pl.Utf8,
    "term": pl.Utf8,
    "value": pl.Float64,
}


def _model_dir(model: str | Path) -> tuple[str, Path, int | None]:
    p = Path(model)
    if p.is_dir():
        seed = None
        card = p / "card.yaml"
        if card.is_file():
            from cellbench.models.card import load_card

            c = load_card(card)
            return c.id, p, c.training.seed
        return p.name, p, seed
    from cellbench.models.registry import get_model

    c = get_model(str(model))
    return c.id, c.path.parent, c.training.seed


def training_log(model: str | Path) -> pl.DataFrame:
    """The log of a registered model (id) or a checkpoint folder, long format.

    Keys ``train_<term>`` and ``val_<term>`` of each line become rows ``split``/``term``; a
    line that is not a JSON object is an error naming the file and line.
    """
    model_id, folder, seed = _model_dir(model)
    path = folder / LOG_NAME
    if not path.is_file():
        raise DataError(path, "no training log (models trained elsewhere have none)")
    rows = []
    for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            epoch = int(rec["epoch"])
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            raise DataError(path, f"line {k}: not a training log record ({e})") from None
        for key, v in rec.items():
            split, _, term = key.partition("_")
            if split in ("train", "val") and term and isinstance(v, (int, float)):
                rows.append((model_id, seed, epoch, split, term, float(v)))
    return pl.DataFrame(rows, schema=_LOG_SCHEMA, orient="row")


def _t_interval(mean: float, sd: float, n: int, level: float = 0.95):
    if n < 2 or not np.isfinite(sd):
        return None, None
    h = stats.t.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n)
    return mean - h, mean + h


def _with_interval(df: pl.DataFrame, n_col: str = "n") -> pl.DataFrame:
    lo, hi = [], []
    for m, s, n in df.select("mean", "sd", n_col).iter_rows():
        a, b = _t_interval(m, s if s is not None else np.nan, n)
        lo.append(a)
        hi.append(b)
    return df.with_columns(
        ci_low=pl.Series(lo, dtype=pl.Float64), ci_high=pl.Series(hi, dtype=pl.Float64)
    )


def aggregate_logs(models: Sequence[str | Path]) -> pl.DataFrame:
    """Mean, sd, 95% t-interval and n over the models' logs, per ``epoch``, ``split``, ``term``."""
    logs = pl.concat([training_log(m) for m in models])
    out = (
        logs.group_by("epoch", "split", "term")
        .agg(
            mean=pl.col("value").mean(),
            sd=pl.col("value").std(),
            n=pl.len(),
            models=pl.col("model_id").sort().str.join(","),
        )
        .sort("split", "term", "epoch")
    )
    return _with_interval(out)


def seed_summary(
    store: Store, metric: str = "pq", preset: str = "hovernet", cls: str = "all"
) -> pl.DataFrame:
    """The preset's dataset-level ``metric`` over replicate models, per (family, training set,
    test dataset): ``n_runs``, ``mean``, ``sd``, ``ci_low``/``ci_high`` (95% t, n >= 2),
    ``model_ids``, ``values``.

    Replicates are the comparable runs (complete, on the test dataset's reference sample set)
    of distinct models sharing family and training set, one run per model (the newest).
    """
    t = run_table(store, preset).filter(
        pl.col("comparable") & pl.col("train_datasets").is_not_null()
    )
    t = t.unique(["model_id", "test_dataset"], keep="first", maintain_order=True)
    schema = {
        "family": pl.Utf8,
        "train_datasets": pl.Utf8,
        "test_dataset": pl.Utf8,
        "n_runs": pl.Int64,
        "mean": pl.Float64,
        "sd": pl.Float64,
        "ci_low": pl.Float64,
        "ci_high": pl.Float64,
        "model_ids": pl.List(pl.Utf8),
        "values": pl.List(pl.Float64),
    }
    if t.is_empty():
        return pl.DataFrame(schema=schema)
    vals = (
        store.scan(t["run_id"].to_list())
        .filter(
            (pl.col("level") == "dataset") & (pl.col("metric") == metric) & (pl.col("class") == cls)
        )
        .select("run_id", "value")
        .collect()
    )
    joined = t.join(vals, on="run_id", how="inner").filter(pl.col("value").is_not_null())
    out = (
        joined.sort("model_id")
        .group_by("family", "train_datasets", "test_dataset")
        .agg(
            n_runs=pl.len(),
            mean=pl.col("value").mean(),
            sd=pl.col("value").std(),
            model_ids=pl.col("model_id"),
            values=pl.col("value"),
        )
    )
    out = _with_interval(out, "n_runs")
    return out.select(list(schema)).sort("family", "train_datasets", "test_dataset")
