"""Evaluation runs, the metrics store, queries with bootstrap CIs, background jobs, CLI."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import polars as pl
import pytest
from conftest import tiny_checkpoint
from typer.testing import CliRunner

from cellbench.analysis import (
    as_matrix,
    bootstrap_mean,
    group_summary,
    run_table,
    train_test_matrix,
)
from cellbench.core.errors import DataError
from cellbench.models.registry import user_dir
from cellbench.runs.evaluate import EvalSpec, Evaluation, evaluate, flatten
from cellbench.runs.store import SCHEMA, RunBusyError, Store

# -- store and queries without data -----------------------------------------------------------


def _rows(run, n, value, organ="lung", patient=None):
    return [
        {
            "run_id": run,
            "model_id": "m",
            "train_datasets": "a",
            "test_dataset": "b",
            "level": "sample",
            "sample_id": f"s{i}",
            "organ": organ,
            "patient_id": None if patient is None else f"p{i // patient}",
            "class": "all",
            "metric": "pq",
            "value": value(i),
        }
        for i in range(n)
    ]


def test_store_appends_parts_and_never_rewrites(tmp_path):
    st = Store(tmp_path / "s")
    p1 = st.append("r1", _rows("r1", 3, float), {"s0": {}})
    before = p1.read_bytes()
    st.append("r1", _rows("r1", 5, float)[3:])
    assert p1.read_bytes() == before
    assert st.done_samples("r1") == {f"s{i}" for i in range(5)}
    df = st.scan().collect()
    assert df.schema == pl.Schema(SCHEMA) and df.height == 5
    with pytest.raises(ValueError, match="cannot be added"):
        st.append("r2", _rows("r1", 1, float))
    # a writer killed mid-part leaves only a dot-temp file: invisible, then cleaned
    (st.metrics_dir / "r1" / ".part-x.parquet.tmp").write_bytes(b"half")
    assert st.scan().collect().height == 5
    assert st.clean_temporary("r1") == 1


def test_run_lock_refuses_a_second_writer_and_marks_dead_runs(tmp_path):
    st = Store(tmp_path / "s")
    st.write_run({"run_id": "r", "status": "running", "created": "t"})
    with st.lock("r"):
        assert st.get_run("r")["status"] == "running"
        with pytest.raises(RunBusyError, match="being evaluated by pid"), st.lock("r"):
            pass
    assert st.get_run("r")["status"] == "interrupted"


def test_bootstrap_interval_by_cluster():
    v = np.array([0.1, 0.2, 0.3, 0.9, 1.0, 1.1])
    lo, hi = bootstrap_mean(v, n_boot=2000)
    assert lo < v.mean() < hi
    # clusters of identical values: resampling 2 clusters is wider than 6 samples
    clo, chi = bootstrap_mean(v, np.array([0, 0, 0, 1, 1, 1]), n_boot=2000)
    assert chi - clo > hi - lo
    # one sample per cluster = the ordinary bootstrap, draw for draw
    assert bootstrap_mean(v, np.arange(6), seed=3) == bootstrap_mean(v, None, seed=3)
    assert np.isnan(bootstrap_mean(v[:1])[0])


def test_group_summary_means_counts_and_cluster_unit(tmp_path):
    st = Store(tmp_path / "s")
    st.append("r", _rows("r", 6, lambda i: i / 10, organ="lung", patient=3))
    st.append(
        "r",
        [
            {**r, "sample_id": "x" + r["sample_id"]}
            for r in _rows("r", 4, lambda i: 1.0, organ="colon")
        ],
    )
    st.append("r", [{**_rows("r", 1, float)[0], "sample_id": "empty", "value": None}])
    g = group_summary(st, ["r"], "pq", ["run_id", "organ"], n_boot=200)
    lung = g.filter(pl.col("organ") == "lung").row(0, named=True)
    assert lung["n"] == 6 and lung["mean"] == pytest.approx(0.25)
    assert lung["resampled"] == "patient_id"
    colon = g.filter(pl.col("organ") == "colon").row(0, named=True)
    # 4 samples: below CI_MIN_N (5), so no interval, only n
    assert colon["mean"] == 1.0 and colon["n"] == 4 and colon["ci_low"] is None
    assert colon["resampled"] == "sample_id"


def test_flatten_results_into_rows():
    res = {
        "preset": "hovernet",
        "iou_threshold": 0.5,
        "tp": 3,
        "pq": 0.5,
        "aji": None,
        "per_class": {"1": {"tp": 1, "pq": 0.25}},
        "by_threshold": {"0.75": {"pq": 0.1}},
        "types": {"f_d": 0.8, "acc": 0.5, "f_t": {"1": 0.4}},
    }
    got = set(flatten(res, {"1": "tumour"}))
    assert ("all", "pq", 0.5) in got and ("all", "aji", None) in got
    assert ("tumour", "pq", 0.25) in got and ("all", "pq@0.75", 0.1) in got
    assert ("tumour", "f_t", 0.4) in got and ("all", "f_d", 0.8) in got
    assert not any(m in ("iou_threshold", "preset") for _, m, _ in got)


# -- evaluations on the shared data -----------------------------------------------------------


def test_bioimageio_model_on_dsb2018(data_env, catalog, tmp_path):
    st = Store(tmp_path / "s")
    run = evaluate(EvalSpec(dataset="dsb2018", model="unet2d_nuclei_broad_onnx"), catalog, st)
    assert run["status"] == "complete" and run["n_done"] == 2
    assert run["model_sha256"].startswith("85f5ac80") and run["catalog_version"]
    df = st.scan([run["run_id"]]).collect()
    pq = df.filter((pl.col("metric") == "pq") & (pl.col("level") == "sample"))
    assert pq.height == 2 and pq.get_column("value").min() > 0.45
    dataset_pq = df.filter((pl.col("metric") == "pq") & (pl.col("level") == "dataset"))
    assert dataset_pq.item(0, "value") == pytest.approx(pq.get_column("value").mean())
    # same request again: the run is complete, nothing is recomputed or duplicated
    again = evaluate(EvalSpec(dataset="dsb2018", model="unet2d_nuclei_broad_onnx"), catalog, st)
    assert again["run_id"] == run["run_id"] and st.scan().collect().height == df.height


def test_builtin_checkpoint_on_three_he_datasets_grouped_by_center_and_organ(
    data_env, catalog, tmp_path
):
    tiny_checkpoint(user_dir() / "tiny")
    st = Store(tmp_path / "s")
    ids = []
    for ds, split, limit in (("monuseg", "test", 4), ("consep", "test", 8), ("cryonuseg", None, 2)):
        run = evaluate(EvalSpec(dataset=ds, split=split, model="tiny", limit=limit), catalog, st)
        assert run["status"] == "complete" and run["train_datasets"] == "monuseg"
        ids.append(run["run_id"])
    by_center = group_summary(st, ids, "pq", ["test_dataset", "center"], n_boot=100)
    assert by_center.filter(pl.col("test_dataset") == "monuseg").height >= 2
    assert set(by_center.get_column("test_dataset")) == {"monuseg", "consep", "cryonuseg"}
    by_organ = group_summary(st, ids, "dice1", ["test_dataset", "organ"], n_boot=100)
    assert (
        by_organ.filter(pl.col("test_dataset") == "monuseg").get_column("organ").null_count() == 0
    )
    # --limit runs (4 of 14 MoNuSeg, 8 of 224 CoNSeP test images) are partial: never in the
    # matrix; the CryoNuSeg run covers its 2 images, so it is complete
    m = as_matrix(train_test_matrix(st, "pq", n_boot=50))
    assert m.columns == ["train_datasets", "cryonuseg"]
    cov = dict(zip(*run_table(st).select("test_dataset", "coverage"), strict=True))
    assert cov == {"monuseg": "subset", "consep": "subset", "cryonuseg": "split"}


def test_stored_predictions_folder_and_prediction_set(data_env, catalog, tmp_path, monkeypatch):
    from cellbench.data import imageio
    from cellbench.data.samples import iter_samples

    folder = tmp_path / "preds"
    folder.mkdir()
    sids = []
    for k, (rec, s) in enumerate(iter_samples(catalog, "consep", "test")):
        if k == 3:
            break
        np.save(folder / f"{rec.sample_id}.npy", s.instances)
        sids.append(rec.sample_id)
    st = Store(tmp_path / "s")
    decoded = []
    real_read = imageio.read_image
    monkeypatch.setattr(imageio, "read_image", lambda p: decoded.append(p) or real_read(p))
    run = evaluate(
        EvalSpec(dataset="consep", split="test", predictions=str(folder), samples=sids), catalog, st
    )
    pq = st.scan([run["run_id"]]).filter(pl.col("metric") == "pq").collect()
    assert pq.get_column("value").min() > 0.9999
    assert decoded == []  # scoring stored predictions decodes no image (sizes from headers)
    ev = Evaluation.of_run(st.get_run(run["run_id"]), catalog, st)
    assert next(ev.replay())[1].image is not None and decoded  # the error view draws them
    run = evaluate(EvalSpec(dataset="ocelot", predictions="ocelot_fold0_model"), catalog, st)
    f1 = (
        st.scan([run["run_id"]])
        .filter((pl.col("level") == "dataset") & (pl.col("metric") == "f1"))
        .collect()
    )
    got = dict(zip(f1.get_column("class"), f1.get_column("value"), strict=True))
    assert got["BC"] == pytest.approx(0.6403) and got["TC"] == pytest.approx(0.7439)
    # a folder missing a sample's map names the folder and the sample
    ev = Evaluation(
        EvalSpec(dataset="consep", split="test", predictions=str(folder), limit=5), catalog, st
    )
    with pytest.raises(DataError, match="no prediction for sample"):
        ev.run()
    assert st.get_run(ev.run_id)["status"] == "failed"
    assert st.done_samples(ev.run_id) == set(sids)  # finished samples kept


def test_bad_requests(data_env, catalog, tmp_path):
    st = Store(tmp_path / "s")
    with pytest.raises(DataError, match="neither a folder"):
        Evaluation(EvalSpec(dataset="ocelot", predictions="nope"), catalog, st)
    with pytest.raises(KeyError, match="no model"):
        Evaluation(EvalSpec(dataset="dsb2018", model="nope"), catalog, st)
    with pytest.raises(DataError, match="no local data"):
        Evaluation(EvalSpec(dataset="pannuke", model="unet2d_nuclei_broad_onnx"), catalog, st)


def test_stop_request_keeps_finished_samples_and_rerun_completes(data_env, catalog, tmp_path):
    tiny_checkpoint(user_dir() / "tiny")
    st = Store(tmp_path / "s")
    spec = EvalSpec(dataset="consep", split="test", model="tiny", limit=6)
    seen = []
    run = Evaluation(spec, catalog, st).run(
        flush_every=1, should_stop=lambda: len(seen) >= 3, progress=seen.append
    )
    assert run["status"] == "cancelled" and len(st.done_samples(run["run_id"])) == 3
    done = Evaluation(spec, catalog, st).run()
    assert done["status"] == "complete"
    fresh = Store(tmp_path / "fresh")
    Evaluation(spec, catalog, fresh).run()

    def rows(s):
        return (
            s.scan()
            .filter(pl.col("level") == "sample")
            .drop("run_id")
            .sort(["sample_id", "class", "metric"])
            .collect()
        )

    assert rows(st).equals(rows(fresh))


# -- background jobs --------------------------------------------------------------------------


def _wait(job_id, cond, timeout=120):
    from cellbench.runs.jobs import job_status

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = job_status(job_id)
        if cond(st):
            return st
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} stuck: {st}")


def test_killed_job_loses_no_rows_and_resumes(data_env):
    from cellbench.runs.jobs import job_status, resume_job, submit_job, wait_job

    tiny_checkpoint(user_dir() / "tiny")
    spec = EvalSpec(dataset="consep", split="test", model="tiny", limit=40)
    job = submit_job(spec, flush_every=1)
    st = _wait(job, lambda s: (s.get("done") or 0) >= 4)
    os.kill(st["pid"], signal.SIGKILL)
    store = Store()
    # the lock is released when the last thread of the killed process is gone
    _wait(
        job,
        lambda s: (
            s["status"] == "interrupted" and store.get_run(s["run_id"])["status"] == "interrupted"
        ),
    )
    kept = store.done_samples(st["run_id"])
    assert len(kept) >= 4
    per_sample = store.scan().filter(pl.col("level") == "sample").group_by("sample_id").len()
    assert per_sample.collect().get_column("len").n_unique() == 1  # no half-written sample
    resume_job(job)
    final = wait_job(job, timeout=300)
    assert final["status"] == "complete" and final["done"] == 40
    assert kept <= store.done_samples(st["run_id"]) and len(store.done_samples(st["run_id"])) == 40
    assert job_status(job)["status"] == "complete"


def test_two_jobs_at_once_and_cancel(data_env):
    from cellbench.runs.jobs import cancel_job, list_jobs, submit_job, wait_job

    tiny_checkpoint(user_dir() / "tiny")
    a = submit_job(EvalSpec(dataset="consep", split="test", model="tiny", limit=6))
    b = submit_job(EvalSpec(dataset="dsb2018", model="unet2d_nuclei_broad_torchscript"))
    same = submit_job(EvalSpec(dataset="consep", split="test", model="tiny", limit=6))
    ra, rb, rs = (wait_job(j, timeout=300) for j in (a, b, same))
    assert rb["status"] == "complete"
    # the same run twice: one job evaluates it, the other is refused by the run lock (or finds
    # the run complete); rows are never written twice
    assert "complete" in (ra["status"], rs["status"])
    refused = [r for r in (ra, rs) if r["status"] == "failed"]
    assert all("being evaluated" in r["error"] for r in refused)
    store = Store()
    per_sample = store.scan([ra["run_id"]]).filter(pl.col("level") == "sample")
    assert per_sample.group_by("sample_id").len().collect().height == 6
    assert per_sample.group_by("sample_id", "class", "metric").len().collect()["len"].max() == 1
    assert {j["job_id"] for j in list_jobs()} == {a, b, same}
    c = submit_job(EvalSpec(dataset="consep", split="test", model="tiny", limit=200), flush_every=1)
    _wait(c, lambda s: (s.get("done") or 0) >= 2)
    cancel_job(c)
    rc = wait_job(c, timeout=120)
    assert rc["status"] == "cancelled" and 2 <= len(store.done_samples(rc["run_id"])) < 200


# -- command line -----------------------------------------------------------------------------


def test_cli_models_evaluate_runs_results(data_env):
    from cellbench.cli import app

    r = CliRunner()
    out = r.invoke(app, ["models", "list", "--json"])
    assert out.exit_code == 0, out.output
    assert {m["id"] for m in json.loads(out.output)} >= {
        "unet2d_nuclei_broad_onnx",
        "unet2d_nuclei_broad_torchscript",
    }
    out = r.invoke(
        app,
        [
            "evaluate",
            "--dataset",
            "dsb2018",
            "--model",
            "unet2d_nuclei_broad_torchscript",
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    run = json.loads(out.output[out.output.index("{") :])
    out = r.invoke(app, ["runs", "list", "--json"])
    assert [x["run_id"] for x in json.loads(out.output)] == [run["run_id"]]
    out = r.invoke(app, ["results", "--run", run["run_id"], "--group-by", "sample_id", "--json"])
    rows = json.loads(out.output)
    assert len(rows) == 2 and all(0.45 < x["mean"] < 0.7 for x in rows)
    out = r.invoke(app, ["results", "--run", "nope"])
    assert out.exit_code == 2 and "no run 'nope'" in out.output
    out = r.invoke(app, ["evaluate", "--dataset", "dsb2018"])
    assert out.exit_code != 0 and "exactly one of --model and --predictions" in out.output


def test_cli_reports_a_corrupted_checkpoint(data_env):
    from cellbench.cli import app

    card = tiny_checkpoint(user_dir() / "tiny")
    card.weights_path.write_bytes(b"garbage")
    out = CliRunner().invoke(app, ["models", "verify", "tiny"])
    assert out.exit_code == 2 and "sha256 mismatch" in out.output
    assert str(card.weights_path) in out.output


def test_post_processing_workers_give_the_same_rows(data_env, catalog, tmp_path):
    tiny_checkpoint(user_dir() / "tiny", seed=1)
    rows = []
    for workers in (1, 2):
        st = Store(tmp_path / f"s{workers}")
        spec = EvalSpec(dataset="consep", split="test", model="tiny", limit=5, workers=workers)
        run = evaluate(spec, catalog, st)
        rows.append(st.scan().drop("run_id").sort(["sample_id", "class", "metric"]).collect())
        assert run["parameters"]["workers"] == workers
    assert rows[0].equals(rows[1])
    assert rows[0].filter(pl.col("metric") == "n_pred").get_column("value").max() > 0


def test_reference_store_is_read_with_the_workspace_and_never_written(tmp_path):
    from cellbench.runs.synthetic import synthetic_store

    ref = tmp_path / "reference"
    ids = synthetic_store(Store(ref), train_sets=("monuseg",), test_sets=("monuseg",), n_samples=3)
    before = sorted(p.name for p in ref.rglob("*"))
    st = Store(tmp_path / "work", reference=ref)
    st.append("r_local", _rows("r_local", 2, float))
    st.write_run({"run_id": "r_local", "status": "complete", "created": "t"})
    assert set(st.run_ids()) == {ids[0], "r_local"}
    assert st.get_run(ids[0])["reference"] and not st.get_run("r_local")["reference"]
    assert st.scan().collect().height == 3 * 6 + 2
    assert st.done_samples(ids[0]) == {f"monuseg_{i:04d}" for i in range(3)}
    assert sorted(p.name for p in ref.rglob("*")) == before
    assert Store(tmp_path / "work", reference="").run_ids() == ["r_local"]


def test_a_class_the_dataset_does_not_label_scores_as_no_class():
    """A 6-class model on MoNuSAC (4 classes, stroma unannotated): its connective nuclei get
    class 0, stay in the class-agnostic figures and in no class's; none is refused."""
    from cellbench.metrics import instance_scores
    from cellbench.models.postprocess import Instances
    from cellbench.runs.evaluate import _Source

    src = _Source.__new__(_Source)
    src.class_map = {1: 1, 2: 2, 5: None}  # epithelial, lymphocyte; connective unlabelled
    lab = np.zeros((40, 40), np.int32)
    lab[2:10, 2:10], lab[20:30, 20:30], lab[2:10, 30:38] = 1, 2, 3
    inst = Instances(lab, {1: 1, 2: 2, 3: 5}, {1: 0.9, 2: 0.8, 3: 0.7})
    classes = src._classes(inst)
    assert classes == {1: 1, 2: 2, 3: 0}
    true = lab.copy()
    true[true == 3] = 0  # the stroma nucleus is not annotated
    r = instance_scores(true, lab, true_classes={1: 1, 2: 2}, pred_classes=classes)
    assert (r["tp"], r["fp"]) == (2, 1)  # class-agnostic: the unlabelled one is an FP
    assert set(r["per_class"]) == {"1", "2"} and r["per_class"]["1"]["pq"] == pytest.approx(
        1, abs=1e-5
    )


