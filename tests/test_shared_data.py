"""Acceptance on the real data in ../shared/data (skipped with a message when it is absent)."""

import numpy as np
import polars as pl
import pytest

from cellbench.core.errors import DataError
from cellbench.data.readers import get_reader
from cellbench.data.readers.coco import coco_to_instances, read_coco
from cellbench.data.readers.grand_challenge import read_gc_polygons
from cellbench.data.samples import iter_samples, load_predictions, load_sample, records


def _split(table, ds, split):
    return table.filter((pl.col("dataset") == ds) & (pl.col("split") == split))


def test_monuseg_counts_centers_and_organs(table):
    test, train = _split(table, "monuseg", "test"), _split(table, "monuseg", "train")
    assert test.height == 14 and train.height == 13
    # n_objects = annotated polygons minus degenerate ones (2 of 4,951 in train, 0.04 %)
    assert test["n_objects"].sum() == 6697 and test["n_degenerate"].sum() == 0
    assert train["n_regions"].sum() == 4951 and train["n_objects"].sum() == 4949
    assert test["center"].null_count() == 0 and test["organ"].null_count() == 0
    assert set(test["organ"]) == {
        "kidney",
        "lung",
        "colon",
        "breast",
        "bladder",
        "prostate",
        "brain",
    }
    row = test.filter(pl.col("sample_id") == "TCGA-2Z-A9J9-01A-01-TS1").row(0, named=True)
    assert row["center"] == "2Z" and row["patient_id"] == "TCGA-2Z-A9J9"
    assert row["mpp"] == pytest.approx(0.2527)  # MicronsPerPixel of its XML
    assert (row["width"], row["height"]) == (1000, 1000)


def test_monuseg_sample_rasterises_its_polygons(catalog, table):
    s = load_sample(catalog, "monuseg", "TCGA-2Z-A9J9-01A-01-TS1")
    n = table.filter(pl.col("sample_id") == "TCGA-2Z-A9J9-01A-01-TS1")["n_objects"][0]
    assert s.image.shape == (1000, 1000, 3) and s.instances.dtype == np.int32
    # overlapping polygons: later wins, so a few may vanish entirely
    assert n - 5 <= s.n_objects <= n


def test_consep_counts_and_types(catalog, table):
    assert _split(table, "consep", "test").height == 224
    assert _split(table, "consep", "train").height == 432
    assert set(table.filter(pl.col("dataset") == "consep")["center"]) == {"UHCW"}
    s = load_sample(catalog, "consep", "test_1_000")
    assert (
        s.n_objects
        == len(s.classes)
        == table.filter(pl.col("sample_id") == "test_1_000")["n_objects"][0]
    )
    assert set(s.classes.values()) <= {1, 2, 3, 4}


def test_consep_coco_agrees_with_instance_maps(catalog, shared_data):
    coco = read_coco(shared_data / "consep/annotations/test/instances_test.json")
    assert len(coco) == 224
    for name in sorted(coco)[:12]:
        inst_coco, _ = coco_to_instances(coco[name])
        s = load_sample(catalog, "consep", name.removesuffix(".jpg"))
        fg_a, fg_b = inst_coco > 0, s.instances > 0
        # polygons traced from the maps: foregrounds agree on the vast majority of pixels
        iou = (fg_a & fg_b).sum() / max((fg_a | fg_b).sum(), 1)
        assert iou > 0.8, name
        assert abs(len(coco[name].parts) - s.n_objects) <= 3, name


def test_ocelot_points_predictions_and_metadata(catalog, table):
    oc = table.filter(pl.col("dataset") == "ocelot")
    assert oc.height == 81 and oc["n_objects"].sum() == 12677
    assert oc["organ"].null_count() == 0 and oc["center"].null_count() == 0
    assert set(oc["width"]) == {1024} and oc["mpp"][0] == pytest.approx(0.1943, abs=1e-4)
    preds = load_predictions(catalog, "ocelot", "ocelot_fold0_model")
    assert len(preds) == 81 and sum(len(p) for p in preds.values()) == 13570
    assert all(((p.score > 0) & (p.score <= 1)).all() for p in preds.values())
    s = load_sample(catalog, "ocelot", "fold_0_000")
    assert s.image.shape == (1024, 1024, 3) and len(s.points) == oc["n_objects"][0]
    assert set(np.unique(s.points.cls)) <= {1, 2}
    assert load_sample(catalog, "ocelot", "fold_0_001").image is None  # pixels not shipped


