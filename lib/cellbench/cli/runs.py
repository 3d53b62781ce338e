"""``cellbench evaluate``, ``results``, ``runs list|show`` and the ``jobs`` group."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cellbench.cli.common import (
    ADDRESS,
    COMPILE,
    DATASET,
    DEVICE,
    EXECUTOR,
    IOU,
    LIMIT,
    MODEL,
    PREDS,
    PRESET,
    SAMPLE,
    SPLIT,
    friendly,
    load_catalog,
    print_table,
)

runs_app = typer.Typer(no_args_is_help=True, help="Evaluation runs in the metrics store.")
jobs_app = typer.Typer(no_args_is_help=True, help="Background evaluation jobs.")


# -- evaluation -------------------------------------------------------------------------------


def _spec(
    dataset,
    split,
    model,
    predictions,
    preset,
    iou,
    device,
    batch_size,
    limit,
    sample,
    workers=1,
    test_set=None,
    task=None,
    executor="local",
    address=None,
    compile=False,
):
    from cellbench.runs.evaluate import EvalSpec

    if (model is None) == (predictions is None):
        raise typer.BadParameter("give exactly one of --model and --predictions")
    return EvalSpec(
        dataset=dataset,
        split=split,
        model=model,
        predictions=predictions,
        preset=preset,
        iou=iou,
        device=device,
        batch_size=batch_size,
        limit=limit,
        samples=sample or None,
        workers=workers,
        test_set=test_set,
        task=task,
        executor=executor,
        address=address,
        compile=compile,
    )


TASK = Annotated[
    str | None,
    typer.Option(
        help="instances, points or semantic (class masks: a model's instances as pixel classes, "
        "or stored class masks); default: semantic for a semantic preset (apacs23, "
        "pixels_image), else the dataset's kind."
    ),
]

TEST_SET = Annotated[
    str | None,
    typer.Option(
        help="Evaluate exactly the members of a stored test set (nucfuse-test, name@vN; "
        "unified = nucfuse-test); without --dataset, every dataset of it."
    ),
]


@friendly
def evaluate_cmd(
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            help="Test dataset id (see `cellbench catalog list`); optional with --test-set. "
            "Repeat for several (a grid with several --model)."
        ),
    ] = None,
    split: SPLIT = None,
    model: Annotated[
        list[str] | None,
        typer.Option(help="Registered model id; repeat for a model x dataset grid."),
    ] = None,
    predictions: PREDS = None,
    preset: PRESET = None,
    iou: IOU = "0.5",
    device: DEVICE = "cpu",
    batch_size: Annotated[int, typer.Option(help="Tiles per batch.")] = 8,
    limit: LIMIT = None,
    sample: SAMPLE = None,
    workers: Annotated[
        int,
        typer.Option(help="Post-processing processes; with --executor dask, local workers."),
    ] = 1,
    test_set: TEST_SET = None,
    task: TASK = None,
    executor: EXECUTOR = "local",
    address: ADDRESS = None,
    compile: COMPILE = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run record as JSON.")] = False,
):
    """Run a model (or read stored predictions) on a dataset and store per-sample metrics.

    Evaluating the same request again resumes an interrupted run (stored samples are skipped).
    With ``--test-set`` and no ``--dataset``, one run per dataset of the test set. Several
    ``--model`` and ``--dataset`` make a grid (every model on every dataset); with
    ``--executor dask`` its runs share one cluster (on a machine with several GPUs and
    ``--device cuda``, one GPU per worker).
    """
    if not dataset:
        if test_set is None:
            raise typer.BadParameter("give --dataset (or --test-set to evaluate all of it)")
        from cellbench.data.testsets import resolve

        datasets = resolve(test_set, load_catalog()).datasets
    else:
        datasets = list(dataset)
    models = list(model or [None])
    specs = [
        _spec(
            ds,
            split,
            m,
            predictions,
            preset,
            iou,
            device,
            batch_size,
            limit,
            sample,
            workers,
            test_set,
            task,
            executor,
            address,
            compile,
        )
        for m in models
        for ds in datasets
    ]
    shared = None
    if len(specs) > 1 and (executor != "local" or address):
        from cellbench.runs.executor import get_executor

        shared = get_executor(executor, address, max(2, workers))
    try:
        finals = [_evaluate_one(spec, as_json, shared) for spec in specs]
    finally:
        if shared is not None:
            shared.close()
    if as_json:
        one = len(specs) == 1 and bool(dataset)
        typer.echo(json.dumps(finals[0] if one else finals, indent=1))


def _evaluate_one(spec, quiet: bool, executor=None) -> dict:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from cellbench.runs.evaluate import Evaluation

    ev = Evaluation(spec)
    for w in ev.warnings:  # before the run: a wrong resolution is worth stopping for
        typer.echo(f"warning: {w}", err=True)
    cols = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*cols, transient=True) as bar:
        task = bar.add_task(ev.run_id[:48], total=len(ev.records))

        def progress(p) -> None:
            bar.update(task, completed=p.done, description=f"{p.sample_id or 'done'}")

        # parts of at least a second's work: a fast run is not slowed by its own commits
        final = ev.run(progress=progress, executor=executor, flush_min_seconds=1.0)
    if quiet:
        return final
    from cellbench.analysis import dataset_figures

    shown = {
        "semantic": ("pixel_accuracy", "iou", "dice"),
        "isbi2014": ("dsc", "fno", "tpp", "fpp", "fdro", "pq", "aji"),
    }.get(
        ev.task if ev.task == "semantic" else ev.preset, ("pq", "aji", "dice1", "f1", "mf1", "mpq")
    )
    figs = dataset_figures(ev.store, [ev.run_id]).filter(pl_col_in("metric", shown))
    where = f" on {final['test_set']}" if final.get("test_set") else ""
    typer.echo(
        f"run {final['run_id']}{where}: {final['status']} ({final['n_done']}/{final['n_samples']})"
    )
    for r in figs.iter_rows(named=True):
        if r["value"] is not None:
            typer.echo(f"  {r['class']:>12} {r['metric']:<14} {r['value']:.4f}")
    for note in ev.catalog.caveats([spec.dataset]):
        typer.echo(f"note: {note}", err=True)
    return final


def _check_names(store, runs, metric: str, group_by, figure: str) -> None:
    """Unknown runs, metrics or group keys are errors listing the valid ones (an unknown metric
    gave an empty table, an unknown group key a polars traceback)."""
    from cellbench.core.errors import CellbenchError
    from cellbench.runs.store import GROUP_KEYS

    known_runs = set(store.run_ids())
    missing = [r for r in runs if r not in known_runs]
    if missing:
        raise CellbenchError(f"no run {missing[0]!r} in the store (`cellbench runs list`)")
    keys = (*GROUP_KEYS, "class", "sample_id", "split")
    bad = [g for g in group_by if g not in keys]
    if bad:
        raise CellbenchError(f"unknown group key {bad[0]!r}; choose one of {', '.join(keys)}")
    if figure == "mean":
        import polars as pl

        have = sorted(
            store.scan(list(runs)).select(pl.col("metric").unique()).collect()["metric"].to_list()
        )
        if metric not in have:
            raise CellbenchError(
                f"no metric {metric!r} in run(s) {', '.join(runs)}; they hold: {', '.join(have)}"
            )


def pl_col_in(col: str, values):
    import polars as pl

    return pl.col(col).is_in(list(values))


@runs_app.command("list")
@friendly
def runs_list(as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False):
    """Runs in the store, newest first (status, model, dataset, preset, progress)."""
    from cellbench.runs.store import RUN_COLUMNS, Store

    store = Store()
    rows = store.runs().to_dicts()
    for e in store.problems:
        typer.echo(f"warning: skipped {e} (see `cellbench store check`)", err=True)
    if as_json:
        typer.echo(json.dumps(rows, indent=1, default=str))
    else:
        print_table(rows, list(RUN_COLUMNS))


store_app = typer.Typer(no_args_is_help=True, help="The metrics store.")


@store_app.command("check")
@friendly
def store_check(
    repair: Annotated[
        bool, typer.Option(help="Quarantine bad files and remove left-overs of killed writes.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
):
    """List problems of the metrics store (unreadable records, corrupted parts, duplicated or
    missing rows); exit status 1 while any is left unrepaired."""
    from cellbench.runs.check import check_store
    from cellbench.runs.store import Store

    store = Store()
    problems = check_store(store, repair=repair)
    if as_json:
        typer.echo(json.dumps([p.as_dict() for p in problems], indent=1))
    else:
        for p in problems:
            done = f"  [{p.repaired}]" if p.repaired else ""
            typer.echo(f"{p.path}: {p.problem}{done}")
        left = sum(p.repaired is None for p in problems)
        typer.echo(f"{len(problems)} problem(s), {left} left, in {store.root}", err=True)
    if any(p.repaired is None for p in problems):
        raise typer.Exit(1)


@runs_app.command("show")
@friendly
def runs_show(run_id: str):
    """A run's record: provenance, parameters, status."""
    from cellbench.runs.store import Store

    typer.echo(json.dumps(Store().get_run(run_id), indent=1))


