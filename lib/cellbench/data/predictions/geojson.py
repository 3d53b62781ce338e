"""GeoJSON predictions: QuPath's (0.2-0.7, qubalab) and CellViT's, ``.geojson`` or
``.geojson.gz`` (and GeoJSON inside a ``.json``).

- **QuPath** (``layout="qupath"``): one detection, cell (its nucleus, or with ``part="cell"``
  its boundary) or annotation per object,
  classified by name; a ``probability`` measurement, when present, is the score; vertices on
  pixel corners (``"edge"`` convention). A MultiPolygon is one object.
- **CellViT** (``layout="cellvit"``, ``cell_detection.py --geojson``): one MultiPolygon
  *annotation* per class whose every polygon is one nucleus, classified by the feature's name;
  the polygons are OpenCV contours (``"centre"`` convention) closed by repeating the first
  vertex. No scores.
- ``layout="auto"`` (default) takes CellViT's when every area feature is a MultiPolygon
  annotation without measurements whose vertices are all integers, QuPath's otherwise.

Names are mapped to the dataset's classes by ``class_id`` (an unknown name is an error naming
the file). ``skip_bad`` (a list) collects the features that cannot be read instead of refusing
the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import read_json
from cellbench.data.predictions.base import PredictionFormat, need_shape, register
from cellbench.data.predictions.polygons import PolyObject, VertexBudget, objects_prediction

LAYOUTS = ("auto", "qupath", "cellvit")


def is_geojson(doc) -> bool:
    if isinstance(doc, dict):
        return doc.get("type") in ("FeatureCollection", "Feature")
    return (
        isinstance(doc, list)
        and bool(doc)
        and isinstance(doc[0], dict)
        and (doc[0].get("type") == "Feature")
    )


def _features(doc) -> list:
    if isinstance(doc, dict):
        return doc.get("features") or [] if doc.get("type") == "FeatureCollection" else [doc]
    return doc


def _looks_cellvit(doc) -> bool:
    feats = [f for f in _features(doc) if isinstance(f, dict)]
    areas = [
        f for f in feats if (f.get("geometry") or {}).get("type") in ("Polygon", "MultiPolygon")
    ]
    if not areas:
        return False
    for f in areas:
        props = f.get("properties") or {}
        if f["geometry"]["type"] != "MultiPolygon" or props.get("measurements"):
            return False
        if str(props.get("objectType", "annotation")).lower() != "annotation":
            return False
        try:
            first = np.asarray(f["geometry"]["coordinates"][0][0], np.float64)
        except (TypeError, ValueError, IndexError):
            return False
        if not np.array_equal(first, np.round(first)):
            return False
    return True


def cellvit_objects(doc, path: Path) -> list[PolyObject]:
    """Each polygon of CellViT's per-class MultiPolygons as one nucleus, in file order."""
    budget = VertexBudget(path)
    out = []
    for i, f in enumerate(_features(doc)):
        geom = (f or {}).get("geometry") or {}
        if geom.get("type") not in ("Polygon", "MultiPolygon"):
            continue  # CellViT's detection file holds MultiPoints: no areas
        props = f.get("properties") or {}
        name = (
            ((props.get("classification") or {}).get("name")) if isinstance(props, dict) else None
        )
        if name is not None and not isinstance(name, str):
            raise DataError(path, f"features[{i}]: classification name must be a string")
        polys = geom.get("coordinates")
        if geom["type"] == "Polygon":
            polys = [polys]
        if not isinstance(polys, list):
            raise DataError(path, f"features[{i}]: malformed coordinates")
        for j, poly in enumerate(polys):
            if not isinstance(poly, list) or not poly:
                raise DataError(path, f"features[{i}].coordinates[{j}]: malformed polygon")
            rings = []
            for r, ring in enumerate(poly):
                xy = budget.ring(ring, f"features[{i}].coordinates[{j}][{r}]")
                if len(xy) > 1 and np.array_equal(xy[0], xy[-1]):
                    xy = xy[:-1]
                rings.append(xy)
            out.append(PolyObject(rings, name))
    return out


def parse_geojson(
    doc,
    path: Path,
    shape=None,
    class_id=None,
    layout: str = "auto",
    skip_bad=None,
    part: str = "nucleus",
):
    """A prediction from a parsed GeoJSON document (module docstring)."""
    shape = need_shape(shape, path, "GeoJSON predictions")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown GeoJSON layout {layout!r} ({', '.join(LAYOUTS)})")
    if layout == "cellvit" or (layout == "auto" and _looks_cellvit(doc)):
        return objects_prediction(cellvit_objects(doc, path), shape, "centre", path, class_id)
    from cellbench.data.readers.qupath_geojson import area_geometry, parse_qupath_features

    objs = [
        o
        for o in parse_qupath_features(doc, path, skip_bad)
        if o.object_type in ("detection", "cell", "annotation")
        and area_geometry(o, part) is not None
    ]
    return _qupath_prediction(objs, shape, path, class_id, part)


def _qupath_prediction(objs, shape, path: Path, class_id, part: str = "nucleus"):
    from cellbench.core.safety import check_placement
    from cellbench.data.readers.qupath_geojson import area_geometry, rasterize_objects

    geoms = [area_geometry(o, part) for o in objs]
    boxes = np.array([g.bounds for g in geoms], np.float64).reshape(-1, 4)
    check_placement(boxes, shape[1], shape[0], path, "features")
    obj = rasterize_objects(geoms, shape, list(range(1, len(objs) + 1)))
    present = set(obj.ids.tolist())
    classes: dict[int, int] = {}
    scores: dict[int, float] = {}
    for k, o in enumerate(objs, start=1):
        if k not in present:
            continue
        if o.class_name and class_id is not None:
            classes[k] = class_id(o.class_name)
        p = next((v for n, v in o.measurements.items() if n.lower() == "probability"), None)
        if p is not None:
            scores[k] = float(p)
    inst = obj if obj.overlapping else obj.to_label_map()
    return inst, (classes if class_id is not None and classes else None), scores or None


def read_geojson(
    path: Path, shape=None, class_id=None, layout: str = "auto", skip_bad=None, part="nucleus"
):
    doc = read_json(path, "GeoJSON", constants=True)
    return parse_geojson(doc, path, shape, class_id, layout, skip_bad, part)


register(
    PredictionFormat(
        "geojson",
        (".geojson", ".geojson.gz"),
        read_geojson,
        "QuPath 0.2-0.7 / qubalab export (one object per feature); CellViT cells.geojson "
        "(one MultiPolygon per class, a nucleus per polygon)",
    )
)
