"""``cellbench predict``: a model on an image, a folder of images or a whole-slide image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cellbench.cli.common import ADDRESS, COMPILE, DEVICE, EXECUTOR, friendly


@friendly
def predict_cmd(
    model: Annotated[str, typer.Option(help="Registered model id (`cellbench models list`).")],
    out: Annotated[
        Path,
        typer.Option(
            help="A .geojson (QuPath; the nucleus table is written beside it as "
            "<stem>.nuclei.parquet), a .parquet (the table), a .tif (instance map), or a "
            "folder: <stem>.tif instance maps (+ <stem>_class.tif), geojson/<stem>.geojson "
            "and nuclei.parquet, readable by `evaluate --predictions`."
        ),
    ],
    image: Annotated[
        Path | None,
        typer.Option(help="An image, or a whole-slide image (.svs, .ndpi, .mrxs, ...)."),
    ] = None,
    folder: Annotated[Path | None, typer.Option(help="Every image of a folder.")] = None,
    project: Annotated[
        Path | None,
        typer.Option(
            help="Every image of a QuPath project (found on this machine); with --out FOLDER "
            "the objects go to FOLDER/objects/<image name>.geojson with import_objects.groovy "
            "(give the project folder itself as --out to import with 'Run for project')."
        ),
    ] = None,
    slide: Annotated[
        bool, typer.Option(help="Read --image as a whole-slide image (pyramidal TIFF).")
    ] = False,
    region: Annotated[
        str | None, typer.Option(help="x,y,w,h of a slide region, level-0 pixels.")
    ] = None,
    tissue: Annotated[
        bool, typer.Option(help="Whole slides: predict only tiles with tissue.")
    ] = True,
    mpp: Annotated[
        float | None, typer.Option(help="Microns per pixel of the input (else its metadata).")
    ] = None,
    qupath_project: Annotated[
        bool,
        typer.Option(
            help="Write --out FOLDER as a new QuPath project: the images referenced where "
            "they are, the nuclei as their objects (paquo where QuPath is installed, else "
            "project files + objects/*.geojson + an import script)."
        ),
    ] = False,
    tile: Annotated[int, typer.Option(help="Tile side in model pixels.")] = 1024,
    overlap: Annotated[
        int, typer.Option(help="Tile overlap in model pixels (> the largest nucleus).")
    ] = 128,
    device: DEVICE = "cpu",
    batch_size: Annotated[int, typer.Option(help="Network tiles per batch.")] = 8,
    compile: COMPILE = False,
    post_workers: Annotated[
        int,
        typer.Option(
            help="Post-processing processes overlapping the network (GPU inference); 0: none."
        ),
    ] = 0,
    executor: EXECUTOR = "local",
    address: ADDRESS = None,
    workers: Annotated[int, typer.Option(help="Local Dask workers (--executor dask).")] = 2,
):
    """Segment nuclei with a model and write them for QuPath (and as a table / map).

    Tiles overlap; a nucleus is kept from the tile whose core holds its centroid, so nuclei
    on seams are neither cut nor doubled. Finished tiles are kept under
    $CELLBENCH_HOME/cache/predict/, so an interrupted run resumes.
    """
    from rich.progress import Progress

    from cellbench.core.errors import CellbenchError
    from cellbench.qupath.predict import PredictSpec, parse_region, run_predict

    try:
        box = parse_region(region)
    except CellbenchError as e:
        raise typer.BadParameter(str(e)) from None
    spec = PredictSpec(
        model=model,
        out=str(out),
        image=None if image is None else str(image),
        folder=None if folder is None else str(folder),
        project=None if project is None else str(project),
        slide=slide,
        region=box,
        tissue=tissue,
        mpp=mpp,
        qupath_project=qupath_project,
        tile=tile,
        overlap=overlap,
        device=device,
        batch_size=batch_size,
        compile=compile,
        executor=executor,
        address=address,
        workers=workers,
        post_workers=post_workers,
    )
    with Progress(transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(name: str, k: int, n: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=n)
            bar.update(tasks[name], completed=k, total=n)

        res = run_predict(spec, progress)
    for line in res.summary():
        typer.echo(line, err=True)
    for p in res.written:
        typer.echo(f"wrote {p}", err=True)
