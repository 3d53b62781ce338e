"""``cellbench figures``: every standard and notebook figure as files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cellbench.cli.common import friendly, load_catalog


@friendly
def figures_cmd(
    out: Annotated[Path, typer.Option(help="Folder for the figures.")],
    metric: Annotated[str, typer.Option(help="Metric of the result figures.")] = "pq",
    preset: Annotated[str, typer.Option(help="Preset of the runs used.")] = "hovernet",
    width_mm: Annotated[float, typer.Option(help="Figure width in mm.")] = 89,
    height_mm: Annotated[float, typer.Option(help="Figure height in mm.")] = 70,
):
    """Write every standard and notebook figure as SVG and PDF (plus its data as CSV).

    Notebook figures (01-04, :mod:`cellbench.viz.paper`) come from the store (reference results
    included) and, where the data is present, from the data.
    """
    from cellbench.core.atomic import write_bytes_atomic
    from cellbench.data.samples import sample_table
    from cellbench.runs.store import Store
    from cellbench.viz.figures import (
        FigureTooSmall,
        export_figure,
        fitting_width,
        frame_bytes,
        standard_figures,
    )
    from cellbench.viz.paper import all_figures

    cat, store = load_catalog(), Store()
    table = sample_table(cat)
    # the catalog distributions are drawn once, as notebook 01's; a standard figure that a
    # notebook also draws (train x test matrix, C_ij, ranking, fusion) is written once, as the
    # notebook's
    notebook = all_figures(store, cat, table)
    standard = {
        k: v
        for k, v in standard_figures(store, None, metric, preset).items()
        if not any(_twin(k, n) for n in notebook)
    }
    figs = {safe_file_name(k): v for k, v in {**standard, **notebook}.items()}
    if not figs:
        typer.echo("nothing to draw: no local samples and no runs", err=True)
    drawn = 0
    for name, (fig, data) in figs.items():
        write_bytes_atomic(out / f"{name}.csv", frame_bytes(data, "csv"))
        try:
            w = fitting_width(fig, width_mm, height_mm)
        except FigureTooSmall as e:
            typer.echo(f"{name}: csv only; no journal width fits it: {e}", err=True)
            continue
        for fmt in ("svg", "pdf"):
            write_bytes_atomic(out / f"{name}.{fmt}", export_figure(fig, fmt, w, height_mm))
        drawn += 1
        wider = f" at {w:g} mm (too dense for {width_mm:g} mm)" if w != width_mm else ""
        typer.echo(f"{name}: svg, pdf, csv{wider}", err=True)
    csv_only = len(figs) - drawn
    tail = f" and {csv_only} as csv only" if csv_only else ""
    typer.echo(f"wrote {drawn} figures (svg, pdf, csv){tail} to {out}", err=True)


def _twin(standard: str, notebook: str) -> bool:
    """Whether a notebook figure (``03_ranking_per-dataset``) draws a standard one
    (``ranking``; family suffixes aside)."""
    base = notebook.split("_", 1)[1] if notebook[:2].isdigit() else notebook
    return base == standard or base.startswith(standard + "_") or standard.startswith(base + "_")


def safe_file_name(name: str) -> str:
    """A figure name usable as a file name on every OS (``:`` and the like become ``_``)."""
    import re

    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._") or "figure"
