"""``cellbench testset build|list|show``: named, versioned composite test sets (seed 003)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cellbench.cli.common import friendly, load_catalog, print_table

testset_app = typer.Typer(
    no_args_is_help=True,
    help="Composite test sets (NucFuse-test): k tiles per dataset, stored and versioned.",
)


@testset_app.command("build")
@friendly
def testset_build(
    name: Annotated[str, typer.Argument(help="Test set name (preset: nucfuse-test, unified).")],
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="Datasets (default: the preset's).")
    ] = None,
    per_dataset: Annotated[int | None, typer.Option(help="Tiles per dataset (14).")] = None,
    min_size: Annotated[int | None, typer.Option(help="Minimum tile side, pixels (256).")] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="dataset:class: leave out tiles with an object of this class."),
    ] = None,
    unit: Annotated[
        list[str] | None,
        typer.Option(help="dataset:column: tiles stored as patches, grouped by this column."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the draw (0).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stored version.")] = False,
):
    """Select the members on the local data and store them (a new version only if changed)."""
    from cellbench.data import testsets

    d = testsets.definition_from_options(name, dataset, per_dataset, min_size, exclude, unit, seed)
    ts = testsets.save(testsets.build(d, load_catalog()))
    _show(ts, as_json)


@testset_app.command("list")
@friendly
def testset_list(as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False):
    """Stored test sets (newest version of each) and the presets not built yet."""
    from cellbench.data import testsets

    rows = []
    for n in testsets.stored_names():
        ts = testsets.load(n)
        rows.append(
            {
                "name": n,
                "version": ts.version,
                "datasets": len(ts.datasets),
                "samples": len(ts.members),
                "missing": len(ts.missing),
                "path": str(ts.path),
            }
        )
    rows += [
        {
            "name": n,
            "version": None,
            "datasets": None,
            "samples": None,
            "missing": None,
            "path": "preset, not built",
        }
        for n in testsets.PRESETS
        if n not in testsets.stored_names()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
    else:
        print_table(rows, ["name", "version", "datasets", "samples", "missing", "path"])


@testset_app.command("show")
@friendly
def testset_show(
    ref: Annotated[str, typer.Argument(help="name or name@vN.")],
    members: Annotated[bool, typer.Option(help="List every member sample.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The stored JSON.")] = False,
):
    """A stored test set: definition, per-dataset summary, notes (and members)."""
    from cellbench.data import testsets

    _show(testsets.load(ref), as_json, members)


def _show(ts, as_json: bool, members: bool = False) -> None:
    if as_json:
        typer.echo(json.dumps(ts.to_json(), indent=1))
        return
    d = ts.definition
    typer.echo(f"{ts.ref}  ({ts.path})")
    typer.echo(
        f"  {d.per_dataset} tiles per dataset, tiles >= {d.min_size}x{d.min_size} px, seed "
        f"{d.seed}; excluded classes: {dict(d.exclude) or 'none'}; tiles of patches: "
        f"{dict(d.unit) or 'none'}"
    )
    print_table(
        ts.summary(),
        ["dataset", "tiles", "samples", "source", "dropped_small", "dropped_class", "status"],
    )
    for n in ts.notes:
        typer.echo(f"note: {n}")
    if ts.missing:
        typer.echo(f"no local data (not in this version): {', '.join(ts.missing)}")
    if members:
        print_table(ts.members, ["dataset", "tile", "sample_id", "source"])
