"""``cellbench score instances|points|presets``: stored predictions, no catalog needed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cellbench.cli.common import friendly, write_result

score_app = typer.Typer(
    no_args_is_help=True, help="Score stored predictions (instance maps or points)."
)


def _summary(agg: dict, keys: tuple[str, ...]) -> str:
    parts = [f"{k}={agg[k]:.4f}" for k in keys if isinstance(agg.get(k), float)]
    return " ".join(parts)


@score_app.command("instances")
@friendly
def score_instances(
    gt: Annotated[Path, typer.Option(help="Folder of ground-truth instance maps.")],
    pred: Annotated[Path, typer.Option(help="Folder of same-named predictions.")],
    preset: Annotated[
        str,
        typer.Option(
            help="hovernet, pannuke, stardist, conic, torchmetrics, isbi2014 "
            "(pannuke on a fold folder: masks.npy + types.npy, as PanNuke-metrics run.py)."
        ),
    ] = "hovernet",
    iou: Annotated[str, typer.Option(help="IoU threshold, list (0.5,0.75) or 0.5:0.95.")] = ("0.5"),
    classes: Annotated[
        Path | None,
        typer.Option(help="YAML/JSON/CSV 'id: name' of the class names in GeoJSON files."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON here.")] = None,
    gt_pattern: Annotated[
        str | None, typer.Option(help="Ground-truth file names, e.g. '{stem}_label.png'.")
    ] = None,
    pred_pattern: Annotated[
        str | None, typer.Option(help="Prediction file names, e.g. '{stem}_label.png'.")
    ] = None,
):
    """Score predictions of any tool against ground truth, same stems in two folders.

    Instance maps (.npy, .png, .tif, .ome.tif; 0 = background, any integer ids) with an
    optional class map ``<stem>_class.<ext>``; HoVer-Net .mat and .json; CellViT cells.json
    and GeoJSON; Cellpose _seg.npy, _cp_masks.png, _cp_outlines.txt; TIAToolbox .db and dict
    JSON; HistomicsTK JSON; ASAP XML; QuPath .geojson / .geojson.gz (classified by name, see
    --classes); packed .npz (overlapping objects). Classes on both sides give per-class PQ,
    mPQ, bPQ, F_d and F_t; in the ground truth only, F_d.
    """
    from cellbench.metrics.io import score_instance_dirs

    def progress(k: int, n: int, stem: str) -> None:
        if out is not None:
            typer.echo(f"\r[{k}/{n}] {stem}", err=True, nl=k == n)

    names = None
    if classes is not None:
        from cellbench.data.user_data import _read_mapping

        raw = _read_mapping(classes, "class id: class name")
        try:
            names = {str(v): int(k) for k, v in raw.items()}
        except (TypeError, ValueError):
            raise typer.BadParameter(f"{classes}: keys must be integer class ids") from None
    res = score_instance_dirs(
        gt,
        pred,
        preset,
        iou,
        progress=progress,
        class_names=names,
        gt_pattern=gt_pattern,
        pred_pattern=pred_pattern,
    )
    write_result(res, out)
    if out is not None:
        agg = res.get("aggregate", res)  # a PanNuke fold: mPQ / bPQ at the top
        keys = (
            ("mPQ", "bPQ")
            if res.get("preset") == "pannuke" and "mPQ" in res
            else ("pq", "dq", "sq", "aji", "aji_plus", "dice1")
        )
        typer.echo(_summary(agg, keys), err=True)
    if res.get("preset") == "pannuke" and "per_tissue" in res:  # the fold's table, as run.py
        typer.echo(f"{'tissue':<16}{'n':>5}{'mPQ':>9}{'bPQ':>9}", err=True)
        for t, v in res["per_tissue"].items():
            if v["n_images"]:
                m, b = (f"{x:.4f}" if x is not None else "nan" for x in (v["mPQ"], v["bPQ"]))
                typer.echo(f"{t:<16}{v['n_images']:>5}{m:>9}{b:>9}", err=True)
        for c, v in res["per_class"].items():
            typer.echo(f"{c + ' PQ':<30}{'nan' if v is None else f'{v:.4f}':>9}", err=True)


@score_app.command("points")
@friendly
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
    write_result(res, out)
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


@score_app.command("formats")
def score_formats(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
):
    """List the prediction file formats read (``score instances``, ``evaluate --predictions``):
    file endings, the tool that writes them and its layout."""
    import json

    from cellbench.data.predictions import formats_table

    rows = formats_table()
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    for r in rows:
        typer.echo(f"{r['format']:<18} {r['endings']}\n{'':<18} {r['source']}")