@friendly
def results_cmd(
    run: Annotated[list[str], typer.Option(help="Run id (repeatable).")],
    metric: Annotated[str, typer.Option(help="Metric (pq, aji, dice1, f1 ...).")] = "pq",
    group_by: Annotated[
        list[str] | None,
        typer.Option(help="Group key: center, organ, stain, category, class, sample_id ..."),
    ] = None,
    cls: Annotated[str, typer.Option("--class", help="Class name or all.")] = "all",
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% CI.")] = 1000,
    figure: Annotated[
        str,
        typer.Option(
            help="mean: mean of per-sample values with CIs (n >= 5); pooled: the preset's own "
            "dataset figure per group from pooled counts (one run, one --group-by)."
        ),
    ] = "mean",
    confusion: Annotated[
        bool,
        typer.Option(
            "--confusion",
            help="The confusion matrix of matched objects (true x predicted class, (none) for "
            "unpaired), replaying the run's predictions.",
        ),
    ] = False,
    normalise: Annotated[
        str, typer.Option(help="Confusion: none (counts), true (rows sum to 1) or pred.")
    ] = "none",
    curve: Annotated[
        bool,
        typer.Option(
            "--curve",
            help="Point runs: precision / recall / F1 against the score threshold per class, "
            "with the operating point and the best threshold.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
):
    """Per-group results of runs: means with bootstrap 95% CIs, or the preset's pooled figure;
    or one run's confusion matrix / threshold curves."""
    from cellbench.analysis import group_summary, pooled_groups
    from cellbench.runs.store import Store

    store = Store()
    tested = [store.get_run(r).get("test_dataset") for r in run]
    for note in load_catalog().caveats(tested):
        typer.echo(f"note: {note}", err=True)
    if confusion or curve:
        _detail(store, run, confusion, curve, normalise, as_json)
        return
    if figure not in ("mean", "pooled"):
        raise typer.BadParameter("--figure must be mean or pooled")
    _check_names(store, run, metric, group_by or [], figure)
    if figure == "pooled":
        if len(run) != 1 or len(group_by or []) != 1:
            raise typer.BadParameter("--figure pooled needs one --run and one --group-by")
        df = pooled_groups(store, run[0], group_by[0])
        if cls != "all":
            df = df.filter(df["class"] == cls)
        if as_json:
            typer.echo(json.dumps(df.to_dicts(), indent=1))
        else:
            rows = [
                {**r, "value": "" if r["value"] is None else f"{r['value']:.4f}"}
                for r in df.to_dicts()
            ]
            print_table(rows, ["group", "n", "class", "metric", "value"])
        return
    by = ["run_id", *(group_by or [])]
    df = group_summary(store, run, metric, by, cls=cls, n_boot=n_boot)
    if as_json:
        typer.echo(json.dumps(df.to_dicts(), indent=1))
    else:
        rows = [
            {
                **r,
                "mean": f"{r['mean']:.4f}",
                "95% CI": "(n < 5)"
                if r["ci_low"] is None
                else f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]",
            }
            for r in df.to_dicts()
        ]
        print_table(rows, [*by, "n", "mean", "95% CI", "resampled"])


def _detail(store, run: list[str], confusion: bool, curve: bool, normalise: str, as_json: bool):
    from rich.progress import Progress

    from cellbench.analysis.detail import (
        best_thresholds,
        confusion_frame,
        curve_frame,
        run_analysis,
    )

    if len(run) != 1:
        raise typer.BadParameter("--confusion / --curve take one --run")
    with Progress(transient=True) as bar:
        task = bar.add_task("replaying the run's predictions", total=None)
        a = run_analysis(
            store, run[0], progress=lambda k, n: bar.update(task, completed=k, total=n)
        )
    out: dict = {"run_id": run[0], "pairing": a["pairing"], "classes": a["classes"]}
    if confusion:
        out["normalise"] = normalise
        out["confusion"] = confusion_frame(a, normalise).to_dicts()
    if curve:
        if a["task"] != "points":
            raise typer.BadParameter("--curve: threshold curves are for point (detection) runs")
        out["curve"] = curve_frame(a).to_dicts()
        out["operating"] = best_thresholds(a).to_dicts()
    if as_json:
        typer.echo(json.dumps(out, indent=1))
        return
    if confusion:
        typer.echo(f"confusion of matched objects ({a['pairing']}); rows: true, columns: predicted")

        def fmt(v):
            if isinstance(v, str) or v is None:
                return v or ""
            return f"{v:.0f}" if normalise == "none" else f"{v:.3f}"

        rows = [{k: fmt(v) for k, v in r.items()} for r in out["confusion"]]
        print_table(rows, list(rows[0]))
    if curve:
        typer.echo("F1 at the operating point (every prediction kept) and at the best threshold")
        rows = [
            {k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()}
            for r in out["operating"]
        ]
        print_table(rows, ["class", "f1_operating", "best_threshold", "best_f1", "n_true"])


@jobs_app.command("submit")
@friendly
def jobs_submit(
    dataset: DATASET,
    split: SPLIT = None,
    model: MODEL = None,
    predictions: PREDS = None,
    preset: PRESET = None,
    iou: IOU = "0.5",
    device: DEVICE = "cpu",
    batch_size: Annotated[int, typer.Option(help="Tiles per batch.")] = 8,
    limit: LIMIT = None,
    sample: SAMPLE = None,
):
    """Start an evaluation in the background; prints the job id."""
    from cellbench.runs.jobs import submit_job

    spec = _spec(dataset, split, model, predictions, preset, iou, device, batch_size, limit, sample)
    typer.echo(submit_job(spec))


@jobs_app.command("list")
@friendly
def jobs_list(as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False):
    """Jobs, newest first, with their progress."""
    from cellbench.runs.jobs import list_jobs

    rows = list_jobs()
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
    else:
        print_table(rows, ["job_id", "status", "done", "total", "sample_id", "run_id"])


@jobs_app.command("status")
@friendly
def jobs_status(job_id: str):
    """One job's progress (done/total, current sample, ETA, status) as JSON."""
    from cellbench.runs.jobs import job_status

    typer.echo(json.dumps(job_status(job_id), indent=1))


@jobs_app.command("cancel")
@friendly
def jobs_cancel(
    job_id: str,
    kill: Annotated[bool, typer.Option(help="Stop now (SIGTERM) instead of after the sample.")] = (
        False
    ),
):
    """Cancel a job; samples already stored stay, `jobs resume` finishes it later."""
    from cellbench.runs.jobs import cancel_job

    cancel_job(job_id, kill=kill)
    typer.echo(f"cancel requested for {job_id}")


@jobs_app.command("resume")
@friendly
def jobs_resume(job_id: str):
    """Start an interrupted, failed or cancelled job again (stored samples are skipped)."""
    from cellbench.runs.jobs import resume_job

    resume_job(job_id)
    typer.echo(f"resumed {job_id}")
