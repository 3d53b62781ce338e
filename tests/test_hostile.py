"""Adversarial inputs and faults (issue 15): every hostile file gets one clear error naming it,
nothing is written, nothing crashes, hangs or blows up memory, and no run loses or duplicates
rows whatever the crash point.

The hostile files are built by ``tests/hostile.py``; property-based cases use hypothesis. Each
test's docstring names the category of the issue it covers.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import tifffile
import yaml
from hostile import (
    XSS,
    billion_laughs_yaml,
    catalog_entry,
    deep_json,
    geojson,
    png_header,
    square,
    tiff_header,
    toy_instances,
    write_catalog,
    zip_bomb,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cellbench.core.errors import CatalogError, CellbenchError, DataError

REPO = Path(__file__).resolve().parent.parent
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _cli(*args: str):
    from cellbench.cli.main import app

    return CliRunner().invoke(app, list(args))


def _one_line_error(res, *needles: str) -> None:
    """A CLI failure: exit 2, one ``error:`` line naming what it must, no traceback."""
    out = res.output
    assert res.exit_code == 2, out
    assert "Traceback" not in out and res.exception is None or isinstance(res.exception, SystemExit)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out
    for n in needles:
        assert n in out, out


def _raises(fn, *needles: str, exc=DataError) -> None:
    """``fn()`` raises ``exc`` whose message holds every needle. Speed is never asserted here
    (tests assert behaviour; timings live in ``benchmarks/``): where a refusal must come early,
    the test checks *where* it comes from (a spy on the step that must not run)."""
    with pytest.raises(exc) as e:
        fn()
    for n in needles:
        assert n in str(e.value), str(e.value)


# -- resource limits ---------------------------------------------------------------------------


def test_images_declaring_huge_pixel_counts_are_refused_before_decoding(tmp_path):
    """Resources: TIFF (all formats, not only PNG) and .npy headers are checked first."""
    from cellbench.data.imageio import read_image, read_label_image

    t = tiff_header(tmp_path / "big.tif", 60000, 60000)
    _raises(lambda: read_image(t), str(t), "60000x60000", "CELLBENCH_MAX_PIXELS")
    p = png_header(tmp_path / "big.png", 60000, 60000)
    _raises(lambda: read_image(p), str(p), "60000x60000")
    # a .npy header declaring 60000^2 int32 in a tiny file
    n = tmp_path / "big.npy"
    with open(n, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<i4", "fortran_order": False, "shape": (60000, 60000)}
        )
    _raises(lambda: read_label_image(n), str(n))
    # the limit is configurable, and ordinary images pass
    ok = tmp_path / "ok.tif"
    tifffile.imwrite(ok, np.zeros((64, 64), np.uint8))
    assert read_image(ok).shape == (64, 64)
    os.environ["CELLBENCH_MAX_PIXELS"] = "1000"
    try:
        _raises(lambda: read_image(ok), "64x64", "CELLBENCH_MAX_PIXELS")
    finally:
        del os.environ["CELLBENCH_MAX_PIXELS"]


@pytest.mark.parametrize(
    "reader",
    ["gc_points", "geojson", "coco", "qupath_project", "job", "run_record", "upload"],
)
def test_deeply_nested_json_is_an_error_in_every_json_reader(tmp_path, reader):
    """Tracebacks: RecursionError from nesting, in every JSON reader."""
    from cellbench.core.safety import parse_json
    from cellbench.data.readers.coco import read_coco
    from cellbench.data.readers.grand_challenge import read_gc_points
    from cellbench.data.readers.qupath_geojson import read_qupath_geojson
    from cellbench.qupath.project import read_project
    from cellbench.runs.store import Store

    p = deep_json(tmp_path / "deep.json")
    if reader == "gc_points":
        _raises(lambda: read_gc_points(p), str(p), "nested")
    elif reader == "geojson":
        _raises(lambda: read_qupath_geojson(p), str(p), "nested")
    elif reader == "coco":
        _raises(lambda: read_coco(p), str(p), "nested")
    elif reader == "qupath_project":
        proj = tmp_path / "proj"
        proj.mkdir()
        q = deep_json(proj / "project.qpproj")
        _raises(lambda: read_project(proj), str(q), "nested")
    elif reader == "run_record":
        st_ = Store(tmp_path / "s")
        st_.runs_dir.mkdir(parents=True)
        r = deep_json(st_.runs_dir / "r1.json")
        _raises(lambda: st_.get_run("r1"), str(r), "nested")
        assert st_.runs().height == 0 and str(r) in str(st_.problems[0])
    elif reader == "job":
        from cellbench.runs.jobs import jobs_dir, list_jobs

        d = jobs_dir() / "20260101-000000-abcdef"
        d.mkdir(parents=True)
        deep_json(d / "job.json")
        assert list_jobs()[0]["status"] == "interrupted"  # read as empty, listed, no crash
    else:
        _raises(lambda: parse_json(p.read_bytes(), "upload.geojson"), "upload.geojson", "nested")


def test_tiny_points_file_cannot_ask_for_a_billion_images(tmp_path):
    """Resources: a 300-byte points JSON with num_images 1e9."""
    from cellbench.data.readers.grand_challenge import read_gc_points

    for n, problem in (
        (1e9, "non-negative integer"),
        (10**9, "CELLBENCH_MAX_OBJECTS"),
        (True, "non-negative integer"),
        (-1, "non-negative integer"),
    ):
        p = tmp_path / "pts.json"
        p.write_text(json.dumps({"type": "Multiple points", "num_images": n, "points": []}))
        assert p.stat().st_size < 300
        _raises(lambda p=p: read_gc_points(p), str(p), problem)


def test_yaml_alias_bombs_and_recursive_yaml_are_refused(tmp_path):
    """Resources: YAML anchor expansion in a catalog, a model card, a training config."""
    from cellbench.data.catalog import load_catalog
    from cellbench.models.card import load_card

    bomb = billion_laughs_yaml()
    cat = tmp_path / "cat.yaml"
    entry = catalog_entry("x", {"format": "masks", "location": "x", "options": {"meta": {}}})
    text = yaml.safe_dump({"datasets": [entry]}) + bomb
    cat.write_text(text)
    _raises(lambda: load_catalog(cat, tmp_path), str(cat), "aliases", exc=CatalogError)
    card = tmp_path / "card.yaml"
    card.write_text(bomb)
    _raises(lambda: load_card(card), str(card), "aliases")
    card.write_text("a: &a [*a]\n")
    _raises(lambda: load_card(card), str(card), "recursive")
    res = _cli("catalog", "validate", str(cat))
    _one_line_error(res, str(cat), "aliases")


def test_zip_bomb_roiset_and_oversized_files(tmp_path, monkeypatch):
    """Resources: a RoiSet zip that unpacks past the limit; JSON/XML over the size limit."""
    from cellbench.data.readers.aperio_xml import read_aperio_xml
    from cellbench.data.readers.grand_challenge import read_gc_points
    from cellbench.data.readers.imagej_roi import read_roiset

    monkeypatch.setenv("CELLBENCH_MAX_FILE_MB", "2")
    z = zip_bomb(tmp_path / "RoiSet.zip", 8)
    assert z.stat().st_size < 100_000
    _raises(lambda: read_roiset(z), str(z), "unpacks to 8 MB")
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"type": "Multiple points", "points": [], "pad": "x" * 3_000_000}))
    _raises(lambda: read_gc_points(big), str(big), "over the 2 MB limit")
    xml = tmp_path / "big.xml"
    xml.write_text("<Annotations>" + " " * 3_000_000 + "</Annotations>")
    _raises(lambda: read_aperio_xml(xml), str(xml), "over the 2 MB limit")


def test_a_polygon_with_a_million_vertices_is_refused_before_any_geometry(tmp_path, monkeypatch):
    """Resources: one polygon with 1M vertices (was 171 s) in GeoJSON, Aperio XML and COCO is
    refused by the coordinate check, before any geometry is built or rasterised (spies on
    those steps; no wall-clock assertion, the timing is in benchmarks/)."""
    import shapely.geometry

    import cellbench.data.readers.aperio_xml as aperio
    import cellbench.data.readers.coco as coco
    from cellbench.data.readers.qupath_geojson import read_qupath_geojson

    built: list[str] = []

    def spy(name, fn):
        def wrapped(*a, **k):
            built.append(name)
            return fn(*a, **k)

        return wrapped

    monkeypatch.setattr(shapely.geometry, "shape", spy("shape", shapely.geometry.shape))
    monkeypatch.setattr(aperio, "polygons_to_instances", spy("xml", aperio.polygons_to_instances))
    monkeypatch.setattr(coco, "polygons_to_instances", spy("coco", coco.polygons_to_instances))
    n = 1_000_000
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.c_[50 + 40 * np.cos(t), 50 + 40 * np.sin(t)].round(2)
    g = tmp_path / "big.geojson"
    feat = {
        "type": "Feature",
        "properties": {"objectType": "detection"},
        "geometry": {"type": "Polygon", "coordinates": [ring.tolist()]},
    }
    g.write_text(json.dumps({"type": "FeatureCollection", "features": [feat]}))
    _raises(lambda: read_qupath_geojson(g), str(g), "1000000 vertices")
    x = tmp_path / "big.xml"
    verts = "".join(f'<Vertex X="{a}" Y="{b}"/>' for a, b in ring[:150_000])
    x.write_text(f'<Annotations><Region Id="1"><Vertices>{verts}</Vertices></Region></Annotations>')
    _raises(lambda: aperio.read_aperio_xml(x), str(x), "150000 vertices")
    c = tmp_path / "coco.json"
    c.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 100}],
                "annotations": [
                    {
                        "image_id": 1,
                        "category_id": 1,
                        "segmentation": [ring[:150_000].ravel().tolist()],
                    }
                ],
            }
        )
    )
    _raises(lambda: coco.read_coco(c), str(c), "150000 vertices")
    assert built == [], f"geometry built before the refusal: {built}"
    # the spies see ordinary input (they would catch a refusal that came too late)
    feat["geometry"]["coordinates"] = [ring[::10_000].tolist()]
    g.write_text(json.dumps({"type": "FeatureCollection", "features": [feat]}))
    assert len(read_qupath_geojson(g)) == 1 and built == ["shape"]


# -- silently wrong data -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "features, problem",
    [
        ([square(-1e9, -1e9, 2e9)], "reaches far beyond"),
        ([square(5, 5, 10), square(70, 70, 10)], "lies entirely outside"),
        ([square(5, 5, 10), square(500, 500, 10)], "reaches far beyond"),
        ([square(-50, 10, 10)], "lies entirely outside"),
        (
            [
                {
                    "type": "Feature",
                    "properties": {},
                    "geometry": {"type": "Point", "coordinates": [1e300, 5]},
                }
            ],
            "reaches far beyond",
        ),
    ],
)
def test_objects_off_the_image_are_reported_not_imported(tmp_path, features, problem):
    """Silently wrong: ±1e9 polygons, objects outside the image (GeoJSON import)."""
    from cellbench.core import config
    from cellbench.data.user_data import import_qupath

    img = tmp_path / "t.tif"
    tifffile.imwrite(img, np.zeros((64, 64, 3), np.uint8))
    gj = geojson(tmp_path / "t.geojson", features)
    _raises(lambda: import_qupath(gj, img, "mine"), str(gj), problem)
    assert not config.user_catalog_path().exists() and not config.user_data_root().exists()


def test_far_and_outside_polygons_in_aperio_and_coco(tmp_path):
    """Silently wrong: the same checks for Aperio XML (on load) and COCO (on parse)."""
    from cellbench.data.catalog import load_catalog
    from cellbench.data.readers import get_reader
    from cellbench.data.readers.coco import read_coco

    root = tmp_path / "data" / "ap"
    root.mkdir(parents=True)
    tifffile.imwrite(root / "a.tif", np.zeros((64, 64, 3), np.uint8))
    (root / "a.xml").write_text(
        '<Annotations><Region Id="1"><Vertices><Vertex X="-1e9" Y="-1e9"/><Vertex X="1e9" '
        'Y="-1e9"/><Vertex X="1e9" Y="1e9"/></Vertices></Region></Annotations>'
    )
    cat = write_catalog(
        tmp_path / "c.yaml",
        [
            catalog_entry(
                "ap",
                {
                    "format": "aperio_xml",
                    "location": "ap",
                    "options": {"splits": {"test": {"images": "*.tif", "annotations": "."}}},
                },
            )
        ],
    )
    reader = get_reader(load_catalog(cat, tmp_path / "data", user=False), "ap")
    rec = reader.records()[0]
    _raises(lambda: reader.load(rec), str(root / "a.xml"), "reaches far beyond")
    (root / "a.xml").write_text(
        '<Annotations><Region Id="1"><Vertices><Vertex X="nan" Y="1"/><Vertex X="3" Y="1"/>'
        '<Vertex X="3" Y="4"/></Vertices></Region></Annotations>'
    )
    _raises(lambda: reader.records(), str(root / "a.xml"), "non-finite")
    c = tmp_path / "c.json"
    for seg, problem in (
        ([[-1e9, -1e9, 1e9, -1e9, 1e9, 1e9]], "reaches far beyond"),
        ([[70, 70, 80, 70, 80, 80]], "lies entirely outside"),
    ):
        c.write_text(
            json.dumps(
                {
                    "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 64}],
                    "annotations": [{"image_id": 1, "category_id": 1, "segmentation": seg}],
                }
            )
        )
        _raises(lambda: read_coco(c), str(c), problem)


def test_unknown_and_nan_class_ids_and_non_numeric_point_values(tmp_path):
    """Silently wrong: class ids checked against the declared set; bool/str/NaN values."""
    from cellbench.data.readers.coco import read_coco
    from cellbench.data.readers.grand_challenge import read_gc_points
    from cellbench.data.readers.hovernet import read_type_mat

    p = tmp_path / "pts.json"
    cases = [
        ([True, 2, 1], "non-numeric"),
        (["3", 2, 1], "non-numeric"),
        ([1, 2, 7], "not a class of the dataset"),
        ([1, 2, 1.5], "not an integer"),
        ([1, 2, False], "not an integer"),
    ]
    for point, problem in cases:
        p.write_text(
            json.dumps({"type": "Multiple points", "points": [{"name": "image_0", "point": point}]})
        )
        _raises(lambda: read_gc_points(p, classes={1, 2}), str(p), problem)
    p.write_text(
        '{"type": "Multiple points", "points": [{"name": "image_0", "point": [NaN, 1, 1]}]}'
    )
    _raises(lambda: read_gc_points(p), str(p), "NaN")
    c = tmp_path / "c.json"
    c.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 64}],
                "annotations": [
                    {"image_id": 1, "category_id": 9, "segmentation": [[1, 1, 9, 1, 9, 9]]}
                ],
            }
        )
    )
    _raises(lambda: read_coco(c, {1, 2}), str(c), "category_id 9 is not a class")
    from scipy.io import savemat

    m = tmp_path / "t.mat"
    savemat(m, {"inst_type": np.array([[1.0], [np.nan]]), "inst_centroid": np.zeros((2, 2))})
    _raises(lambda: read_type_mat(m), str(m), "finite numbers")
    savemat(m, {"inst_type": np.array(["a", "b"]), "inst_centroid": np.zeros((2, 2))})
    _raises(lambda: read_type_mat(m), str(m), "finite numbers")


def test_hovernet_types_outside_the_class_set(tmp_path):
    """Silently wrong: a CoNSeP-style .mat with type 9 for a 4-class dataset."""
    from scipy.io import savemat

    from cellbench.data.catalog import load_catalog
    from cellbench.data.readers import get_reader

    root = tmp_path / "data" / "hv"
    for sub in ("images/test", "inst/test", "type_mat/test"):
        (root / sub).mkdir(parents=True)
    from PIL import Image

    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(root / "images/test/a.png")
    np.save(root / "inst/test/a.npy", toy_instances(0))
    savemat(
        root / "type_mat/test/a.mat",
        {"inst_type": np.array([[1], [9]]), "inst_centroid": np.zeros((2, 2))},
    )
    classes = [{"id": i, "name": f"c{i}", "nodes": ["nucleus"]} for i in (1, 2, 3, 4)]
    cat = write_catalog(
        tmp_path / "c.yaml",
        [
            catalog_entry(
                "hv",
                {
                    "format": "hovernet",
                    "location": "hv",
                    "options": {
                        "splits": ["test"],
                        "images": "images/{split}/*.png",
                        "instances": "inst/{split}/{stem}.npy",
                        "types": "type_mat/{split}/{stem}.mat",
                    },
                },
                classes=classes,
            )
        ],
    )
    reader = get_reader(load_catalog(cat, tmp_path / "data", user=False), "hv")
    rec = reader.records()[0]
    _raises(lambda: reader.load(rec), "a.mat", "[9] are not classes")


# -- tracebacks become errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc, problem",
    [
        ({"images": [], "annotations": {"a": 1}}, "must be lists"),
        (
            {
                "images": [{"id": 1, "file_name": "a.png", "width": "x", "height": 2}],
                "annotations": [],
            },
            "must be integers",
        ),
        (
            {
                "images": [{"id": 1, "file_name": "a.png", "width": 9, "height": 9}],
                "annotations": [{"image_id": 1, "segmentation": "[[1,2"}],
            },
            "malformed JSON",
        ),
        (
            {
                "images": [{"id": 1, "file_name": "a.png", "width": 9, "height": 9}],
                "annotations": [{"image_id": [1], "segmentation": []}],
            },
            "unknown image_id",
        ),
        (
            {
                "images": [{"id": 1, "file_name": "a.png", "width": 9, "height": 9}],
                "annotations": [[1]],
            },
            "not a mapping",
        ),
        (
            {
                "images": [{"id": 1, "file_name": "../../etc/passwd", "width": 9, "height": 9}],
                "annotations": [],
            },
            "must stay inside",
        ),
        (
            {
                "images": [{"id": 1, "file_name": "/etc/passwd", "width": 9, "height": 9}],
                "annotations": [],
            },
            "must stay inside",
        ),
    ],
)
def test_coco_wrong_types_and_paths(tmp_path, doc, problem):
    """Tracebacks + outside the root: COCO of the wrong types; file_name outside the folder."""
    from cellbench.data.readers.coco import read_coco

    c = tmp_path / "c.json"
    c.write_text(json.dumps(doc))
    _raises(lambda: read_coco(c), problem)


@pytest.mark.parametrize(
    "classification, problem",
    [
        ({"name": 5}, "must be a string"),
        ({"name": ["a"]}, "must be a string"),
        ({"names": [1, 2]}, "must be strings"),
        ({"name": "a", "color": ["r", "g", "b"]}, "color must be"),
        ({"name": "a", "color": [1.5, 2, 3]}, "color must be"),
        ({"name": "a", "colorRGB": "red"}, "colorRGB must be an integer"),
        ("Tumor", "must be a mapping"),
        ({"name": ""}, "empty"),
    ],
)
def test_geojson_classifications_of_the_wrong_type(tmp_path, classification, problem):
    """Tracebacks: non-string class names, non-integer colours."""
    from cellbench.data.readers.qupath_geojson import read_qupath_geojson

    f = square(1, 1, 5)
    f["properties"]["classification"] = classification
    g = geojson(tmp_path / "g.geojson", [f])
    _raises(lambda: read_qupath_geojson(g), str(g), "features[0]", problem)


@pytest.mark.parametrize(
    "geometry, problem",
    [
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, "a"], [1, 1], [0, 0]]]}, "finite"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, True], [1, 1], [0, 0]]]}, "finite"),
        ({"type": "Polygon", "coordinates": 5}, "malformed"),
        ({"type": "Point", "coordinates": [1]}, "finite"),
        ({"type": "Blob", "coordinates": [1, 2]}, "unknown geometry type"),
        ({"type": "GeometryCollection", "geometries": "x"}, "without geometries"),
    ],
)
def test_geojson_geometries_of_the_wrong_type(tmp_path, geometry, problem):
    """Tracebacks / silently wrong: coordinates that are not finite numbers."""
    from cellbench.data.readers.qupath_geojson import read_qupath_geojson

    g = geojson(
        tmp_path / "g.geojson", [{"type": "Feature", "properties": {}, "geometry": geometry}]
    )
    _raises(lambda: read_qupath_geojson(g), str(g), problem)


def test_bioimageio_04_and_hostile_descriptions(tmp_path):
    """Tracebacks + outside the root: bioimage.io 0.4 descriptions; weights outside the folder."""
    from cellbench.models.registry import card_from_bioimageio

    d = tmp_path / "m"
    d.mkdir()
    p = d / "rdf.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "format_version": "0.4.9",
                "name": "old",
                "inputs": [
                    {"axes": "bcyx", "shape": {"min": [1, 1, 64, 64], "step": [0, 0, 16, 16]}}
                ],
                "outputs": [{"axes": "bcyx"}],
                "weights": {"torchscript": {"source": "w.pt", "sha256": "0" * 64}},
            }
        )
    )
    _raises(lambda: card_from_bioimageio(p), str(p), "unsupported bioimage.io description", "0.4.9")
    p.write_text(
        yaml.safe_dump(
            {
                "format_version": "0.5.3",
                "name": "x",
                "inputs": [
                    {
                        "axes": [
                            {"type": "channel", "channel_names": ["c"]},
                            {"type": "space", "size": 64},
                            {"type": "space", "size": 64},
                        ],
                        "preprocessing": [{"id": "zero_mean_unit_variance"}],
                    }
                ],
                "outputs": [{"axes": []}],
                "weights": {"torchscript": {"source": "../../../etc/passwd", "sha256": "0" * 64}},
            }
        )
    )
    _raises(lambda: card_from_bioimageio(p), str(p), "must stay inside")


def test_absolute_and_escaping_reader_patterns_are_refused_by_catalog_validate(tmp_path):
    """Outside the root: reader globs like '../../..' or '/etc/*' in a catalog."""
    for images in ("../../..", "/etc/*", "a/../../b/*.tif", "~/x/*.tif"):
        cat = write_catalog(
            tmp_path / "c.yaml",
            [
                catalog_entry(
                    "x",
                    {
                        "format": "label_tiff",
                        "location": "x",
                        "options": {"images": images, "masks": "m_{key}.tif"},
                    },
                )
            ],
        )
        res = _cli("catalog", "validate", str(cat))
        _one_line_error(res, str(cat), "option 'images'", "must stay inside")
    # and at run time, a reader given such a pattern anyway never leaves its folder
    from cellbench.core.safety import confined_glob

    (tmp_path / "in").mkdir()
    (tmp_path / "secret.tif").write_bytes(b"x")
    with pytest.raises(DataError, match="must stay inside"):
        confined_glob(tmp_path / "in", "../*.tif", tmp_path / "in")


@given(st.text(max_size=40))
@FAST
def test_property_relative_paths_never_leave_their_root(rel):
    """Outside the root (property): any string either is refused or stays under the root."""
    from cellbench.core.safety import confine

    root = Path("/data/root")
    try:
        p = confine(root, rel, "x")
    except DataError:
        return
    assert os.path.normpath(p).startswith(str(root) + "/") or os.path.normpath(p) == str(root)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=25,
)
FEATURE_KEYS = st.sampled_from(
    [
        "type",
        "geometry",
        "properties",
        "id",
        "coordinates",
        "classification",
        "name",
        "color",
        "objectType",
        "features",
    ]
)
FEATUREISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.sampled_from(
        ["Feature", "FeatureCollection", "Polygon", "Point", "MultiPolygon", "detection", XSS]
    ),
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(FEATURE_KEYS, kids, max_size=5),
    max_leaves=40,
)


_OPT = st.one_of(JSON_VALUES, st.lists(JSON_VALUES, min_size=3, max_size=4))
FEATURE = st.fixed_dictionaries(
    {
        "type": st.just("Feature"),
        "geometry": st.fixed_dictionaries(
            {
                "type": st.sampled_from(["Polygon", "Point", "MultiPolygon", "LineString"]),
                "coordinates": JSON_VALUES,
            }
        ),
        "properties": st.fixed_dictionaries(
            {},
            optional={
                "objectType": JSON_VALUES,
                "name": JSON_VALUES,
                "measurements": JSON_VALUES,
                "classification": st.fixed_dictionaries(
                    {}, optional={"name": _OPT, "names": _OPT, "color": _OPT, "colorRGB": _OPT}
                ),
            },
        ),
    }
)


@given(
    FEATUREISH
    | st.builds(
        lambda fs: {"type": "FeatureCollection", "features": fs}, st.lists(FEATURE, max_size=3)
    )
)
@FAST
def test_property_geojson_parser_never_crashes(doc):
    """Tracebacks (property): any JSON-like document gives objects or one DataError."""
    from cellbench.data.readers.qupath_geojson import parse_qupath_features

    try:
        objs = parse_qupath_features(doc, "p.geojson")
    except DataError as e:
        assert "p.geojson" in str(e)
        return
    for o in objs:
        assert o.class_name is None or isinstance(o.class_name, str)
        assert np.isfinite(o.geometry.bounds).all()


@given(
    st.dictionaries(
        st.sampled_from(["type", "num_images", "points"]),
        JSON_VALUES
        | st.just("Multiple points")
        | st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["image_0", "image_3", "x"]), "point": JSON_VALUES}
            ),
            max_size=3,
        ),
    )
)
@FAST
def test_property_points_reader_never_crashes(tmp_path_factory, doc):
    """Tracebacks (property): points files of any shape read or fail with one DataError."""
    from cellbench.data.readers.grand_challenge import read_gc_points

    p = tmp_path_factory.mktemp("pts") / "p.json"
    p.write_text(json.dumps(doc))
    try:
        out = read_gc_points(p, classes={1, 2})
    except DataError as e:
        assert str(p) in str(e)
        return
    for pts in out.values():
        assert np.isfinite(pts.xy).all() and set(pts.cls.tolist()) <= {1, 2}


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
@FAST
def test_property_json_text_parses_or_fails_cleanly(data):
    """Tracebacks (property): arbitrary bytes through the JSON entry point."""
    from cellbench.core.safety import parse_json

    try:
        parse_json(data, "x.json")
    except DataError as e:
        assert str(e).startswith("x.json: ")


# -- browser-bound strings are escaped ---------------------------------------------------------


@given(st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=60))
@FAST
def test_property_as_text_leaves_no_markup(s):
    """XSS (property): what the app renders as HTML has no tag, entity-free text or markdown."""
    from cellbench.app.ui import as_text

    out = as_text(s)
    for ch in "<>\"'`[]()*_!\\|~$:":
        assert ch not in out
    import html

    # the same text, but for invisible word joiners that keep URLs from becoming links
    assert html.unescape(out).replace("\u2060", "") == s.replace("\u2060", "")


def test_hostile_class_names_render_as_text_in_the_explorer_legend(tmp_path, monkeypatch):
    """XSS: a QuPath class name with an <img onerror> imported, then shown by the app."""
    from streamlit.testing.v1 import AppTest

    from cellbench.data.user_data import import_qupath

    monkeypatch.setenv("CELLBENCH_DATA", str(tmp_path / "nodata"))
    monkeypatch.setenv("CELLBENCH_CATALOG", str(REPO / "data_catalog.yaml"))
    img = tmp_path / "t.tif"
    tifffile.imwrite(img, np.zeros((64, 64, 3), np.uint8))
    gj = geojson(
        tmp_path / "t.geojson",
        [square(5, 5, 10, XSS), square(30, 30, 10, "**b** [l](javascript:x)")],
    )
    import_qupath(gj, img, "hostile")
    at = AppTest.from_file(str(REPO / "pages" / "2_Dataset_explorer.py"), default_timeout=120)
    at.run()
    at.selectbox(key="x_dataset").set_value("hostile").run()
    assert not at.exception
    legends = [c.value for c in at.caption if "Classes:" in c.value]
    assert legends, [c.value for c in at.caption]
    assert "<img" not in legends[0] and "onerror=" not in legends[0]
    assert "&#60;img src&#61;x onerror&#61;" in legends[0]  # the name, as entities (text)
    assert "](" not in legends[0]
    # the only unsafe_allow_html in the app goes through ui.color_legend
    for page in (REPO / "pages").glob("*.py"):
        assert "unsafe_allow_html" not in page.read_text(), page


# -- file names are never patterns -------------------------------------------------------------


def test_qupath_names_with_brackets_and_stars_are_literal(tmp_path):
    """Data loss: '[x=..]' names skipped the 'already imported' check; '*' deleted others."""
    from cellbench.core import config
    from cellbench.data.user_data import import_qupath

    def tif(name):
        p = tmp_path / name
        tifffile.imwrite(p, np.zeros((64, 64, 3), np.uint8))
        return p

    gj = geojson(tmp_path / "g.geojson", [square(5, 5, 10, "Tumor")])
    qupath_name = tif("slide [x=1024,y=2048,w=64,h=64].tif")
    import_qupath(gj, qupath_name, "mine")
    _raises(lambda: import_qupath(gj, qupath_name, "mine"), "already in")
    import_qupath(gj, tif("other.tif"), "mine")
    import_qupath(gj, tif("*.tif"), "mine")
    import_qupath(gj, tif("*.tif"), "mine", replace=True)
    imgs = sorted(p.name for p in (config.user_data_root() / "mine" / "images").iterdir())
    assert imgs == ["*.tif", "other.tif", "slide [x=1024,y=2048,w=64,h=64].tif"]
    # a replace whose new file fails to read back restores the old sample
    broken = tmp_path / "bad" / "other.tif"
    broken.parent.mkdir()
    broken.write_bytes(b"II*\0garbage")
    with pytest.raises(DataError):
        import_qupath(gj, broken, "mine", replace=True)
    kept = config.user_data_root() / "mine" / "images" / "other.tif"
    assert tifffile.imread(kept).shape == (64, 64, 3)
    _raises(lambda: import_qupath(gj, tif("..tif"), "mine"), "must not start with '.'")
    big = tiff_header(tmp_path / "big.tif", 60000, 60000)
    _raises(lambda: import_qupath(gj, big, "mine"), str(big), "60000x60000")  # the user's file
    for bad_id in ("../x", "A", "a/b", "*"):
        _raises(
            lambda b=bad_id: import_qupath(gj, qupath_name, b),
            "invalid dataset id",
            exc=CatalogError,
        )


def test_job_and_run_ids_are_checked_and_kill_signals_only_workers(tmp_path):
    """Job ids: '../../X' is refused; cancel --kill never signals a foreign pid."""
    from cellbench.runs.jobs import cancel_job, jobs_dir
    from cellbench.runs.store import Store

    for cmd in (
        ("jobs", "status", "../../X"),
        ("jobs", "cancel", "../x"),
        ("jobs", "resume", "/etc"),
        ("runs", "show", "../../r"),
    ):
        res = _cli(*cmd)
        _one_line_error(res, "invalid")
    with pytest.raises(KeyError, match="invalid run id"):
        Store(tmp_path / "s").get_run("../x")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        d = jobs_dir() / "20260101-000000-aaaaaa"
        d.mkdir(parents=True)
        (d / "job.json").write_text(json.dumps({"job_id": d.name, "pid": other.pid}))
        cancel_job(d.name, kill=True)
        time.sleep(0.3)
        assert other.poll() is None  # not signalled: not this job's worker
    finally:
        other.kill()


def test_store_files_follow_the_umask_not_0600(tmp_path):
    """Store files are created mode 0600 (breaks a shared store)."""
    import cellbench.core.atomic as atomic

    p = atomic.write_bytes_atomic(tmp_path / "a.json", b"{}")
    assert p.stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK
    assert p.stat().st_mode & 0o044  # group/other can read with the usual umask 022/002


# -- runs: content identity, faults and crash points -------------------------------------------


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A 6-image label_tiff dataset with a predictions folder equal to its ground truth."""
    root = tmp_path / "data" / "toy"
    root.mkdir(parents=True)
    preds = tmp_path / "preds"
    preds.mkdir()
    for k in range(6):
        tifffile.imwrite(root / f"img_{k}.tif", np.full((48, 48), 100, np.uint8))
        tifffile.imwrite(root / f"mask_{k}.tif", toy_instances(k))
        np.save(preds / f"img_{k}.npy", toy_instances(k))
    cat = write_catalog(
        tmp_path / "cat.yaml",
        [
            catalog_entry(
                "toy",
                {
                    "format": "label_tiff",
                    "location": "toy",
                    "options": {
                        "images": "img_*.tif",
                        "masks": "mask_{key}.tif",
                        "key_pattern": "^img_(?P<key>.+)$",
                    },
                },
            )
        ],
    )
    monkeypatch.setenv("CELLBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CELLBENCH_CATALOG", str(cat))
    return preds


