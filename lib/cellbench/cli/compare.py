"""``cellbench compare matrix|ranking|fusion``: cross-dataset comparisons (seed 003).

Only complete runs on identical sample sets enter (:mod:`cellbench.analysis.comparable`).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cellbench.cli.common import friendly, print_table

compare_app = typer.Typer(
    no_args_is_help=True, help="Cross-dataset comparisons: matrix, ranking, fusion."
)

PRESET_OPT = Annotated[str, typer.Option(help="Metric preset of the runs compared.")]
METRIC_OPT = Annotated[str, typer.Option(help="Per-sample metric (pq, aji, dice1 ...).")]
FAMILY_OPT = Annotated[str | None, typer.Option(help="Model family (default: every family).")]
WEIGHTING_OPT = Annotated[
    str, typer.Option(help="per-dataset (each test dataset weighs the same) or pooled.")
]
TESTS_OPT = Annotated[
    list[str] | None,
    typer.Option("--test", help="Test datasets of the unified test set (default: all tested)."),
]
JSON_OPT = Annotated[bool, typer.Option("--json", help="JSON output.")]
EMPTY_OPT = Annotated[
    str,
    typer.Option(
        help="Samples whose metric is undefined for a run (neither GT nor prediction): drop "
        "(left out for every compared run alike) or perfect (count as 1.0)."
    ),
]
TEST_SET_OPT = Annotated[
    str,
    typer.Option(
        help="runs (default: per test dataset, the sample set most complete runs share), "
        "unified (= nucfuse-test, seed 003) or another stored test set (name, name@vN): "
        "runs on exactly its members."
    ),
]


def _test_set(ref: str, test: list[str] | None):
    """``None`` for ``runs``, else the stored test set (built first if it is a preset)."""
    if ref == "runs":
        return None
    from cellbench.data.testsets import resolve

    ts = resolve(ref)
    if test:
        unknown = sorted(set(test) - set(ts.datasets))
        if unknown:
            raise typer.BadParameter(f"--test {unknown}: not in test set {ts.ref}")
    return ts


def _check_empty(empty: str) -> None:
    from cellbench.analysis import EMPTY_POLICIES

    if empty not in EMPTY_POLICIES:
        raise typer.BadParameter(f"--empty must be one of {', '.join(EMPTY_POLICIES)}")


def _say_test_set(ts, as_json: bool) -> dict:
    if ts is None:
        return {"test_set": "runs"}
    if not as_json:
        typer.echo(
            f"test set {ts.ref}: {', '.join(ts.datasets)}"
            + (f" (no local data for {', '.join(ts.missing)})" if ts.missing else ""),
            err=True,
        )
    return {"test_set": ts.ref, "test_datasets": ts.datasets, "missing": ts.missing}


def _fmt(v) -> str:
    if v is None:
        return ""
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _emit(rows: list[dict], cols: list[str], as_json: bool, extra: dict | None = None) -> None:
    if as_json:
        typer.echo(json.dumps({"rows": rows, **(extra or {})} if extra else rows, indent=1))
    elif not rows:
        typer.echo(
            "no complete, comparable runs match (check --family / --test / --preset against "
            "`cellbench runs list`)",
            err=True,
        )
    else:
        print_table([{c: _fmt(r.get(c)) for c in cols} for r in rows], cols)


@compare_app.command("matrix")
@friendly
def compare_matrix(
    preset: PRESET_OPT = "hovernet",
    metric: METRIC_OPT = "pq",
    family: FAMILY_OPT = None,
    normalise: Annotated[
        str, typer.Option(help="diagonal (P_ij / P_jj), paper (seed 003 as printed) or raw.")
    ] = "raw",
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
    test_set: TEST_SET_OPT = "runs",
    empty: EMPTY_OPT = "drop",
    as_json: JSON_OPT = False,
):
    """P(D_i, D_j) (rows: training set, columns: test set) or its normalisation C_ij."""
    from cellbench.analysis import CROSS_FORMS, EMPTY_POLICIES, cross_correlation, train_test_matrix
    from cellbench.runs.store import Store

    if normalise not in CROSS_FORMS:
        raise typer.BadParameter(f"--normalise must be one of {', '.join(CROSS_FORMS)}")
    _check_empty(empty)
    ts = _test_set(test_set, None)
    long = train_test_matrix(
        Store(), metric, preset, n_boot=n_boot, family=family, test_set=ts, empty=empty
    )
    cells = {(r["family"], r["train_datasets"], r["test_dataset"]): r for r in long.to_dicts()}
    values = cross_correlation(long, normalise) if normalise != "raw" else None
    rows = []
    for r in values.to_dicts() if values is not None else long.to_dicts():
        cell = cells.get((r["family"], r["train_datasets"], r["test_dataset"]), {})
        rows.append(
            {
                "family": r["family"],
                "train": r["train_datasets"],
                "test": r["test_dataset"],
                "value": r["value"] if values is not None else r["mean"],
                "ci_low": None if values is not None else r["ci_low"],
                "ci_high": None if values is not None else r["ci_high"],
                "n": cell.get("n"),
                "undefined": cell.get("undefined"),
                "run_ids": cell.get("run_ids", []),
                "complete": cell.get("complete", False),
            }
        )
    cols = ["family", "train", "test", "value", "ci_low", "ci_high", "n", "undefined", "run_ids"]
    _emit(rows, cols, as_json)
    if not as_json:
        _say_test_set(ts, as_json)
        typer.echo(CROSS_FORMS[normalise], err=True)
        typer.echo(f"undefined samples ({empty}): {EMPTY_POLICIES[empty]}", err=True)


@compare_app.command("ranking")
@friendly
def compare_ranking(
    preset: PRESET_OPT = "hovernet",
    metric: METRIC_OPT = "pq",
    family: FAMILY_OPT = None,
    weighting: WEIGHTING_OPT = "per-dataset",
    test: TESTS_OPT = None,
    test_set: TEST_SET_OPT = "runs",
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
    empty: EMPTY_OPT = "drop",
    as_json: JSON_OPT = False,
):
    """Training sets ranked on the unified test set, per family, with seed 003's Mean Rank
    (the rank of the mean score over the families)."""
    from cellbench.analysis import ranking
    from cellbench.runs.store import Store

    _check_empty(empty)
    ts = _test_set(test_set, test)
    r = ranking(
        Store(), None, metric, preset, test, n_boot, weighting, family, test_set=ts, empty=empty
    )
    rows = [{**x, "train": x["train_datasets"]} for x in r.to_dicts()]
    mean_rank = {x["train"]: x["mean_rank"] for x in rows}
    cols = ["family", "rank", "train", "mean", "ci_low", "ci_high", "n_datasets", "n", "mean_rank"]
    extra = {"mean_rank": mean_rank, "weighting": weighting, **_say_test_set(ts, as_json)}
    _emit(rows, cols, as_json, extra)
    if not as_json:  # why a row has no rank: the test datasets its model(s) were not run on
        for x in rows:
            if x["rank"] is None and x.get("missing"):
                models = ", ".join(x.get("model_ids") or []) or "its model"
                typer.echo(
                    f"note: {x['train']} ({x['family']}) not ranked: {models} has no comparable "
                    f"run on {', '.join(x['missing'])} (cellbench evaluate --model "
                    f"{(x.get('model_ids') or ['MODEL'])[0]} "
                    + " ".join(f"--dataset {j}" for j in x["missing"])
                    + ")",
                    err=True,
                )


@compare_app.command("fusion")
@friendly
def compare_fusion(
    preset: PRESET_OPT = "hovernet",
    metric: METRIC_OPT = "pq",
    family: FAMILY_OPT = None,
    weighting: WEIGHTING_OPT = "per-dataset",
    test: TESTS_OPT = None,
    test_set: TEST_SET_OPT = "runs",
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
    empty: EMPTY_OPT = "drop",
    as_json: JSON_OPT = False,
):
    """Top-k fusion: observed vs expected per k (prefixes of the ranking) and increments."""
    from cellbench.analysis import fusion
    from cellbench.runs.store import Store

    _check_empty(empty)
    ts = _test_set(test_set, test)
    f = fusion(
        Store(), None, metric, preset, test, n_boot, weighting, family, test_set=ts, empty=empty
    )
    rows = f.to_dicts()
    cols = [
        "family",
        "k",
        "train",
        "observed",
        "expected",
        "observed_increment",
        "expected_increment",
    ]
    _emit(rows, cols, as_json, _say_test_set(ts, as_json) if as_json else None)
    if not as_json:
        _say_test_set(ts, as_json)
    for r in rows:
        if r["command"] and not as_json:
            what = "runs missing for" if "evaluate" in r["command"] else "no model trained on"
            typer.echo(f"k={r['k']}: {what} {r['train']}: {r['command']}", err=True)


@compare_app.command("seeds")
@friendly
def compare_seeds(
    preset: PRESET_OPT = "hovernet",
    metric: METRIC_OPT = "pq",
    cls: Annotated[str, typer.Option("--class", help="Class name or all.")] = "all",
    as_json: JSON_OPT = False,
):
    """The preset's dataset figure over repeated training runs (models of one family and
    training set differing by seed): mean, sd, 95% t-interval, n_runs."""
    from cellbench.analysis.training import seed_summary
    from cellbench.runs.store import Store

    rows = seed_summary(Store(), metric, preset, cls).to_dicts()
    cols = ["family", "train_datasets", "test_dataset", "n_runs", "mean", "sd", "ci_low", "ci_high"]
    _emit(rows, cols, as_json)
