import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from cellbench.cli import app

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _env(root):
    return {"CELLBENCH_DATA": str(root), "CELLBENCH_CATALOG": str(REPO / "data_catalog.yaml")}


def test_catalog_list_json_without_data(tmp_path):
    r = runner.invoke(app, ["catalog", "list", "--json"], env=_env(tmp_path))
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    need = {
        "id",
        "name",
        "stain",
        "organs",
        "tasks",
        "license",
        "citation",
        "available",
        "n_samples",
    }
    assert all(need <= set(x) for x in rows) and not any(x["available"] for x in rows)
    assert all(x["obtain"] for x in rows)


def test_catalog_validate_bad_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [ {id: x, name: y} ]\n")
    r = runner.invoke(app, ["catalog", "validate", str(bad)], env=_env(tmp_path))
    assert r.exit_code == 2
    assert "bad.yaml: dataset 'x': field 'citation': Field required" in r.stderr
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["catalog", "validate"], env=_env(tmp_path))
    assert r.exit_code == 0 and "20 datasets" in r.stdout


def test_unavailable_dataset_says_how_to_obtain(tmp_path):
    r = runner.invoke(app, ["samples", "pannuke"], env=_env(tmp_path))
    assert r.exit_code == 2 and "has no local data" in r.stderr and "TIA Warwick" in r.stderr


def test_samples_formats(shared_data, tmp_path):
    env = _env(shared_data)
    r = runner.invoke(app, ["samples", "monuseg", "--split", "test", "--format", "json"], env=env)
    rows = json.loads(r.stdout)
    assert len(rows) == 14 and sum(x["n_objects"] for x in rows) == 6697
    r = runner.invoke(app, ["catalog", "list", "--json"], env=env)
    n = {x["id"]: x["n_samples"] for x in json.loads(r.stdout)}
    assert n["consep"] == 656 and n["ocelot"] == 81 and n["cryonuseg"] == 2
    out = tmp_path / "t.parquet"
    r = runner.invoke(
        app,
        ["samples", "consep", "--split", "train", "--format", "parquet", "--out", str(out)],
        env=env,
    )
    assert r.exit_code == 0 and pl.read_parquet(out).height == 432
    r = runner.invoke(app, ["samples", "cryonuseg", "--format", "csv"], env=env)
    assert r.stdout.count("\n") == 3
    r = runner.invoke(app, ["catalog", "show", "ocelot"], env=env)
    assert "local_counts" in r.stdout and "objects: 12677" in r.stdout


def test_app_entry_page(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CELLBENCH_DATA", str(tmp_path))
    monkeypatch.setenv("CELLBENCH_CATALOG", str(REPO / "data_catalog.yaml"))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert at.metric[0].value == "20" and at.metric[1].value == "0"
    monkeypatch.setenv("CELLBENCH_CATALOG", str(tmp_path / "missing.yaml"))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    assert not at.exception and "catalog file not found" in at.error[0].value
