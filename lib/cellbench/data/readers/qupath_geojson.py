"""QuPath GeoJSON (every version, ``shared/DESIGN.md`` §7).

Accepted shapes of the file: a ``FeatureCollection``, a bare list of features (QuPath < 0.3
"Export objects"), or a single ``Feature``. Per feature:

- object type: ``properties.objectType`` ("annotation", "detection", "cell", "tile", ...) in
  0.3+; older files put ``"id": "PathAnnotationObject" | "PathDetectionObject" |
  "PathCellObject"`` on the feature;
- classification: ``{name, colorRGB}`` (old, packed signed ARGB int), ``{name, color: [r,g,b]}``
  or ``{names: [...], color}`` (derived classes; joined with ": " as QuPath displays them);
- measurements: a list of ``{name, value}`` (old) or a mapping (new);
- cells: ``geometry`` is the cell boundary, ``nucleusGeometry`` the nucleus;
- geometry: Polygon (holes kept), MultiPolygon, Point, MultiPoint; LineString is refused for
  segmentation.
- qubalab's variant: ``object_type`` (upper case) instead of ``objectType``, the nucleus in
  ``extra_geometries.nucleus``.

Files may be gzip-compressed (``.geojson.gz``); bare ``NaN`` / ``Infinity`` measurement values
(QuPath's writer emits them) are read and left out of the measurements; ``metadata`` written
twice keeps the last. Limits are totals: at most ``CELLBENCH_MAX_VERTICES`` vertices over all
the rings of one object (a MultiPolygon of a million rings is one object), at most
``500 x CELLBENCH_MAX_VERTICES`` in the file. With ``skip_bad``, a bad feature is named in the
list and skipped instead of refusing the file.

Coordinates are pixels of the full-resolution image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import (
    check_count,
    check_placement,
    confined_glob,
    finite_number,
    is_number,
    limits,
    read_json,
)
from cellbench.data.imageio import image_size
from cellbench.data.readers.base import DatasetReader, SampleRecord, register
from cellbench.data.sample import Objects, Points, Sample

_OLD_TYPES = {
    "PathAnnotationObject": "annotation",
    "PathDetectionObject": "detection",
    "PathCellObject": "cell",
    "PathTileObject": "tile",
    "PathTMACoreObject": "tma_core",
}


@dataclass
class QuPathObject:
    """One QuPath object. ``geometry``/``nucleus`` are shapely geometries in pixels."""

    object_type: str
    geometry: Any
    class_name: str | None = None
    color: tuple[int, int, int] | None = None
    measurements: dict[str, float] = field(default_factory=dict)
    nucleus: Any = None
    name: str | None = None
    object_id: str | None = None
    locked: bool = False


def _argb_to_rgb(v: int) -> tuple[int, int, int]:
    v &= 0xFFFFFFFF
    return ((v >> 16) & 255, (v >> 8) & 255, v & 255)


def _classification(
    props: dict, path: Path, i: int
) -> tuple[str | None, tuple[int, int, int] | None]:
    c = props.get("classification")
    if c is None:
        return None, None
    if not isinstance(c, dict):
        raise DataError(path, f"features[{i}]: classification must be a mapping")
    name = c.get("name")
    if name is None and c.get("names") is not None:
        names = c["names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError(path, f"features[{i}]: classification names must be strings")
        name = ": ".join(names)
    if name is not None and not isinstance(name, str):
        raise DataError(path, f"features[{i}]: classification name must be a string, got {name!r}")
    if name is not None and (not name.strip() or len(name) > 200):
        raise DataError(path, f"features[{i}]: classification name is empty or over 200 characters")
    if name is not None and any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise DataError(
            path, f"features[{i}]: classification name {name!r:.60} holds control characters"
        )
    color = None
    if c.get("color") is not None:
        col = c["color"]
        if not (
            isinstance(col, list)
            and len(col) in (3, 4)
            and all(is_number(x) and x == int(x) and 0 <= x <= 255 for x in col)
        ):
            raise DataError(path, f"features[{i}]: color must be [r, g, b] integers 0-255")
        color = tuple(int(x) for x in col[:3])
    elif c.get("colorRGB") is not None:
        if not is_number(c["colorRGB"]) or c["colorRGB"] != int(c["colorRGB"]):
            raise DataError(path, f"features[{i}]: colorRGB must be an integer")
        color = _argb_to_rgb(int(c["colorRGB"]))
    return name, color


def _measurements(props: dict) -> dict[str, float]:
    m = props.get("measurements")
    if isinstance(m, dict):
        items = m.items()
    elif isinstance(m, list):
        items = ((e.get("name"), e.get("value")) for e in m if isinstance(e, dict))
    else:
        return {}
    return {str(k): float(v) for k, v in items if k is not None and finite_number(v)}


#: Nesting of ``coordinates`` per GeoJSON geometry type (0 = one position).
_DEPTH = {
    "Point": 0,
    "MultiPoint": 1,
    "LineString": 1,
    "MultiLineString": 2,
    "Polygon": 2,
    "MultiPolygon": 3,
}


def _check_coordinates(geom: dict, path: Path, i: int, budget: list[int] | None = None) -> None:
    """Positions are 2-3 finite numbers; one feature has at most ``max_vertices`` vertices over
    all its rings and lines, the file (``budget``: ``[vertices so far]``) ``500 x`` that."""
    t = geom.get("type")
    if t == "GeometryCollection":
        parts = geom.get("geometries")
        if not isinstance(parts, list):
            raise DataError(path, f"features[{i}]: GeometryCollection without geometries")
        for g in parts:
            if not isinstance(g, dict):
                raise DataError(path, f"features[{i}]: malformed geometry in a collection")
            _check_coordinates(g, path, i, budget)
        return
    if t not in _DEPTH:
        raise DataError(path, f"features[{i}]: unknown geometry type {t!r}")
    lim = limits().max_vertices
    count = 0
    stack = [(geom.get("coordinates"), _DEPTH[t])]
    while stack:
        c, d = stack.pop()
        if not isinstance(c, list):
            raise DataError(path, f"features[{i}]: invalid {t} geometry (malformed coordinates)")
        if d == 0:
            if len(c) not in (2, 3) or not all(finite_number(v) for v in c):
                raise DataError(
                    path,
                    f"features[{i}]: invalid {t} geometry: position {c!r:.60} is not 2-3 "
                    "finite numbers",
                )
            continue
        if d == 1:
            count += len(c)
            if count > lim:
                raise DataError(
                    path,
                    f"features[{i}]: {len(c) if count == len(c) else f'over {count}'} vertices "
                    f"in one object, over the {lim} limit (CELLBENCH_MAX_VERTICES)",
                )
            if budget is not None:
                budget[0] += len(c)
                if budget[0] > 500 * lim:
                    raise DataError(
                        path,
                        f"more than {500 * lim} vertices in the file "
                        "(500 x CELLBENCH_MAX_VERTICES)",
                    )
        stack.extend((x, d - 1) for x in c)


def _shape(geom: dict, path: Path, i: int, budget: list[int] | None = None):
    from shapely.geometry import shape

    if not isinstance(geom, dict) or "type" not in geom:
        raise DataError(path, f"features[{i}]: missing or malformed geometry")
    _check_coordinates(geom, path, i, budget)
    try:
        g = shape(geom)
    except Exception as e:  # noqa: BLE001
        raise DataError(path, f"features[{i}]: invalid {geom.get('type')} geometry ({e})") from None
    if g.is_empty:
        raise DataError(path, f"features[{i}]: empty {geom['type']} geometry")
    return g


def parse_qupath_features(
    doc: Any, path: str | Path, skip_bad: list[str] | None = None
) -> list[QuPathObject]:
    """Turn a parsed QuPath GeoJSON document into :class:`QuPathObject` s.

    With ``skip_bad`` (a list), a feature that cannot be read is appended to it as its one-line
    reason and skipped; without it, the first bad feature raises naming the file.
    """
    p = Path(path)
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        feats = doc.get("features")
    elif isinstance(doc, dict) and doc.get("type") == "Feature":
        feats = [doc]
    elif isinstance(doc, list):
        feats = doc
    else:
        raise DataError(p, "not GeoJSON: expected a FeatureCollection, a Feature or a list of them")
    if not isinstance(feats, list):
        raise DataError(p, "'features' must be a list")
    check_count(len(feats), p, "features")
    budget = [0]
    out = []
    for i, f in enumerate(feats):
        try:
            out.append(_feature(f, p, i, budget))
        except DataError as e:
            if skip_bad is None or "in the file" in e.problem:
                raise
            skip_bad.append(e.problem)
    return out


def _feature(f: Any, p: Path, i: int, budget: list[int]) -> QuPathObject:
    if not isinstance(f, dict) or f.get("type") != "Feature":
        raise DataError(p, f"features[{i}]: not a GeoJSON Feature")
    props = f.get("properties") or {}
    if not isinstance(props, dict):
        raise DataError(p, f"features[{i}]: properties must be a mapping")
    otype = (
        props.get("objectType")
        or props.get("object_type")  # qubalab
        or _OLD_TYPES.get(str(f.get("id")), "annotation")
    )
    name, color = _classification(props, p, i)
    nucleus = props.get("nucleusGeometry")
    extra = props.get("extra_geometries")
    if nucleus is None and isinstance(extra, dict):
        nucleus = extra.get("nucleus")
    return QuPathObject(
        object_type=str(otype).lower(),
        geometry=_shape(f.get("geometry"), p, i, budget),
        class_name=name,
        color=color,
        measurements=_measurements(props),
        nucleus=_shape(nucleus, p, i, budget) if nucleus else None,
        name=None if props.get("name") is None else str(props.get("name")),
        object_id=(
            str(f["id"]) if f.get("id") is not None and str(f["id"]) not in _OLD_TYPES else None
        ),
        locked=bool(props.get("isLocked", props.get("locked", False))),
    )


def read_qupath_geojson(path: str | Path, skip_bad: list[str] | None = None) -> list[QuPathObject]:
    """Read a QuPath GeoJSON file, ``.geojson`` or gzip-compressed ``.geojson.gz`` (see the
    module docstring for the accepted versions and ``skip_bad``)."""
    return parse_qupath_features(read_json(path, "GeoJSON", constants=True), path, skip_bad)


def check_objects_inside(
    objects: list[QuPathObject], width: int, height: int, path: str | Path
) -> None:
    """Raise naming ``path`` when objects lie outside a ``width`` x ``height`` px image or reach
    far beyond it (:func:`cellbench.core.safety.check_placement`; QuPath pixel frame)."""
    boxes = np.array(
        [(o.nucleus if o.nucleus is not None else o.geometry).bounds for o in objects],
        dtype=np.float64,
    ).reshape(-1, 4)
    check_placement(boxes, width, height, path, "features")


#: QuPath puts pixel (x, y) at [x, x + 1) x [y, y + 1); cellbench samples pixel centres at integer
#: coordinates (``skimage.draw.polygon``), so QuPath geometries are shifted by this much first.
QUPATH_SHIFT = -0.5


def rasterize_geometry(
    geom, shape: tuple[int, int], value: int, out: np.ndarray, shift: float = QUPATH_SHIFT
) -> None:
    """Fill a shapely (Multi)Polygon into ``out`` with ``value``; holes stay unfilled.

    A pixel is filled when its centre lies inside (QuPath frame: ``(x + 0.5, y + 0.5)``), so a
    polygon tracing pixel edges fills exactly those pixels.
    """
    from skimage.draw import polygon as fill

    for poly in getattr(geom, "geoms", [geom]):
        if poly.geom_type != "Polygon":
            continue
        ext = np.asarray(poly.exterior.coords) + shift
        rr, cc = fill(ext[:, 1], ext[:, 0], shape=shape)
        if len(poly.interiors) and len(rr):
            keep = np.ones(len(rr), bool)
            r0, c0 = rr.min(), cc.min()
            box = np.zeros((rr.max() - r0 + 1, cc.max() - c0 + 1), bool)
            for ring in poly.interiors:
                h = np.asarray(ring.coords) + shift
                hr, hc = fill(h[:, 1] - r0, h[:, 0] - c0, shape=box.shape)
                box[hr, hc] = True
            keep = ~box[rr - r0, cc - c0]
            rr, cc = rr[keep], cc[keep]
        out[rr, cc] = value


def count_objects(objs: list[QuPathObject], types: tuple[str, ...]) -> int:
    """Objects of ``types``: each area once, each point of a (Multi)Point once."""
    n = 0
    for o in objs:
        if o.object_type not in types:
            continue
        g = o.nucleus if o.nucleus is not None else o.geometry
        n += len(getattr(g, "geoms", [g])) if g.geom_type in ("Point", "MultiPoint") else 1
    return n


def area_geometry(o: QuPathObject, part: str = "nucleus"):
    """The area of an object, or None for points/lines: with ``part="nucleus"`` (default) a
    cell's nucleus when it has one, with ``part="cell"`` the cell boundary."""
    g = o.nucleus if o.nucleus is not None and part == "nucleus" else o.geometry
    return g if g.geom_type in ("Polygon", "MultiPolygon") else None


