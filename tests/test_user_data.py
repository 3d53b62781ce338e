"""QuPath GeoJSON import into the user catalog (issue 7, part 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from cellbench.core.errors import CatalogError, DataError
from cellbench.data.catalog import load_catalog
from cellbench.data.samples import load_sample
from cellbench.data.user_data import import_qupath


def _square(x, y, s, cls=None, kind="detection"):
    ring = [[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]
    props = {"objectType": kind}
    if cls:
        props["classification"] = {"name": cls, "color": [255, 0, 0]}
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": props,
    }


@pytest.fixture
def pair(tmp_path):
    img = tmp_path / "tile_1.tif"
    tifffile.imwrite(img, np.full((64, 64, 3), 180, np.uint8))
    gj = tmp_path / "tile_1.geojson"
    feats = [
        _square(5, 5, 10, "Tumor"),
        _square(30, 30, 12, "Lymphocyte"),
        _square(45, 5, 8, "Blob"),
    ]
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return gj, img


def test_import_adds_a_user_dataset_that_reads_back(pair):
    gj, img = pair
    res = import_qupath(gj, img, "my_slides", mpp=0.5, organ="breast")
    assert res["classes"] == {"Blob": "nucleus", "Lymphocyte": "lymphocyte", "Tumor": "neoplastic"}
    assert res["guessed_root"] == ["Blob"]
    cat = load_catalog()
    d = cat.get("my_slides")
    assert d.mpp == 0.5 and d.organs == ["breast"] and "my_slides" in cat.user
    s = load_sample(cat, "my_slides", "tile_1")
    assert s.n_objects == 3
    names = {c.id: c.name for c in d.classes}
    areas = {names[s.classes[i]]: int((s.instances == i).sum()) for i in s.classes}
    assert areas == {"Tumor": 100, "Lymphocyte": 144, "Blob": 64}
    assert s.image.shape == (64, 64, 3)
    # catalog version follows the user catalog
    assert load_catalog(user=False).version != cat.version


def test_second_import_adds_a_sample_and_refuses_duplicates(pair, tmp_path):
    gj, img = pair
    import_qupath(gj, img, "my_slides")
    img2 = tmp_path / "tile_2.tif"
    img2.write_bytes(img.read_bytes())
    gj2 = tmp_path / "t2.geojson"
    gj2.write_text(json.dumps([_square(1, 1, 6, "Stroma")]))  # QuPath < 0.3 bare list
    import_qupath(gj2, img2, "my_slides")
    d = load_catalog().get("my_slides")
    assert [c.name for c in d.classes] == ["Blob", "Lymphocyte", "Tumor", "Stroma"]
    assert d.classes[-1].nodes == ["connective"]
    with pytest.raises(DataError, match="already in"):
        import_qupath(gj, img, "my_slides")
    import_qupath(gj, img, "my_slides", replace=True)


def test_bad_input_names_the_file_and_writes_nothing(pair, tmp_path):
    from cellbench.core import config

    gj, img = pair
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="bad.geojson"):
        import_qupath(bad, img, "my_slides")
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"nope")
    with pytest.raises(DataError, match="broken.tif"):
        import_qupath(gj, broken, "my_slides")
    with pytest.raises(CatalogError, match="catalog dataset"):
        import_qupath(gj, img, "monuseg")
    assert not config.user_catalog_path().exists()
    assert not config.user_data_root().exists()


def test_cli_import_round_trips_real_monuseg_annotations(data_env, tmp_path):
    from cellbench.cli import app

    cat = load_catalog()
    src = load_sample(cat, "monuseg", "TCGA-2Z-A9J9-01A-01-TS1")
    out = tmp_path / "TCGA-2Z-A9J9-01A-01-TS1.geojson"
    r = CliRunner().invoke(
        app,
        [
            "qupath",
            "export",
            "--dataset",
            "monuseg",
            "--sample",
            "TCGA-2Z-A9J9-01A-01-TS1",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    image = next((data_env / "monuseg").rglob("TCGA-2Z-A9J9-01A-01-TS1.tif"))
    r = CliRunner().invoke(
        app,
        [
            "qupath",
            "import",
            str(out),
            "--image",
            str(image),
            "--dataset-id",
            "mine",
            "--mpp",
            "0.25",
            "--class",
            "nucleus=nucleus",
        ],
    )
    assert r.exit_code == 0, r.output
    back = load_sample(load_catalog(), "mine", "TCGA-2Z-A9J9-01A-01-TS1")
    # identical instances up to relabelling
    a, b = src.instances, back.instances
    assert (a > 0).sum() == (b > 0).sum() and len(np.unique(a)) == len(np.unique(b))
    pairs = np.unique(np.stack([a[a > 0], b[a > 0]]), axis=1)
    assert pairs.shape[1] == len(np.unique(a)) - 1


def test_import_of_overlapping_whole_cells_keeps_each_object(tmp_path):
    """Cytology (issue 16 item 2): with overlapping=True two overlapping cells stay two whole
    objects; without it the later one takes the shared pixels, as before."""
    img = tmp_path / "smear_1.tif"
    tifffile.imwrite(img, np.full((64, 64, 3), 200, np.uint8))
    gj = tmp_path / "smear_1.geojson"
    feats = [_square(5, 5, 20, "Cell"), _square(15, 15, 20, "Cell")]
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    import_qupath(gj, img, "pap_cells", stain="PAP", overlapping=True)
    s = load_sample(load_catalog(), "pap_cells", "smear_1")
    assert s.instances is None and s.objects.area.tolist() == [400, 400] and s.n_objects == 2
    import_qupath(gj, img, "pap_flat", stain="PAP")
    flat = load_sample(load_catalog(), "pap_flat", "smear_1")
    assert flat.objects is None and sorted(np.bincount(flat.instances.ravel())[1:]) == [300, 400]