def _rows(store, run_id) -> pl.DataFrame:
    return (
        store.scan([run_id])
        .collect()
        .select("level", "sample_id", "class", "metric", "value")
        .sort("level", "sample_id", "class", "metric")
    )


def test_changed_predictions_make_a_new_run(toy, tmp_path):
    """Stale results: a folder whose files change is a new run (PQ 1.0 vs a fresh 0.0)."""
    from cellbench.runs.evaluate import EvalSpec, Evaluation, evaluate
    from cellbench.runs.store import Store

    store = Store(tmp_path / "s")
    first = evaluate(EvalSpec(dataset="toy", predictions=str(toy)), store=store)
    for k in range(6):
        np.save(toy / f"img_{k}.npy", np.zeros((48, 48), np.int32))
    second = evaluate(EvalSpec(dataset="toy", predictions=str(toy)), store=store)
    assert first["run_id"] != second["run_id"]
    pq = {
        r: _rows(store, r)
        .filter((pl.col("level") == "dataset") & (pl.col("metric") == "pq"))
        .get_column("value")[0]
        for r in (first["run_id"], second["run_id"])
    }
    assert pq[first["run_id"]] == pytest.approx(1.0) and pq[second["run_id"]] == 0.0
    # a file changed in the middle of a run is refused, not mixed in
    ev = Evaluation(EvalSpec(dataset="toy", predictions=str(toy), preset="stardist"), store=store)
    np.save(toy / "img_3.npy", toy_instances(3))
    with pytest.raises(DataError, match="changed since the run started"):
        ev.run(flush_every=1)