def rasterize_objects(geoms: list, shape: tuple[int, int], ids: list[int]) -> Objects:
    """Each shapely (Multi)Polygon rasterised on its own (QuPath frame, as
    :func:`rasterize_geometry`), so overlapping polygons stay separate objects; polygons that
    cover no pixel centre are left out."""
    from shapely.affinity import translate

    h, w = shape
    kept, origins, crops = [], [], []
    for i, g in zip(ids, geoms, strict=True):
        x0, y0, x1, y1 = (v + QUPATH_SHIFT for v in g.bounds)
        c0, r0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
        c1, r1 = min(int(np.ceil(x1)) + 1, w), min(int(np.ceil(y1)) + 1, h)
        if c1 <= c0 or r1 <= r0:
            continue
        crop = np.zeros((r1 - r0, c1 - c0), np.uint8)
        rasterize_geometry(translate(g, -c0, -r0), crop.shape, 1, crop)
        kept.append(i)
        origins.append((r0, c0))
        crops.append(crop)
    return Objects.from_crops(shape, kept, origins, crops)


def objects_to_annotations(
    objects: list[QuPathObject],
    shape: tuple[int, int],
    class_id,
    object_types: tuple[str, ...] = ("detection", "cell", "annotation"),
    overlapping: bool = False,
) -> tuple[np.ndarray | Objects, dict[int, int], Points]:
    """Instance map, classes and points from QuPath objects.

    Areas (Polygon/MultiPolygon; a cell's nucleus geometry when present) become instances in
    file order (later objects win where they overlap); Point/MultiPoint objects become points.
    Coordinates move from QuPath's frame (pixel ``(x, y)`` spans ``[x, x + 1)``) to cellbench's
    (pixel centres at integers) by :data:`QUPATH_SHIFT`.
    ``class_id(name)`` maps a class name to the dataset class id (None = unclassified -> 0).
    With ``overlapping`` (whole cells in cytology), every area is rasterised on its own and the
    instances come back as :class:`~cellbench.data.sample.Objects` when any two overlap.
    """
    if overlapping:
        keep = [o for o in objects if o.object_type in object_types]
        areas = [(k, o, area_geometry(o)) for k, o in enumerate(keep, start=1)]
        areas = [(k, o, g) for k, o, g in areas if g is not None]
        obj = rasterize_objects([g for *_, g in areas], shape, [k for k, *_ in areas])
        present = set(obj.ids.tolist())
        classes = {
            k: (class_id(o.class_name) if o.class_name else 0) for k, o, _ in areas if k in present
        }
        _, _, pts = objects_to_annotations(
            [o for o in keep if area_geometry(o) is None], shape, class_id, object_types
        )
        return (obj if obj.overlapping else obj.to_label_map()), classes, pts
    inst = np.zeros(shape, dtype=np.int32)
    classes: dict[int, int] = {}
    xs: list[tuple[float, float, int]] = []
    next_id = 1
    for o in objects:
        if o.object_type not in object_types:
            continue
        cid = class_id(o.class_name) if o.class_name else 0
        g = o.nucleus if o.nucleus is not None else o.geometry
        if g.geom_type in ("Point", "MultiPoint"):
            for pt in getattr(g, "geoms", [g]):
                xs.append((pt.x + QUPATH_SHIFT, pt.y + QUPATH_SHIFT, cid))
        elif g.geom_type in ("Polygon", "MultiPolygon"):
            rasterize_geometry(g, shape, next_id, inst)
            classes[next_id] = cid
            next_id += 1
    present = set(np.unique(inst).tolist())
    classes = {k: v for k, v in classes.items() if k in present}
    pts = (
        Points(np.array([(x, y) for x, y, _ in xs]), [c for *_, c in xs], np.ones(len(xs)))
        if xs
        else Points.empty()
    )
    return inst, classes, pts


