"""MoNuSAC subset with colour class masks (issue 16, item 1): decoding lossy JPEG colour masks,
instances approximated per class, on hand-written masks and on the 69 real images."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hostile import catalog_entry, write_catalog
from PIL import Image

from cellbench.core.config import REPO_DIR as REPO
from cellbench.core.errors import DataError
from cellbench.data.catalog import load_catalog
from cellbench.data.readers import get_reader
from cellbench.data.readers.colour_masks import class_map_to_instances, decode_colour_mask

COLOURS = {1: (0, 255, 0), 2: (255, 255, 0), 3: (0, 0, 255), 4: (255, 0, 0)}


def _mask() -> np.ndarray:
    m = np.zeros((40, 60, 3), np.uint8)
    m[2:10, 2:10] = COLOURS[1]  # epithelial
    m[2:10, 10:18] = COLOURS[1]  # touching epithelial: merges (the stated approximation)
    m[20:30, 5:15] = COLOURS[2]  # lymphocyte
    m[20:30, 15:25] = COLOURS[4]  # neutrophil touching it: a different class, kept apart
    m[32:35, 40:43] = COLOURS[3]  # macrophage, 9 px
    m[5, 50] = COLOURS[3]  # one-pixel speckle: dropped (min_size 4)
    m[12, 40] = (255, 255, 255)  # white: no class, counted as ambiguous
    return m


def test_decode_thresholds_channels_and_counts_ambiguous_pixels():
    noisy = _mask().astype(np.int16)
    rng = np.random.default_rng(0)
    noisy += rng.integers(-60, 60, noisy.shape, dtype=np.int16)  # JPEG-like error, < 128
    cls, amb = decode_colour_mask(np.clip(noisy, 0, 255).astype(np.uint8), COLOURS)
    assert amb == 1
    assert (cls == 1).sum() == 128 and (cls == 2).sum() == 100 and (cls == 4).sum() == 100
    inst, classes = class_map_to_instances(cls, min_size=4)
    assert sorted(classes.values()) == [1, 2, 3, 4]  # two epithelial squares merged, speckle gone
    assert len(np.unique(inst)) - 1 == 4
    with pytest.raises(ValueError, match="distinct"):
        decode_colour_mask(_mask(), {1: (0, 255, 0), 2: (0, 250, 0)})


def test_reader_on_a_jpeg_written_mask(tmp_path):
    root = tmp_path / "data" / "m"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    stem = "TCGA-55-7570-01Z-00-DX1_3"
    Image.fromarray(np.full((40, 60, 3), 180, np.uint8)).save(root / "images" / f"{stem}.jpg")
    Image.fromarray(_mask()).save(root / "masks" / f"{stem}.jpg", quality=75)
    Image.fromarray(np.zeros((40, 61, 3), np.uint8)).save(root / "images" / "bad_1.jpg")
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(root / "masks" / "bad_1.jpg")
    opts = {
        "images": "images/*.jpg",
        "masks": "masks/{stem}.jpg",
        "colours": {k: list(v) for k, v in COLOURS.items()},
        "split": "test",
    }
    names = {1: "epithelial", 2: "lymphocyte", 3: "macrophage", 4: "neutrophil"}
    classes = [{"id": k, "name": n, "nodes": ["nucleus"]} for k, n in names.items()]
    cat = write_catalog(
        tmp_path / "c.yaml",
        [
            catalog_entry(
                "m", {"format": "colour_masks", "location": "m", "options": opts}, classes=classes
            )
        ],
    )
    reader = get_reader(load_catalog(cat, tmp_path / "data", user=False), "m")
    recs = {r.sample_id: r for r in reader.records()}
    r = recs[stem]
    assert (r.split, r.meta["center"], r.meta["slide_id"]) == (
        "test",
        "55",
        "TCGA-55-7570-01Z-00-DX1",
    )
    assert r.meta["instances_approximate"] is True
    s = reader.load(r)
    assert sorted(s.classes.values()) == [1, 2, 3, 4]
    with pytest.raises(DataError, match="bad_1.jpg"):
        reader.load(recs["bad_1"])  # mask and image sizes differ
    # a split recorded by slide: the listed slides test, every other slide train
    opts2 = {k: v for k, v in opts.items() if k != "split"}
    opts2["test_slides"] = ["TCGA-55-7570-01Z-00-DX1"]
    cat2 = write_catalog(
        tmp_path / "c2.yaml",
        [
            catalog_entry(
                "m", {"format": "colour_masks", "location": "m", "options": opts2}, classes=classes
            )
        ],
    )
    reader2 = get_reader(load_catalog(cat2, tmp_path / "data", user=False), "m")
    assert {r.sample_id: r.split for r in reader2.records()} == {stem: "test", "bad_1": "train"}


def test_real_monusac_subset(catalog):
    reader = get_reader(catalog, "monusac")
    recs = reader.records()
    assert len(recs) == 69 and {r.split for r in recs} == {"train", "test"}
    assert len({r.meta["slide_id"] for r in recs}) == 18
    # the recorded split (all 69 are official test tiles): by slide, 23 train / 46 test tiles
    # of 7 / 11 slides, no slide in both; NucFuse-test v2's 14 MoNuSAC members all in test
    slides = {sp: {r.meta["slide_id"] for r in recs if r.split == sp} for sp in ("train", "test")}
    assert [sum(r.split == sp for r in recs) for sp in ("train", "test")] == [23, 46]
    assert (len(slides["train"]), len(slides["test"])) == (7, 11)
    assert not slides["train"] & slides["test"]
    v2 = json.loads((REPO / "results/reference/test_sets/nucfuse-test/v2.json").read_text())
    split = {r.sample_id: r.split for r in recs}
    assert {split[m["sample_id"]] for m in v2["members"] if m["dataset"] == "monusac"} == {"test"}
    assert all(r.meta["center"] for r in recs) and len({r.meta["center"] for r in recs}) == 13
    sizes = [(r.meta["width"], r.meta["height"]) for r in recs]
    # smallest side 33 (seed 003 lists 33x86); largest 2500 (measured; the README says 1771)
    assert min(min(s) for s in sizes) == 33 and max(max(s) for s in sizes) == 2500
    found = set()
    for r in recs[:20]:
        s = reader.load(r)
        found |= set(s.classes.values())
        assert s.instances.shape == s.image.shape[:2]
    assert found == {1, 2, 3, 4}
    assert sum(r.meta["n_objects"] for r in recs) == 9553


def test_results_on_monusac_carry_the_approximation_note(data_env, catalog, tmp_path):
    from typer.testing import CliRunner

    from cellbench.cli.main import app

    assert "approximated" in catalog.caveats(["monusac", "monuseg"])[0]
    assert catalog.caveats(["monuseg"]) == []
    reader = get_reader(catalog, "monusac")
    recs = reader.records()[:2]
    preds = tmp_path / "preds"
    preds.mkdir()
    for r in recs:
        np.save(preds / f"{r.sample_id}.npy", reader.load(r).instances)
    args = ["evaluate", "--dataset", "monusac", "--predictions", str(preds)]
    for r in recs:
        args += ["--sample", r.sample_id]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert re.search(r"all pq +1\.0000", res.stdout)
    assert "note: monusac: local copy" in res.stderr and "approximate" in res.stderr