CRASH_SCRIPT = """
import os, sys
from cellbench.runs import store as S
from cellbench.runs.evaluate import EvalSpec, Evaluation
method, n, when, preds, root = sys.argv[1:6]
orig = getattr(S.Store, method)
calls = {"n": 0}
def wrapped(self, *a, **k):
    if method == "write_run" and a[0].get("status") != "complete":
        return orig(self, *a, **k)
    calls["n"] += 1
    hit = calls["n"] == int(n)
    if hit and when == "before":
        os._exit(9)
    out = orig(self, *a, **k)
    if hit and when == "after":
        os._exit(9)
    return out
setattr(S.Store, method, wrapped)
Evaluation(EvalSpec(dataset="toy", predictions=preds), store=S.Store(root)).run(flush_every=2)
"""


@pytest.mark.parametrize(
    "method, n, when",
    [
        ("append", 1, "before"),  # before the first sample part
        ("append", 1, "after"),  # after the first part
        ("append", 3, "after"),  # after the last sample part
        ("set_dataset_rows", 1, "before"),
        ("set_dataset_rows", 1, "after"),  # dataset rows stored, run record not
        ("write_run", 1, "before"),  # final run record
    ],
)
def test_a_run_killed_at_any_point_resumes_to_the_same_rows_exactly_once(
    toy, tmp_path, method, n, when
):
    """Duplicated rows / fault injection: kill -9 at each crash point, then resume."""
    from cellbench.runs.evaluate import EvalSpec, evaluate
    from cellbench.runs.store import Store

    clean = Store(tmp_path / "clean")
    ref = evaluate(EvalSpec(dataset="toy", predictions=str(toy)), store=clean)
    root = tmp_path / "crash"
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, method, str(n), when, str(toy), str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ,
    )
    assert proc.returncode == 9, proc.stderr[-2000:]
    store = Store(root)
    got = evaluate(EvalSpec(dataset="toy", predictions=str(toy)), store=store)
    assert got["status"] == "complete" and got["run_id"] == ref["run_id"]
    a, b = _rows(clean, ref["run_id"]), _rows(store, got["run_id"])
    assert not b.select("level", "sample_id", "class", "metric").is_duplicated().any()
    assert a.equals(b)
    from cellbench.runs.check import check_store

    assert check_store(store) == []


