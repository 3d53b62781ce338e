"""Confusion matrices of matched objects and threshold curves: exact on hand-built inputs,
consistent with the run's own figures on real data (OCELOT fold-0 predictions, a bundled
CoNSeP model)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from cellbench.analysis.detail import best_thresholds, confusion_frame, run_analysis
from cellbench.metrics.classification import confusion_counts, curve_from_matches
from cellbench.runs.evaluate import EvalSpec, evaluate
from cellbench.runs.store import Store


def test_confusion_counts_by_hand():
    true_cls = np.array([1, 1, 2, 2, 3])
    pred_cls = np.array([1, 2, 2, 9, 1])
    # pairs: t0-p0 (1->1), t1-p1 (1->2), t2-p2 (2->2); t3 and t4 unpaired; p3 (class 9, not
    # declared) and p4 (1) unpaired
    m = confusion_counts(true_cls, pred_cls, np.array([0, 1, 2]), np.array([0, 1, 2]), [1, 2, 3])
    assert m.tolist() == [
        [1, 1, 0, 0],
        [0, 1, 0, 1],
        [0, 0, 0, 1],
        [1, 0, 0, 0],
    ]


def test_curve_from_matches_is_exact_with_ties():
    scores = np.array([0.9, 0.8, 0.8, 0.3, 0.1])
    tp = np.array([True, False, True, True, False])
    c = curve_from_matches(scores, tp, n_true=4)
    assert c["threshold"].tolist() == [0.9, 0.8, 0.3, 0.1]  # the 0.8 tie is one step
    assert c["tp"].tolist() == [1, 2, 3, 3] and c["fp"].tolist() == [0, 1, 1, 2]
    assert c["precision"].tolist() == pytest.approx([1, 2 / 3, 3 / 4, 3 / 5])
    assert c["recall"].tolist() == pytest.approx([0.25, 0.5, 0.75, 0.75])
    assert c["f1"][-1] == pytest.approx(2 * 0.6 * 0.75 / 1.35)


def test_ocelot_confusion_and_curves_agree_with_the_official_figures(data_env, catalog, tmp_path):
    st = Store(tmp_path / "s")
    run = evaluate(EvalSpec(dataset="ocelot", predictions="ocelot_fold0_model"), catalog, st)
    a = run_analysis(st, run["run_id"], catalog)
    ops = {r["class"]: r for r in best_thresholds(a).iter_rows(named=True)}
    # the curve's end (every prediction kept) is the official scorer's F1 of the run
    assert ops["BC"]["f1_operating"] == pytest.approx(0.6403, abs=1e-4)
    assert ops["TC"]["f1_operating"] == pytest.approx(0.7439, abs=1e-4)
    assert ops["BC"]["best_f1"] >= ops["BC"]["f1_operating"]
    # each true class's row (paired + missed) counts all its cells
    conf = confusion_frame(a)
    rows = {r["true"]: r for r in conf.iter_rows(named=True)}
    assert sum(v for k, v in rows["BC"].items() if k != "true") == 4541
    assert sum(v for k, v in rows["TC"].items() if k != "true") == 8136
    share = confusion_frame(a, "true").filter(pl.col("true") == "BC")
    assert share.drop("true").sum_horizontal()[0] == pytest.approx(1.0)
    # cached: the second call reads the file
    assert run_analysis(st, run["run_id"], catalog)["confusion"] == a["confusion"]


def test_consep_confusion_matches_the_runs_type_figures(data_env, catalog, tmp_path):
    st = Store(tmp_path / "s")
    ids = ["test_13_008", "test_13_005", "test_11_005", "test_2_006"]
    run = evaluate(
        EvalSpec(dataset="consep", split="test", model="cb_consep", samples=ids), catalog, st
    )
    a = run_analysis(st, run["run_id"], catalog)
    m = np.asarray(a["confusion"])
    paired = m[:-1, :-1]
    tp, fp, fn = paired.sum(), m[-1, :-1].sum(), m[:-1, -1].sum()
    got = (
        st.scan([run["run_id"]])
        .filter((pl.col("level") == "dataset") & (pl.col("class") == "all"))
        .collect()
    )
    figs = dict(zip(got["metric"], got["value"], strict=True))
    # the same pairing as HoVer-Net's type statistics: detection F and type accuracy agree
    assert 2 * tp / (2 * tp + fp + fn) == pytest.approx(figs["f_d"])
    assert np.trace(paired) / tp == pytest.approx(figs["type_acc"])


def test_cli_confusion_and_curve(data_env, tmp_path):
    from cellbench.cli import app

    st = Store()
    run = evaluate(EvalSpec(dataset="ocelot", predictions="ocelot_fold0_model"), store=st)
    r = CliRunner().invoke(
        app, ["results", "--run", run["run_id"], "--confusion", "--curve", "--json"]
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["classes"] == ["BC", "TC"] and out["confusion"][0]["true"] == "BC"
    assert {x["class"] for x in out["operating"]} == {"BC", "TC", "all"}
    assert out["curve"][0].keys() >= {"threshold", "precision", "recall", "f1"}
    r = CliRunner().invoke(app, ["results", "--run", run["run_id"], "--confusion"])
    assert r.exit_code == 0 and "(none)" in r.output and "rows: true" in r.output
    r = CliRunner().invoke(
        app, ["results", "--run", run["run_id"], "--confusion", "--normalise", "rows"]
    )
    assert r.exit_code == 2 and "unknown normalisation" in r.output
