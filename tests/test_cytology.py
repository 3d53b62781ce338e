"""Cytology (issue 16, items 1-3): overlapping objects in the sample model and every consumer,
the ISBI 2014 reader and protocol, on hand-written inputs and on the real ISBI files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io as sio
import tifffile
from hostile import catalog_entry, write_catalog
from PIL import Image

from cellbench.core.errors import DataError
from cellbench.data.catalog import load_catalog
from cellbench.data.predictions import pack, read_prediction
from cellbench.data.readers import get_reader
from cellbench.data.readers.isbi2014 import edf_nuclei
from cellbench.data.sample import Objects
from cellbench.metrics import aggregate_instances, instance_scores
from cellbench.metrics.cytology import aggregate_isbi, greedy_dice_assignment, isbi_scores
from cellbench.metrics.overlap import object_overlap


def _squares(shape=(40, 40), boxes=((2, 2, 14, 14), (8, 8, 20, 20), (26, 26, 34, 34))):
    masks = []
    for r0, c0, r1, c1 in boxes:
        m = np.zeros(shape, bool)
        m[r0:r1, c0:c1] = True
        masks.append(m)
    return Objects.from_masks(masks), masks


# -- the sample model ---------------------------------------------------------------------


def test_objects_hold_overlaps_that_a_label_map_loses():
    obj, masks = _squares()
    assert len(obj) == 3 and obj.overlapping
    assert obj.area.tolist() == [144, 144, 64]
    assert np.array_equal(obj.full(1), masks[1])
    assert obj.coverage().max() == 2 and obj.union().sum() == 144 + 144 - 36 + 64
    lay = obj.layers()  # 1 and 2 overlap: two layers, every object whole in one of them
    assert len(lay) == 2 and all(
        any((x == i).sum() == a for x in lay) for i, a in zip(obj.ids, obj.area, strict=True)
    )
    flat = obj.to_label_map()  # smaller objects on top; here equal areas: the later one stays
    assert (flat == 1).sum() == 144 - 36 and (flat == 2).sum() == 144
    np.testing.assert_allclose(obj.centroids()[0], (7.5, 7.5))
    back = Objects.unpack(obj.pack())
    assert back.ids.tolist() == obj.ids.tolist()
    assert all(np.array_equal(a, b) for a, b in zip(back.masks, obj.masks, strict=True))
    assert Objects.from_label_map(flat).area.tolist() == [108, 144, 64]
    assert obj.select([3]).ids.tolist() == [3]
    with pytest.raises(ValueError):
        Objects((4, 4), [1, 1], [(0, 0, 1, 1)] * 2, [np.ones((1, 1), bool)] * 2)


def test_metrics_on_overlapping_objects_use_the_objects_themselves():
    obj, masks = _squares()
    r = instance_scores(obj, obj, preset="stardist")
    assert (r["tp"], r["fp"], r["fn"], r["pq"], r["aji"], r["dice1"]) == (3, 0, 0, 1.0, 1.0, 1.0)
    # the flattened map loses object 1's overlap: its IoU with the true object 1 is 108/144
    flat = obj.to_label_map()
    r = instance_scores(obj, flat, preset="stardist")
    assert r["tp"] == 3 and r["iou_sum"] == pytest.approx(2 + 108 / 144)
    # an object with two partners above IoU 0.5 is resolved one-to-one (strict presets too)
    big = np.zeros((40, 40), bool)
    big[2:14, 2:15] = True
    pred = Objects.from_masks([big, masks[0]])
    ov = object_overlap(Objects.from_masks([masks[0]]), pred)
    assert len(ov.inter) == 2 and (ov.iou > 0.5).all()
    r = instance_scores(Objects.from_masks([masks[0]]), pred, preset="hovernet")
    assert (r["tp"], r["fp"]) == (1, 1)
    assert r["sq"] == pytest.approx(1.0, abs=1e-5)  # the exact copy is the one paired


def test_isbi_protocol_greedy_dice_and_counts():
    true, masks = _squares()
    shrunk = np.zeros((40, 40), bool)
    shrunk[8:14, 8:14] = True  # Dice with object 2 = 2*36/(36+144) = 0.4
    pred = Objects.from_masks([masks[0], shrunk], shape=(40, 40))
    r = isbi_scores(object_overlap(true, pred))
    assert r["n_detected"] == 1 and r["dsc"] == 1.0 and r["tpp"] == 1.0 and r["fpp"] == 0.0
    assert r["fno"] == pytest.approx(2 / 3) and r["fdro"] == pytest.approx(1 / 2)
    # FPp: false-positive pixels over the image pixels outside the cell
    grown = np.zeros((40, 40), bool)
    grown[2:14, 2:16] = True  # 24 extra pixels; Dice 2*144/(144+168) > 0.7
    r = isbi_scores(object_overlap(Objects.from_masks([masks[0]]), Objects.from_masks([grown])))
    assert r["fpp"] == pytest.approx(24 / (1600 - 144)) and r["tpp"] == 1.0
    # greedy from the highest Dice: the exact copy goes first, the other GT keeps what is left
    ov = object_overlap(true, Objects.from_masks(masks[:2]))
    chosen, dice = greedy_dice_assignment(ov)
    pairs = zip(ov.ti[chosen].tolist(), ov.pj[chosen].tolist(), strict=True)
    assert sorted(pairs) == [(0, 0), (1, 1)]
    # dataset figures: pooled over objects (the reference) or the mean of images
    a = {"n_true": 2, "n_pred": 2, "n_detected": 2, "dice_sum": 1.8, "tpp_sum": 2.0, "fpp_sum": 0}
    b = {"n_true": 8, "n_pred": 4, "n_detected": 4, "dice_sum": 3.2, "tpp_sum": 3.6, "fpp_sum": 0}
    a.update(dsc=0.9, fno=0.0, tpp=1.0, fpp=0.0, fdro=0.0)
    b.update(dsc=0.8, fno=0.5, tpp=0.9, fpp=0.0, fdro=0.0)
    pooled = aggregate_isbi([a, b])
    assert pooled["dsc"] == pytest.approx(5 / 6) and pooled["fno"] == pytest.approx(4 / 10)
    assert aggregate_isbi([a, b], "image")["fno"] == pytest.approx(0.25)


def test_edf_nuclei_two_styles():
    # outlines: two touching closed outlines of different grey levels are two nuclei
    gt = np.zeros((20, 30), np.uint8)
    gt[2:9, 2:9] = 91
    gt[3:8, 3:8] = 0
    gt[2:9, 9:16] = 101  # shares an edge with the first outline
    gt[3:8, 10:15] = 0
    inst = edf_nuclei(gt)
    assert sorted(np.bincount(inst.ravel())[1:].tolist()) == [49, 49]
    # filled 16-bit masks: 8-connected components (diagonal contact joins)
    f = np.zeros((10, 10), np.uint16)
    f[1:3, 1:3] = 32896
    f[3:5, 3:5] = 32896
    f[7:9, 7:9] = 32896
    assert int(edf_nuclei(f).max()) == 2
    with pytest.raises(DataError, match="2-D integer"):
        edf_nuclei(np.zeros((4, 4), np.float32))


def _synthetic_folder(root, n_images=3):
    (root / "synthetic_train").mkdir(parents=True)
    (root / "edf").mkdir()
    cyto = np.empty((n_images, 1), object)
    nuc = np.empty((n_images, 1), object)
    for k in range(n_images):
        cells = np.empty((2, 1), object)
        a = np.zeros((32, 32), np.uint8)
        a[2:20, 2:20] = 1
        b = np.zeros((32, 32), np.uint8)
        b[10:30, 10:30] = 1
        cells[0, 0], cells[1, 0] = a, b
        cyto[k, 0] = cells
        n = np.zeros((32, 32), np.uint8)
        n[5:8, 5:8] = n[20:23, 20:23] = 1
        nuc[k, 0] = n
        tifffile.imwrite(
            root / "synthetic_train" / f"{k + 1}.tif", np.full((32, 32), 200, np.uint8)
        )
    sio.savemat(
        root / "synthetic_train" / "isbi_train_GT.mat",
        {
            "train_Cytoplasm": cyto,
            "train_Nuclei": nuc,
            "CellNum": np.full((n_images, 1), 2, np.uint8),
            "OverlapRatio": np.tile([0.1, 0.2], (n_images, 1)),
        },
    )
    edf = np.zeros((16, 16), np.uint16)
    edf[2:6, 2:6] = 32896
    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(root / "edf" / "EDF000.png")
    Image.fromarray(edf).save(root / "edf" / "EDF000_GT.png")


def test_reader_on_hand_written_files(tmp_path):
    _synthetic_folder(tmp_path / "data" / "i")
    entries = [
        catalog_entry(
            "cells",
            {"format": "isbi2014", "location": "i", "options": {"part": "synthetic", "test": [2]}},
            stain=["PAP"],
            organs=["cervix"],
        ),
        catalog_entry(
            "nuc",
            {
                "format": "isbi2014",
                "location": "i",
                "options": {"part": "synthetic", "target": "nuclei"},
            },
            stain=["PAP"],
            organs=["cervix"],
        ),
        catalog_entry("edf", {"format": "isbi2014", "location": "i", "options": {"part": "edf"}}),
    ]
    cat = load_catalog(write_catalog(tmp_path / "c.yaml", entries), tmp_path / "data", user=False)
    r = get_reader(cat, "cells")
    recs = r.records()
    assert [(x.sample_id, x.split, x.meta["n_objects"]) for x in recs] == [
        ("synthetic_01", "train", 2),
        ("synthetic_02", "test", 2),
        ("synthetic_03", "train", 2),
    ]
    assert recs[0].meta["overlap_ratio"] == "0.1-0.2" and recs[0].meta["stain"] == "PAP"
    s = r.load(recs[0])
    assert s.instances is None and s.objects.overlapping and s.n_objects == 2
    assert s.objects.area.tolist() == [18 * 18, 20 * 20]
    s = get_reader(cat, "nuc").load(get_reader(cat, "nuc").records()[0])
    assert s.objects is None and int(s.instances.max()) == 2
    e = get_reader(cat, "edf")
    assert e.records()[0].meta["gt_style"] == "filled" and e.records()[0].meta["n_objects"] == 1
    mat = tmp_path / "data" / "i" / "synthetic_train" / "isbi_train_GT.mat"
    sio.savemat(mat, {"train_Cytoplasm": np.array([["x"]]), "train_Nuclei": np.array([["y"]])})
    with pytest.raises(DataError, match="expected 2-D numeric masks"):
        get_reader(cat, "cells").records()
    mat.write_bytes(b"junk")
    with pytest.raises(DataError, match="isbi_train_GT.mat"):
        get_reader(cat, "cells").records()


# -- consumers: predictions from files, QuPath, overlays ----------------------------------


def test_prediction_files_of_other_tools(tmp_path):
    lab = np.zeros((20, 20), np.uint16)
    lab[2:8, 2:8] = 1
    lab[10:16, 10:16] = 2
    cls = np.zeros((20, 20), np.uint8)
    cls[2:8, 2:8] = 3
    cls[10:16, 10:13] = 1  # instance 2: 18 px of class 1, 18 of class 2 -> the lower class
    cls[10:16, 13:16] = 2
    np.save(tmp_path / "a.npy", lab)
    np.save(tmp_path / "a_class.npy", cls)
    inst, classes, _ = read_prediction(tmp_path / "a.npy", (20, 20))
    assert classes == {1: 3, 2: 1}
    sio.savemat(tmp_path / "b.mat", {"inst_map": lab.astype(float), "inst_type": [[2], [0]]})
    _, classes, _ = read_prediction(tmp_path / "b.mat", (20, 20))
    assert classes == {1: 2, 2: 0}
    # QuPath GeoJSON: overlapping polygons stay separate objects, classified by name
    feats = [
        {
            "type": "Feature",
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]],
            },
            "properties": {
                "objectType": "detection",
                "classification": {"name": name},
                "measurements": {"probability": 0.9},
            },
        }
        for (x0, y0, x1, y1), name in (((2, 2, 10, 10), "Tumor"), ((6, 6, 14, 14), "Other"))
    ]
    (tmp_path / "c.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": feats})
    )
    inst, classes, scores = read_prediction(
        tmp_path / "c.geojson", (20, 20), {"Tumor": 1, "Other": 2}.__getitem__
    )
    assert isinstance(inst, Objects) and inst.area.tolist() == [64, 64] and inst.overlapping
    assert classes == {1: 1, 2: 2} and scores == {1: 0.9, 2: 0.9}
    np.savez(tmp_path / "d.npz", **pack((inst, classes, None)))
    back, c2, _ = read_prediction(tmp_path / "d.npz", (20, 20))
    assert back.area.tolist() == [64, 64] and c2 == classes
    with pytest.raises(DataError, match="differs from the ground truth"):
        read_prediction(tmp_path / "a.npy", (30, 20))
    np.save(tmp_path / "e.npy", lab.astype(np.float32))
    with pytest.raises(DataError, match="integer instance ids"):
        read_prediction(tmp_path / "e.npy")
    whole = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "f.npz").write_bytes(whole[: len(whole) // 2])  # truncated: a bad ZIP
    with pytest.raises(DataError, match=r"f\.npz: unreadable \.npz"):
        read_prediction(tmp_path / "f.npz", (20, 20))
    sio.savemat(tmp_path / "g.mat", {"inst_map": lab.astype(np.int32), "inst_type": ["a", "b"]})
    with pytest.raises(DataError, match="finite integers"):
        read_prediction(tmp_path / "g.mat", (20, 20))


def test_qupath_features_and_overlay_keep_every_overlapping_object():
    from cellbench.qupath.geojson import detection_features
    from cellbench.viz.overlay import draw_instances

    obj, _ = _squares()
    feats = detection_features(obj)
    assert [f["properties"]["measurements"]["Area px^2"] for f in feats] == [144, 144, 64]
    img = draw_instances(np.zeros((40, 40, 3), np.uint8), obj, "#FF0000")
    # object 2's whole outline is drawn, also where it lies over object 1
    assert img[8, 8:14, 0].min() == 255 and img[8:14, 8, 0].min() == 255


# -- the real ISBI 2014 files ---------------------------------------------------------------


def test_real_isbi_counts(catalog):
    edf = get_reader(catalog, "isbi2014_edf").records()
    assert len(edf) == 16 and sum(r.meta["n_objects"] for r in edf) == 647
    assert {r.sample_id for r in edf if r.split == "train"} == {f"EDF{i:03d}" for i in range(8)}
    assert [r.meta["gt_style"] for r in edf[:5]] == ["outlines"] * 4 + ["filled"]
    syn = get_reader(catalog, "isbi2014_synthetic").records()
    assert len(syn) == 45 and sum(r.meta["n_objects"] for r in syn) == 270
    test = [r for r in syn if r.split == "test"]
    assert sorted(r.meta["cell_num"] for r in test) == list(range(2, 11))


def test_isbi_acceptance_on_real_synthetic_cells(catalog, tmp_path):
    """Ground truth against itself: Dice 1, FNo 0; with one cell removed and one shrunk below
    Dice 0.7, FNo = 2 / the image's number of cells."""
    from scipy import ndimage as ndi

    from cellbench.runs.evaluate import EvalSpec, Evaluation

    reader = get_reader(catalog, "isbi2014_synthetic")
    recs = [r for r in reader.records() if r.split == "test"]
    for rec in recs:
        s = reader.load(rec)
        np.savez(tmp_path / f"{rec.sample_id}.npz", **pack((s.objects, None, None)))
    ev = Evaluation(
        EvalSpec("isbi2014_synthetic", "test", predictions=str(tmp_path), preset="isbi2014"),
        catalog,
    )
    info = ev.run()
    assert info["status"] == "complete"
    rows = ev.store.scan([ev.run_id]).collect()
    agg = {
        m: v
        for lvl, c, m, v in rows.select("level", "class", "metric", "value").iter_rows()
        if lvl == "dataset" and c == "all"
    }
    assert (agg["dsc"], agg["fno"], agg["fdro"], agg["tpp"], agg["pq"]) == (1, 0, 0, 1, 1)
    s = reader.load(recs[-1])
    obj = s.objects
    masks = [obj.full(k) for k in range(len(obj))]
    small = masks[1]
    while 2 * (small & masks[1]).sum() / (small.sum() + masks[1].sum()) > 0.7:
        small = ndi.binary_erosion(small, iterations=2)
    pred = Objects.from_masks([masks[0], small, *masks[3:]], shape=obj.shape)
    r = instance_scores(obj, pred, preset="isbi2014")
    assert r["fno"] == pytest.approx(2 / len(obj)) and r["n_detected"] == len(obj) - 2
    assert aggregate_instances({"x": r}, "isbi2014")["fno"] == pytest.approx(2 / len(obj))
