"""Readers on small inputs written here to each format's published spec."""

import json
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile
from PIL import Image

from cellbench.core.errors import DataError, UnknownClassError
from cellbench.data.imageio import as_label_image, check_same_size, read_image, read_label_image
from cellbench.data.rasterize import polygons_to_instances
from cellbench.data.readers.aperio_xml import read_aperio_xml
from cellbench.data.readers.coco import coco_to_instances, read_coco
from cellbench.data.readers.grand_challenge import (
    check_points_inside,
    read_gc_points,
    read_gc_polygons,
)
from cellbench.data.readers.imagej_roi import read_roiset
from cellbench.data.readers.masks import binary_to_instances, pannuke_to_instances
from cellbench.data.readers.oscc import read_oscc_metadata
from cellbench.data.readers.qupath_geojson import objects_to_annotations, read_qupath_geojson

SQUARE = [(2, 2), (6, 2), (6, 6), (2, 6)]


def _xml(regions, mpp="0.25"):
    body = "".join(
        f'<Region Id="{i}"><Vertices>'
        + "".join(f'<Vertex X="{x}" Y="{y}"/>' for x, y in r)
        + "</Vertices></Region>"
        for i, r in enumerate(regions, 1)
    )
    return (
        f'<Annotations MicronsPerPixel="{mpp}"><Annotation><Regions>{body}'
        "</Regions></Annotation></Annotations>"
    )


def test_aperio_xml_polygons_mpp_and_degenerates(tmp_path):
    p = tmp_path / "a.xml"
    p.write_text(
        _xml([SQUARE, [(1, 1), (2, 2)], [(0, 0), (1, 1), (2, 2)], [(10, 10), (14, 10), (12, 14)]])
    )
    a = read_aperio_xml(p)
    assert a.mpp == 0.25 and a.n_regions == 4 and a.n_degenerate == 2 and len(a.polygons) == 2
    inst = polygons_to_instances(a.polygons, (16, 16))
    assert set(np.unique(inst)) == {0, 1, 2}
    assert (inst == 1).sum() == 25  # pixel centres 2..6 inclusive on both axes


def test_aperio_xml_unusual_attribute_order_falls_back_to_tree(tmp_path):
    p = tmp_path / "b.xml"
    p.write_text(
        '<Annotations><Regions><Region Id="1"><Vertices><Vertex Y="2" X="2"/>'
        '<Vertex Y="2" X="6"/><Vertex Y="6" X="6"/></Vertices></Region></Regions></Annotations>'
    )
    a = read_aperio_xml(p)
    assert a.mpp is None and len(a.polygons) == 1 and a.polygons[0][1].tolist() == [6, 2]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("<Annotations><Region>", "malformed XML"),
        ("<Other/>", "not an ImageScope annotation file"),
        ('<Annotations MicronsPerPixel="abc"/>', "MicronsPerPixel is not a number"),
        ('<Annotations><Region Id="7"><Vertex X="a" Y="1"/></Region></Annotations>', "Region 7"),
        ("", "malformed XML"),
    ],
)
def test_aperio_xml_errors_name_the_file(tmp_path, text, problem):
    p = tmp_path / "bad.xml"
    p.write_text(text)
    with pytest.raises(DataError) as e:
        read_aperio_xml(p)
    assert str(p) in str(e.value) and problem in str(e.value)


