"""Seed 004's cell-tissue analyses (issue 31 item 8), on inputs with hand-computed answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cellbench.analysis import cell_tissue as CT


def test_the_cell_window_is_centred_on_the_offsets_as_ocelot_gives_them():
    # OCELOT's sample: the cell patch spans slide x 59847..60655 in a tissue field of
    # 58230..61465 (1024 px each side); its left edge is (59847 - 58230) / 3235 * 1024 = 511.8
    meta = {
        "patch_x_offset": 0.625,
        "patch_y_offset": 0.125,
        "cell": {"resized_mpp_x": 0.19426718377508223},
        "tissue": {"resized_mpp_x": 0.7777900241489988},
    }
    x0, y0, s = CT.cell_window(meta, (1024, 1024), (1024, 1024))
    assert s == pytest.approx(0.19426718 / 0.77779002)
    assert x0 == pytest.approx(1617 / 3235 * 1024, abs=0.5)
    assert y0 == pytest.approx(0.0, abs=0.5)  # cell y_start = tissue y_start
    with pytest.raises(ValueError, match="patch_x_offset"):
        CT.cell_window({}, (8, 8), (8, 8))


def test_cells_per_tissue_class_and_pixel_ratios_by_hand():
    tissue = np.ones((8, 8), np.int32)  # 1 = BG
    tissue[:, 4:] = 2  # 2 = CA on the right half
    tissue[0, 0] = 255  # one unknown pixel
    # the cell patch is 16 x 16 at half the tissue's pixel size, placed at (4, 0)
    window = (4.0, 0.0, 0.5)
    xy = np.array([[0.0, 0.0], [15.0, 15.0], [1.0, 3.0], [-100.0, 2.0]])
    got = CT.tissue_of_cells(xy, tissue, window).tolist()
    # the first three inside the right half; the last lies left of the field: its edge (BG)
    assert got == [2, 2, 2, 1]
    got = CT.tissue_of_cells(np.array([[0.0, 0.0], [7.0, 7.0]]), tissue)  # same grid
    assert got.tolist() == [255, 2]
    cells = {1: "BC", 2: "TC"}
    tissues = {1: "BG", 2: "CA"}
    pairs = [(np.array([2, 2, 1]), np.array([2, 2, 1])), (np.array([1, 2]), np.array([2, 1]))]
    t3 = CT.cell_tissue_counts(pairs, cells, tissues)
    by = {(r["cell"], r["tissue"]): (r["cells"], r["share"]) for r in t3.iter_rows(named=True)}
    assert by[("TC", "CA")] == (2, pytest.approx(2 / 3)) and by[("TC", "BG")] == (1, 1 / 3)
    assert by[("BC", "BG")] == (1, 0.5) and by[("BC", "CA")] == (1, 0.5)
    t4 = CT.tissue_pixel_ratios([tissue, np.full((2, 2), 2)], tissues, unknown=255)
    r = {x["tissue"]: (x["pixels"], x["ratio"]) for x in t4.iter_rows(named=True)}
    assert r == {"BG": (31, 31 / 68), "CA": (36, 36 / 68), "unknown": (1, 1 / 68)}


def test_tissue_miou_pools_pixels_and_leaves_unknown_out():
    true = np.array([[1, 1, 2, 2], [1, 1, 2, 255]])
    pred = np.array([[1, 2, 2, 2], [1, 1, 1, 1]])
    r = CT.tissue_scores([(true, pred), (true, true)], classes=[1, 2], unknown=255)
    # image 1: class 1 tp 3 fp 1 fn 1; class 2 tp 2 fp 1 fn 1 (the unknown pixel is out)
    # image 2 (perfect): class 1 tp 4; class 2 tp 3 (255 is not class 2)
    assert r["per_class"][1] == {"tp": 7, "fp": 1, "fn": 1, "iou": 7 / 9}
    assert r["per_class"][2] == {"tp": 5, "fp": 1, "fn": 1, "iou": 5 / 7}
    assert r["miou"] == pytest.approx((7 / 9 + 5 / 7) / 2) and r["n_images"] == 2


def test_puma_baseline_tables(data_env):
    """On the PUMA baseline's own outputs (no ground truth exists locally): the nuclei it
    found per tissue class it found, and its tissue classes' shares."""
    from cellbench.data.readers.grand_challenge import read_gc_polygons
    from cellbench.viz import paper

    root = Path(data_env) / "puma"
    t3, t4 = paper.puma_cell_tissue(root)
    n = sum(len(read_gc_polygons(f)) for f in root.glob("*/melanoma-10-class-*.json"))
    assert t3["cells"].sum() == n and set(t4["tissue"]) >= {"Stroma", "Tumor"}
    assert t4["ratio"].sum() == pytest.approx(1.0)
    tumour = t3.filter(t3["cell"] == "nuclei_tumor")
    assert tumour["share"].sum() == pytest.approx(1.0)
    raw = json.loads((Path(data_env) / "puma" / "predictions.json").read_text())
    assert len(raw) == 2  # two regions of interest