@register
class QuPathGeoJSONReader(DatasetReader):
    """Image patches with one QuPath GeoJSON per image (e.g. the OSCC cytology patches).

    Options::

        images: "patches/*.png"
        annotations: "annotations/{stem}.geojson"
        object_types: [detection, cell, annotation]
        metadata: metadata.csv             # OSCC patient/slide schema (optional)
        slide_pattern: "^(?P<slide>.+?)_\\d+$"   # patch stem -> slide id (optional)
        overlapping: false                 # true: overlapping areas stay separate objects
    """

    format = "qupath_geojson"

    @cached_property
    def _slides(self) -> dict[str, dict[str, Any]]:
        from cellbench.data.readers.oscc import read_oscc_metadata

        rel = self.options.get("metadata")
        return read_oscc_metadata(self.path(rel)) if rel else {}

    def records(self) -> list[SampleRecord]:
        pat = (
            re.compile(self.options["slide_pattern"]) if self.options.get("slide_pattern") else None
        )
        out = []
        for img in confined_glob(self.location, self.options["images"], self.location):
            ann = self.path(self.options["annotations"].format(stem=img.stem))
            objs = read_qupath_geojson(ann)
            types = tuple(self.options.get("object_types", ("detection", "cell", "annotation")))
            m = pat.match(img.stem) if pat else None
            slide = m.group("slide") if m else None
            w, h = image_size(img)
            meta = self.base_meta(
                img.stem,
                self.options.get("split"),
                slide_id=slide,
                width=w,
                height=h,
                n_objects=count_objects(objs, types),
                **self._slides.get(slide or "", {}),
            )
            out.append(
                SampleRecord(img.stem, meta["split"], meta, {"image": img, "annotation": ann})
            )
        return out

    def load(self, record: SampleRecord, pixels: bool = True) -> Sample:
        image = self.image(record, pixels)
        ann = record.files["annotation"]
        objs = read_qupath_geojson(ann)
        types = tuple(self.options.get("object_types", ("detection", "cell", "annotation")))
        check_objects_inside(
            [o for o in objs if o.object_type in types], image.shape[1], image.shape[0], ann
        )
        inst, classes, pts = objects_to_annotations(
            objs,
            image.shape[:2],
            lambda n: self.class_id(n, ann),
            types,
            overlapping=bool(self.options.get("overlapping")),
        )
        arrays = {"objects": inst} if isinstance(inst, Objects) else {"instances": inst}
        if not any(o.object_type in types and area_geometry(o) is not None for o in objs):
            arrays = {}  # points only: the points are the ground truth, not an empty map
        return self._sample(
            record, image=image, classes=classes, points=pts if len(pts) else None, **arrays
        )
