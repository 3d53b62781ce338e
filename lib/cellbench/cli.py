"""The ``cellbench`` command line.

Every error caused by input is printed as one line (``error: <file>: <problem>``) with exit
status 2; no traceback reaches the user.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from cellbench.errors import CellbenchError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="cellbench workbench CLI")
catalog_app = typer.Typer(no_args_is_help=True, help="Browse and validate the dataset catalog.")
app.add_typer(catalog_app, name="catalog")
score_app = typer.Typer(
    no_args_is_help=True, help="Score stored predictions (instance maps or points)."
)
app.add_typer(score_app, name="score")


def _friendly(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CellbenchError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        except KeyError as e:
            typer.echo(f"error: {e.args[0] if e.args else e}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def _catalog(path: Path | None = None):
    from cellbench.catalog import load_catalog

    return load_catalog(path)


def catalog_rows(cat) -> list[dict]:
    """One summary dict per dataset (the JSON of ``catalog list``)."""
    from cellbench.samples import records

    rows = []
    for d in cat:
        avail = cat.is_available(d)
        rows.append(
            {
                "id": d.id,
                "name": d.name,
                "stain": d.stain,
                "modality": d.modality,
                "organs": d.organs,
                "tasks": d.tasks,
                "mpp": d.mpp,
                "classes": [c.name for c in d.classes],
                "license": d.license,
                "citation": d.citation,
                "url": d.url,
                "available": avail,
                "n_samples": len(records(cat, d.id)) if avail else 0,
                "obtain": None if avail else d.obtain,
            }
        )
    return rows


@catalog_app.command("list")
@_friendly
def catalog_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
):
    """List every dataset with its availability and local sample count."""
    rows = catalog_rows(_catalog())
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"{'id':<15} {'avail':<6} {'samples':>7}  {'stain':<9} {'tasks':<40} name")
    for r in rows:
        typer.echo(
            f"{r['id']:<15} {'yes' if r['available'] else 'no':<6} {r['n_samples']:>7}  "
            f"{','.join(r['stain']):<9} {','.join(r['tasks']):<40} {r['name']}"
        )


@catalog_app.command("show")
@_friendly
def catalog_show(dataset_id: str):
    """Show one catalog entry, with local counts per split when the data is present."""
    import yaml

    from cellbench.samples import sample_table

    cat = _catalog()
    d = cat.get(dataset_id)
    out = d.model_dump(exclude_none=True)
    out["available"] = cat.is_available(d)
    if out["available"]:
        t = sample_table(cat, [d.id])
        out["local_counts"] = {
            str(s): {"samples": int(n), "objects": int(o or 0)}
            for s, n, o in t.group_by("split")
            .agg(n=t["sample_id"].len(), o=t["n_objects"].sum())
            .sort("split", nulls_last=True)
            .iter_rows()
        }
    typer.echo(yaml.safe_dump(out, sort_keys=False, allow_unicode=True, width=100))


@catalog_app.command("validate")
@_friendly
def catalog_validate(
    path: Annotated[
        Path | None, typer.Argument(help="Catalog YAML (default: the active one).")
    ] = None,
):
    """Validate a catalog file against the schema and the class hierarchy."""
    cat = _catalog(path)
    n_avail = sum(cat.is_available(d) for d in cat)
    typer.echo(f"OK: {cat.path}: {len(cat)} datasets, {n_avail} with local data under {cat.root}")


@app.command("samples")
@_friendly
def samples_cmd(
    dataset_id: str,
    split: Annotated[str | None, typer.Option(help="Only this split.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="json, csv or parquet.")] = "csv",
    out: Annotated[
        Path | None, typer.Option(help="Write to this file (required for parquet).")
    ] = None,
):
    """Print (or write) the sample metadata table of a dataset."""
    from cellbench.samples import sample_table

    cat = _catalog()
    cat.get(dataset_id)
    t = sample_table(cat, [dataset_id], split=split)
    if fmt not in ("json", "csv", "parquet"):
        raise typer.BadParameter("--format must be json, csv or parquet")
    if fmt == "parquet":
        if out is None:
            raise typer.BadParameter("--format parquet needs --out FILE")
        t.write_parquet(out)
    elif fmt == "json":
        text = json.dumps(t.to_dicts(), indent=1, default=str)
        out.write_text(text) if out else typer.echo(text)
    else:
        text = t.write_csv()
        out.write_text(text) if out else sys.stdout.write(text)
    if out:
        typer.echo(f"wrote {t.height} rows to {out}", err=True)


def _write_result(result: dict, out: Path | None) -> None:
    from cellbench.atomic import write_json_atomic

    if out is None:
        typer.echo(json.dumps(result, indent=1, allow_nan=False))
    else:
        write_json_atomic(out, result)
        typer.echo(f"wrote {out}", err=True)


def _summary(agg: dict, keys: tuple[str, ...]) -> str:
    parts = [f"{k}={agg[k]:.4f}" for k in keys if isinstance(agg.get(k), float)]
    return " ".join(parts)


@score_app.command("instances")
@_friendly
def score_instances(
    gt: Annotated[Path, typer.Option(help="Folder of ground-truth instance maps.")],
    pred: Annotated[Path, typer.Option(help="Folder of same-named predicted maps.")],
    preset: Annotated[str, typer.Option(help="hovernet, stardist, conic, torchmetrics.")] = (
        "hovernet"
    ),
    iou: Annotated[str, typer.Option(help="IoU threshold, list (0.5,0.75) or 0.5:0.95.")] = ("0.5"),
    out: Annotated[Path | None, typer.Option(help="Write the JSON here.")] = None,
):
    """Score instance maps (.npy, .png, .tif; 0 = background, any integer ids)."""
    from cellbench.metrics.io import score_instance_dirs

    def progress(k: int, n: int, stem: str) -> None:
        if out is not None:
            typer.echo(f"\r[{k}/{n}] {stem}", err=True, nl=k == n)

    res = score_instance_dirs(gt, pred, preset, iou, progress=progress)
    _write_result(res, out)
    if out is not None:
        typer.echo(
            _summary(res["aggregate"], ("pq", "dq", "sq", "aji", "aji_plus", "dice1")), err=True
        )


@score_app.command("points")
@_friendly
def score_points(
    gt: Annotated[Path, typer.Option(help="Ground truth, Grand-Challenge Multiple points.")],
    pred: Annotated[Path, typer.Option(help="Predictions, same format.")],
    preset: Annotated[str, typer.Option(help="ocelot or hungarian.")] = "ocelot",
    radius_px: Annotated[float | None, typer.Option(help="Radius in pixels (15).")] = None,
    radius_um: Annotated[float | None, typer.Option(help="Radius in microns.")] = None,
    mpp: Annotated[float | None, typer.Option(help="Microns per pixel.")] = None,
    order: Annotated[
        str, typer.Option(help="ocelot: probability, or official (the challenge script).")
    ] = "probability",
    out: Annotated[Path | None, typer.Option(help="Write the JSON here.")] = None,
):
    """Score point detections per class (precision, recall, F1) and mF1."""
    from cellbench.metrics.io import score_point_files

    res = score_point_files(
        gt, pred, preset, radius_px=radius_px, radius_um=radius_um, mpp=mpp, order=order
    )
    _write_result(res, out)
    if out is not None:
        agg = res["aggregate"]
        f1 = " ".join(f"F1/{c}={v['f1']}" for c, v in agg["per_class"].items())
        typer.echo(f"{f1} mF1={agg['mf1']}", err=True)


@score_app.command("presets")
def score_presets():
    """Describe every metric preset (matching, epsilons, averaging, empty images)."""
    from cellbench.metrics import PRESETS, describe

    for name in PRESETS:
        typer.echo(describe(name) + "\n")


# -- models -----------------------------------------------------------------------------------

models_app = typer.Typer(no_args_is_help=True, help="The model registry.")
app.add_typer(models_app, name="models")
runs_app = typer.Typer(no_args_is_help=True, help="Evaluation runs in the metrics store.")
app.add_typer(runs_app, name="runs")
jobs_app = typer.Typer(no_args_is_help=True, help="Background evaluation jobs.")
app.add_typer(jobs_app, name="jobs")


def _table(rows: list[dict], cols: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(*cols)
    for r in rows:
        t.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in cols))
    Console(width=None if sys.stdout.isatty() else 240).print(t)


@models_app.command("list")
@_friendly
def models_list(as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False):
    """Registered models: bundled, the user's ($CELLBENCH_HOME/models), data-root bioimage.io."""
    from cellbench.models.registry import list_models, model_row

    rows = [model_row(c) for c in list_models()]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
    else:
        _table(rows, ["id", "kind", "output", "channels", "mpp", "train_datasets", "available"])


