"""QuPath GeoJSON export: exact round trips on real annotations, errors, points, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from cellbench.data.rasterize import instance_geometries
from cellbench.data.readers.qupath_geojson import objects_to_annotations, read_qupath_geojson
from cellbench.qupath.geojson import detection_features, write_geojson
from cellbench.runs.synthetic import random_instances


def _same_partition(a: np.ndarray, b: np.ndarray) -> dict[int, int]:
    """Assert two label maps are the same up to ids; return the id map a -> b."""
    assert np.array_equal(a > 0, b > 0)
    pairs = set(zip(a[a > 0].tolist(), b[a > 0].tolist(), strict=True))
    lut = dict(pairs)
    assert len(lut) == len(pairs) == len(set(lut.values()))
    return lut


def _read_back(path, shape, names=None):
    return objects_to_annotations(read_qupath_geojson(path), shape, (names or {}).get)


def test_geometries_trace_pixel_edges_with_holes_and_parts(tmp_path):
    lab = np.zeros((12, 12), np.int32)
    lab[1:6, 1:6] = 1
    lab[3, 3] = 0  # a hole
    lab[8:10, 1:3] = 2
    lab[10:12, 3:5] = 2  # touches the first part at a corner only
    g = instance_geometries(lab)
    assert g[1].area == 24 and len(g[1].interiors) == 1
    assert g[1].exterior.bounds == (1, 1, 6, 6) and len(g[1].exterior.coords) == 5
    assert g[2].area == 8
    write_geojson(detection_features(lab), tmp_path / "x.geojson")
    inst, _, _ = _read_back(tmp_path / "x.geojson", lab.shape)
    _same_partition(lab, inst)


def test_round_trip_random_instances_and_frame(tmp_path):
    lab = random_instances((200, 180), 80, seed=4, overlap=True)
    write_geojson(detection_features(lab), tmp_path / "a.geojson")
    inst, _, _ = _read_back(tmp_path / "a.geojson", lab.shape)
    _same_partition(lab, inst)
    feats = detection_features(lab, offset=(1000, 500), downsample=2.0, mpp=0.25)
    coords = np.asarray(feats[0]["geometry"]["coordinates"][0])
    ref = np.asarray(detection_features(lab)[0]["geometry"]["coordinates"][0])
    np.testing.assert_allclose(coords, ref * 2 + [1000, 500])
    m = feats[0]["properties"]["measurements"]
    area = float((lab == 1).sum())
    assert m["Area px^2"] == 4 * area and m["Area um^2"] == pytest.approx(area * 0.25**2)


@pytest.mark.parametrize("dataset", ["monuseg", "consep"])
def test_round_trip_real_annotations(data_env, catalog, tmp_path, dataset):
    from cellbench.data.samples import iter_samples
    from cellbench.qupath.geojson import sample_features

    names = {c.name: c.id for c in catalog.get(dataset).classes}
    for k, (rec, s) in enumerate(iter_samples(catalog, dataset, "test")):
        if k == 2:
            break
        feats = sample_features(catalog, dataset, rec.sample_id)
        assert all(f["properties"]["objectType"] == "detection" for f in feats)
        write_geojson(feats, tmp_path / f"{k}.geojson")
        inst, cls, _ = _read_back(tmp_path / f"{k}.geojson", s.instances.shape, names)
        lut = _same_partition(s.instances, inst)
        if s.classes:
            assert all(s.classes[o] == cls[n] for o, n in lut.items())
        c = feats[0]["properties"]["classification"]
        assert c["name"] in names and len(c["color"]) == 3


def test_errors_and_cli(data_env, catalog, tmp_path):
    from cellbench.cli import app
    from cellbench.runs.evaluate import EvalSpec, evaluate

    run = evaluate(EvalSpec(dataset="dsb2018", model="unet2d_nuclei_broad_torchscript"))
    r = CliRunner()
    out = tmp_path / "err.geojson"
    args = f"qupath export --dataset dsb2018 --sample img2d_256 --what errors --run {run['run_id']}"
    res = r.invoke(app, [*args.split(), "--out", str(out)])
    assert res.exit_code == 0, res.output
    objs = read_qupath_geojson(out)
    kinds = {o.class_name for o in objs}
    assert kinds <= {"TP", "FP", "FN"} and "TP" in kinds
    tps = [o for o in objs if o.class_name == "TP"]
    assert all(0.5 < o.measurements["Matched IoU"] <= 1 for o in tps)
    from cellbench.metrics import instance_scores
    from cellbench.viz.review import run_prediction

    sample, pred, _ = run_prediction(run, "img2d_256")
    sc = instance_scores(sample.instances, pred[0])  # counts agree with the metrics engine
    assert (
        len(tps),
        sum(o.class_name == "FP" for o in objs),
        sum(o.class_name == "FN" for o in objs),
    ) == (sc["tp"], sc["fp"], sc["fn"])
    args = "qupath export --dataset dsb2018 --sample nope --out"
    res = r.invoke(app, [*args.split(), str(tmp_path / "n.geojson")])
    assert res.exit_code == 2 and "nope" in res.output


def test_point_export_round_trip(data_env, catalog, tmp_path):
    from cellbench.data.samples import load_sample
    from cellbench.qupath.geojson import sample_features

    s = load_sample(catalog, "ocelot", "fold_0_000")
    feats = sample_features(catalog, "ocelot", "fold_0_000")
    write_geojson(feats, tmp_path / "p.geojson")
    names = {c.name: c.id for c in catalog.get("ocelot").classes}
    _, _, pts = _read_back(tmp_path / "p.geojson", (1024, 1024), names)
    order = np.lexsort((s.points.xy[:, 1], s.points.xy[:, 0]))
    back = np.lexsort((pts.xy[:, 1], pts.xy[:, 0]))
    np.testing.assert_allclose(pts.xy[back], s.points.xy[order])
    assert pts.cls[back].tolist() == s.points.cls[order].tolist()


def test_figures_cli_writes_valid_svg_and_pdf(no_chromium_skip, tmp_path):
    from cellbench.cli import app
    from cellbench.runs.store import Store
    from cellbench.runs.synthetic import synthetic_store

    synthetic_store(Store(), n_samples=4)
    res = CliRunner().invoke(app, ["figures", "--out", str(tmp_path / "figs")])
    assert res.exit_code == 0, res.output
    names = {p.stem for p in (tmp_path / "figs").glob("*.svg")}
    for fig in ("train_test_pq", "cij_diagonal", "ranking", "fusion"):  # once each
        assert (fig in names) != any(n.startswith("03_" + fig) for n in names), (fig, names)
    for n in names:
        assert (tmp_path / "figs" / f"{n}.svg").read_bytes().lstrip().startswith(b"<svg")
        assert (tmp_path / "figs" / f"{n}.pdf").read_bytes().startswith(b"%PDF-")


# -- projects ---------------------------------------------------------------------------------


def test_read_the_real_qupath_project(shared_data):
    from cellbench.qupath.project import read_project

    p = read_project(shared_data / "qupath_project")
    assert p.version == "0.2.0-m12"
    assert [(i.entry_id, i.name) for i in p.images] == [
        (1, "Edu+_RFP+_(3).tif"),
        (2, "Edu+_RFP+_(4).tif"),
    ]
    # the URIs point at the author's machine: the images are found inside the moved project
    assert all(i.path is not None and i.path.is_file() for i in p.images)
    assert {(i.width, i.height) for i in p.images} == {(512, 512)}
    assert p.images[0].mpp == pytest.approx(0.41513292348643577)
    assert p.classes["Tumor"] == (200, 0, 0) and p.classes["Stroma"] == (150, 200, 150)
    assert len(p.classes) == 33


def test_malformed_project_names_the_file(tmp_path):
    from cellbench.core.errors import DataError
    from cellbench.qupath.project import read_project

    (tmp_path / "project.qpproj").write_text("{ not json")
    with pytest.raises(DataError, match="project.qpproj: malformed JSON"):
        read_project(tmp_path)


def test_write_a_project_and_read_it_back(data_env, tmp_path):
    from cellbench.cli import app
    from cellbench.qupath.project import argb_to_rgb, read_project, rgb_to_argb, write_project

    assert argb_to_rgb(rgb_to_argb("#c80000")) == (200, 0, 0) and rgb_to_argb((200, 0, 0)) < 0
    out = tmp_path / "proj"
    res = CliRunner().invoke(
        app,
        [
            "qupath",
            "project",
            "--dataset",
            "consep",
            "--split",
            "test",
            "--limit",
            "2",
            "--backend",
            "files",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    p = read_project(out)
    assert len(p.images) == 2 and all(i.path.is_file() for i in p.images)
    assert p.images[0].mpp == 0.25 and p.images[0].width == 256
    assert set(p.classes) == {"other", "inflammatory", "epithelial", "spindle-shaped"}
    geo = out / "objects" / f"{p.images[0].name}.geojson"
    assert read_qupath_geojson(geo)[0].object_type == "detection"
    groovy = (out / "scripts" / "import_cellbench.groovy").read_text()
    assert "PathIO.readObjects" in groovy and "objects" in groovy
    with pytest.raises(Exception, match="already exists"):
        write_project(out, [], {}, "files")


def test_paquo_backend(tmp_path):
    from cellbench.qupath.project import paquo_reason, write_project

    reason = paquo_reason()
    if reason:
        pytest.skip(reason)
    img = tmp_path / "x.tif"
    import tifffile

    tifffile.imwrite(img, np.zeros((32, 32, 3), np.uint8))
    assert (
        write_project(
            tmp_path / "p",
            [{"path": img, "width": 32, "height": 32, "features": []}],
            {"A": "#ff0000"},
            "paquo",
        )
        == "paquo"
    )


def test_point_errors_match_the_point_scores(data_env, catalog):
    """TP / FP / FN of the error review are exactly the counts the metrics engine reports."""
    from cellbench.data.samples import load_predictions, load_sample
    from cellbench.metrics import point_scores
    from cellbench.metrics.errors import point_errors

    pred = load_predictions(catalog, "ocelot", "ocelot_fold0_model")
    for sid in ("fold_0_000", "fold_0_010", "fold_0_040"):
        gt = load_sample(catalog, "ocelot", sid).points
        for preset in ("ocelot", "hungarian"):
            err = point_errors(gt, pred[sid], preset)
            tot = point_scores(gt, pred[sid], preset)["all"]
            assert err.counts() == {"tp": tot["tp"], "fp": tot["fp"], "fn": tot["fn"]}
            assert len(err.tp_true) == len(set(err.tp_true.tolist()))


def test_import_onto_a_channel_first_imagej_tiff(data_env, tmp_path):
    """Issue 29: the real project's ImageJ TIFF stores channels first (3 x 512 x 512); it is
    read as a 512 x 512 RGB image, so objects drawn on it import, with a bare NaN measurement
    (QuPath's writer emits them) read and left out."""
    from cellbench.data.catalog import load_catalog
    from cellbench.data.samples import iter_samples
    from cellbench.data.user_data import import_qupath

    img = data_env / "qupath_project" / "images" / "Edu+_RFP+_(3).tif"
    feat = {
        "type": "Feature",
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[400, 300], [420, 300], [420, 330], [400, 330], [400, 300]]],
        },
        "properties": {"objectType": "detection", "measurements": {"Area": float("nan")}},
    }
    gj = tmp_path / "objs.geojson"
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": [feat]}))
    assert "NaN" in gj.read_text()
    res = import_qupath(gj, img, "edu_cells", modality="fluorescence", stain="EdU/RFP")
    assert res["sample_id"] == "Edu+_RFP+_(3)"
    cat = load_catalog()
    (rec, s), *_ = list(iter_samples(cat, "edu_cells"))
    assert s.image.shape == (512, 512, 3) and s.instances.shape == (512, 512)
    assert (s.instances > 0).sum() == 20 * 30