def test_disk_full_and_read_only_store_are_clear_and_resumable(toy, tmp_path, monkeypatch):
    """Tracebacks / nothing half-written: ENOSPC mid-run and EROFS on a complete run."""
    import cellbench.runs.store as S
    from cellbench.runs.evaluate import EvalSpec, evaluate

    store = S.Store(tmp_path / "s")
    real = S.write_bytes_atomic
    calls = {"n": 0}

    def full(path, data):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(S, "write_bytes_atomic", full)
    spec = EvalSpec(dataset="toy", predictions=str(toy))
    res = _cli("evaluate", "--dataset", "toy", "--predictions", str(toy))
    _one_line_error(res, "cannot write to the store", "No space left on device")
    with pytest.raises(S.StoreWriteError, match="No space left"):
        evaluate(spec, store=store)
    assert not list((tmp_path / "s").rglob("*.tmp"))
    monkeypatch.setattr(S, "write_bytes_atomic", real)
    done = evaluate(spec, store=store)
    assert done["status"] == "complete"

    def read_only(path, data):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(S, "write_bytes_atomic", read_only)
    monkeypatch.setattr(S, "write_json_atomic", read_only)
    assert evaluate(spec, store=store)["status"] == "complete"  # nothing to write: no error


def test_a_corrupted_part_or_record_is_reported_and_the_rest_keeps_working(toy, tmp_path):
    """One bad file blocks all: corrupted part / record; `store check --repair`; resume."""
    from cellbench.runs.evaluate import EvalSpec, evaluate
    from cellbench.runs.store import Store

    store = Store()
    a = evaluate(EvalSpec(dataset="toy", predictions=str(toy)), store=store)
    b = evaluate(EvalSpec(dataset="toy", predictions=str(toy), preset="stardist"), store=store)
    before = _rows(store, a["run_id"])
    part = sorted((store.metrics_dir / a["run_id"]).glob("part-0*.parquet"))[0]
    part.write_bytes(part.read_bytes()[:40] + b"\0" * 50)
    info = store.get_run(a["run_id"])
    assert info["status"] == "damaged" and str(part) in info["problem"]
    with pytest.raises(DataError, match="store check --repair") as e:
        store.done_samples(a["run_id"])
    assert str(part) in str(e.value)
    assert store.scan().collect().get_column("run_id").unique().to_list() == [b["run_id"]]
    res = _cli("evaluate", "--dataset", "toy", "--predictions", str(toy))
    _one_line_error(res, str(part), "corrupted metrics part")
    (store.runs_dir / "zz_broken.json").write_text("{not json")
    res = _cli("runs", "list", "--json")
    assert res.exit_code == 0 and "zz_broken.json" in res.output  # warning, listing still works
    assert {r["run_id"] for r in json.loads(res.output[res.output.index("[") :])} >= {b["run_id"]}
    res = _cli("store", "check")
    assert res.exit_code == 1 and str(part) in res.output and "zz_broken.json" in res.output
    res = _cli("store", "check", "--repair")
    assert res.exit_code == 0, res.output
    assert not part.exists() and list((store.root / "quarantine").rglob(part.name))
    again = evaluate(EvalSpec(dataset="toy", predictions=str(toy)), store=store)
    assert again["status"] == "complete" and _rows(store, a["run_id"]).equals(before)
    assert _cli("store", "check").exit_code == 0


