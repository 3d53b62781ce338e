"""The distributed executor (issue 17, item 2, for evaluate): a small evaluation on a local
Dask cluster of 2 worker processes stores exactly the rows of the in-process run."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from hostile import catalog_entry, toy_instances, write_catalog

from cellbench.data.catalog import load_catalog
from cellbench.runs.evaluate import EvalSpec, Evaluation
from cellbench.runs.store import Store

pytest.importorskip("distributed", reason="the dask executor needs distributed")


def _dataset(tmp_path, n=6):
    root = tmp_path / "data" / "toy"
    (root / "img").mkdir(parents=True)
    (root / "mask").mkdir()
    preds = tmp_path / "pred"
    preds.mkdir()
    rng = np.random.default_rng(0)
    for k in range(n):
        lab = toy_instances(k)
        tifffile.imwrite(root / "img" / f"s{k}.tif", np.full((*lab.shape, 3), 200, np.uint8))
        tifffile.imwrite(root / "mask" / f"s{k}.tif", lab.astype(np.uint16))
        pred = np.roll(lab, int(rng.integers(0, 3)), axis=1)
        pred[pred == 1] = 0  # one missed nucleus
        np.save(preds / f"s{k}.npy", pred)
    opts = {"images": "img/*.tif", "masks": "mask/{key}.tif", "split": "test"}
    entry = catalog_entry("toy", {"format": "label_tiff", "location": "toy", "options": opts})
    cat = load_catalog(write_catalog(tmp_path / "c.yaml", [entry]), tmp_path / "data", user=False)
    return cat, preds


def _rows(store, run_id):
    return (
        store.scan([run_id])
        .collect()
        .sort(["level", "sample_id", "class", "metric"], nulls_last=True)
    )


def test_two_worker_cluster_gives_the_rows_of_the_local_run(tmp_path, monkeypatch):
    cat, preds = _dataset(tmp_path)
    monkeypatch.setenv("CELLBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CELLBENCH_CATALOG", str(tmp_path / "c.yaml"))
    local = Evaluation(EvalSpec("toy", predictions=str(preds)), cat, Store(tmp_path / "a"))
    local.run()
    dist = Evaluation(
        EvalSpec("toy", predictions=str(preds), executor="dask", workers=2),
        cat,
        Store(tmp_path / "b"),
    )
    assert dist.run_id == local.run_id  # where it ran is not part of what it is
    assert dist.run()["status"] == "complete"
    a, b = _rows(local.store, local.run_id), _rows(dist.store, dist.run_id)
    assert a.height > 6 * 10 and a.equals(b)
    assert local.store.results(local.run_id) == dist.store.results(dist.run_id)


def test_model_run_on_the_cluster_infers_in_the_workers(tmp_path, monkeypatch):
    from conftest import tiny_checkpoint

    from cellbench.models.registry import user_dir
    from cellbench.runs import predcache

    cat, _ = _dataset(tmp_path, n=4)
    monkeypatch.setenv("CELLBENCH_DATA", str(tmp_path / "data"))
    tiny_checkpoint(user_dir() / "tiny")
    local = Evaluation(EvalSpec("toy", model="tiny"), cat, Store(tmp_path / "a"))
    local.run()
    dist = Evaluation(EvalSpec("toy", model="tiny", executor="dask"), cat, Store(tmp_path / "b"))
    dist.run()
    assert dist.source.predictor is None  # the model ran in the workers only
    assert all(predcache.has(dist.run_id, r.sample_id) for r in dist.records)
    assert _rows(local.store, local.run_id).equals(_rows(dist.store, dist.run_id))


def test_a_model_x_dataset_grid_shares_one_cluster(tmp_path, monkeypatch):
    """`evaluate --model A --model B --dataset D --executor dask`: every run of the grid on
    the same 2-worker cluster, each with the rows of its in-process run."""
    import json

    from conftest import tiny_checkpoint
    from typer.testing import CliRunner

    from cellbench.cli.main import app
    from cellbench.models.registry import user_dir
    from cellbench.runs import executor as X

    cat, _ = _dataset(tmp_path, n=3)
    monkeypatch.setenv("CELLBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CELLBENCH_CATALOG", str(tmp_path / "c.yaml"))
    monkeypatch.setenv("CELLBENCH_HOME", str(tmp_path / "home"))
    tiny_checkpoint(user_dir() / "tiny")
    tiny_checkpoint(user_dir() / "tiny2", model_id="tiny2", seed=1)
    started = []
    real = X.get_executor
    monkeypatch.setattr(X, "get_executor", lambda *a, **k: started.append(a) or real(*a, **k))
    args = ["evaluate", "--dataset", "toy", "--model", "tiny", "--model", "tiny2"]
    r = CliRunner().invoke(app, [*args, "--executor", "dask", "--workers", "2", "--json"])
    assert r.exit_code == 0, r.output
    runs = json.loads(r.output[r.output.index("[") :])
    assert [x["model_id"] for x in runs] == ["tiny", "tiny2"] and len(started) == 1
    for x in runs:
        local = Evaluation(EvalSpec("toy", model=x["model_id"]), cat, Store(tmp_path / "l"))
        local.run()
        assert local.run_id == x["run_id"]
        assert _rows(local.store, local.run_id).equals(_rows(Store(), x["run_id"]))