def test_a_job_entry_must_name_a_cellbench_function(tmp_path, monkeypatch):
    from cellbench.core.errors import CellbenchError
    from cellbench.runs.jobs import jobs_dir, submit_task

    monkeypatch.setenv("CELLBENCH_HOME", str(tmp_path / "home"))
    for entry in ("os:system", "cellbench.runs.jobs:nope", "cellbench.runs.jobs:_x y"):
        with pytest.raises(CellbenchError, match="job entry"):
            submit_task("predict", "x", {}, entry)
    assert not jobs_dir().exists() or not any(jobs_dir().iterdir())  # nothing written


def test_stored_predictions_over_forked_workers_give_the_same_rows(
    data_env, catalog, tmp_path, monkeypatch
):
    """Issue 30 item 2: a run of many stored predictions is spread over forked workers (from
    the main thread with no other live threads); its rows equal one process's, an error in
    a worker names the file, and its samples before it are kept."""
    from cellbench.runs import executor
    from cellbench.runs.synthetic import perturb_instances

    folder = tmp_path / "preds"
    folder.mkdir()
    root = data_env / "consep" / "inst" / "test"
    files = sorted(root.glob("*.npy"))[:60]
    for i, f in enumerate(files):
        np.save(folder / f.name, perturb_instances(np.load(f), seed=i).astype(np.int32))
    sids = [f.stem for f in files]
    spec = EvalSpec(dataset="consep", split="test", predictions=str(folder), samples=sids)
    forks = []
    real = executor.forked_map
    monkeypatch.setattr(executor, "forked_map", lambda *a: forks.append(a[2]) or real(*a))
    rows = []
    for workers in ("1", "2"):
        monkeypatch.setenv("CELLBENCH_WORKERS", workers)
        st = Store(tmp_path / f"s{workers}")
        evaluate(spec, catalog, st)
        rows.append(st.scan().drop("run_id").sort(["level", "sample_id", "class", "metric"]))
    assert forks == [2]  # only the second spread over workers
    assert rows[0].collect().equals(rows[1].collect())
    # a bad file in a worker's share: its error, named; the samples scored before it kept
    np.save(folder / files[40].name, np.full((256, 256), -1, np.int32))
    st = Store(tmp_path / "bad")
    ev = Evaluation(spec, catalog, st)
    with pytest.raises(DataError, match=f"{files[40].stem}.npy: instance ids must lie"):
        ev.run()
    assert st.get_run(ev.run_id)["status"] == "failed"
    assert set(sids[:8]) <= st.done_samples(ev.run_id) < set(sids)