def test_whole_cells_are_written_as_qupath_cells_with_their_nuclei(data_env, catalog, tmp_path):
    """ISBI 2014 synthetic cells overlap and each holds a nucleus: QuPath cells with a
    nucleusGeometry; read back as cells (part="cell") they are the same objects, and by
    default (QuPath's nucleus) the nuclei."""
    from cellbench.data.predictions import read_prediction
    from cellbench.data.samples import iter_samples
    from cellbench.qupath.geojson import sample_features

    rec, s = next(
        (r, s)
        for r, s in iter_samples(catalog, "isbi2014_synthetic", "test")
        if s.objects.overlapping
    )
    feats = sample_features(catalog, "isbi2014_synthetic", rec.sample_id)
    assert {f["properties"]["objectType"] for f in feats} == {"cell"}
    assert all("nucleusGeometry" in f["properties"] for f in feats)
    coords = np.asarray(feats[0]["geometry"]["coordinates"][0])
    assert np.array_equal(coords, np.round(coords, 2))
    p = write_geojson(feats, tmp_path / "cells.geojson")
    cells, _, _ = read_prediction(p, s.objects.shape, part="cell")
    assert s.objects.overlapping and cells.overlapping  # they stay separate objects
    assert sorted(cells.area.tolist()) == sorted(s.objects.area.tolist())
    nuclei, _, _ = read_prediction(p, s.objects.shape)
    n_nuc = len(np.unique(s.nuclei)) - 1
    got = nuclei.ids if hasattr(nuclei, "ids") else np.unique(nuclei)[1:]
    assert 0 < len(got) <= len(feats) and n_nuc >= 1
