"""Dataset layouts end to end through a catalog, on small folders written here.

Covers the formats of seed datasets that are not available locally: QuPath GeoJSON patches with
the OSCC metadata CSV (seed 000), APACS23 binary masks (seed 001), PanNuke fold arrays (002).
"""

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from cellbench.core.errors import CatalogError, DataError, UnknownClassError
from cellbench.data.catalog import load_catalog
from cellbench.data.samples import load_sample, sample_table


def _write_catalog(tmp_path, entries):
    p = tmp_path / "cat.yaml"
    p.write_text(yaml.safe_dump({"datasets": entries}))
    return load_catalog(p, root=tmp_path / "data")


def _entry(id_, local, classes=None, **kw):
    return {
        "id": id_,
        "name": id_,
        "citation": "c",
        "license": "l",
        "url": "u",
        "tasks": ["instance_segmentation"],
        "stain": ["PAP"],
        "modality": "brightfield",
        "organs": ["oral cavity"],
        "obtain": "o",
        "local": local,
        "classes": classes or [{"id": 1, "name": "nucleus", "nodes": ["nucleus"]}],
        **kw,
    }


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_oscc_style_geojson_patches_with_metadata(tmp_path):
    root = tmp_path / "data" / "oscc"
    _png(root / "patches" / "S1_0001.png", np.full((40, 40, 3), 200, np.uint8))
    _png(root / "patches" / "S2_0001.png", np.full((40, 40, 3), 200, np.uint8))
    feat = lambda x, cls: {  # noqa: E731
        "type": "Feature",
        "properties": {"objectType": "detection", "classification": {"name": cls}},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[x, 5], [x + 8, 5], [x + 8, 13], [x, 13], [x, 5]]],
        },
    }
    ann = root / "annotations"
    ann.mkdir()
    for s, classes in (("S1", ["Category I", "Category III"]), ("S2", ["Category II"])):
        fc = {
            "type": "FeatureCollection",
            "features": [feat(5 + 12 * i, c) for i, c in enumerate(classes)],
        }
        (ann / f"{s}_0001.geojson").write_text(json.dumps(fc))
    (root / "metadata.csv").write_text(
        "patient_id,slide_id,stain,center,category,age,sex\n"
        "P1,S1,PAP,Regional Institute of Medical Sciences,III,52,M\n"
        "P2,S2,MGG,Gandhi Medical College,II,38,F\n"
    )
    classes = [
        {"id": i, "name": f"Category {r}", "nodes": [f"oscc_category_{r.lower()}"]}
        for i, r in enumerate(["I", "II", "III", "IV"], 1)
    ]
    cat = _write_catalog(
        tmp_path,
        [
            _entry(
                "oscc_local",
                {
                    "format": "qupath_geojson",
                    "location": "oscc",
                    "options": {
                        "images": "patches/*.png",
                        "annotations": "annotations/{stem}.geojson",
                        "metadata": "metadata.csv",
                        "slide_pattern": r"^(?P<slide>.+?)_\d+$",
                    },
                },
                classes=classes,
                stain=["PAP", "MGG"],
            )
        ],
    )
    t = sample_table(cat).sort("sample_id")
    assert t["slide_id"].to_list() == ["S1", "S2"]
    assert t["stain"].to_list() == ["PAP", "MGG"] and t["age"].to_list() == [52, 38]
    assert t["category"].to_list() == ["III", "II"] and t["n_objects"].to_list() == [2, 1]
    assert t["center"].to_list()[1] == "Gandhi Medical College"
    s = load_sample(cat, "oscc_local", "S1_0001")
    assert s.n_objects == 2 and sorted(s.classes.values()) == [1, 3]
    # an unknown class name in a patch names that file
    fc = {"type": "FeatureCollection", "features": [feat(5, "Category V")]}
    (ann / "S2_0001.geojson").write_text(json.dumps(fc))
    with pytest.raises(UnknownClassError, match="S2_0001.geojson: unknown class name 'Category V'"):
        load_sample(cat, "oscc_local", "S2_0001")


def test_apacs23_binary_masks_and_size_mismatch(tmp_path):
    root = tmp_path / "data" / "apacs"
    img = np.full((20, 30, 3), 180, np.uint8)
    m = np.zeros((20, 30), np.uint8)
    m[2:6, 2:6] = 255
    m[10:15, 20:28] = 255
    _png(root / "train" / "images" / "a.png", img)
    _png(root / "train" / "masks" / "a.png", m)
    _png(root / "test" / "images" / "b.png", img)
    _png(root / "test" / "masks" / "b.png", m[:10])
    cat = _write_catalog(
        tmp_path,
        [
            _entry(
                "apacs_local",
                {
                    "format": "binary_mask",
                    "location": "apacs",
                    "options": {
                        "splits": {"train": "train/images/*.png", "test": "test/images/*.png"},
                        "masks": "{split}/masks/{stem}.png",
                    },
                },
            )
        ],
    )
    assert sorted(sample_table(cat)["split"].to_list()) == ["test", "train"]
    assert load_sample(cat, "apacs_local", "a").n_objects == 2
    with pytest.raises(DataError, match=r"b.png: mask is 30x10 px but its image is 30x20 px"):
        load_sample(cat, "apacs_local", "b")


def test_pannuke_fold_arrays(tmp_path):
    fold = tmp_path / "data" / "pannuke" / "fold1"
    fold.mkdir(parents=True)
    images = np.full((2, 16, 16, 3), 120.0)
    masks = np.zeros((2, 16, 16, 6))
    masks[0, 2:5, 2:5, 0] = 1
    masks[0, 8:12, 8:12, 4] = 1
    masks[1, 1:4, 1:4, 1] = 3
    np.save(fold / "images.npy", images)
    np.save(fold / "masks.npy", masks)
    np.save(fold / "types.npy", np.array(["Breast", "Adrenal_gland"]))
    classes = [
        {"id": i, "name": n, "nodes": [node]}
        for i, (n, node) in enumerate(
            [
                ("neoplastic", "neoplastic"),
                ("inflammatory", "inflammatory"),
                ("connective", "connective"),
                ("dead", "dead"),
                ("epithelial", "non_neoplastic_epithelial"),
            ],
            1,
        )
    ]
    cat = _write_catalog(
        tmp_path,
        [
            _entry(
                "pannuke_local",
                {
                    "format": "pannuke",
                    "location": "pannuke",
                    "options": {"folds": {"fold1": "fold1"}},
                },
                classes=classes,
                stain=["H&E"],
            )
        ],
    )
    t = sample_table(cat)
    assert t["organ"].to_list() == ["breast", "adrenal gland"] and t["width"].to_list() == [16, 16]
    s = load_sample(cat, "pannuke_local", "fold1_00000")
    assert s.image.dtype == np.uint8 and sorted(s.classes.values()) == [1, 5]


def test_missing_local_data_says_how_to_obtain(tmp_path):
    cat = _write_catalog(tmp_path, [_entry("gone", {"format": "coco", "location": "nowhere"})])
    with pytest.raises(CatalogError, match="local data not found at .*nowhere. o"):
        sample_table(cat, ["gone"])
    # a format that names no reader is refused when the catalog is read (issue 33)
    with pytest.raises(CatalogError, match="local.format 'nope' names no reader"):
        _write_catalog(tmp_path, [_entry("weird", {"format": "nope", "location": "x"})])
