"""``cellbench qupath export|import|project|read``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cellbench.cli.common import DATASET, LIMIT, SAMPLE, SPLIT, friendly, load_catalog

# -- QuPath -----------------------------------------------------------------------------------

qupath_app = typer.Typer(no_args_is_help=True, help="QuPath GeoJSON and projects.")


@qupath_app.command("export")
@friendly
def qupath_export(
    dataset: DATASET,
    sample: Annotated[str, typer.Option(help="Sample id.")],
    out: Annotated[Path, typer.Option(help="GeoJSON file to write.")],
    what: Annotated[str, typer.Option(help="gt, pred or errors (TP/FP/FN).")] = "gt",
    run: Annotated[str | None, typer.Option(help="Run id (for pred and errors).")] = None,
):
    """Write a sample's ground truth, a run's prediction or its errors as QuPath GeoJSON."""
    from cellbench.qupath.geojson import sample_features, write_geojson
    from cellbench.runs.store import Store

    store = Store()
    rec = store.get_run(run) if run else None
    if rec is not None and rec.get("test_dataset") != dataset:
        raise typer.BadParameter(f"run '{run}' was evaluated on '{rec.get('test_dataset')}'")
    feats = sample_features(load_catalog(), dataset, sample, what, rec, store)
    write_geojson(feats, out)
    typer.echo(f"wrote {len(feats)} objects to {out}", err=True)


@qupath_app.command("import")
@friendly
def qupath_import(
    geojson: Annotated[
        Path,
        typer.Argument(
            help="QuPath GeoJSON (any version, .geojson.gz) or any prediction file cellbench "
            "reads (HoVer-Net/CellViT/HistomicsTK/TIAToolbox JSON, Cellpose, ASAP XML, ...)."
        ),
    ],
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
    overlapping: Annotated[
        bool,
        typer.Option(
            help="New datasets: overlapping objects (whole cells) stay separate objects "
            "instead of the later one taking the shared pixels."
        ),
    ] = False,
    skip_bad: Annotated[
        bool, typer.Option(help="Skip GeoJSON features that cannot be read (each is named).")
    ] = False,
):
    """Add a QuPath GeoJSON (or another tool's objects) + image to a user dataset."""
    from cellbench.qupath.geojson import import_prediction

    nodes = {}
    for item in class_node or []:
        if "=" not in item:
            raise typer.BadParameter(f"--class needs NAME=NODE, got '{item}'")
        k, v = item.split("=", 1)
        nodes[k] = v
    res = import_prediction(
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
        overlapping=overlapping,
        skip_bad=skip_bad,
    )
    for why in res["skipped"]:
        typer.echo(f"skipped {why}", err=True)
    for note in res["notes"]:
        typer.echo(f"note: {note}", err=True)
    typer.echo(
        f"added {res['sample_id']} ({res['n_objects']} objects) to user dataset "
        f"'{res['dataset']}' in {res['catalog']}"
    )
    for n in res["guessed_root"]:
        typer.echo(f"note: class '{n}' mapped to 'nucleus'; name its node with --class", err=True)


@qupath_app.command("project")
@friendly
def qupath_project(
    dataset: DATASET,
    out: Annotated[Path, typer.Option(help="New project folder.")],
    split: SPLIT = None,
    sample: SAMPLE = None,
    limit: LIMIT = None,
    what: Annotated[str, typer.Option(help="gt, pred or errors (TP/FP/FN).")] = "gt",
    run: Annotated[str | None, typer.Option(help="Run id (for pred and errors).")] = None,
    backend: Annotated[str, typer.Option(help="auto, files or paquo.")] = "auto",
):
    """Write a QuPath project of a dataset's samples with their objects.

    Backend ``files`` writes project.qpproj, classes, one GeoJSON per image and a Groovy
    import script; ``paquo`` (automatic where QuPath is installed) writes objects directly.
    """
    from cellbench.data.readers import get_reader
    from cellbench.data.record_cache import records_of
    from cellbench.qupath.project import export_samples
    from cellbench.runs.store import Store

    cat = load_catalog()
    store = Store()
    rec = store.get_run(run) if run else None
    recs = [r for r in records_of(get_reader(cat, dataset)) if split is None or r.split == split]
    if sample:
        recs = [r for r in recs if r.sample_id in set(sample)]
    recs = recs[:limit] if limit else recs
    n, used = export_samples(cat, dataset, recs, out, what, rec, store, backend)
    typer.echo(f"wrote a QuPath project of {n} images to {out} ({used} backend)", err=True)


@qupath_app.command("read")
@friendly
def qupath_read(project: Annotated[Path, typer.Argument(help="Project folder or .qpproj.")]):
    """Print a QuPath project's images and path classes as JSON."""
    from dataclasses import asdict

    from cellbench.qupath.project import read_project

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
