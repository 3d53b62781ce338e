"""Dataset statistics tables (seed 000 Tables 1 and 3, seed 003 Table 1 ND) on hand-built
inputs with known answers, and on the shared data."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import yaml
from test_layouts import _entry as layout_entry
from typer.testing import CliRunner

from cellbench.data import stats as S
from cellbench.data.catalog import load_catalog
from cellbench.data.samples import SCHEMA


def _table(rows):
    return pl.DataFrame([{k: r.get(k) for k in SCHEMA} for r in rows], schema=SCHEMA, orient="row")


def test_key_center_and_category_tables():
    rows = [
        # patient, slide, center, category, age, sex, stain, objects
        ("P1", "S1", "C1", "I", 40, "M", "PAP", 10),
        ("P1", "S1", "C1", "I", 40, "M", "PAP", 5),
        ("P1", "S2", "C1", "I", 40, "M", "MGG", 7),
        ("P2", "S3", "C2", "IV", 60, "F", "PAP", 3),
        ("P3", "S4", None, "I", None, None, "PAP", 1),
    ]
    t = _table(
        [
            dict(
                dataset="d",
                sample_id=f"s{i}",
                patient_id=p,
                slide_id=s,
                center=c,
                category=cat,
                age=a,
                sex=x,
                stain=st,
                n_objects=n,
            )
            for i, (p, s, c, cat, a, x, st, n) in enumerate(rows)
        ]
    )
    key = dict(S.key_statistics(t).iter_rows())
    assert key["Number of patients"] == "3" and key["Number of slides (WSIs)"] == "4"
    assert key["Number of samples"] == "5" and key["Annotated objects"] == "26"
    assert key["Stain types"] == "PAP – 3 (3); MGG – 1 (1)"
    assert (
        key["Age"].startswith("Range – 40 to 60 years; Mean – 50 years") and "n = 2" in key["Age"]
    )
    assert key["Sex"] == "F – 1; M – 1; unknown – 1"
    assert key["Category"] == "I – 2 (3); IV – 1 (1)"
    assert key["Diagnosis"] == "Non cancerous – 2 (3); Cancerous – 1 (1)"  # I-II / III-IV
    assert key["Centers"] == "C1 – 1 (2); C2 – 1 (1); unknown – 1 (1)"
    c = {r["center"]: r for r in S.center_table(t).iter_rows(named=True)}
    assert (c["C1"]["patients"], c["C1"]["slides"], c["C1"]["samples"], c["C1"]["objects"]) == (
        1,
        2,
        3,
        22,
    )
    assert c["unknown"]["samples"] == 1
    cat = S.category_table(t)
    assert cat.rows() == [("I", 3, 4, 23), ("IV", 1, 1, 3), ("Total", 4, 5, 26)]
    # no patient ids recorded: "unknown", and counts by slides
    key = dict(S.key_statistics(t.with_columns(patient_id=pl.lit(None, pl.Utf8))).iter_rows())
    assert (
        key["Number of patients"] == "unknown"
        and key["Stain types"] == "PAP – 3 slides; MGG – 1 slides"
    )


@pytest.fixture
def cat(tmp_path):
    """Two 64x64 images (mpp 0.5): one with a 4x4 class-1 and a 2x3 class-2 nucleus, one with a
    5x5 class-1 nucleus."""
    f = tmp_path / "data" / "d" / "f"
    f.mkdir(parents=True)
    masks = np.zeros((2, 64, 64, 6))
    masks[0, 0:4, 0:4, 0] = 1
    masks[0, 10:12, 10:13, 1] = 2
    masks[1, 20:25, 20:25, 0] = 1
    np.save(f / "images.npy", np.full((2, 64, 64, 3), 100.0))
    np.save(f / "masks.npy", masks)
    classes = [
        {"id": 1, "name": "tumour", "nodes": ["neoplastic"]},
        {"id": 2, "name": "immune", "nodes": ["inflammatory"]},
    ]
    local = {"format": "pannuke", "location": "d", "options": {"folds": {"test": "f"}}}
    entry = layout_entry("d", local, classes=classes, stain=["H&E"], mpp=0.5)
    p = tmp_path / "cat.yaml"
    p.write_text(yaml.safe_dump({"datasets": [entry]}))
    return load_catalog(p, root=tmp_path / "data")


def test_annotation_tables_count_classes_areas_and_density(cat):
    st = S.annotation_stats(cat, "d")
    assert st.samples["objects"].to_list() == [2, 1]
    # density: objects per 256x256 px; a 64x64 image is 1/16 of that
    assert st.samples["density"].to_list() == pytest.approx([32.0, 16.0])
    assert S.class_table(st).rows() == [("immune", 1, 1), ("tumour", 2, 2), ("Total", 3, 3)]
    areas = {r["class"]: r for r in S.area_table(st).iter_rows(named=True)}
    assert areas["immune"]["mean_px"] == 6 and areas["tumour"]["p50_px"] == pytest.approx(20.5)
    assert areas["all"]["n"] == 3 and areas["immune"]["median_um2"] == pytest.approx(6 * 0.25)
    d = S.density_table(st)
    assert d["density_mean"][0] == pytest.approx(24.0) and d["tile_sizes"][0] == "64x64"


def test_stats_cli_json_and_csv(cat, tmp_path, monkeypatch):
    from cellbench.cli import app

    monkeypatch.setenv("CELLBENCH_CATALOG", str(tmp_path / "cat.yaml"))
    monkeypatch.setenv("CELLBENCH_DATA", str(tmp_path / "data"))
    r = CliRunner().invoke(app, ["stats", "d", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    assert set(got) == set(S.TABLES)
    assert got["classes"][-1] == {"class": "Total", "test": 3, "Total": 3}
    r = CliRunner().invoke(app, ["stats", "d", "--table", "areas", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0 and (tmp_path / "o" / "d_areas.csv").read_text().startswith("class,n")
    r = CliRunner().invoke(app, ["stats", "d", "--table", "nope"])
    assert r.exit_code == 2 and "choose from" in r.output
    r = CliRunner().invoke(app, ["stats", "nope"])
    assert r.exit_code == 2


def test_shared_data_statistics(catalog, table):
    monuseg = S.dataset_tables(catalog, "monuseg")
    d = {r["split"]: r for r in monuseg["density"].iter_rows(named=True)}
    # 6697 nuclei on 14 images of 1000x1000 px: 6697 / (14 * 1e6 / 256^2)
    assert d["test"]["objects"] == 6697
    assert d["test"]["density_mean"] == pytest.approx(31.35, abs=0.01)
    st = S.annotation_stats(catalog, "consep", "test")
    per_sample = table.filter(pl.col("dataset") == "consep", pl.col("split") == "test")
    assert st.objects.height == per_sample["n_objects"].sum() == 10330
    classes = dict(S.class_table(st).select("class", "Total").iter_rows())
    assert classes["Total"] == 10330 and set(classes) == {
        "other",
        "inflammatory",
        "epithelial",
        "spindle-shaped",
        "Total",
    }
    ocelot = S.dataset_tables(catalog, "ocelot")
    assert dict(ocelot["classes"].select("class", "Total").iter_rows()) == {
        "BC": 4541,
        "TC": 8136,
        "Total": 12677,
    }