def test_a_bad_user_model_card_does_not_break_other_models(tmp_path):
    """One bad file blocks all: a malformed card breaks `models list` and `verify` of others."""
    from conftest import tiny_checkpoint

    from cellbench.models.registry import user_dir

    tiny_checkpoint(user_dir() / "good", model_id="good")
    bad = user_dir() / "bad" / "card.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_text("id: bad\nkind: [unclosed\n")
    res = _cli("models", "list", "--json")
    assert res.exit_code == 0 and "good" in res.output and str(bad) in res.output
    res = _cli("models", "verify", "good")
    assert res.exit_code == 0, res.output
    res = _cli("models", "verify", "bad")
    _one_line_error(res, str(bad), "malformed YAML")


def test_cli_never_shows_a_traceback_for_the_corpus(tmp_path):
    """Every hostile file through the CLI commands that read it: exit 2, one line."""
    p = deep_json(tmp_path / "deep.geojson")
    img = tmp_path / "i.tif"
    tifffile.imwrite(img, np.zeros((16, 16), np.uint8))
    _one_line_error(
        _cli("qupath", "import", str(p), "--image", str(img), "--dataset-id", "a"), str(p)
    )
    big = tiff_header(tmp_path / "big.tif", 60000, 60000)
    g = geojson(tmp_path / "g.geojson", [square(1, 1, 4)])
    res = _cli("qupath", "import", str(g), "--image", str(big), "--dataset-id", "a")
    assert res.exit_code == 2 and "Traceback" not in res.output
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "project.qpproj").write_text('{"images": 5}')
    res = _cli("qupath", "read", str(proj))
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert isinstance(CellbenchError("x"), Exception)


