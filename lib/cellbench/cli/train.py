"""``cellbench train``, ``reference`` and ``splits centers``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cellbench.cli.common import DATASET, SPLIT, friendly, load_catalog


@friendly
def train_cmd(
    config: Annotated[
        Path, typer.Option(help="Training config YAML (see cellbench.models.train).")
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Checkpoint folder (default: $CELLBENCH_HOME/models/<id>, registered)."),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Override optim.epochs.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.")] = None,
):
    """Train the built-in architecture from a config; write weights, card, config and log."""
    from cellbench.models.registry import user_dir
    from cellbench.models.train import load_config, train

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


@friendly
def reference_cmd(
    out: Annotated[
        Path | None,
        typer.Option(help="Export folder (default: results/reference of the checkout)."),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option(help="matrix, unified, pair, levels, cytology or centers (default: all)."),
    ] = None,
):
    """Run the reference experiments (bundled checkpoints x local test sets) into the
    workspace store, resuming what is stored, and export them as the committed reference
    (all of them: runs of the export folder that no experiment asks for any more, older code
    or checkpoint versions, are removed)."""
    from cellbench.core import config
    from cellbench.runs import reference
    from cellbench.runs.store import Store

    store = Store(reference="")

    def progress(k: int, n: int, run_id: str) -> None:
        typer.echo(f"[{k + 1}/{n}] {run_id}", err=True)

    ids = reference.run(store, experiment, progress=progress)
    dest = reference.export(store, ids, out or config.REPO_DIR / "results" / "reference")
    typer.echo(f"exported {len(ids)} runs to {dest}")
    if experiment is None:
        gone = reference.prune(dest, ids)
        if gone:
            typer.echo(f"removed {len(gone)} superseded runs: {', '.join(gone)}")


splits_app = typer.Typer(no_args_is_help=True, help="Splits that keep centers whole.")


@splits_app.command("centers")
@friendly
def splits_centers(
    dataset: DATASET,
    split: SPLIT = None,
    seed: Annotated[int, typer.Option(help="Shuffle seed.")] = 0,
    fractions: Annotated[str, typer.Option(help="Train,val,test shares.")] = "0.6,0.2,0.2",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
):
    """Seed 000's center-held-out split (whole centers to train / val / test)."""
    from cellbench.data.samples import records
    from cellbench.data.splits import center_held_out

    fr = tuple(float(x) for x in fractions.split(","))
    if len(fr) != 3:
        raise typer.BadParameter("--fractions needs three numbers")
    cs = center_held_out([r.meta for r in records(load_catalog(), dataset, split)], fr, seed)
    if as_json:
        parts = {p: {"centers": cs.centers[p], "samples": cs.part(p)} for p in cs.centers}
        typer.echo(json.dumps(parts, indent=1))
        return
    for p in ("train", "val", "test"):
        typer.echo(
            f"{p:<5} {len(cs.centers[p]):>2} centers, {len(cs.part(p)):>3} samples: "
            f"{' '.join(cs.centers[p])}"
        )
