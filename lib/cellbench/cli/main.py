"""The ``cellbench`` command: one Typer app assembled from the command modules.

Commands are registered here, in the order ``cellbench --help`` lists them; each module holds
one command group and imports the library lazily, so ``cellbench --help`` stays fast.
"""

from __future__ import annotations

import typer

from cellbench.cli import (
    catalog,
    compare,
    figures,
    models,
    predict,
    qupath,
    runs,
    score,
    testsets,
    train,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help="cellbench workbench CLI")

app.command("samples")(catalog.samples_cmd)
app.command("stats")(catalog.stats_cmd)
app.command("train")(train.train_cmd)
app.command("reference")(train.reference_cmd)
app.command("evaluate")(runs.evaluate_cmd)
app.command("predict")(predict.predict_cmd)
app.command("results")(runs.results_cmd)
app.command("figures")(figures.figures_cmd)

app.add_typer(catalog.catalog_app, name="catalog")
app.add_typer(catalog.datasets_app, name="datasets")
app.add_typer(score.score_app, name="score")
app.add_typer(models.models_app, name="models")
app.add_typer(runs.runs_app, name="runs")
app.add_typer(runs.jobs_app, name="jobs")
app.add_typer(runs.store_app, name="store")
app.add_typer(train.splits_app, name="splits")
app.add_typer(qupath.qupath_app, name="qupath")
app.add_typer(compare.compare_app, name="compare")
app.add_typer(testsets.testset_app, name="testset")


def main() -> None:
    """Entry point of the ``cellbench`` script."""
    app()


if __name__ == "__main__":
    main()