def test_gc_points_schema_and_errors(tmp_path):
    p = tmp_path / "pts.json"
    doc = {
        "type": "Multiple points",
        "num_images": 3,
        "points": [
            {"name": "image_0", "point": [1, 2, 1], "probability": 0.5},
            {"name": "image_2", "point": [3.5, 4, 2]},
        ],
    }
    p.write_text(json.dumps(doc))
    pts = read_gc_points(p)
    assert sorted(pts) == [0, 1, 2] and len(pts[1]) == 0
    assert pts[0].xy.tolist() == [[1, 2]] and pts[0].score[0] == 0.5 and pts[2].score[0] == 1.0
    with pytest.raises(DataError, match="outside the 4x4 image"):
        check_points_inside(pts[2], 4, 4, p, "image_2")
    for bad, msg in [
        ({"type": "Multiple polygons"}, "not a Grand-Challenge 'Multiple points'"),
        (
            {"type": "Multiple points", "points": [{"name": "x", "point": [1, 2, 1]}]},
            "not 'image_<k>'",
        ),
        (
            {"type": "Multiple points", "points": [{"name": "image_0", "point": [1, 2]}]},
            r"points\[0\]",
        ),
        (
            {"type": "Multiple points", "points": [{"name": "image_0", "point": [1, "NaN", 1]}]},
            "non-finite",
        ),
    ]:
        p.write_text(json.dumps(bad))
        with pytest.raises(DataError, match=msg):
            read_gc_points(p)
    p.write_text("{not json")
    with pytest.raises(DataError, match="malformed JSON at line 1"):
        read_gc_points(p)
    p.write_text("")
    with pytest.raises(DataError, match="empty file"):
        read_gc_points(p)


def test_gc_polygons(tmp_path):
    p = tmp_path / "poly.json"
    p.write_text(
        json.dumps(
            {
                "type": "Multiple polygons",
                "polygons": [
                    {
                        "name": "nuclei_tumor",
                        "path_points": [[0, 0, 0.5], [4, 0, 0.5], [4, 4, 0.5]],
                        "probability": 0.9,
                    }
                ],
            }
        )
    )
    (poly,) = read_gc_polygons(p)
    assert poly.name == "nuclei_tumor" and poly.xy.shape == (3, 2) and poly.probability == 0.9


def _feature(geom, props, fid=None):
    f = {"type": "Feature", "geometry": geom, "properties": props}
    if fid:
        f["id"] = fid
    return f


SQ = {
    "type": "Polygon",
    "coordinates": [
        [[2, 2], [12, 2], [12, 12], [2, 12], [2, 2]],
        [[5, 5], [8, 5], [8, 8], [5, 8], [5, 5]],
    ],
}


def test_qupath_geojson_every_version(tmp_path):
    old = [  # QuPath 0.2: bare list, id = Java class, colorRGB, measurement list
        _feature(
            SQ,
            {
                "classification": {"name": "Tumor", "colorRGB": -3670016},
                "measurements": [{"name": "Area", "value": 91.0}],
                "isLocked": True,
            },
            "PathDetectionObject",
        ),
    ]
    new = {
        "type": "FeatureCollection",
        "features": [
            _feature(
                {
                    "type": "MultiPolygon",
                    "coordinates": [
                        [[[20, 20], [24, 20], [24, 24], [20, 24], [20, 20]]],
                        [[[26, 20], [28, 20], [28, 22], [26, 22], [26, 20]]],
                    ],
                },
                {
                    "objectType": "detection",
                    "classification": {"name": "Stroma", "color": [1, 2, 3]},
                    "measurements": {"Area": 20.0},
                },
                "3f2c",
            ),
            _feature(
                {
                    "type": "Polygon",
                    "coordinates": [[[30, 30], [40, 30], [40, 40], [30, 40], [30, 30]]],
                },
                {
                    "objectType": "cell",
                    "classification": {"names": ["Tumor", "Positive"], "color": [9, 9, 9]},
                    "nucleusGeometry": {
                        "type": "Polygon",
                        "coordinates": [[[33, 33], [36, 33], [36, 36], [33, 36], [33, 33]]],
                    },
                },
            ),
            _feature(
                {"type": "MultiPoint", "coordinates": [[1, 1], [3, 4]]},
                {"objectType": "annotation", "classification": {"name": "Tumor"}},
            ),
            _feature({"type": "Point", "coordinates": [7, 45]}, {"objectType": "annotation"}),
        ],
    }
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.geojson").write_text(json.dumps(new))
    (o,) = read_qupath_geojson(tmp_path / "old.json")
    assert o.object_type == "detection" and o.class_name == "Tumor" and o.locked
    assert o.color == (200, 0, 0) and o.measurements == {"Area": 91.0} and o.object_id is None
    objs = read_qupath_geojson(tmp_path / "new.geojson")
    assert [x.object_type for x in objs] == ["detection", "cell", "annotation", "annotation"]
    assert objs[0].color == (1, 2, 3) and objs[0].measurements == {"Area": 20.0}
    assert objs[1].class_name == "Tumor: Positive" and objs[1].nucleus is not None

    names = {"Tumor": 1, "Stroma": 2, "Tumor: Positive": 1}
    inst, classes, pts = objects_to_annotations([o] + objs, (50, 50), names.get)
    # hole in the old square stays background; MultiPolygon parts share one id; cell uses nucleus
    assert inst[6, 6] == 0 and inst[3, 3] == 1
    assert inst[21, 21] == inst[21, 27] == 2 and classes[2] == 2
    assert inst[34, 34] == 3 and inst[31, 31] == 0
    assert len(pts) == 3 and pts.cls.tolist() == [1, 1, 0]


