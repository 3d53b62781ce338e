"""Comparisons as seed 003 defines them, on hand-built stores: partial runs, sample sets,
families, per-dataset weighting vs pooling, top-k fusion prefixes and the expected curve; group
statistics (CIs only for n >= 5, the preset's pooled figure per group on real OCELOT data)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from cellbench import analysis as A
from cellbench.runs.store import Store, frame, sample_set_id


def add_run(
    store: Store,
    model: str,
    train: str,
    test: str,
    values,
    family: str = "unet",
    finished: str = "2026-01-01T00:00:00+00:00",
    parameters: dict | None = None,
    ids=None,
    status: str = "complete",
    coverage: str | None = None,
) -> str:
    """One run whose per-sample PQ are ``values`` (sample ids ``<test>_<i>`` unless given)."""
    ids = ids or [f"{test}_{i:03d}" for i in range(len(values))]
    run_id = f"{model}_{test}_{finished[:19].replace(':', '')}"
    rows = [
        {
            "run_id": run_id,
            "model_id": model,
            "train_datasets": train,
            "test_dataset": test,
            "split": "test",
            "level": "sample",
            "sample_id": s,
            "class": "all",
            "metric": "pq",
            "value": None if v is None else float(v),
        }
        for s, v in zip(ids, values, strict=True)
    ]
    store.append(run_id, frame(rows))
    rec = {
        "run_id": run_id,
        "status": status,
        "model_id": model,
        "model_kind": "cellbench",
        "train_datasets": train,
        "test_dataset": test,
        "split": "test",
        "task": "instances",
        "preset": "hovernet",
        "iou": 0.5,
        "n_samples": len(values),
        "finished": finished,
        "created": finished,
        "parameters": parameters or {},
        "family": family,
    }
    if coverage:
        rec.update(coverage=coverage, sample_set=sample_set_id(ids))
    store.write_run(rec)
    return run_id


def test_partial_run_never_enters_a_matrix_ranking_or_fusion(tmp_path):
    st = Store(tmp_path / "s")
    full = add_run(st, "m_a", "a", "a", [0.5] * 14)
    # a newer quick --limit 3 run with better values: listed as partial, never used
    part = add_run(
        st,
        "m_a",
        "a",
        "a",
        [0.9] * 3,
        finished="2026-02-01T00:00:00+00:00",
        parameters={"limit": 3},
    )
    t = A.run_table(st).sort("run_id")
    by_id = {r["run_id"]: r for r in t.to_dicts()}
    assert by_id[part]["coverage"] == "subset" and not by_id[part]["complete"]
    assert by_id[full]["complete"] and by_id[full]["comparable"]
    m = A.train_test_matrix(st)
    assert m.height == 1 and m["run_ids"][0].to_list() == [full]
    assert m["mean"][0] == pytest.approx(0.5) and m["n"][0] == 14 and m["complete"][0]
    r = A.ranking(st)
    assert r["run_ids"][0].to_list() == [full] and r["mean"][0] == pytest.approx(0.5)
    assert A.latest_runs(st) == [full]


def test_runs_on_another_sample_set_are_not_compared(tmp_path):
    st = Store(tmp_path / "s")
    add_run(st, "m_a", "a", "a", [0.5] * 14)
    add_run(st, "m_b", "b", "a", [0.4] * 14)
    # complete but on 7 held-out samples only (another sample set): left out
    other = add_run(st, "m_c", "c", "a", [0.9] * 7, ids=[f"a_{i:03d}" for i in range(7, 14)])
    t = A.run_table(st)
    assert not t.filter(pl.col("run_id") == other)["comparable"][0]
    assert set(A.train_test_matrix(st)["train_datasets"]) == {"a", "b"}
    assert "c" not in A.ranking(st)["train_datasets"].to_list()


def test_two_families_on_the_same_data_give_two_matrices(tmp_path):
    st = Store(tmp_path / "s")
    for fam, v in (("unet", 0.5), ("hovernet", 0.7)):
        for test in ("a", "b"):
            add_run(st, f"{fam}_a", "a", test, [v] * 6, family=fam)
    m = A.train_test_matrix(st)
    assert m.height == 4
    assert dict(zip(m["family"], m["mean"], strict=True)) == pytest.approx(
        {"unet": 0.5, "hovernet": 0.7}
    )
    wide = A.as_matrix(m)
    assert set(wide["family"]) == {"unet", "hovernet"} and wide.height == 2
    assert A.cross_correlation(m)["family"].n_unique() == 2
    only = A.train_test_matrix(st, family="unet")
    assert only["family"].unique().to_list() == ["unet"]


def test_per_dataset_weighting_vs_pooling_on_unequal_test_sets(tmp_path):
    st = Store(tmp_path / "s")
    # A: 100 test samples, B: 4. 'a' is good on A only, 'b' good on B
    add_run(st, "m_a", "a", "A", [0.8] * 100)
    add_run(st, "m_a", "a", "B", [0.2] * 4)
    add_run(st, "m_b", "b", "A", [0.5] * 100)
    add_run(st, "m_b", "b", "B", [0.9] * 4)
    per = A.ranking(st, weighting="per-dataset", n_boot=200)
    pooled = A.ranking(st, weighting="pooled", n_boot=200)
    assert per.filter(pl.col("rank") == 1)["train_datasets"][0] == "b"
    assert per.filter(pl.col("train_datasets") == "b")["mean"][0] == pytest.approx(0.7)
    assert pooled.filter(pl.col("rank") == 1)["train_datasets"][0] == "a"
    a = pooled.filter(pl.col("train_datasets") == "a")
    assert a["mean"][0] == pytest.approx((0.8 * 100 + 0.2 * 4) / 104)
    assert a["n"][0] == 104 and a["n_datasets"][0] == 2
    assert set(per["weighting"]) == {"per-dataset"} and per["mean_rank"].to_list() == [1.0, 2.0]


def test_ranking_intervals_resample_within_each_test_dataset(tmp_path):
    st = Store(tmp_path / "s")
    rng = np.random.default_rng(0)
    add_run(st, "m_a", "a", "A", rng.uniform(0.4, 0.6, 50))
    add_run(st, "m_a", "a", "B", rng.uniform(0.0, 0.2, 5))
    r = A.ranking(st, n_boot=500).to_dicts()[0]
    # each bootstrap statistic keeps both datasets at weight 1/2, so the interval stays near
    # the per-dataset mean (~0.3) instead of sweeping towards the larger set's 0.5
    assert r["ci_low"] < r["mean"] < r["ci_high"]
    assert r["ci_low"] > 0.2 and r["ci_high"] < 0.4


def _toy_three_datasets(st: Store) -> dict:
    """Singles a, b, c (each best on its own test set), fused a+b, and a+c (not a prefix)."""
    P = {
        ("a", "a"): 0.8, ("a", "b"): 0.3, ("a", "c"): 0.45,
        ("b", "a"): 0.5, ("b", "b"): 0.7, ("b", "c"): 0.3,
        ("c", "a"): 0.2, ("c", "b"): 0.2, ("c", "c"): 0.6,
        ("a+b", "a"): 0.75, ("a+b", "b"): 0.72, ("a+b", "c"): 0.35,
        ("a+c", "a"): 0.9, ("a+c", "b"): 0.9, ("a+c", "c"): 0.9,
    }  # fmt: skip
    for (tr, te), v in P.items():
        add_run(st, f"m_{tr}", tr, te, [v] * 5)
    return P


def test_fusion_uses_prefixes_of_the_ranking_and_an_expected_curve_that_changes_with_k(tmp_path):
    st = Store(tmp_path / "s")
    P = _toy_three_datasets(st)
    rank = A.ranking(st, n_boot=100)
    singles = rank.filter(pl.col("k") == 1).sort("rank")["train_datasets"].to_list()
    assert singles == ["a", "b", "c"]  # unified: a 0.517, b 0.5, c 0.333
    f = A.fusion(st, n_boot=100).sort("k")
    assert f["train"].to_list() == ["a", "a+b", "a+b+c"]
    assert "a+c" not in f["train"].to_list()  # a fused set that is not a prefix
    exp = [np.mean([max(P[(i, j)] for i in singles[:k]) for j in "abc"]) for k in (1, 2, 3)]
    assert f["expected"].to_list() == pytest.approx(exp)
    assert len(set(np.round(exp, 6))) == 3  # the expected value changes with k
    assert f["observed"][0] == pytest.approx(np.mean([P[("a", j)] for j in "abc"]))
    assert f["observed"][1] == pytest.approx(np.mean([P[("a+b", j)] for j in "abc"]))
    assert f["observed"][2] is None and "cellbench train" in f["command"][2]
    assert f["expected_increment"].to_list()[1:] == pytest.approx(np.diff(exp).tolist())
    assert f["observed_increment"][1] == pytest.approx(f["observed"][1] - f["observed"][0])
    assert f["gain"][1] == pytest.approx(f["observed"][1] - exp[1])


def test_compare_cli_json(tmp_path, monkeypatch):
    from cellbench.cli import app

    monkeypatch.setenv("CELLBENCH_HOME", str(tmp_path / "home"))
    st = Store()
    _toy_three_datasets(st)
    add_run(
        st, "m_a", "a", "a", [0.99] * 2, finished="2026-03-01T00:00:00", parameters={"limit": 2}
    )
    run = CliRunner()
    res = run.invoke(app, ["compare", "matrix", "--json", "--n-boot", "50"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    cell = next(r for r in rows if r["train"] == "a" and r["test"] == "a")
    assert cell["value"] == pytest.approx(0.8) and cell["n"] == 5 and cell["complete"]
    assert len(cell["run_ids"]) == 1
    res = run.invoke(app, ["compare", "matrix", "--json", "--normalise", "diagonal"])
    rows = json.loads(res.output)
    assert next(r for r in rows if r["train"] == "b" and r["test"] == "a")["value"] == (
        pytest.approx(0.5 / 0.8)
    )
    res = run.invoke(app, ["compare", "ranking", "--json", "--weighting", "pooled"])
    out = json.loads(res.output)
    assert out["weighting"] == "pooled" and {
        "rank",
        "train",
        "family",
        "mean",
        "ci_low",
        "ci_high",
        "n_datasets",
    } <= set(out["rows"][0])
    assert set(out["mean_rank"]) >= {"a", "b", "c", "a+b"}
    res = run.invoke(app, ["compare", "fusion", "--json"])
    fus = json.loads(res.output)
    assert fus["test_set"] == "runs"
    fus = fus["rows"]
    assert [r["k"] for r in fus] == [1, 2, 3] and {
        "observed",
        "expected",
        "observed_increment",
        "expected_increment",
    } <= set(fus[0])
    res = run.invoke(app, ["compare", "matrix", "--normalise", "nope"])
    assert res.exit_code == 2


def test_group_intervals_only_from_five_samples(tmp_path):
    st = Store(tmp_path / "s")
    rid = add_run(st, "m_a", "a", "A", [0.1, 0.9, 0.5, 0.4, 0.6, 0.3, 0.2])
    small = A.group_summary(st, [rid], "pq", ["run_id"], min_n_ci=8)
    assert small["ci_low"][0] is None and small["n"][0] == 7
    big = A.group_summary(st, [rid], "pq", ["run_id"])
    assert big["ci_low"][0] is not None


def test_ocelot_pooled_per_organ_equals_the_scorer_on_each_organs_images(data_env, catalog):
    """Seed 004 Table 6 pools counts per organ; the mean of per-image F1 is another number."""
    from cellbench.data.readers import get_reader
    from cellbench.data.samples import load_predictions, sample_table
    from cellbench.metrics import aggregate_points, point_scores
    from cellbench.runs.evaluate import EvalSpec, Evaluation

    ev = Evaluation(EvalSpec(dataset="ocelot", predictions="ocelot_fold0_model"), catalog=catalog)
    ev.run()
    pooled = A.pooled_groups(ev.store, ev.run_id, "organ", catalog=catalog)
    table = sample_table(catalog, ["ocelot"])
    preds = load_predictions(catalog, "ocelot", "ocelot_fold0_model")
    reader = get_reader(catalog, "ocelot")
    recs = {r.sample_id: r for r in reader.records()}
    run_ids = set(ev.store.results(ev.run_id))
    checked = 0
    for organ in pooled["group"].unique().to_list():
        ids = table.filter(pl.col("organ") == organ)["sample_id"].to_list()
        ids = [s for s in ids if s in run_ids]
        per_image = {
            s: point_scores(reader.load(recs[s]).points, preds[s], preset="ocelot") for s in ids
        }
        ref = aggregate_points(per_image, "ocelot")
        got = pooled.filter(pl.col("group") == organ)
        assert got["n"][0] == len(ids)
        assert got.filter((pl.col("class") == "all") & (pl.col("metric") == "mf1"))["value"][0] == (
            pytest.approx(ref["mf1"])
        )
        for cid, vals in ref["per_class"].items():
            name = {"1": "BC", "2": "TC"}[str(cid)]
            v = got.filter((pl.col("class") == name) & (pl.col("metric") == "f1"))["value"][0]
            assert v == pytest.approx(vals["f1"])
        checked += 1
    assert checked >= 3
    bladder = pooled.filter(
        (pl.col("group") == "bladder") & (pl.col("class") == "BC") & (pl.col("metric") == "f1")
    )["value"][0]
    mean = A.group_summary(ev.store, [ev.run_id], "f1", ["organ"], cls="BC")
    mean_bladder = mean.filter(pl.col("organ") == "bladder")["mean"][0]
    assert bladder == pytest.approx(0.607, abs=0.001) and mean_bladder == pytest.approx(
        0.389, abs=0.001
    )


def test_mean_rank_is_the_rank_of_the_mean_score_over_families():
    """Seed 003 Table 2: the Mean Rank column (1..10) ranks the datasets by their mean PQ over
    HoVerNeXt and CellViT; the mean of the two per-family ranks would swap CoNSeP / NuInsSeg
    and DSB / CryoNuSeg and tie NuInsSeg with MoNuSAC."""
    from cellbench.analysis.cross import mean_rank

    table = {  # dataset: (HoVerNeXt PQ, CellViT PQ), as printed
        "PCNS": (55.66, 55.14),
        "PUMA": (55.75, 54.74),
        "MoNuSeg": (53.38, 55.11),
        "CPM17": (51.86, 51.58),
        "TNBC": (46.39, 48.67),
        "NuInsSeg": (44.92, 48.54),
        "CoNSeP": (46.41, 44.97),
        "MoNuSAC": (47.28, 40.40),
        "DSB": (43.83, 38.44),
        "CryoNuSeg": (35.57, 40.82),
    }
    rows = [
        {"train_datasets": d, "mean": v[k], "family": fam}
        for d, v in table.items()
        for k, fam in enumerate(("HoVerNeXt", "CellViT"))
    ]
    got = mean_rank(rows)
    assert [got[d] for d in table] == list(range(1, 11))  # the printed Mean Rank column


def test_fusion_uses_one_overall_order_for_every_family(tmp_path):
    """Seed 003 §3.2: top-k fusion follows Experiment 1's overall ranking for both models."""
    from cellbench.analysis import fusion, ranking
    from cellbench.runs.store import Store
    from cellbench.runs.synthetic import synthetic_store

    st = Store(tmp_path / "s")
    synthetic_store(st, n_samples=8, family="A", seed=1)
    synthetic_store(st, n_samples=8, family="B", seed=7)
    r = ranking(st, None, "pq", "hovernet")
    singles = r.filter(pl.col("k") == 1)
    overall = singles.sort("mean_rank")["train_datasets"].unique(maintain_order=True).to_list()
    own_b = singles.filter(pl.col("family") == "B").sort("rank")["train_datasets"].to_list()
    assert own_b != overall  # family B ranks them otherwise: its own order is not used
    f = fusion(st, None, "pq", "hovernet")
    for fam in ("A", "B"):
        order = f.filter(pl.col("family") == fam).sort("k")["train"].to_list()
        assert order[0] == overall[0] and order[-1] == "+".join(overall[:2])