def test_prediction_files_with_hostile_headers_and_a_hostile_folder_name(toy, tmp_path):
    """A .npy whose header declares a huge array is refused from its header, before any
    allocation; truncated and object arrays are one line naming the file; a predictions folder
    called ``weird [1]*..<b>`` is evaluated (its run id is made safe, '..' included)."""
    import io

    from cellbench.data.imageio import read_label_array
    from cellbench.runs.evaluate import EvalSpec, evaluate
    from cellbench.runs.store import Store

    buf = io.BytesIO()
    np.save(buf, np.zeros((4, 4), np.int32))
    huge = tmp_path / "huge.npy"
    huge.write_bytes(buf.getvalue().replace(b"(4, 4)", b"(60000, 60000)"))
    with pytest.raises(DataError, match=r"huge\.npy.*(pixels|CELLBENCH_MAX_PIXELS)"):
        read_label_array(huge)
    cut = tmp_path / "cut.npy"
    cut.write_bytes((toy / "img_0.npy").read_bytes()[:200])
    with pytest.raises(DataError, match=r"cut\.npy: unreadable \.npy"):
        read_label_array(cut)
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"obj\.npy: unreadable \.npy"):
        read_label_array(obj)
    weird = tmp_path / "weird [1]*..<b>"
    weird.mkdir()
    for p in toy.glob("*.npy"):
        (weird / p.name).write_bytes(p.read_bytes())
    run = evaluate(EvalSpec(dataset="toy", predictions=str(weird)), store=Store(tmp_path / "s"))
    assert run["status"] == "complete" and ".." not in run["run_id"]


# -- prediction files of other tools (issue 29) -----------------------------------------------

H, W = 64, 80


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("t.json", '{"nuc": {"1": {"contour": [[1, 2], [3', "malformed JSON"),
        ("t.json", json.dumps({"nuc": {"1": {"contour": "abc"}}}), "coordinates are not numbers"),
        ("t.json", json.dumps({"nuc": {"x": {"contour": []}}}), "is not an integer"),
        (
            "t.json",
            json.dumps({"nuc": {"1": {"contour": [[1, 1], [5, 1], [5, 5]], "type": 1.5}}}),
            "not a non-negative integer",
        ),
        (
            "t.json",
            json.dumps({"nuc": {"1": {"contour": [[1, 1], [5, 1], [5, 5]], "type_prob": 7.5}}}),
            "lies outside [0, 1]",
        ),
        ("t.json", json.dumps({"cells": [{"centroid": [1, 2]}]}), "holds centroids only"),
        ("t.json", "[" * 200 + "]" * 200, "nested"),
        ("t.json", json.dumps({"what": 1}), "no known prediction layout"),
        (
            "t.json",
            json.dumps({"elements": [{"type": "polyline", "closed": False, "points": []}]}),
            "open polyline",
        ),
        ("t_cp_outlines.txt", "1,2,3\n", "odd count"),
        ("t_cp_outlines.txt", "1,a,3,4\n", "not comma-separated numbers"),
        ("t.xml", "<Annotations/>", "not an ASAP file"),
        ("t.geojson.gz", b"\x1f\x8b\x08\x00garbage", "gzip"),
    ],
)
def test_hostile_prediction_files_give_one_line(tmp_path, name, content, problem):
    from cellbench.data.predictions import read_prediction

    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)
    with pytest.raises(DataError) as e:
        read_prediction(p, (H, W))
    assert str(p) in str(e.value) and problem in str(e.value)
    assert "\n" not in str(e.value)


def test_a_gzip_bomb_and_huge_counts_are_refused(tmp_path, monkeypatch):
    from cellbench.data.predictions import read_prediction

    monkeypatch.setenv("CELLBENCH_MAX_FILE_MB", "1")
    p = tmp_path / "b.geojson.gz"
    p.write_bytes(gzip.compress(b" " * (3 * 2**20)))
    assert p.stat().st_size < 10_000
    with pytest.raises(DataError, match=r"b\.geojson\.gz: GeoJSON unpacks to over the 1 MB"):
        read_prediction(p, (H, W))
    monkeypatch.setenv("CELLBENCH_MAX_OBJECTS", "3")
    nuc = {str(i): {"contour": [[1, 1], [5, 1], [5, 5]]} for i in range(1, 6)}
    q = tmp_path / "c.json"
    q.write_text(json.dumps({"nuc": nuc}))
    with pytest.raises(DataError, match="5 nuclei, over the 3 limit"):
        read_prediction(q, (H, W))


def test_a_million_tiny_rings_in_one_multipolygon_are_one_object_over_the_limit(tmp_path):
    """Issue 33: limits are totals per object, not per ring."""
    from cellbench.data.readers.qupath_geojson import read_qupath_geojson

    rings = [[[[x, 0], [x + 1, 0], [x + 1, 1], [x, 0]]] for x in range(30_000)]
    f = {
        "type": "Feature",
        "geometry": {"type": "MultiPolygon", "coordinates": rings},
        "properties": {"objectType": "annotation"},
    }
    p = tmp_path / "rings.geojson"
    p.write_text(json.dumps(f))
    with pytest.raises(DataError, match=r"rings\.geojson: features\[0\]: over 100\d+ vertices"):
        read_qupath_geojson(p)


