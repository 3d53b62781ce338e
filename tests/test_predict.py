"""``cellbench predict`` (issue 17, item 1): tiling and the stitching rule, whole-slide input
with tissue detection to QuPath GeoJSON and the nucleus table, folders back into evaluate,
resume per tile."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import tifffile
from typer.testing import CliRunner

from cellbench.cli.main import app
from cellbench.runs import predict as P

runner = CliRunner()


def test_cores_partition_the_axis_and_windows_align():
    for n, side, stride in ((1000, 256, 192), (256, 256, 192), (1201, 512, 384), (90, 256, 192)):
        starts = P.tile_starts(n, side, stride)
        assert starts[0] == 0 and starts[-1] + side >= n
        bounds = [P.core_bounds(starts, k, side, n) for k in range(len(starts))]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
        assert all(s <= lo and hi <= s + side for s, (lo, hi) in zip(starts, bounds, strict=True))
    lo, hi = P.context_window(300, 256, 1000, 224, 32)
    assert lo % 224 == 0 and lo <= 300 - 32 and hi >= 300 + 256 + 32 and (hi - lo - 32) % 224 == 0
    assert P.context_window(0, 256, 1000, 224, 32)[0] == 0
    assert P.context_window(900, 100, 1000, 224, 32)[1] == 1000


def test_tissue_mask_finds_stained_tissue():
    thumb = np.full((100, 120, 3), 240, np.uint8)
    thumb[20:60, 30:90] = (180, 90, 160)  # pink-purple tissue
    m = P.tissue_mask(thumb)
    assert m[40, 60] and not m[5, 5] and 0.15 < m.mean() < 0.3


@pytest.fixture(scope="module")
def monuseg_image(shared_data, tmp_path_factory):
    from cellbench.data.catalog import load_catalog
    from cellbench.data.readers import get_reader

    cat = load_catalog(root=shared_data)
    reader = get_reader(cat, "monuseg")
    rec = next(r for r in reader.records() if r.split == "test")
    s = reader.load(rec)
    d = tmp_path_factory.mktemp("img")
    tifffile.imwrite(d / f"{rec.sample_id}.tif", s.image)
    return d / f"{rec.sample_id}.tif", s, rec.sample_id


def _predictor(method=None):
    from cellbench.models.registry import get_model, load_predictor

    card = get_model("cb_monuseg")
    pr = load_predictor(card)
    if method is not None:
        from cellbench.models.card import LoadedCard

        pp = card.postprocess.model_copy(update={"method": method})
        pr.card = LoadedCard(card.card.model_copy(update={"postprocess": pp}), card.path)
    return pr


def test_stitched_tiles_equal_whole_image_inference(data_env, monuseg_image):
    """256 px tiles with overlap vs whole-image inference of the same model on a 1000^2
    MoNuSeg image: PQ >= 0.99 with local post-processing (distance watershed on the model's
    maps); HoVer-Net's own post-processing normalises over the image it sees, measured 0.957."""
    from cellbench.metrics import instance_scores

    path, sample, _ = monuseg_image
    for method, floor in (("distance_watershed", 0.99), (None, 0.95)):
        pr = _predictor(method)
        whole = pr.predict(sample.image, sample.meta["mpp"]).labels
        src = P.image_source(path, pr.card.input.mpp, sample.meta["mpp"])
        nuc = P.predict_source(pr, src, tile=256, overlap=64)
        assert nuc.meta["tiles"] == 25 and not nuc.objects.overlapping
        r = instance_scores(whole, nuc.label_map(), "stardist")
        assert r["pq"] >= floor, (method, r["pq"], r["fp"], r["fn"])