@models_app.command("show")
@_friendly
def models_show(model_id: str):
    """Print a model's card."""
    from cellbench.models.card import dump_card
    from cellbench.models.registry import get_model

    card = get_model(model_id)
    typer.echo(f"# {card.path}\n" + dump_card(card.card))


@models_app.command("verify")
@_friendly
def models_verify(model_id: str):
    """Check a model's weights against its card's sha256 and load them."""
    from cellbench.models.registry import get_model, load_predictor

    load_predictor(get_model(model_id))
    typer.echo(f"{model_id}: weights verified and loaded")


@models_app.command("import-bioimageio")
@_friendly
def models_import(
    path: Annotated[Path, typer.Argument(help="bioimageio.yaml (or rdf.yaml) of a model.")],
):
    """Register a bioimage.io model (one card per TorchScript / ONNX weights) as a user model."""
    from cellbench.models.registry import import_bioimageio

    for c in import_bioimageio(path):
        typer.echo(f"registered {c.id} ({c.path})")


# -- evaluation -------------------------------------------------------------------------------

_DATASET = Annotated[str, typer.Option(help="Test dataset id (see `cellbench catalog list`).")]
_SPLIT = Annotated[str | None, typer.Option(help="Split (default: every sample).")]
_MODEL = Annotated[str | None, typer.Option(help="Registered model id.")]
_PREDS = Annotated[
    str | None,
    typer.Option(help="Folder of instance maps named by sample id, or a stored prediction set."),
]
_PRESET = Annotated[str | None, typer.Option(help="Metric preset (hovernet / ocelot default).")]
_IOU = Annotated[str, typer.Option(help="IoU threshold or range 0.5:0.95.")]
_DEVICE = Annotated[str, typer.Option(help="cpu or cuda.")]
_LIMIT = Annotated[int | None, typer.Option(help="Only the first N samples.")]
_SAMPLE = Annotated[list[str] | None, typer.Option("--sample", help="Only these samples.")]