def test_file_hashes_are_remembered_per_file_version(tmp_path, monkeypatch):
    import hashlib

    from cellbench.core import hashing

    monkeypatch.setenv("CELLBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(hashing, "_memory", {})
    monkeypatch.setattr(hashing, "_loaded_from", None)
    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 1000)
    old = time.time() - 10
    os.utime(f, (old, old))  # settled: may be remembered on disk
    want = hashlib.sha256(b"x" * 1000).hexdigest()
    assert hashing.sha256_file(f) == want
    hashing.save()
    assert str(f.resolve()) in json.loads((tmp_path / "home/cache/sha256.json").read_text())
    # a new process reads it back; any change of the file is a new version, hashed again
    monkeypatch.setattr(hashing, "_memory", {})
    monkeypatch.setattr(hashing, "_loaded_from", None)
    reads = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: reads.append(a[0]) or real_open(*a, **k))
    assert hashing.sha256_file(f) == want and f not in reads
    f.write_bytes(b"y" * 1000)  # same size, new content
    assert hashing.sha256_file(f) == hashlib.sha256(b"y" * 1000).hexdigest()


@pytest.mark.parametrize(
    "content",
    ['{"a": [', "[1, 2, 3]", '{"x": [[1, 2], "d", 3], "y": [[1, 2, 3, 4], 5]}', "[" * 100_000],
)
def test_a_corrupt_hash_cache_is_ignored_and_rewritten(tmp_path, monkeypatch, content):
    """Truncated, wrong types, nested past the parser's depth: the cache is only an
    optimisation, so the hash is computed and the cache written anew."""
    import hashlib

    from cellbench.core import hashing

    monkeypatch.setenv("CELLBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(hashing, "_memory", {})
    monkeypatch.setattr(hashing, "_loaded_from", None)
    cache = tmp_path / "home" / "cache" / "sha256.json"
    cache.parent.mkdir(parents=True)
    cache.write_text(content)
    f = tmp_path / "a.bin"
    f.write_bytes(b"z" * 10)
    old = time.time() - 10
    os.utime(f, (old, old))
    assert hashing.sha256_file(f) == hashlib.sha256(b"z" * 10).hexdigest()
    hashing.save()
    assert str(f.resolve()) in json.loads(cache.read_text())