def test_resume_reads_finished_tiles(data_env, monuseg_image, tmp_path):
    path, sample, _ = monuseg_image
    pr = _predictor("connected_components")
    src = P.image_source(path, pr.card.input.mpp, sample.meta["mpp"])
    first = P.predict_source(pr, src, tile=512, overlap=64, work=tmp_path / "w")
    assert len(list((tmp_path / "w").glob("tile_*.npz"))) == first.meta["tiles"]

    def broken(_batch):
        raise AssertionError("the network ran again")

    pr.backend = broken
    again = P.predict_source(pr, src, tile=512, overlap=64, work=tmp_path / "w")
    assert len(again.objects) == len(first.objects)


def _predict(*args) -> None:
    r = runner.invoke(app, ["predict", "--model", "cb_monuseg", *map(str, args)])
    assert r.exit_code == 0, r.output


def test_whole_slide_to_qupath_geojson_and_table(data_env, tmp_path):
    """`predict --image small_HE.svs --out pred.geojson` with tissue detection (the slide is
    declared at 1/4 of its resolution here so that CI predicts one tile; by hand it runs at the
    model's 0.25 um/px) and a region at the true resolution."""
    from cellbench.data.readers.qupath_geojson import read_qupath_geojson

    slide = data_env / "wsi" / "small_HE.svs"
    out = tmp_path / "pred.geojson"
    _predict("--image", slide, "--out", out, "--mpp", "0.0625")
    doc = json.loads(out.read_text())
    import geojson

    assert geojson.loads(out.read_text()).is_valid
    objs = read_qupath_geojson(out)  # cellbench's reader of every QuPath version
    table = pl.read_parquet(tmp_path / "pred.nuclei.parquet")
    assert len(doc["features"]) == len(objs) == table.height > 0
    f = doc["features"][0]
    assert f["properties"]["objectType"] == "detection"
    assert {"Probability", "Area px^2", "Area um^2"} <= set(f["properties"]["measurements"])
    assert table["x_px"].max() < 2220 and table["y_px"].max() < 2967
    assert set(table.columns) >= {"x_um", "area_um2", "perimeter_px", "eccentricity", "bbox_x0"}
    # a region at the slide's own resolution: level-0 coordinates inside the region
    out2 = tmp_path / "region.geojson"
    _predict("--image", slide, "--region", "1000,1500,400,400", "--out", out2)
    t2 = pl.read_parquet(tmp_path / "region.nuclei.parquet")
    assert t2.height > 30
    assert t2["bbox_x0"].min() >= 1000 and t2["bbox_x1"].max() <= 1400
    assert t2["bbox_y0"].min() >= 1500 and t2["bbox_y1"].max() <= 1900
    assert t2["x_um"].to_numpy() == pytest.approx(t2["x_px"].to_numpy() * 0.499, rel=1e-3)


def test_folder_prediction_is_evaluated_later(data_env, monuseg_image, tmp_path):
    from cellbench.data.catalog import load_catalog
    from cellbench.runs.evaluate import EvalSpec, Evaluation

    path, _, sid = monuseg_image
    out = tmp_path / "pred"
    _predict("--folder", path.parent, "--out", out, "--mpp", "0.25")
    assert (out / f"{sid}.tif").is_file() and (out / "geojson" / f"{sid}.geojson").is_file()
    ev = Evaluation(
        EvalSpec("monuseg", "test", predictions=str(out), samples=[sid]), load_catalog()
    )
    ev.run()
    rows = ev.store.scan([ev.run_id]).filter(pl.col("level") == "sample").collect()
    pq = rows.filter(pl.col("metric") == "pq")["value"][0]
    assert 0.3 < pq < 1.0
    r = runner.invoke(app, ["predict", "--model", "cb_monuseg", "--out", str(out)])
    assert r.exit_code != 0 and "exactly one of an image, a folder and a QuPath project" in r.output


def test_every_image_of_a_qupath_project(data_env, tmp_path):
    """The real QuPath project's images (fluorescence: a DSB model), objects per image name
    with the Groovy import script."""
    r = runner.invoke(
        app,
        [
            "predict",
            "--model",
            "unet2d_nuclei_broad_torchscript",
            "--project",
            str(data_env / "qupath_project"),
            "--out",
            str(tmp_path / "p"),
        ],
    )
    assert r.exit_code == 0, r.output
    objs = sorted((tmp_path / "p" / "objects").glob("*.geojson"))
    assert len(objs) == 2 and all(json.loads(o.read_text())["features"] for o in objs)
    assert (tmp_path / "p" / "import_objects.groovy").is_file()
    assert pl.read_parquet(tmp_path / "p" / "nuclei.parquet")["source"].n_unique() == 2