def test_qupath_geojson_errors(tmp_path):
    p = tmp_path / "x.geojson"
    for doc, msg in [
        ({"type": "Topology"}, "not GeoJSON"),
        (
            {"type": "FeatureCollection", "features": [{"type": "Nope"}]},
            r"features\[0\]: not a GeoJSON Feature",
        ),
        (
            {
                "type": "FeatureCollection",
                "features": [_feature({"type": "Polygon", "coordinates": "x"}, {})],
            },
            r"features\[0\]: invalid Polygon",
        ),
        (
            {"type": "FeatureCollection", "features": [_feature(None, {})]},
            "missing or malformed geometry",
        ),
    ]:
        p.write_text(json.dumps(doc))
        with pytest.raises(DataError, match=msg):
            read_qupath_geojson(p)


def test_unknown_class_name_names_the_file(tmp_path):
    from cellbench.data.readers.base import DatasetReader

    ds = SimpleNamespace(
        id="toy",
        local=None,
        classes=[SimpleNamespace(id=1, name="Tumor")],
        class_by_name=lambda: {"Tumor": SimpleNamespace(id=1, name="Tumor")},
    )
    r = DatasetReader(ds, tmp_path)
    assert r.class_id("Tumor", tmp_path / "a.geojson") == 1
    with pytest.raises(
        UnknownClassError, match=r"a.geojson: unknown class name 'Necrosis' \(known: Tumor\)"
    ):
        r.class_id("Necrosis", tmp_path / "a.geojson")


def test_coco_polygons_string_segmentation_and_rle(tmp_path):
    p = tmp_path / "c.json"
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 10}],
        "annotations": [
            {"image_id": 1, "category_id": 3, "segmentation": [[1, 1, 4, 1, 4, 4, 1, 4]]},
            {
                "image_id": 1,
                "category_id": 2,
                "segmentation": "[[6, 6, 9, 6, 9, 9], [6, 1, 8, 1, 8, 3]]",
            },
        ],
    }
    p.write_text(json.dumps(doc))
    im = read_coco(p)["a.png"]
    inst, classes = coco_to_instances(im)
    assert classes == {1: 3, 2: 2} and inst[2, 2] == 1 and inst[8, 8] == 2 and inst[2, 7] == 2
    doc["annotations"][0]["segmentation"] = {"counts": [1], "size": [10, 10]}
    p.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="RLE"):
        read_coco(p)
    p.write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="not a COCO file"):
        read_coco(p)


def test_imagej_roiset(tmp_path):
    import roifile

    zp = tmp_path / "RoiSet.zip"
    with zipfile.ZipFile(zp, "w") as z:
        for i, pts in enumerate([SQUARE, [(10, 10), (15, 10), (15, 15)]]):
            roi = roifile.ImagejRoi.frompoints(np.array(pts, dtype=np.float32))
            z.writestr(f"{i:04d}.roi", roi.tobytes())
    polys = read_roiset(zp)
    assert len(polys) == 2 and polys[0].min(0).tolist() == [2, 2]
    (tmp_path / "bad.zip").write_bytes(b"garbage")
    with pytest.raises(DataError, match="unreadable ImageJ ROI"):
        read_roiset(tmp_path / "bad.zip")


