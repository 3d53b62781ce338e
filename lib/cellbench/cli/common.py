"""What every command module shares: one-line errors, the catalog, tables, JSON output.

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

from cellbench.core.errors import CellbenchError

#: Options shared by evaluate, jobs submit, qupath and splits.
DATASET = Annotated[str, typer.Option(help="Test dataset id (see `cellbench catalog list`).")]
SPLIT = Annotated[str | None, typer.Option(help="Split (default: every sample).")]
MODEL = Annotated[str | None, typer.Option(help="Registered model id.")]
PREDS = Annotated[
    str | None,
    typer.Option(help="Folder of instance maps named by sample id, or a stored prediction set."),
]
PRESET = Annotated[
    str | None,
    typer.Option(
        help="Metric preset: hovernet (instances, default), stardist, conic, torchmetrics, "
        "isbi2014; ocelot (points, default), hungarian; apacs23, pixels_image (class masks). "
        "See `cellbench score presets`."
    ),
]
IOU = Annotated[str, typer.Option(help="IoU threshold or range 0.5:0.95.")]
DEVICE = Annotated[str, typer.Option(help="cpu or cuda.")]
EXECUTOR = Annotated[
    str,
    typer.Option(
        help="local (this process) or dask: a local cluster of --workers processes, or the "
        "cluster at --address (workers need the same paths: a shared file system)."
    ),
]
ADDRESS = Annotated[
    str | None, typer.Option(help="Dask scheduler to join, e.g. tcp://10.0.0.5:8786.")
]
COMPILE = Annotated[
    bool, typer.Option("--compile", help="torch.compile the network (long runs on a GPU).")
]
LIMIT = Annotated[int | None, typer.Option(help="Only the first N samples.")]
SAMPLE = Annotated[list[str] | None, typer.Option("--sample", help="Only these samples.")]


def friendly(fn):
    """Wrap a command so that input errors print one line and exit with status 2."""

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


def load_catalog(path: Path | None = None):
    """The active catalog (or the one at ``path``), loaded only when a command needs it."""
    from cellbench.data import catalog

    return catalog.load_catalog(path)


def print_table(rows: list[dict], cols: list[str]) -> None:
    """Print rows as a rich table with the given columns (blank for missing values)."""
    from rich.console import Console
    from rich.table import Table

    t = Table(*cols)
    for r in rows:
        t.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in cols))
    Console(width=None if sys.stdout.isatty() else 240).print(t)


def write_result(result: dict, out: Path | None) -> None:
    """Print ``result`` as JSON, or write it atomically to ``out``."""
    from cellbench.core.atomic import write_json_atomic

    if out is None:
        typer.echo(json.dumps(result, indent=1, allow_nan=False))
    else:
        write_json_atomic(out, result)
        typer.echo(f"wrote {out}", err=True)
