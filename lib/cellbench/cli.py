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
    iou: Annotated[str, typer.Option(help="IoU threshold, list (0.5,0.75) or 0.5:0.95.")] = (
        "0.5"
    ),
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
        typer.echo(_summary(res["aggregate"], ("pq", "dq", "sq", "aji", "aji_plus", "dice1")),
                   err=True)


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


def main() -> None:
    """Entry point of the ``cellbench`` script."""
    app()


if __name__ == "__main__":
    main()
