"""``cellbench predict``: a model on an image, a folder of images or a whole-slide image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cellbench.cli.common import DEVICE, friendly


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
):
    """Segment nuclei with a model and write them for QuPath (and as a table / map).

    Tiles overlap; a nucleus is kept from the tile whose core holds its centroid, so nuclei
    on seams are neither cut nor doubled. Finished tiles are kept under
    $CELLBENCH_HOME/cache/predict/, so an interrupted run resumes.
    """
    from rich.progress import Progress

    from cellbench.core import config
    from cellbench.models.registry import get_model, load_predictor
    from cellbench.qupath import nuclei as w
    from cellbench.runs import predict as P

    if sum(x is not None for x in (image, folder, project)) != 1:
        raise typer.BadParameter("give exactly one of --image, --folder and --project")
    card = get_model(model)
    predictor = load_predictor(card, device=device, batch_size=batch_size)
    model_mpp = card.input.mpp
    box = None
    if region is not None:
        try:
            box = tuple(int(v) for v in region.split(","))
            assert len(box) == 4
        except (ValueError, AssertionError):
            raise typer.BadParameter("--region needs x,y,w,h (level-0 pixels)") from None
    names: dict[Path, str] = {}  # QuPath image names of project images
    if project is not None:
        from cellbench.qupath.project import read_project

        paths = []
        for im in read_project(project).images:
            if im.path is None or not im.path.is_file():
                typer.echo(f"skipped {im.name}: its image is not here ({im.uri})", err=True)
                continue
            paths.append(im.path)
            names[im.path] = im.name
        if not paths:
            raise typer.BadParameter(f"{project}: none of the project's images is found here")
        if out.suffix:
            raise typer.BadParameter("--project writes a folder: give --out FOLDER")
    elif folder is not None:
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in P.IMAGE_SUFFIXES)
        if not paths:
            raise typer.BadParameter(f"{folder}: no images ({', '.join(P.IMAGE_SUFFIXES)})")
    else:
        paths = [Path(image)]
    work_root = config.home() / "cache" / "predict"
    results = []
    with Progress(transient=True) as bar:
        for p in paths:
            as_slide = slide or box is not None or p.suffix.lower() in P.SLIDE_SUFFIXES
            if as_slide:
                src = P.slide_source(p, model_mpp, box, tissue, mpp)
            else:
                src = P.image_source(p, model_mpp, mpp)
            task = bar.add_task(f"{p.name}", total=None)
            work = P._work_dir(work_root, card, src, tile, overlap)
            nuc = P.predict_source(
                predictor,
                src,
                tile,
                overlap,
                work,
                progress=lambda k, n, t=task: bar.update(t, completed=k, total=n),
            )
            nuc.meta["slide"] = as_slide
            results.append(nuc)
    classes = card.classes or None
    suffix = out.suffix.lower()
    if qupath_project:
        written = [_write_qupath_project(out, paths, results, classes)]
    elif project is not None:
        from cellbench.core.atomic import write_bytes_atomic
        from cellbench.qupath.project import GROOVY

        written = [
            w.write_geojson_file(nuc, out / "objects" / f"{names[p]}.geojson", classes)
            for p, nuc in zip(paths, results, strict=True)
        ]
        written.append(w.write_table(results, out / "nuclei.parquet", classes))
        written.append(write_bytes_atomic(out / "import_objects.groovy", GROOVY.encode()))
    elif suffix in (".geojson", ".json"):
        if len(results) != 1:
            raise typer.BadParameter("a folder of images needs --out FOLDER")
        w.write_geojson_file(results[0], out, classes)
        table = out.with_name(f"{out.stem}.nuclei.parquet")
        w.write_table(results, table, classes)
        written = [out, table]
    elif suffix == ".parquet":
        written = [w.write_table(results, out, classes)]
    elif suffix in (".tif", ".tiff"):
        if len(results) != 1:
            raise typer.BadParameter("a folder of images needs --out FOLDER")
        written = [w.write_instance_map(results[0], out)]
    else:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for nuc in results:
            written.append(w.write_instance_map(nuc, out / f"{nuc.name}.tif"))
            written.append(
                w.write_geojson_file(nuc, out / "geojson" / f"{nuc.name}.geojson", classes)
            )
        written.append(w.write_table(results, out / "nuclei.parquet", classes))
    for nuc in results:
        m = nuc.meta
        typer.echo(
            f"{nuc.name}: {len(nuc.objects)} nuclei from {m['tiles_predicted']} of "
            f"{m['tiles']} tiles ({m['tile']} px, overlap {m['overlap']})",
            err=True,
        )
    for p in written:
        typer.echo(f"wrote {p}", err=True)


def _write_qupath_project(out: Path, paths, results, classes) -> Path:
    """A new QuPath project of the predicted images with their nuclei."""
    from cellbench.data.imageio import image_size
    from cellbench.data.wsi import open_slide
    from cellbench.qupath.nuclei import nuclei_features
    from cellbench.qupath.project import write_project
    from cellbench.viz.overlay import class_colors

    images = []
    for p, nuc in zip(paths, results, strict=True):
        if nuc.meta.get("slide"):
            with open_slide(p) as s:
                width, height = s.dimensions
        else:
            width, height = image_size(p)
        images.append(
            {
                "path": p,
                "width": width,
                "height": height,
                "mpp": nuc.mpp,
                "features": nuclei_features(nuc, classes),
            }
        )
    cc = class_colors(classes or [])
    colours = {c.name: cc[c.id] for c in classes or []}
    write_project(out, images, colours or {"nucleus": (0, 200, 0)})
    return out / "project.qpproj"