def test_a_pickle_that_would_run_code_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    """A Cellpose _seg.npy whose pickle calls os.system: one line naming the file, no code
    run, no scores file written."""

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned_by_pickle",))

    monkeypatch.chdir(tmp_path)
    gt, pr = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pr.mkdir()
    np.save(gt / "a.npy", np.ones((8, 8), np.int32))
    np.save(pr / "a_seg.npy", np.array({"masks": Evil()}, dtype=object), allow_pickle=True)
    out = tmp_path / "scores.json"
    res = _cli("score", "instances", "--gt", str(gt), "--pred", str(pr), "--out", str(out))
    _one_line_error(res, "a_seg.npy", "the pickle asks for")
    assert not out.exists() and not (tmp_path / "pwned_by_pickle").exists()


# -- issue 33: silent acceptance, tracebacks, rough edges ---------------------------------------


def _nets():
    """Two broken networks: every output NaN (a bad export), and a constant output."""
    import torch

    class NanNet(torch.nn.Module):
        def forward(self, x):
            return x[:, :1] * float("nan")

    class ConstNet(torch.nn.Module):
        def forward(self, x):
            return x[:, :1] * 0.0 + 0.3

    return NanNet(), ConstNet()


def _scripted_card(tmp_path, net, model_id: str, **over):
    import torch

    from cellbench.models.backends import sha256_file
    from cellbench.models.registry import write_card

    folder = tmp_path / "models" / model_id
    folder.mkdir(parents=True)
    torch.jit.save(torch.jit.script(net), folder / "m.pt")
    card = {
        "id": model_id,
        "name": model_id,
        "kind": "torchscript",
        "weights": {"file": "m.pt", "sha256": sha256_file(folder / "m.pt")},
        "input": {"channels": "rgb", "tile": 64, "halo": 8},
        "output": {"kind": "foreground", "activation": "sigmoid"},
        **over,
    }
    return write_card(card, folder)


def test_a_model_that_outputs_nan_or_a_constant_is_refused(toy, tmp_path):
    """Silent acceptance: an all-NaN model completed a run with PQ 0 everywhere; a constant one
    passed `models verify`."""
    from cellbench.core import config

    nan_net, const_net = _nets()
    _scripted_card(config.home(), nan_net, "nan_net")
    res = _cli("evaluate", "--dataset", "toy", "--model", "nan_net", "--limit", "2")
    _one_line_error(res, "model 'nan_net': output channel 0 (foreground)", "NaN", "img_0")
    res = _cli("models", "verify", "nan_net")
    _one_line_error(res, "model 'nan_net'", "NaN")
    _scripted_card(config.home(), const_net, "const_net")
    res = _cli("models", "verify", "const_net")
    _one_line_error(res, "model 'const_net'", "constant", "ignores its input")
    _scripted_card(
        config.home(), const_net, "prob_net", output={"kind": "foreground", "activation": "none"}
    )
    assert _cli("models", "verify", "prob_net").exit_code == 2  # constant too
    res = _cli("models", "verify", "nan_net")
    assert "Traceback" not in res.output


@pytest.mark.parametrize(
    "points, problem",
    [
        ([{"name": "image_0", "point": [5, 5, 1], "probability": 7.5}], "outside [0, 1]"),
        ([{"name": "image_0", "point": [5, 5, 0], "probability": 0.5}], "class ids start at 1"),
        ([{"name": "image_0", "point": [5, 5, -3], "probability": 0.5}], "class ids start at 1"),
    ],
)
def test_points_with_impossible_values_are_refused(tmp_path, points, problem):
    p = tmp_path / "pred.json"
    p.write_text(json.dumps({"type": "Multiple points", "num_images": 1, "points": points}))
    g = tmp_path / "gt.json"
    g.write_text(json.dumps({"type": "Multiple points", "num_images": 1, "points": []}))
    res = _cli("score", "points", "--gt", str(g), "--pred", str(p))
    _one_line_error(res, str(p), problem)


def test_a_points_file_with_a_key_given_twice_is_refused(tmp_path):
    p = tmp_path / "pred.json"
    p.write_text('{"type": "Multiple points", "points": [], "points": [], "num_images": 1}')
    from cellbench.data.readers.grand_challenge import read_gc_points

    _raises(lambda: read_gc_points(p), str(p), "'points' appears twice")


def test_qupath_import_says_what_it_merged_dropped_or_kept_as_drawn(tmp_path):
    """Silent acceptance in `qupath import`: points counted as 0 objects and not exported,
    identical features merged, a sub-pixel polygon dropped, a bow-tie kept, a NUL in a name."""
    from PIL import Image

    img = tmp_path / "tile.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(img)
    pts = geojson(
        tmp_path / "pts.geojson",
        [
            {
                "type": "Feature",
                "geometry": {"type": "MultiPoint", "coordinates": [[5, 5], [10, 10], [20, 20]]},
                "properties": {"objectType": "annotation"},
            }
        ],
    )
    res = _cli("qupath", "import", str(pts), "--image", str(img), "--dataset-id", "pts")
    assert res.exit_code == 0 and "(3 objects)" in res.output, res.output
    out = tmp_path / "back.geojson"
    res = _cli("qupath", "export", "--dataset", "pts", "--sample", "tile", "--out", str(out))
    assert res.exit_code == 0
    coords = json.loads(out.read_text())["features"][0]["geometry"]["coordinates"]
    assert len(coords) == 3
    sq = square(10, 10, 10)
    tiny = {
        "type": "Feature",
        "properties": {"objectType": "detection"},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[30.1, 30.1], [30.2, 30.1], [30.2, 30.2], [30.1, 30.1]]],
        },
    }
    bow = {
        "type": "Feature",
        "properties": {"objectType": "detection"},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[40, 40], [50, 50], [50, 40], [40, 50], [40, 40]]],
        },
    }
    g = geojson(tmp_path / "polys.geojson", [sq, sq, sq, tiny, bow])
    res = _cli("qupath", "import", str(g), "--image", str(img), "--dataset-id", "polys")
    assert res.exit_code == 0, res.output
    for note in (
        "2 feature(s) identical to an earlier one",
        "1 self-intersecting polygon",
        "1 polygon(s) cover no pixel centre",
    ):
        assert f"note: {note}" in res.output
    from cellbench.data.catalog import load_catalog

    opts = load_catalog().get("polys").local.options
    assert len(opts["import_notes"]["tile"]) == 3  # stored with the sample
    nul = dict(sq, properties={"objectType": "detection", "classification": {"name": "Tu\x00mor"}})
    g = geojson(tmp_path / "nul.geojson", [nul])
    res = _cli("qupath", "import", str(g), "--image", str(img), "--dataset-id", "nul")
    _one_line_error(res, str(g), "control characters")


def test_catalog_duplicate_keys_unknown_readers_and_a_large_plain_catalog(tmp_path):
    """`catalog validate` passed a duplicated key (last wins) and a format with no reader; a
    plain 10,000-entry catalog was refused as an alias bomb."""
    from cellbench.data.catalog import load_catalog

    entry = catalog_entry("x", {"format": "label_tiff", "location": "x", "options": {}})
    cat = tmp_path / "dup.yaml"
    cat.write_text(yaml.safe_dump({"datasets": [entry]}).replace("  id: x", "  id: x\n  id: y", 1))
    _one_line_error(_cli("catalog", "validate", str(cat)), str(cat), "'id' appears twice")
    bad = write_catalog(
        tmp_path / "fmt.yaml", [catalog_entry("x", {"format": "nope", "location": "x"})]
    )
    _one_line_error(_cli("catalog", "validate", str(bad)), "'nope' names no reader", "known:")
    big = [
        catalog_entry(f"d{i:05d}", {"format": "label_tiff", "location": f"d{i}"})
        for i in range(10000)
    ]
    path = write_catalog(tmp_path / "big.yaml", big)
    assert len(load_catalog(path, tmp_path)) == 10000


