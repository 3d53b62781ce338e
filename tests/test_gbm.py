"""Glioblastoma H&E (issue 16, item 1): the image-editor XML reader on hand-written files and on
the real gbm40 + TCGA tiles."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from hostile import catalog_entry, write_catalog

from cellbench.core.errors import DataError
from cellbench.data.catalog import load_catalog
from cellbench.data.readers import get_reader
from cellbench.data.readers.image_editor_xml import read_editor_xml

BOM = "\ufeff"


def _doc(*shapes: str) -> str:
    return (
        f'{BOM}<!--Document-->\n<Document FileVersion="1.0"><Layers><Layer Name="Layer1"><Shapes>'
        + "".join(shapes)
        + "</Shapes></Layer></Layers></Document>"
    )


def _poly(kind: str, pts) -> str:
    inner = "".join(f'<Point X="{x}" Y="{y}" />' for x, y in pts)
    data = f'<Data Rotation="0"><Points>{inner}</Points></Data>'
    return f'<Shape Type="{kind}"><Settings/>{data}</Shape>'


OVAL = '<Shape Type="Oval"><Data><Extent X="30.5" Y="4" Width="10" Height="6" /></Data></Shape>'


def test_polygons_smooth_polygons_ovals_and_degenerate_shapes(tmp_path):
    p = tmp_path / "01_data.xml"
    p.write_text(
        _doc(
            _poly("Polygon", [(2.5, 2.25), (12.75, 2.5), (12.5, 10.0), (2.0, 9.5)]),
            _poly("SmoothPolygon", [(20, 20), (28, 20), (28, 28)]),
            OVAL,
            _poly("Polygon", [(1, 1), (5, 5)]),  # two points: left out
        ),
        encoding="utf-8",
    )
    polys, left_out = read_editor_xml(p)
    assert len(polys) == 3 and left_out == 1
    assert polys[0][1].tolist() == [12.75, 2.5]  # float vertices kept
    oval = polys[2]
    assert len(oval) == 64
    assert oval[:, 0].min() == pytest.approx(30.5) and oval[:, 0].max() == pytest.approx(40.5)
    assert oval[:, 1].min() == pytest.approx(4) and oval[:, 1].max() == pytest.approx(10)


@pytest.mark.parametrize(
    "text, problem",
    [
        (_doc('<Shape Type="Line"><Data/></Shape>'), "unsupported shape type 'Line'"),
        (_doc(_poly("Polygon", [(1, 1), ("a", 2), (3, 3)])), "non-numeric"),
        (_doc(_poly("Polygon", [(1, 1), ("nan", 2), (3, 3)])), "non-finite"),
        (_doc('<Shape Type="Oval"><Data/></Shape>'), "missing or non-numeric"),
        ("<Other/>", "not an image-editor document"),
        (_doc("<Shape"), "malformed XML"),
    ],
)
def test_errors_name_the_file(tmp_path, text, problem):
    p = tmp_path / "bad_data.xml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_editor_xml(p)
    assert str(p) in str(e.value) and problem in str(e.value)


def test_reader_parts_tcga_fields_and_recorded_split(tmp_path):
    root = tmp_path / "data" / "g"
    for part, stems in (("a", ["01", "02"]), ("t", ["TCGA-FG-A4MU-R01_x", "TCGA-DB-5270-R02_y"])):
        (root / part / "img").mkdir(parents=True)
        (root / part / "xml").mkdir()
        for s in stems:
            tifffile.imwrite(root / part / "img" / f"{s}.tif", np.zeros((32, 40, 3), np.uint8))
            (root / part / "xml" / f"{s}_data.xml").write_text(
                _doc(_poly("Polygon", [(2, 2), (12, 2), (12, 10), (2, 10)]), OVAL),
                encoding="utf-8",
            )
    opts = {
        "parts": {
            "a": {
                "images": "a/img/*.tif",
                "contours": "a/xml/{stem}_data.xml",
                "meta": {"center": "Emory"},
            },
            "t": {"images": "t/img/*.tif", "contours": "t/xml/{stem}_data.xml"},
        },
        "slide_pattern": "^(?P<slide>TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}-R\\d+)",
        "test": ["a/02", "center:FG"],
    }
    cat = write_catalog(
        tmp_path / "c.yaml",
        [catalog_entry("g", {"format": "image_editor_xml", "location": "g", "options": opts})],
    )
    reader = get_reader(load_catalog(cat, tmp_path / "data", user=False), "g")
    recs = {r.sample_id: r for r in reader.records()}
    assert {k: r.split for k, r in recs.items()} == {
        "a_01": "train",
        "a_02": "test",
        "t_TCGA-DB-5270-R02_y": "train",
        "t_TCGA-FG-A4MU-R01_x": "test",
    }
    m = recs["t_TCGA-FG-A4MU-R01_x"].meta
    assert (m["center"], m["patient_id"], m["slide_id"]) == (
        "FG",
        "TCGA-FG-A4MU",
        "TCGA-FG-A4MU-R01",
    )
    assert recs["a_01"].meta["center"] == "Emory"
    s = reader.load(recs["a_01"])
    assert s.instances.shape == (32, 40) and sorted(np.unique(s.instances).tolist()) == [0, 1, 2]
    # the square's pixel centres 2..12 x 2..10 are inside (skimage convention)
    assert (s.instances == 1).sum() == 11 * 9


def test_real_gbm_tiles(catalog):
    reader = get_reader(catalog, "gbm")
    recs = reader.records()
    assert len(recs) == 76
    by = {}
    for r in recs:
        by.setdefault((r.meta["source"], r.split), []).append(r)
    assert {k: len(v) for k, v in by.items()} == {
        ("gbm40", "train"): 30,
        ("gbm40", "test"): 10,
        ("tcga", "train"): 28,
        ("tcga", "test"): 8,
    }
    tcga = [r for r in recs if r.meta["source"] == "tcga"]
    assert {r.meta["center"] for r in tcga} == {"DB", "DU", "FG"}
    assert len({r.meta["slide_id"] for r in tcga}) == 9
    assert sum(r.meta["n_objects"] for r in recs) == 9942
    assert all(r.meta["mpp"] is None for r in recs)  # magnification not stated by the source
    s = reader.load(recs[0])
    assert s.image.shape == (512, 512, 3)
    assert len(np.unique(s.instances)) - 1 == recs[0].meta["n_objects"]
