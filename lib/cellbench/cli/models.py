"""``cellbench models list|show|verify|import-bioimageio``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cellbench.cli.common import friendly, print_table

models_app = typer.Typer(no_args_is_help=True, help="The model registry.")


@models_app.command("list")
@friendly
def models_list(as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False):
    """Registered models: bundled, the user's ($CELLBENCH_HOME/models), data-root bioimage.io."""
    from cellbench.models.registry import model_row, scan_models

    cards, problems = scan_models()
    for e in problems:
        typer.echo(f"warning: skipped {e}", err=True)
    rows = [model_row(c) for c in cards]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
    else:
        print_table(
            rows, ["id", "kind", "output", "channels", "mpp", "train_datasets", "available"]
        )


@models_app.command("show")
@friendly
def models_show(model_id: str):
    """Print a model's card."""
    from cellbench.models.card import dump_card
    from cellbench.models.registry import get_model

    card = get_model(model_id)
    typer.echo(f"# {card.path}\n" + dump_card(card.card))


@models_app.command("verify")
@friendly
def models_verify(model_id: str):
    """Check a model's weights against its card's sha256 and load them."""
    from cellbench.models.inference import verify_outputs
    from cellbench.models.registry import get_model, load_predictor

    pred = load_predictor(get_model(model_id))
    verify_outputs(pred)  # a forward pass on a synthetic tissue-like image
    note = getattr(pred.backend, "note", "")
    typer.echo(
        f"{model_id}: weights verified, loaded and its outputs checked"
        + (f"; {note}" if note else "")
    )


@models_app.command("export")
@friendly
def models_export(
    model_id: Annotated[
        list[str] | None, typer.Argument(help="Model ids (default: every cellbench checkpoint).")
    ] = None,
):
    """Export cellbench checkpoints to ONNX for the CPU backend ahead of their first use (each
    export is checked against torch; otherwise it is made on first use)."""
    from cellbench.models.registry import get_model, list_models, load_predictor

    ids = model_id or [c.id for c in list_models() if c.kind == "cellbench"]
    for mid in ids:
        pred = load_predictor(get_model(mid))
        typer.echo(
            f"{mid}: {getattr(pred.backend, 'note', '') or 'torch (' + pred.card.cpu_backend + ')'}"
        )


@models_app.command("import-bioimageio")
@friendly
def models_import(
    path: Annotated[Path, typer.Argument(help="bioimageio.yaml (or rdf.yaml) of a model.")],
):
    """Register a bioimage.io model (one card per TorchScript / ONNX weights) as a user model."""
    from cellbench.models.registry import import_bioimageio

    for c in import_bioimageio(path):
        typer.echo(f"registered {c.id} ({c.path})")


@models_app.command("log")
@friendly
def models_log(
    model: Annotated[list[str], typer.Argument(help="Model ids or checkpoint folders.")],
    term: Annotated[
        list[str] | None, typer.Option(help="Loss terms (default: loss); 'all' for every one.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
):
    """Training loss curves from train_log.jsonl; several models (seed repeats) are aggregated
    per epoch as mean, sd and a 95% t-interval with n."""
    import polars as pl

    from cellbench.analysis.training import aggregate_logs

    df = aggregate_logs(model)
    terms = term or ["loss"]
    if "all" not in terms:
        df = df.filter(pl.col("term").is_in(terms))
    if df.is_empty():
        raise typer.BadParameter(f"--term {terms}: not in the logs")
    if as_json:
        typer.echo(json.dumps(df.to_dicts(), indent=1))
        return
    rows = [
        {k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()}
        for r in df.to_dicts()
    ]
    print_table(rows, ["split", "term", "epoch", "mean", "sd", "ci_low", "ci_high", "n"])