def test_undefined_samples_are_handled_alike_for_every_compared_run(tmp_path):
    """Issue 31 item 4: an image with neither GT nor prediction has no PQ for the model that
    predicted nothing there, but PQ 0 for one that predicted nuclei: both are compared on one
    sample set (drop) or the empty answer counts as 1 (perfect), never n = 3 vs 4."""
    st = Store(tmp_path / "s")
    add_run(st, "m_a", "a", "t", [0.8, 0.6, 0.4, None])  # nothing predicted on t_003
    add_run(st, "m_b", "b", "t", [0.7, 0.5, 0.3, 0.0], family="stardist")  # a false positive
    add_run(st, "m_c", "c", "t", [0.9, None, 0.5, 0.2])
    m = A.train_test_matrix(st, "pq", n_boot=50).sort("train_datasets")
    assert m["n"].to_list() == [2, 2, 2]  # t_001 and t_003 dropped for every run, both families
    assert m["mean"].to_list() == pytest.approx([0.6, 0.5, 0.7])
    assert m["undefined"].to_list() == [1, 0, 1]
    assert set(m["empty"]) == {"drop"}
    p = A.train_test_matrix(st, "pq", n_boot=50, empty="perfect").sort("train_datasets")
    assert p["n"].to_list() == [4, 4, 4]
    assert p["mean"].to_list() == pytest.approx([0.7, 0.375, 0.65])
    r = A.ranking(st, n_boot=50).sort("train_datasets")
    assert r["n"].to_list() == [2, 2, 2]
    assert r["mean"].to_list() == pytest.approx([0.6, 0.5, 0.7])
    assert A.ranking(st, n_boot=50, empty="perfect").sort("train_datasets")["mean"].to_list() == (
        pytest.approx([0.7, 0.375, 0.65])
    )
    with pytest.raises(KeyError, match="drop, perfect"):
        A.train_test_matrix(st, empty="zero")


def test_compare_cli_empty_policy(tmp_path, monkeypatch):
    from cellbench.cli import app

    monkeypatch.setenv("CELLBENCH_HOME", str(tmp_path / "home"))
    st = Store()
    add_run(st, "m_a", "a", "t", [0.8, None])
    add_run(st, "m_b", "b", "t", [0.6, 0.0])
    run = CliRunner()
    for empty, n, a in (("drop", 1, 0.8), ("perfect", 2, 0.9)):
        res = run.invoke(app, ["compare", "matrix", "--json", "--empty", empty])
        assert res.exit_code == 0, res.output
        rows = {r["train"]: r for r in json.loads(res.output)}
        assert rows["a"]["n"] == rows["b"]["n"] == n and rows["a"]["undefined"] == 1
        assert rows["a"]["value"] == pytest.approx(a)
    res = run.invoke(app, ["compare", "ranking", "--empty", "zero"])
    assert res.exit_code == 2 and "drop, perfect" in res.output