def test_results_with_an_unknown_metric_or_group_key_name_the_valid_ones(toy, tmp_path):
    """An unknown metric printed an empty table (exit 0); an unknown group key a polars
    traceback."""
    res = _cli("evaluate", "--dataset", "toy", "--predictions", str(toy))
    assert res.exit_code == 0, res.output
    from cellbench.runs.store import Store

    run = Store().runs().row(0, named=True)["run_id"]
    _one_line_error(_cli("results", "--run", run, "--metric", "pqq"), "no metric 'pqq'", "pq")
    _one_line_error(
        _cli("results", "--run", run, "--group-by", "sample"),
        "unknown group key 'sample'",
        "sample_id",
    )
    _one_line_error(_cli("results", "--run", "nope"), "no run 'nope'")
    assert _cli("results", "--run", run, "--group-by", "sample_id").exit_code == 0


def test_catalog_show_counts_each_split(data_env):
    """`catalog show monuseg` gave every split the whole dataset's counts (27 / 27)."""
    res = _cli("catalog", "show", "monuseg")
    doc = yaml.safe_load(res.output)
    assert doc["local_counts"]["train"]["samples"] == 13
    assert doc["local_counts"]["test"]["samples"] == 14


def test_model_cards_that_are_malformed_or_loop_name_the_file(tmp_path):
    """`models verify X` of a malformed card said only "no model 'X'"; weights symlinked to
    themselves gave two tracebacks."""
    from cellbench.core import config

    d = config.home() / "models" / "folder_named_otherwise"
    d.mkdir(parents=True)
    (d / "card.yaml").write_text("id: mymodel\nname: m\nkind: keras\nweights: {file: w.pt}\n")
    _one_line_error(_cli("models", "verify", "mymodel"), str(d / "card.yaml"), "kind")
    d = config.home() / "models" / "loop"
    d.mkdir(parents=True)
    os.symlink("w.pt", d / "w.pt")
    sha = "0" * 64
    (d / "card.yaml").write_text(
        f"id: loop\nname: l\nkind: torchscript\nweights: {{file: w.pt, sha256: '{sha}'}}\n"
    )
    _one_line_error(_cli("models", "verify", "loop"), "w.pt", "looping symbolic link")
    assert _cli("models", "list").exit_code == 0


def test_one_writer_per_user_dataset_and_a_read_only_workspace(tmp_path, monkeypatch):
    """Two `datasets add` of one id: the second failed with OSError: Directory not empty; a
    read-only workspace gave four chained tracebacks."""
    from PIL import Image

    import cellbench.core.locks as locks
    from cellbench.core import config

    (tmp_path / "img").mkdir()
    (tmp_path / "mask").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "img" / "a.png")
    tifffile.imwrite(tmp_path / "mask" / "a.tif", toy_instances(1, 32))
    args = ["datasets", "add", "mine", "--images", f"{tmp_path}/img/*.png"]
    args += ["--labels", f"{tmp_path}/mask/{{stem}}.tif"]
    (config.home() / "locks").mkdir(parents=True, exist_ok=True)
    hold = (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); f.write('pid 42'); "
        "f.flush(); fcntl.flock(f, fcntl.LOCK_EX); time.sleep(30)"
    )
    lock = config.home() / "locks" / "dataset-mine.lock"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(lock)])
    real = locks.dataset_lock
    try:
        time.sleep(0.5)
        monkeypatch.setattr(locks, "dataset_lock", lambda ds, wait=10.0: real(ds, wait=0.3))
        _one_line_error(_cli(*args), "dataset 'mine' is being changed by pid 42")
    finally:
        holder.kill()
        holder.wait()
    assert _cli(*args).exit_code == 0  # free again
    # a workspace that cannot be written (under /proc: not even root can write there)
    monkeypatch.setenv("CELLBENCH_HOME", "/proc/cellbench-workspace")
    _one_line_error(_cli(*[a if a != "mine" else "mine2" for a in args]), "cannot write")
    img = tmp_path / "img" / "a.png"
    gj = geojson(tmp_path / "a.geojson", [square(2, 2, 8)])
    res = _cli("qupath", "import", str(gj), "--image", str(img), "--dataset-id", "ro")
    _one_line_error(res, "cannot write")


def test_store_check_repair_removes_an_interrupted_add(tmp_path):
    from cellbench.core import config

    stage = config.user_data_root() / ".mine-abc123"
    (stage / "mine" / "images").mkdir(parents=True)
    res = _cli("store", "check")
    assert ".mine-abc123" in res.output and "interrupted" in res.output
    _cli("store", "check", "--repair")
    assert not stage.exists()


def test_ranking_says_why_a_model_is_not_ranked_and_fusion_asks_for_runs(tmp_path):
    """After a user adds a dataset, `compare ranking` ranked 2 of 11 models and left the
    others blank without a word; `compare fusion` asked to train a model that exists."""
    import shutil

    from cellbench.runs.store import Store
    from cellbench.runs.synthetic import synthetic_store

    st = Store()
    synthetic_store(st, n_samples=6)
    gone = "m_monuseg_consep_consep_test_hovernet_synthetic"
    (st.root / "runs" / f"{gone}.json").unlink()
    shutil.rmtree(st.root / "metrics" / gone, ignore_errors=True)
    res = _cli("compare", "ranking", "--preset", "hovernet")
    assert res.exit_code == 0, res.output
    assert (
        "note: monuseg+consep (synthetic) not ranked: m_monuseg+consep has no comparable run on "
        "consep (cellbench evaluate --model m_monuseg+consep --dataset consep)" in res.output
    )
    res = _cli("compare", "fusion", "--preset", "hovernet")
    assert res.exit_code == 0, res.output
    assert (
        "k=2: runs missing for monuseg+consep: cellbench evaluate --model m_monuseg+consep "
        "--dataset consep" in res.output
    )


def test_a_card_whose_outputs_cannot_feed_its_post_processing_fails_verify(tmp_path):
    """A card with output.kind foreground and postprocess.method hovernet passed `models
    verify`, then evaluate died in post-processing."""
    from cellbench.core import config

    d = config.home() / "models" / "fg"
    d.mkdir(parents=True)
    sha = "0" * 64
    (d / "card.yaml").write_text(
        f"id: fg\nname: fg\nkind: torchscript\nweights: {{file: w.pt, sha256: '{sha}'}}\n"
        "output: {kind: foreground}\npostprocess: {method: hovernet}\n"
    )
    _one_line_error(_cli("models", "verify", "fg"), str(d / "card.yaml"), "needs h/v maps")


def test_prediction_folder_entries_that_are_not_files_are_named(toy, tmp_path):
    """FIFOs, dangling links and a folder named like a prediction ended as "no prediction for
    1 of 2 images" without saying why; <stem>.ome.tif did not pair with <stem>."""
    (toy / "img_0.npy").unlink()
    (toy / "img_0.npy").mkdir()  # a folder named like a prediction
    (toy / "img_1.npy").unlink()
    os.symlink(toy / "gone.npy", toy / "img_1.npy")  # dangling
    (toy / "img_2.npy").unlink()
    os.mkfifo(toy / "img_2.npy")
    res = _cli("evaluate", "--dataset", "toy", "--predictions", str(toy), "--limit", "1")
    _one_line_error(res, "no prediction for sample 'img_0'", "img_0.npy (a folder)")
    from cellbench.data.predictions import prediction_files

    files = prediction_files(toy)
    assert files.skipped["img_1.npy"] == "a dangling link"
    assert files.skipped["img_2.npy"] == "a FIFO"
    tifffile.imwrite(toy / "img_3.ome.tif", toy_instances(3))
    (toy / "img_3.npy").unlink()
    assert prediction_files(toy)["img_3"].name == "img_3.ome.tif"


def test_a_local_dask_cluster_is_quiet(tmp_path):
    """Dask on one machine printed port-in-use warnings and "Worker process still alive ...
    killing"; it listens on localhost only and logs errors only."""
    code = (
        "from cellbench.runs.executor import DaskExecutor\n"
        "ex = DaskExecutor(workers=2)\n"
        "print(list(ex.map(abs, [-1, -2])))\n"
        "ex.close()\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "[1, 2]" in res.stdout, res.stderr
    for noise in ("already in use", "still alive", "WARNING", "Traceback"):
        assert noise not in res.stderr, res.stderr
