"""Named, versioned composite test sets (seed 003 NucFuse-test) on small PanNuke-style folds
written here: selection rule, exclusion by class, minimum size, source fallback, versions,
evaluation of exactly the members and comparisons on them."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import yaml
from test_comparisons import add_run
from test_layouts import _entry as layout_entry
from typer.testing import CliRunner

from cellbench import analysis as A
from cellbench.core.errors import CellbenchError
from cellbench.data import testsets as T
from cellbench.data.catalog import load_catalog
from cellbench.runs.evaluate import EvalSpec, Evaluation, evaluate
from cellbench.runs.store import Store

CLASSES = [
    {"id": 1, "name": "epithelial", "nodes": ["non_neoplastic_epithelial"]},
    {"id": 2, "name": "macrophage", "nodes": ["macrophage"]},
]


def _fold(root, name: str, n: int, size: int, macrophage=()):
    """``n`` images of ``size`` px, one nucleus each; images in ``macrophage`` have a second
    nucleus of class macrophage (PanNuke channel 1)."""
    f = root / name
    f.mkdir(parents=True)
    masks = np.zeros((n, size, size, 6))
    for i in range(n):
        masks[i, 1:4, 1:4, 0] = 1
        if i in macrophage:
            masks[i, 5:7, 5:7, 1] = 2
    np.save(f / "images.npy", np.full((n, size, size, 3), 120.0))
    np.save(f / "masks.npy", masks)
    np.save(f / "types.npy", np.array(["Colon"] * n))


def _entry(id_, folds):
    local = {"format": "pannuke", "location": id_, "options": {"folds": folds}}
    return layout_entry(id_, local, classes=CLASSES, stain=["H&E"], organs=["colon"])


@pytest.fixture
def cat(tmp_path, monkeypatch):
    data = tmp_path / "data"
    # a: a test split of 12 images (0 and 3 with macrophages) and a train split
    _fold(data / "a", "t", 12, 16, macrophage=(0, 3))
    _fold(data / "a", "tr", 5, 16)
    # b: a test split of 8x8 tiles (all too small) and a validation split
    _fold(data / "b", "t", 4, 8)
    _fold(data / "b", "v", 6, 16)
    # c: no test or validation split: drawn from everything, fewer than k
    _fold(data / "c", "x", 3, 16)
    entries = [
        _entry("a", {"test": "t", "train": "tr"}),
        _entry("b", {"test": "t", "val": "v"}),
        _entry("c", {"train": "x"}),
        {**_entry("gone", {"test": "t"}), "local": {"format": "pannuke", "location": "nowhere"}},
    ]
    p = tmp_path / "cat.yaml"
    p.write_text(yaml.safe_dump({"datasets": entries}))
    monkeypatch.setenv("CELLBENCH_CATALOG", str(p))
    monkeypatch.setenv("CELLBENCH_DATA", str(data))
    return load_catalog(p, root=data)


def _def(**kw):
    base = dict(
        name="toy-test",
        datasets=("a", "b", "c", "gone"),
        per_dataset=4,
        min_size=12,
        exclude={"a": ("macrophage",)},
    )
    return T.TestSetDefinition(**{**base, **kw})


def test_selection_rule_exclusion_size_and_fallbacks(cat):
    ts = T.build(_def(), cat)
    s = {r["dataset"]: r for r in ts.summary()}
    # a: 12 test tiles, 2 with macrophages dropped, 4 of the other 10 drawn
    assert s["a"]["source"] == "test" and s["a"]["samples"] == 4 and s["a"]["dropped_class"] == 2
    a_ids = ts.sample_ids("a")
    assert not {"test_00000", "test_00003"} & set(a_ids)
    assert all(i.startswith("test_") for i in a_ids)
    # b: the test tiles are 8x8 < 12: taken from the validation split
    assert s["b"]["source"] == "val" and s["b"]["samples"] == 4
    # c: no test / val split: random from the whole dataset, all 3 (a shortfall note)
    assert s["c"]["source"] == "random" and s["c"]["samples"] == 3
    assert any(n.startswith("c: 3 of 4") for n in ts.notes)
    assert ts.missing == ["gone"] and ts.datasets == ["a", "b", "c"]
    # deterministic in the seed; another seed draws another subset of a
    assert T.build(_def(), cat).members == ts.members
    assert T.build(_def(seed=1), cat).sample_ids("a") != a_ids
    # without the exclusion, macrophage tiles are candidates again
    assert T.build(_def(exclude={}), cat).summary()[0]["dropped_class"] == 0
    # an excluded class the dataset does not have is an error, not a silent no-op
    with pytest.raises(CellbenchError, match="no class \\['macrophages'\\]"):
        T.build(_def(exclude={"a": ("macrophages",)}), cat)


def test_versions_are_stored_and_immutable(cat):
    v1 = T.save(T.build(_def(), cat))
    assert v1.ref == "toy-test@v1" and v1.path.is_file()
    assert T.save(T.build(_def(), cat)).version == 1  # same content: no new version
    v2 = T.save(T.build(_def(per_dataset=2), cat))
    assert v2.version == 2
    assert T.load("toy-test").version == 2
    assert T.load("toy-test@v1").members == v1.members
    assert len(T.load("toy-test@v1").sample_ids("a")) == 4
    with pytest.raises(CellbenchError, match="no version 7"):
        T.load("toy-test@v7")
    with pytest.raises(CellbenchError, match="not stored"):
        T.load("other")
    with pytest.raises(CellbenchError, match="lower-case"):
        _def(name="../x")
    for hostile in ("../../etc", "x[1]", "<b>x</b>", "*"):
        with pytest.raises(CellbenchError, match="lower-case"):
            T.load(hostile)


def test_evaluating_on_a_test_set_covers_exactly_its_members(cat, tmp_path):
    from cellbench.data.samples import load_sample

    ts = T.save(T.build(_def(), cat))
    folder = tmp_path / "preds"
    folder.mkdir()
    for sid in ts.sample_ids("a"):  # perfect predictions for the members only
        np.save(folder / f"{sid}.npy", load_sample(cat, "a", sid).instances)
    st = Store(tmp_path / "s")
    run = evaluate(EvalSpec(dataset="a", predictions=str(folder), test_set="toy-test"), cat, st)
    assert run["test_set"] == "toy-test@v1" and run["coverage"] == "test-set"
    assert run["n_samples"] == 4 and st.done_samples(run["run_id"]) == set(ts.sample_ids("a"))
    row = A.run_table(st).row(0, named=True)
    assert row["complete"] and row["comparable"]
    with pytest.raises(CellbenchError, match="either a split or a test set"):
        Evaluation(
            EvalSpec(dataset="a", split="test", predictions=str(folder), test_set="toy-test"),
            cat,
            st,
        )
    T.save(T.build(_def(name="ab", datasets=("a", "b")), cat))
    with pytest.raises(CellbenchError, match="'c' has no member in test set ab@v1"):
        Evaluation(EvalSpec(dataset="c", predictions=str(folder), test_set="ab"), cat, st)


def test_comparisons_on_a_test_set_use_exactly_its_members(cat, tmp_path):
    ts = T.save(T.build(_def(), cat))
    st = Store(tmp_path / "s")
    for train, v in (("a", 0.6), ("b", 0.4)):
        for test in ts.datasets:
            add_run(
                st,
                f"m_{train}",
                train,
                test,
                [v] * len(ts.sample_ids(test)),
                ids=ts.sample_ids(test),
                coverage="test-set",
            )
    # a newer run of m_b on a (its whole test split, 12 tiles): not the test set's members
    add_run(
        st,
        "m_b",
        "b",
        "a",
        [0.99] * 12,
        ids=[f"test_{i:05d}" for i in range(12)],
        finished="2026-03-01T00:00:00+00:00",
        coverage="split",
    )
    r = A.ranking(st, test_set="toy-test", n_boot=20)
    assert r["train_datasets"].to_list() == ["a", "b"]
    assert r["mean"].to_list() == pytest.approx([0.6, 0.4]) and set(r["n_datasets"]) == {3}
    # without the test set, the newest complete run on each dataset's reference set is used:
    # on a the 12-tile run is a different sample set and the 4-tile set is shared by 2 runs
    assert A.ranking(st, n_boot=20)["mean"].to_list() == pytest.approx([0.6, 0.4])
    m = A.train_test_matrix(st, test_set="toy-test", n_boot=20)
    assert m.filter(pl.col("train_datasets") == "b")["mean"].to_list() == pytest.approx([0.4] * 3)


def test_cli_build_show_and_evaluate_all_datasets(cat, tmp_path):
    from cellbench.cli import app

    r = CliRunner().invoke(
        app,
        [
            "testset",
            "build",
            "toy-test",
            "--dataset",
            "a",
            "--dataset",
            "c",
            "--per-dataset",
            "3",
            "--min-size",
            "12",
            "--exclude",
            "a:macrophage",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    assert got["version"] == 1 and got["definition"]["exclude"] == {"a": ["macrophage"]}
    assert {m["dataset"] for m in got["members"]} == {"a", "c"}
    r = CliRunner().invoke(app, ["testset", "show", "toy-test@v1"])
    assert r.exit_code == 0 and "note: c: 3 of 3" not in r.output and "a " in r.output
    r = CliRunner().invoke(app, ["testset", "build", "toy-test", "--exclude", "a"])
    assert r.exit_code == 2 and "dataset:class" in r.output
    r = CliRunner().invoke(app, ["testset", "build", "unknown-preset"])
    assert r.exit_code == 2 and "not a preset" in r.output
    from cellbench.data.samples import load_sample

    folder = tmp_path / "preds"
    folder.mkdir()
    for m in got["members"]:
        sample = load_sample(cat, m["dataset"], m["sample_id"])
        np.save(folder / f"{m['sample_id']}.npy", sample.instances)
    r = CliRunner().invoke(
        app, ["evaluate", "--predictions", str(folder), "--test-set", "toy-test", "--json"]
    )
    assert r.exit_code == 0, r.output
    runs = json.loads(r.output)
    assert [(x["test_dataset"], x["n_samples"], x["test_set"]) for x in runs] == [
        ("a", 3, "toy-test@v1"),
        ("c", 3, "toy-test@v1"),
    ]
    r = CliRunner().invoke(app, ["testset", "list", "--json"])
    names = {x["name"]: x for x in json.loads(r.output)}
    assert (
        names["toy-test"]["samples"] == 6 and names["nucfuse-test"]["path"] == "preset, not built"
    )


def test_committed_test_sets_on_the_shared_data(data_env, catalog, monkeypatch):
    """The committed versions of NucFuse-test and of the unified H&E test set are what the
    shared data gives, and the committed reference runs cover the members they rank on."""
    from cellbench.core import config

    monkeypatch.setenv("CELLBENCH_REFERENCE", str(config.REPO_DIR / "results" / "reference"))
    committed = T.load("unified")
    # v2: MoNuSAC has local data; v3: its recorded split (test tiles first) changes the draw
    assert committed.ref == "nucfuse-test@v3"
    built = T.build(T.NUCFUSE_TEST, catalog)
    assert built.content_hash() == committed.content_hash()
    s = {r["dataset"]: r for r in built.summary()}
    assert (s["monuseg"]["samples"], s["monuseg"]["source"]) == (14, "test")
    assert (s["consep"]["tiles"], s["consep"]["samples"]) == (14, 224)  # 14 tiles as patches
    assert (s["monusac"]["samples"], s["monusac"]["source"]) == (14, "test")
    he = T.load("unified-he")
    assert he.ref == "unified-he@v1"
    assert T.build(T.UNIFIED_HE, catalog).content_hash() == he.content_hash()
    counts = {d: len(he.sample_ids(d)) for d in he.datasets}
    assert counts == {"monuseg": 14, "consep": 224, "cryonuseg": 2, "monusac": 14, "gbm": 14}
    # the reference runs rank every single-dataset model on unified-he (all five datasets),
    # and the earlier split runs still cover NucFuse-test v1's four local datasets
    r = A.ranking(Store(), test_set="unified-he@v1", n_boot=20)
    singles = r.filter(pl.col("k") == 1)
    assert singles["rank"].null_count() == 0 and set(singles["n_datasets"]) == {5}
    assert set(singles["train_datasets"]) == {"monuseg", "consep", "gbm", "monusac"}
    r1 = A.ranking(Store(), test_set="nucfuse-test@v1", n_boot=20)
    assert set(r1.filter(pl.col("rank").is_not_null())["n_datasets"]) == {4}