def test_cryonuseg_counts_and_case_metadata(catalog, table):
    cr = table.filter(pl.col("dataset") == "cryonuseg").sort("n_objects")
    assert cr["n_objects"].to_list() == [59, 117]
    assert cr["organ"].to_list() == ["thyroid", "pancreas"]  # the shared vocabulary
    assert cr["sex"].to_list() == ["F", "F"] and cr["age"].null_count() == 0
    assert cr["center"].to_list() == ["DE", "S4"]
    s = load_sample(catalog, "cryonuseg", "TCGA-DE-A4MA")
    assert s.image.shape == (512, 512, 3) and 55 <= s.n_objects <= 59


def test_dsb_fluorescence(catalog):
    got = {r.sample_id: s for r, s in iter_samples(catalog, "dsb2018")}
    assert got["img2d_512"].n_objects == 125 and got["img2d_256"].n_objects == 65
    assert got["img2d_256"].image.ndim == 2 and got["img2d_256"].meta["stain"] == "fluorescence"


def test_every_local_sample_record_has_the_standard_columns(table):
    from cellbench.data.sample import STANDARD_COLUMNS

    assert tuple(table.columns[: len(STANDARD_COLUMNS)]) == STANDARD_COLUMNS
    assert table.height == 14 + 13 + 224 + 432 + 81 + 2 + 2 + 76 + 69 + 16 + 45
    assert table["width"].null_count() == 0 and table["n_objects"].null_count() == 0


def test_puma_polygons_read(shared_data):
    polys = read_gc_polygons(
        shared_data
        / "puma/d112c34d-b7ae-425c-b9d4-8caa0890b1de"
        / "melanoma-10-class-nuclei-segmentation.json"
    )
    names = {p.name for p in polys}
    assert len(polys) > 100 and names <= {
        "nuclei_tumor",
        "nuclei_lymphocyte",
        "nuclei_plasma_cell",
        "nuclei_histiocyte",
        "nuclei_melanophage",
        "nuclei_neutrophil",
        "nuclei_stroma",
        "nuclei_endothelium",
        "nuclei_epithelium",
        "nuclei_apoptosis",
    }


def test_reader_records_are_cheap_and_consistent(catalog):
    r = get_reader(catalog, "consep")
    recs = records(catalog, "consep", split="test")
    assert len(recs) == 224 and all("image" in x.files for x in recs)
    assert r.prediction_sets() == []


def test_wsi_fixtures(shared_data):
    from cellbench.data.wsi import open_slide

    with open_slide(shared_data / "wsi/small_HE.svs") as s:
        assert s.backend == "tiffslide" and s.dimensions == (2220, 2967)
        assert s.mpp == pytest.approx(0.499)
        region = s.read_region_mpp(100, 200, 128, 64, mpp=1.0)
        assert region.shape == (64, 128, 3) and region.dtype == np.uint8
        full = s.read_region(100, 200, 256, 128)
        assert abs(full.astype(float).mean() - region.astype(float).mean()) < 3
        assert "macro" in s.associated_images and s.thumbnail(64).shape[1] == 48
    with open_slide(shared_data / "wsi/boxes.tiff") as s:
        assert len(s.level_downsamples) == 4
    for name, msg in [
        ("unreadable.svs", "cannot read region"),
        ("unopenable.tiff", "cannot read region"),
        ("boxes.png", "cannot open slide"),
    ]:
        with pytest.raises(DataError) as e:
            s = open_slide(shared_data / "wsi" / name)
            s.read_region(0, 0, *s.dimensions)
        assert name in str(e.value) and msg in str(e.value)
