"""Loss curves from train_log.jsonl and aggregation over seed repeats, with known answers."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from scipy import stats
from test_comparisons import add_run
from typer.testing import CliRunner

from cellbench.analysis.training import aggregate_logs, seed_summary, training_log
from cellbench.core.errors import DataError
from cellbench.runs.store import Store, frame


def _log(folder, losses, val=None):
    folder.mkdir(parents=True)
    lines = []
    for e, v in enumerate(losses, 1):
        rec = {"epoch": e, "lr": 0.1, "train_loss": v, "train_np_bce": v / 2}
        if val is not None:
            rec["val_loss"] = val[e - 1]
        lines.append(json.dumps(rec))
    (folder / "train_log.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_log_parsing_and_aggregation_over_seeds(tmp_path):
    a = _log(tmp_path / "a", [3.0, 2.0, 1.0], val=[3.5, 2.5, 2.0])
    b = _log(tmp_path / "b", [5.0, 4.0])  # stopped early: epoch 3 has one run
    c = _log(tmp_path / "c", [4.0, 3.0, 2.0])
    log = training_log(a)
    assert set(log["term"]) == {"loss", "np_bce"} and set(log["split"]) == {"train", "val"}
    assert "lr" not in log["term"].to_list()
    agg = aggregate_logs([a, b, c]).filter(
        (pl.col("split") == "train") & (pl.col("term") == "loss")
    )
    e1 = agg.filter(pl.col("epoch") == 1).row(0, named=True)
    assert (e1["mean"], e1["n"]) == (4.0, 3) and e1["sd"] == pytest.approx(1.0)
    h = stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)
    assert (e1["ci_low"], e1["ci_high"]) == pytest.approx((4 - h, 4 + h))
    e3 = agg.filter(pl.col("epoch") == 3).row(0, named=True)
    assert e3["n"] == 2 and e3["mean"] == 1.5
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train_log.jsonl").write_text('{"epoch": 1, "train_loss": 1}\nnot json\n')
    with pytest.raises(DataError, match="line 2"):
        training_log(bad)
    with pytest.raises(DataError, match="no training log"):
        training_log(tmp_path)


def test_seed_summary_aggregates_replicate_models(tmp_path):
    st = Store(tmp_path / "s")
    for k, v in enumerate([0.50, 0.60, 0.70]):
        rid = add_run(st, f"m_seed{k}", "a", "a", [v] * 6, finished=f"2026-01-0{k + 1}T00:00:00")
        st.append(
            rid,
            frame(
                [
                    {
                        "run_id": rid,
                        "model_id": f"m_seed{k}",
                        "train_datasets": "a",
                        "test_dataset": "a",
                        "split": "test",
                        "level": "dataset",
                        "sample_id": None,
                        "class": "all",
                        "metric": "pq",
                        "value": v,
                    }
                ]
            ),
        )
    add_run(st, "m_other", "b", "a", [0.4] * 6)  # another training set: its own row, no dataset row
    s = seed_summary(st)
    assert s.height == 1
    r = s.row(0, named=True)
    assert r["n_runs"] == 3 and r["mean"] == pytest.approx(0.6) and r["sd"] == pytest.approx(0.1)
    h = stats.t.ppf(0.975, 2) * 0.1 / np.sqrt(3)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((0.6 - h, 0.6 + h))
    assert r["model_ids"] == ["m_seed0", "m_seed1", "m_seed2"]


def test_models_log_cli_on_bundled_models(data_env):
    from cellbench.cli import app

    r = CliRunner().invoke(app, ["models", "log", "cb_consep", "cb_fused", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert {x["split"] for x in rows} == {"train", "val"} and rows[0]["n"] == 2
    r = CliRunner().invoke(app, ["models", "log", "cb_consep", "--term", "nope"])
    assert r.exit_code == 2
    from cellbench.models.registry import get_model

    assert get_model("cb_consep").training.seed == 0
