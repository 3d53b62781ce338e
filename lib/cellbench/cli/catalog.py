"""``cellbench catalog list|show|validate``, ``cellbench samples`` and ``cellbench stats``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from cellbench.cli.common import friendly, load_catalog

catalog_app = typer.Typer(no_args_is_help=True, help="Browse and validate the dataset catalog.")


@catalog_app.command("list")
@friendly
def catalog_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
):
    """List every dataset with its availability and local sample count."""
    from cellbench.data.samples import catalog_rows

    rows = catalog_rows(load_catalog())
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
@friendly
def catalog_show(dataset_id: str):
    """Show one catalog entry, with local counts per split when the data is present."""
    import yaml

    from cellbench.data.samples import sample_table

    cat = load_catalog()
    d = cat.get(dataset_id)
    out = d.model_dump(exclude_none=True)
    out["available"] = cat.is_available(d)
    if out["available"]:
        import polars as pl

        t = sample_table(cat, [d.id])
        out["local_counts"] = {
            str(s): {"samples": int(n), "objects": int(o or 0)}
            for s, n, o in t.group_by("split")
            .agg(n=pl.col("sample_id").len(), o=pl.col("n_objects").sum())
            .sort("split", nulls_last=True)
            .iter_rows()
        }
    typer.echo(yaml.safe_dump(out, sort_keys=False, allow_unicode=True, width=100))


@catalog_app.command("validate")
@friendly
def catalog_validate(
    path: Annotated[
        Path | None, typer.Argument(help="Catalog YAML (default: the active one).")
    ] = None,
):
    """Validate a catalog file against the schema and the class hierarchy."""
    cat = load_catalog(path)
    n_avail = sum(cat.is_available(d) for d in cat)
    typer.echo(f"OK: {cat.path}: {len(cat)} datasets, {n_avail} with local data under {cat.root}")


@friendly
def samples_cmd(
    dataset_id: str,
    split: Annotated[str | None, typer.Option(help="Only this split.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="json, csv or parquet.")] = "csv",
    out: Annotated[
        Path | None, typer.Option(help="Write to this file (required for parquet).")
    ] = None,
):
    """Print (or write) the sample metadata table of a dataset."""
    from cellbench.data.samples import sample_table

    cat = load_catalog()
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


@friendly
def stats_cmd(
    dataset_id: str,
    split: Annotated[str | None, typer.Option(help="Only this split.")] = None,
    table: Annotated[
        list[str] | None,
        typer.Option(
            help="Tables (default: all): key, centers, categories, classes, "
            "class_by_category, density, areas."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write each table as <out>/<dataset>_<table>.csv.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON: {table: rows}.")] = False,
):
    """Dataset statistics as the seeds print them: key statistics, per center, per category,
    objects per class, density per 256x256 px (seed 003 ND), object areas."""
    from cellbench.cli.common import print_table
    from cellbench.core.atomic import write_bytes_atomic
    from cellbench.data.stats import TABLES, dataset_tables

    unknown = sorted(set(table or ()) - set(TABLES))
    if unknown:
        raise typer.BadParameter(f"--table {unknown}: choose from {', '.join(TABLES)}")
    cat = load_catalog()
    cat.get(dataset_id)
    tables = dataset_tables(cat, dataset_id, split)
    tables = {k: v for k, v in tables.items() if not table or k in table}
    if out is not None:
        for k, v in tables.items():
            write_bytes_atomic(out / f"{dataset_id}_{k}.csv", v.write_csv().encode())
        typer.echo(f"wrote {len(tables)} tables to {out}", err=True)
    if as_json:
        typer.echo(json.dumps({k: v.to_dicts() for k, v in tables.items()}, indent=1, default=str))
        return
    if out is not None:
        return
    for k, v in tables.items():
        typer.echo(f"\n{TABLES[k]}")
        print_table(
            [
                {c: (f"{x:.2f}" if isinstance(x, float) else x) for c, x in r.items()}
                for r in v.to_dicts()
            ],
            v.columns,
        )


datasets_app = typer.Typer(no_args_is_help=True, help="Your own datasets in the user catalog.")


@datasets_app.command("add")
@friendly
def datasets_add(
    dataset_id: Annotated[str, typer.Argument(help="New dataset id (a-z, 0-9, _ and -).")],
    images: Annotated[str, typer.Option(help="Glob of the image files ('data/img/*.png').")],
    labels: Annotated[
        str, typer.Option(help="Each image's label mask, with {stem} ('data/masks/{stem}.tif').")
    ],
    kind: Annotated[
        str, typer.Option(help="instance (maps), binary (components) or class (with --classes).")
    ] = "instance",
    classes: Annotated[
        Path | None, typer.Option(help="Class masks: pixel value -> class name (YAML/JSON/CSV).")
    ] = None,
    split_from: Annotated[
        Path | None, typer.Option(help="sample -> split (YAML/JSON/CSV).")
    ] = None,
    mpp: Annotated[float | None, typer.Option(help="Microns per pixel.")] = None,
    mpp_from: Annotated[
        Path | None,
        typer.Option(help="Per-image mpp: image stem -> mpp (YAML/JSON/CSV); else TIFF headers."),
    ] = None,
    stain: Annotated[str, typer.Option(help="Stain, e.g. H&E, PAP.")] = "H&E",
    organ: Annotated[str | None, typer.Option(help="Organ.")] = None,
    modality: Annotated[str, typer.Option(help="brightfield or fluorescence.")] = "brightfield",
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
):
    """Add a folder of images with label masks (TIFF/PNG/NPY) to the user catalog.

    Every pair is checked; a bad pair (unreadable, sizes differ, float labels) is named with
    its reason and left out; the good ones are copied to the workspace and the dataset is
    listed, evaluated and shown like the others. Nothing is written when no pair is usable.
    """
    from cellbench.data.user_data import add_dataset

    res = add_dataset(
        dataset_id,
        images,
        labels,
        kind=kind,
        classes_file=classes,
        split_from=split_from,
        mpp=mpp,
        stain=stain,
        organ=organ,
        modality=modality,
        name=name,
        mpp_from=mpp_from,
    )
    for f, why in res["bad"]:
        typer.echo(f"left out {f}: {why}", err=True)
    typer.echo(
        f"added {res['added']} samples to '{res['dataset']}' ({len(res['bad'])} left out); "
        f"files in {res['location']}, entry in {res['catalog']}"
    )


@datasets_app.command("remove")
@friendly
def datasets_remove(dataset_id: str):
    """Remove a user dataset: its entry in the user catalog and its copied files."""
    from cellbench.data.user_data import remove_dataset

    res = remove_dataset(dataset_id)
    typer.echo(f"removed '{res['dataset']}' from {res['catalog']}")
