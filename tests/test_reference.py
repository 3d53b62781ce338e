"""The committed reference results: consistent with the bundled checkpoints, reproducible with
``cellbench evaluate``, and drawn by ``cellbench figures`` on a clone without the data."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from cellbench.core import config
from cellbench.runs import reference
from cellbench.runs.store import Store

REF = config.REPO_DIR / "results" / "reference"
pytestmark = pytest.mark.skipif(
    not (REF / "runs").is_dir(), reason="no committed reference results (results/reference)"
)


@pytest.fixture
def ref_store(monkeypatch):
    monkeypatch.setenv("CELLBENCH_REFERENCE", str(REF))
    return Store()


def test_every_reference_run_is_complete_and_matches_its_bundled_checkpoint(ref_store):
    from cellbench.models.registry import get_model

    runs = ref_store.runs()
    assert runs.height >= len(reference.MATRIX_MODELS) * len(reference.TEST_SETS) + 1
    for r in runs.iter_rows(named=True):
        info = ref_store.get_run(r["run_id"])
        assert info["status"] == "complete" and info["reference"]
        card = get_model(info["model_id"])
        # the numbers were produced by exactly the weights that are committed
        assert info["model_sha256"] == card.weights.sha256
        parts = list((REF / "metrics" / r["run_id"]).glob("*.parquet"))
        assert len(parts) == 1
    from cellbench.viz.paper import experiment_runs

    for exp in reference.EXPERIMENTS:
        assert experiment_runs(ref_store, exp), exp
    # every matrix model on every test set, and on the unified test set where its members
    # are not a whole split (MoNuSAC, GBM)
    assert len(experiment_runs(ref_store, "matrix")) == len(reference.MATRIX_MODELS) * len(
        reference.TEST_SETS
    )
    assert len(experiment_runs(ref_store, "unified")) == 2 * len(reference.MATRIX_MODELS)


@pytest.mark.parametrize(
    ("model", "dataset", "split", "n"),
    [
        ("cb_consep", "consep", "test", 2),
        ("cb_fused", "monuseg", "test", 1),
        ("cb_unet_gbm", "gbm", "test", 2),  # the second family: distance watershed
        ("cb_unet_consep_macenko", "monuseg", "test", 1),  # stain normalised at inference
    ],
)
def test_evaluate_reproduces_the_stored_numbers(
    data_env, ref_store, tmp_path, model, dataset, split, n
):
    from cellbench.runs.evaluate import EvalSpec, Evaluation

    ref_id = next(
        r["run_id"]
        for r in ref_store.runs().iter_rows(named=True)
        if r["model_id"] == model and r["test_dataset"] == dataset and r["split"] == split
    )
    stored = ref_store.scan([ref_id]).filter(pl.col("level") == "sample").collect()
    samples = sorted(stored["sample_id"].unique().to_list())[:n]
    fresh = Store(tmp_path / "store", reference="")
    ev = Evaluation(
        EvalSpec(dataset=dataset, split=split, model=model, preset="hovernet", samples=samples),
        store=fresh,
    )
    ev.run()
    keys = ["sample_id", "class", "metric"]
    new = fresh.scan([ev.run_id]).filter(pl.col("level") == "sample").collect()
    old = stored.filter(pl.col("sample_id").is_in(samples))
    both = old.join(new, on=keys, how="full", suffix="_new", nulls_equal=True)
    assert both.height == old.height == new.height
    diff = both.filter((pl.col("value") - pl.col("value_new")).abs() > 1e-9)
    assert diff.is_empty(), diff


def test_figures_cli_draws_the_cross_dataset_figures_without_data(
    ref_store, tmp_path, no_chromium_skip, monkeypatch
):
    from cellbench.cli import app

    monkeypatch.setenv("CELLBENCH_DATA", str(tmp_path / "no_data"))
    res = CliRunner().invoke(app, ["figures", "--out", str(tmp_path / "figs")])
    assert res.exit_code == 0, res.output
    names = {p.stem for p in (tmp_path / "figs").glob("*.svg")}
    want = {
        "03_train_test_pq",
        "03_cij_diagonal",
        "03_cij_paper",
        "03_ranking_per-dataset",
        "03_ranking_pooled",
        "03_fusion",
        "03_pretrain_finetune",
        "03_held_out_centers",
        "03_tcga_centers",
        "03_label_levels",
        "03_stain",
        "03_cytology_isbi2014",
    }
    assert want <= names
    for n in want:
        assert (tmp_path / "figs" / f"{n}.pdf").read_bytes().startswith(b"%PDF-")
    fus = pl.read_csv(tmp_path / "figs" / "03_fusion.csv")
    # the top-k prefixes of one overall order for both families; hovernet_lite has every
    # one trained and observed, unet_lite up to k = 2
    order = ["gbm", "gbm+monuseg", "gbm+monuseg+consep", "gbm+monuseg+consep+monusac"]
    for fam, observed in (("hovernet_lite", 4), ("unet_lite", 2)):
        f = fus.filter(pl.col("family") == fam).sort("k")
        assert f["train"].to_list() == order
        assert f["observed"].head(observed).null_count() == 0
    json.dumps(fus.to_dicts())