def test_label_images_and_sizes(tmp_path):
    lab = np.zeros((8, 8), np.uint16)
    lab[1:3, 1:3] = 7
    tifffile.imwrite(tmp_path / "m.tif", lab)
    np.save(tmp_path / "m.npy", lab.astype(np.int64))
    for f in ("m.tif", "m.npy"):
        out = read_label_image(tmp_path / f)
        assert out.dtype == np.int32 and out.max() == 7
    with pytest.raises(DataError, match="non-integer"):
        as_label_image(np.full((2, 2), 0.5), "f.npy")
    with pytest.raises(DataError, match="NaN"):
        as_label_image(np.full((2, 2), np.nan), "f.npy")
    with pytest.raises(DataError, match="negative ids"):
        as_label_image(np.full((2, 2), -1), "f.npy")
    with pytest.raises(DataError, match=r"m.tif: mask is 8x8 px but its image is 10x4 px"):
        check_same_size(np.zeros((4, 10, 3)), lab, tmp_path / "m.tif")


def test_truncated_and_missing_images(tmp_path):
    good = tmp_path / "a.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 100).save(good)
    trunc = tmp_path / "t.png"
    trunc.write_bytes(good.read_bytes()[:60])
    with pytest.raises(DataError, match="t.png: unreadable or truncated image"):
        read_image(trunc)
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((32, 32), np.uint8))
    (tmp_path / "t.tif").write_bytes((tmp_path / "a.tif").read_bytes()[:40])
    with pytest.raises(DataError, match="t.tif"):
        read_image(tmp_path / "t.tif")
    with pytest.raises(DataError, match="file not found"):
        read_image(tmp_path / "missing.jpg")


def test_binary_mask_components_and_pannuke():
    m = np.zeros((6, 6), np.uint8)
    m[0:2, 0:2] = 255
    m[2, 2] = 255  # touches diagonally: same cell (8-connectivity)
    m[4:6, 4:6] = 255
    lab = binary_to_instances(m, "m.png")
    assert lab.max() == 2 and lab[2, 2] == lab[0, 0]
    masks = np.zeros((4, 4, 6))
    masks[0:2, 0:2, 0] = 5  # neoplastic id 5
    masks[2:4, 2:4, 1] = 5  # inflammatory reusing id 5
    inst, classes = pannuke_to_instances(masks)
    assert classes == {1: 1, 2: 2} and inst[0, 0] == 1 and inst[3, 3] == 2


def test_oscc_metadata_schema(tmp_path):
    p = tmp_path / "meta.csv"
    p.write_text(
        "patient_id,slide_id,stain,center,category,age,sex,smoking_history,family_history\n"
        "P1,S1,PAP,Sawai Man Singh Medical College,II,45,M,yes,no\n"
        "P1,S2,mgg,Sawai Man Singh Medical College,2,45,m,yes,\n"
    )
    m = read_oscc_metadata(p)
    assert m["S1"]["category"] == "II" and m["S2"]["stain"] == "MGG" and m["S2"]["sex"] == "M"
    assert m["S1"]["smoking_history"] is True and m["S2"]["family_history"] is None
    bad_rows = [
        ("P1,S1,HE,C,I,40,F", "line 2, column 'stain'"),
        ("P1,S1,PAP,C,V,40,F", "line 2, column 'category'"),
        ("P1,S1,PAP,C,I,forty,F", "not a number"),
        ("P1,S1,PAP,C,I,40,X", "column 'sex'"),
    ]
    head = "patient_id,slide_id,stain,center,category,age,sex\n"
    for row, msg in bad_rows:
        p.write_text(head + row + "\n")
        with pytest.raises(DataError, match=msg):
            read_oscc_metadata(p)
    p.write_text(head + "P1,S1,PAP,C,I,40,F\nP2,S1,PAP,C,I,41,F\n")
    with pytest.raises(DataError, match="duplicate slide"):
        read_oscc_metadata(p)
    p.write_text("patient_id,slide_id\nP1,S1\n")
    with pytest.raises(DataError, match="missing column"):
        read_oscc_metadata(p)