def test_predictions_as_a_new_qupath_project(data_env, monuseg_image, tmp_path):
    from cellbench.qupath.project import read_project

    path, _, sid = monuseg_image
    out = tmp_path / "proj"
    _predict("--folder", path.parent, "--out", out, "--qupath-project", "--mpp", "0.25")
    proj = read_project(out)
    assert [im.name for im in proj.images] == [path.name] and proj.images[0].path == path
    feats = json.loads((out / "objects" / f"{path.name}.geojson").read_text())["features"]
    assert len(feats) > 100 and (out / "scripts" / "import_cellbench.groovy").is_file()


def test_workers_and_a_dask_cluster_give_the_nuclei_of_the_local_run(data_env, monuseg_image):
    """One pipeline, the executor pluggable: post-processing in worker processes overlapping
    the network, and tiles as tasks on a local Dask cluster of 2 workers, stitch exactly the
    nuclei of the in-process run (tiles are stitched in raster order whatever computed them)."""
    from cellbench.runs.executor import get_executor

    path, sample, _ = monuseg_image
    pr = _predictor("connected_components")
    src = P.image_source(path, pr.card.input.mpp, sample.meta["mpp"])
    local = P.predict_source(pr, src, tile=512, overlap=64)
    overlapped = P.predict_source(pr, src, tile=512, overlap=64, post_workers=2)
    ex = get_executor("dask", workers=2)
    try:
        spread = P.predict_source(pr, src, tile=512, overlap=64, executor=ex)
    finally:
        ex.close()
    ref = local.label_map()
    for other in (overlapped, spread):
        assert np.array_equal(other.label_map(), ref)
        # probabilities to float32 precision: torch's CPU kernels sum in an order that
        # depends on the thread count, and Dask workers run one thread each
        assert other.scores == pytest.approx(local.scores, abs=1e-6)


def test_instance_map_is_written_tile_by_tile(tmp_path):
    """The OME-TIFF instance map of predicted nuclei equals their label map (objects across
    tile borders, the smaller one on top where they overlap), with the class map beside it."""
    import tifffile

    from cellbench.data.sample import Objects
    from cellbench.qupath import nuclei as W

    lab = np.zeros((700, 1100), np.int32)
    lab[500:530, 505:530] = 1  # across the 512 px tile corner
    lab[10:20, 10:20] = 2
    lab[600:690, 1000:1100] = 3  # on the padded last tile
    obj = Objects.from_label_map(lab)
    big = np.zeros((700, 1100), bool)
    big[490:540, 495:545] = True  # a larger object under nucleus 1
    obj = Objects(
        obj.shape,
        np.array([1, 2, 3, 4]),
        np.vstack([obj.boxes, [[490, 495, 540, 545]]]),
        [*obj.masks, big[490:540, 495:545]],
    )
    nuc = P.Nuclei(
        "x", obj, {1: 1, 2: 2, 3: 1, 4: 2}, {i: 1.0 for i in range(1, 5)}, 1.0, (0, 0), 0.25
    )
    W.write_instance_map(nuc, tmp_path / "x.tif")
    got = tifffile.imread(tmp_path / "x.tif")
    assert got.shape == (700, 1100) and np.array_equal(got, obj.to_label_map())
    cls = tifffile.imread(tmp_path / "x_class.tif")
    assert (cls[lab == 1] == 1).all() and (cls[lab == 2] == 2).all()
    assert (cls[(got == 4)] == 2).all()
    with tifffile.TiffFile(tmp_path / "x.tif") as t:
        assert t.is_ome and t.pages[0].is_tiled