def _spec(
    dataset, split, model, predictions, preset, iou, device, batch_size, limit, sample, workers=1
):
    from cellbench.evaluate import EvalSpec

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
    )


@app.command("train")
@_friendly
def train_cmd(
    config: Annotated[Path, typer.Option(help="Training config YAML (see cellbench.train).")],
    out: Annotated[
        Path | None,
        typer.Option(help="Checkpoint folder (default: $CELLBENCH_HOME/models/<id>, registered)."),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Override optim.epochs.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.")] = None,
):
    """Train the built-in architecture from a config; write weights, card, config and log."""
    from cellbench.models.registry import user_dir
    from cellbench.train import load_config, train

    cfg = load_config(config)
    if epochs is not None:
        cfg.optim.epochs = epochs
    if threads is not None:
        cfg.threads = threads
    dest = out or user_dir() / cfg.id

    def progress(epoch: int, rec: dict) -> None:
        typer.echo(
            f"epoch {epoch}/{cfg.optim.epochs}  train {rec['train_loss']:.4f}  "
            f"val {rec['val_loss']:.4f}  ({rec['seconds']:.0f} s)",
            err=True,
        )

    card = train(cfg, dest, progress=progress)
    typer.echo(f"wrote {card}")


@app.command("reference")
@_friendly
def reference_cmd(
    out: Annotated[
        Path | None,
        typer.Option(help="Export folder (default: results/reference of the checkout)."),
    ] = None,
    experiment: Annotated[
        str | None, typer.Option(help="matrix, pair or centers (default: all).")
    ] = None,
):
    """Run the reference experiments (bundled checkpoints x local test sets) into the
    workspace store, resuming what is stored, and export them as the committed reference."""
    from cellbench import config, reference
    from cellbench.store import Store

    store = Store(reference="")

    def progress(k: int, n: int, run_id: str) -> None:
        typer.echo(f"[{k + 1}/{n}] {run_id}", err=True)

    ids = reference.run(store, experiment, progress=progress)
    dest = reference.export(store, ids, out or config.REPO_DIR / "results" / "reference")
    typer.echo(f"exported {len(ids)} runs to {dest}")


splits_app = typer.Typer(no_args_is_help=True, help="Splits that keep centers whole.")
app.add_typer(splits_app, name="splits")


@splits_app.command("centers")
@_friendly
def splits_centers(
    dataset: _DATASET,
    split: _SPLIT = None,
    seed: Annotated[int, typer.Option(help="Shuffle seed.")] = 0,
    fractions: Annotated[str, typer.Option(help="Train,val,test shares.")] = "0.6,0.2,0.2",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
):
    """Seed 000's center-held-out split (whole centers to train / val / test)."""
    from cellbench.samples import records
    from cellbench.splits import center_held_out

    fr = tuple(float(x) for x in fractions.split(","))
    if len(fr) != 3:
        raise typer.BadParameter("--fractions needs three numbers")
    cs = center_held_out([r.meta for r in records(_catalog(), dataset, split)], fr, seed)
    if as_json:
        parts = {p: {"centers": cs.centers[p], "samples": cs.part(p)} for p in cs.centers}
        typer.echo(json.dumps(parts, indent=1))
        return
    for p in ("train", "val", "test"):
        typer.echo(
            f"{p:<5} {len(cs.centers[p]):>2} centers, {len(cs.part(p)):>3} samples: "
            f"{' '.join(cs.centers[p])}"
        )


@app.command("evaluate")
@_friendly
def evaluate_cmd(
    dataset: _DATASET,
    split: _SPLIT = None,
    model: _MODEL = None,
    predictions: _PREDS = None,
    preset: _PRESET = None,
    iou: _IOU = "0.5",
    device: _DEVICE = "cpu",
    batch_size: Annotated[int, typer.Option(help="Tiles per batch.")] = 8,
    limit: _LIMIT = None,
    sample: _SAMPLE = None,
    workers: Annotated[int, typer.Option(help="Post-processing processes.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run record as JSON.")] = False,
):
    """Run a model (or read stored predictions) on a dataset and store per-sample metrics.

    Evaluating the same request again resumes an interrupted run (stored samples are skipped).
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from cellbench.evaluate import Evaluation

    ev = Evaluation(
        _spec(
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
            workers,
        )
    )
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

        final = ev.run(progress=progress)
    if as_json:
        typer.echo(json.dumps(final, indent=1))
        return
    from cellbench.analysis import dataset_figures

    figs = dataset_figures(ev.store, [ev.run_id]).filter(
        pl_col_in("metric", ("pq", "aji", "dice1", "f1", "mf1", "mpq"))
    )
    typer.echo(f"run {final['run_id']}: {final['status']} ({final['n_done']}/{final['n_samples']})")
    for r in figs.iter_rows(named=True):
        if r["value"] is not None:
            typer.echo(f"  {r['class']:>12} {r['metric']:<6} {r['value']:.4f}")


def pl_col_in(col: str, values):
    import polars as pl

    return pl.col(col).is_in(list(values))


@runs_app.command("list")
@_friendly
def runs_list(as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False):
    """Runs in the store, newest first (status, model, dataset, preset, progress)."""
    from cellbench.store import RUN_COLUMNS, Store

    rows = Store().runs().to_dicts()
    if as_json:
        typer.echo(json.dumps(rows, indent=1, default=str))
    else:
        _table(rows, list(RUN_COLUMNS))


@runs_app.command("show")
@_friendly
def runs_show(run_id: str):
    """A run's record: provenance, parameters, status."""
    from cellbench.store import Store

    typer.echo(json.dumps(Store().get_run(run_id), indent=1))


@app.command("results")
@_friendly
def results_cmd(
    run: Annotated[list[str], typer.Option(help="Run id (repeatable).")],
    metric: Annotated[str, typer.Option(help="Metric (pq, aji, dice1, f1 ...).")] = "pq",
    group_by: Annotated[
        list[str] | None,
        typer.Option(help="Group key: center, organ, stain, category, class, sample_id ..."),
    ] = None,
    cls: Annotated[str, typer.Option("--class", help="Class name or all.")] = "all",
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% CI.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
):
    """Per-group means of a per-sample metric with bootstrap 95% confidence intervals."""
    from cellbench.analysis import group_summary
    from cellbench.store import Store

    store = Store()
    for r in run:
        store.get_run(r)
    by = ["run_id", *(group_by or [])]
    df = group_summary(store, run, metric, by, cls=cls, n_boot=n_boot)
    if as_json:
        typer.echo(json.dumps(df.to_dicts(), indent=1))
    else:
        rows = [
            {**r, "mean": f"{r['mean']:.4f}", "95% CI": f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]"}
            for r in df.to_dicts()
        ]
        _table(rows, [*by, "n", "mean", "95% CI", "resampled"])


@jobs_app.command("submit")
@_friendly
def jobs_submit(
    dataset: _DATASET,
    split: _SPLIT = None,
    model: _MODEL = None,
    predictions: _PREDS = None,
    preset: _PRESET = None,
    iou: _IOU = "0.5",
    device: _DEVICE = "cpu",
    batch_size: Annotated[int, typer.Option(help="Tiles per batch.")] = 8,
    limit: _LIMIT = None,
    sample: _SAMPLE = None,
):
    """Start an evaluation in the background; prints the job id."""
    from cellbench.jobs import submit_job

    spec = _spec(dataset, split, model, predictions, preset, iou, device, batch_size, limit, sample)
    typer.echo(submit_job(spec))


@jobs_app.command("list")
@_friendly
def jobs_list(as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False):
    """Jobs, newest first, with their progress."""
    from cellbench.jobs import list_jobs

    rows = list_jobs()
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
    else:
        _table(rows, ["job_id", "status", "done", "total", "sample_id", "run_id"])


@jobs_app.command("status")
@_friendly
def jobs_status(job_id: str):
    """One job's progress (done/total, current sample, ETA, status) as JSON."""
    from cellbench.jobs import job_status

    typer.echo(json.dumps(job_status(job_id), indent=1))


@jobs_app.command("cancel")
@_friendly
def jobs_cancel(
    job_id: str,
    kill: Annotated[bool, typer.Option(help="Stop now (SIGTERM) instead of after the sample.")] = (
        False
    ),
):
    """Cancel a job; samples already stored stay, `jobs resume` finishes it later."""
    from cellbench.jobs import cancel_job

    cancel_job(job_id, kill=kill)
    typer.echo(f"cancel requested for {job_id}")


@jobs_app.command("resume")
@_friendly
def jobs_resume(job_id: str):
    """Start an interrupted, failed or cancelled job again (stored samples are skipped)."""
    from cellbench.jobs import resume_job

    resume_job(job_id)
    typer.echo(f"resumed {job_id}")


# -- QuPath -----------------------------------------------------------------------------------

qupath_app = typer.Typer(no_args_is_help=True, help="QuPath GeoJSON and projects.")
app.add_typer(qupath_app, name="qupath")


@qupath_app.command("export")
@_friendly
def qupath_export(
    dataset: _DATASET,
    sample: Annotated[str, typer.Option(help="Sample id.")],
    out: Annotated[Path, typer.Option(help="GeoJSON file to write.")],
    what: Annotated[str, typer.Option(help="gt, pred or errors (TP/FP/FN).")] = "gt",
    run: Annotated[str | None, typer.Option(help="Run id (for pred and errors).")] = None,
):
    """Write a sample's ground truth, a run's prediction or its errors as QuPath GeoJSON."""
    from cellbench.qupath import sample_features, write_geojson
    from cellbench.store import Store

    store = Store()
    rec = store.get_run(run) if run else None
    if rec is not None and rec.get("test_dataset") != dataset:
        raise typer.BadParameter(f"run '{run}' was evaluated on '{rec.get('test_dataset')}'")
    feats = sample_features(_catalog(), dataset, sample, what, rec, store)
    write_geojson(feats, out)
    typer.echo(f"wrote {len(feats)} objects to {out}", err=True)


@qupath_app.command("import")
@_friendly
def qupath_import(
    geojson: Annotated[Path, typer.Argument(help="QuPath GeoJSON (any version).")],
    image: Annotated[Path, typer.Option(help="The image the objects were drawn on.")],
    dataset_id: Annotated[str, typer.Option(help="User dataset to add the sample to.")],
    name: Annotated[str | None, typer.Option(help="Dataset name (new datasets).")] = None,
    mpp: Annotated[float | None, typer.Option(help="Microns per pixel of the image.")] = None,
    stain: Annotated[str, typer.Option(help="Stain (new datasets).")] = "H&E",
    organ: Annotated[str | None, typer.Option(help="Organ (new datasets).")] = None,
    split: Annotated[str | None, typer.Option(help="Split of the imported samples.")] = None,
    class_node: Annotated[
        list[str] | None,
        typer.Option("--class", help="NAME=NODE: map a QuPath class onto a hierarchy node."),
    ] = None,
    replace: Annotated[bool, typer.Option(help="Replace a sample of the same name.")] = False,
):
    """Add a QuPath GeoJSON + image to a user dataset in the user catalog."""
    from cellbench.user_data import import_qupath

    nodes = {}
    for item in class_node or []:
        if "=" not in item:
            raise typer.BadParameter(f"--class needs NAME=NODE, got '{item}'")
        k, v = item.split("=", 1)
        nodes[k] = v
    res = import_qupath(
        geojson,
        image,
        dataset_id,
        name=name,
        mpp=mpp,
        stain=stain,
        organ=organ,
        split=split,
        class_nodes=nodes,
        replace=replace,
    )
    typer.echo(
        f"added {res['sample_id']} ({res['n_objects']} objects) to user dataset "
        f"'{res['dataset']}' in {res['catalog']}"
    )
    for n in res["guessed_root"]:
        typer.echo(f"note: class '{n}' mapped to 'nucleus'; name its node with --class", err=True)


@qupath_app.command("project")
@_friendly
def qupath_project(
    dataset: _DATASET,
    out: Annotated[Path, typer.Option(help="New project folder.")],
    split: _SPLIT = None,
    sample: _SAMPLE = None,
    limit: _LIMIT = None,
    what: Annotated[str, typer.Option(help="gt, pred or errors (TP/FP/FN).")] = "gt",
    run: Annotated[str | None, typer.Option(help="Run id (for pred and errors).")] = None,
    backend: Annotated[str, typer.Option(help="auto, files or paquo.")] = "auto",
):
    """Write a QuPath project of a dataset's samples with their objects.

    Backend ``files`` writes project.qpproj, classes, one GeoJSON per image and a Groovy
    import script; ``paquo`` (automatic where QuPath is installed) writes objects directly.
    """
    from cellbench.overlay import ERROR_COLORS, PALETTE
    from cellbench.qupath import sample_features
    from cellbench.qupath_project import write_project
    from cellbench.readers import get_reader
    from cellbench.store import Store

    cat = _catalog()
    store = Store()
    rec = store.get_run(run) if run else None
    recs = [r for r in get_reader(cat, dataset).records() if split is None or r.split == split]
    if sample:
        recs = [r for r in recs if r.sample_id in set(sample)]
    recs = recs[:limit] if limit else recs
    images = []
    for r in recs:
        path = r.files.get("image")
        if path is None:
            raise typer.BadParameter(f"sample '{r.sample_id}' has no image file to reference")
        images.append(
            {
                "path": path,
                "width": r.meta.get("width"),
                "height": r.meta.get("height"),
                "mpp": r.meta.get("mpp"),
                "features": sample_features(cat, dataset, r.sample_id, what, rec, store),
            }
        )
    ds = cat.get(dataset)
    classes = {c.name: c.color or PALETTE[k % len(PALETTE)] for k, c in enumerate(ds.classes)}
    if what == "errors":
        classes = dict(ERROR_COLORS)
    used = write_project(out, images, classes, backend)
    typer.echo(
        f"wrote a QuPath project of {len(images)} images to {out} ({used} backend)", err=True
    )


@qupath_app.command("read")
@_friendly
def qupath_read(project: Annotated[Path, typer.Argument(help="Project folder or .qpproj.")]):
    """Print a QuPath project's images and path classes as JSON."""
    from dataclasses import asdict

    from cellbench.qupath_project import read_project

    p = read_project(project)
    typer.echo(
        json.dumps(
            {
                "path": str(p.path),
                "version": p.version,
                "images": [asdict(i) for i in p.images],
                "classes": p.classes,
            },
            indent=1,
            default=str,
        )
    )


@app.command("figures")
@_friendly
def figures_cmd(
    out: Annotated[Path, typer.Option(help="Folder for the figures.")],
    metric: Annotated[str, typer.Option(help="Metric of the result figures.")] = "pq",
    preset: Annotated[str, typer.Option(help="Preset of the runs used.")] = "hovernet",
    width_mm: Annotated[float, typer.Option(help="Figure width in mm.")] = 89,
    height_mm: Annotated[float, typer.Option(help="Figure height in mm.")] = 70,
):
    """Write every standard and notebook figure as SVG and PDF (plus its data as CSV).

    Notebook figures (01-04, :mod:`cellbench.paper`) come from the store (reference results
    included) and, where the data is present, from the data.
    """
    from cellbench.atomic import write_bytes_atomic
    from cellbench.figures import export_figure, frame_bytes, standard_figures
    from cellbench.paper import all_figures
    from cellbench.samples import sample_table
    from cellbench.store import Store

    cat, store = _catalog(), Store()
    table = sample_table(cat)
    # the catalog distributions are drawn once, as notebook 01's
    figs = {**standard_figures(store, None, metric, preset), **all_figures(store, cat, table)}
    if not figs:
        typer.echo("nothing to draw: no local samples and no runs", err=True)
    for name, (fig, data) in figs.items():
        for fmt in ("svg", "pdf"):
            write_bytes_atomic(out / f"{name}.{fmt}", export_figure(fig, fmt, width_mm, height_mm))
        write_bytes_atomic(out / f"{name}.csv", frame_bytes(data, "csv"))
        typer.echo(f"{name}: svg, pdf, csv", err=True)
    typer.echo(f"wrote {len(figs)} figures to {out}", err=True)


def main() -> None:
    """Entry point of the ``cellbench`` script."""
    app()


if __name__ == "__main__":
    main()
