"""Annotation files of slide viewers used as predictions: HistomicsTK / Digital Slide Archive
annotation JSON and ASAP XML (TIGER and other challenges).

- **HistomicsTK / DSA** (``.json``): an annotation document ``{"name", "elements": [...]}``,
  the API form ``{"annotation": {"elements": [...]}}``, or a list of either. Area elements:
  ``polyline`` with ``closed: true`` (``points`` ``[[x, y, z], ...]``), ``rectangle``
  (``center``, ``width``, ``height``, ``rotation`` in radians), ``circle`` (``center``,
  ``radius``; 64-gon) and ``ellipse`` (as rectangle, inscribed 64-gon). ``point`` and ``arrow``
  elements are not areas and are left out; any other element (an open polyline) raises. The
  class is ``label.value``, else ``group``. Coordinates are base-image pixels with pixel corners
  at integers (``"edge"`` convention, as large_image) - an assumption: DSA does not document it.
- **ASAP** (``.xml``): ``<ASAP_Annotations><Annotations><Annotation Type="Polygon"
  PartOfGroup="..."><Coordinates><Coordinate Order X Y/>``. Polygon, Spline (its control points
  as a polygon) and Rectangle are areas; Dot and PointSet are left out. The class is
  ``PartOfGroup`` ("None" = none). Same pixel convention and assumption as DSA. DOCTYPE and
  entity declarations are refused (no entity expansion).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import check_count, read_bytes
from cellbench.data.predictions.base import PredictionFormat, need_shape, register
from cellbench.data.predictions.polygons import PolyObject, VertexBudget, objects_prediction

_NOT_AREAS = {"point", "arrow"}


def is_histomicstk(doc: Any) -> bool:
    docs = doc if isinstance(doc, list) else [doc]
    return bool(docs) and all(
        isinstance(d, dict) and ("elements" in d or isinstance(d.get("annotation"), dict))
        for d in docs
    )


def _num(v: Any, path: Path, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise DataError(path, f"{where}: {v!r:.40} is not a finite number")
    return float(v)


def _box(cx, cy, w, h, rot) -> np.ndarray:
    c, s = math.cos(rot), math.sin(rot)
    corners = np.array([(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)])
    return corners @ np.array([[c, s], [-s, c]]) + (cx, cy)


def _ellipse(cx, cy, rx, ry, rot, n: int = 64) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    pts = np.c_[rx * np.cos(t), ry * np.sin(t)]
    c, s = math.cos(rot), math.sin(rot)
    return pts @ np.array([[c, s], [-s, c]]) + (cx, cy)


def histomicstk_objects(doc, path: Path) -> list[PolyObject]:
    docs = doc if isinstance(doc, list) else [doc]
    budget = VertexBudget(path)
    objs: list[PolyObject] = []
    for d, item in enumerate(docs):
        ann = item.get("annotation", item) if isinstance(item, dict) else None
        els = ann.get("elements") if isinstance(ann, dict) else None
        if not isinstance(els, list):
            raise DataError(path, f"annotation {d}: 'elements' must be a list")
        check_count(len(els) + len(objs), path, "elements")
        for i, e in enumerate(els):
            where = f"annotation {d} element {i}"
            if not isinstance(e, dict):
                raise DataError(path, f"{where}: not a mapping")
            kind = e.get("type")
            if kind in _NOT_AREAS:
                continue
            label = e.get("label")
            name = label.get("value") if isinstance(label, dict) else None
            name = name if name is not None else e.get("group")
            if name is not None and not isinstance(name, str):
                raise DataError(path, f"{where}: label must be a string")
            if kind == "polyline":
                if not e.get("closed"):
                    raise DataError(path, f"{where}: an open polyline is not an area")
                xy = budget.ring(e.get("points"), where)
            elif kind in ("rectangle", "ellipse", "circle"):
                c = e.get("center")
                if not isinstance(c, list) or len(c) < 2:
                    raise DataError(path, f"{where}: 'center' must be [x, y, z]")
                cx, cy = _num(c[0], path, where), _num(c[1], path, where)
                rot = _num(e.get("rotation", 0), path, where)
                if kind == "circle":
                    r = _num(e.get("radius"), path, where)
                    xy = _ellipse(cx, cy, r, r, 0.0)
                else:
                    w, h = _num(e.get("width"), path, where), _num(e.get("height"), path, where)
                    xy = (
                        _box(cx, cy, w, h, rot)
                        if kind == "rectangle"
                        else _ellipse(cx, cy, w / 2, h / 2, rot)
                    )
            else:
                raise DataError(path, f"{where}: element type {kind!r:.40} is not read")
            objs.append(PolyObject([xy], name))
    return objs


def parse_histomicstk(doc, path: Path, shape=None, class_id=None):
    shape = need_shape(shape, path, "HistomicsTK annotations")
    return objects_prediction(histomicstk_objects(doc, path), shape, "edge", path, class_id)


def asap_objects(path: Path) -> list[PolyObject]:
    data = read_bytes(path, "ASAP XML")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise DataError(path, "DOCTYPE / ENTITY declarations are not allowed")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise DataError(path, f"malformed XML: {e}") from None
    if root.tag != "ASAP_Annotations":
        raise DataError(path, f"not an ASAP file (root element <{root.tag}>)")
    budget = VertexBudget(path)
    anns = list(root.iter("Annotation"))
    check_count(len(anns), path, "annotations")
    objs = []
    for i, a in enumerate(anns):
        where = f"Annotation {a.get('Name') or i}"
        kind = (a.get("Type") or "").lower()
        if kind in ("dot", "pointset"):
            continue
        if kind not in ("polygon", "spline", "rectangle"):
            raise DataError(path, f"{where}: type {a.get('Type')!r:.40} is not read")
        coords = []
        for c in a.iter("Coordinate"):
            try:
                order = float(c.get("Order", len(coords)))
                coords.append((order, float(c.get("X")), float(c.get("Y"))))
            except (TypeError, ValueError):
                raise DataError(path, f"{where}: a Coordinate without numeric X / Y") from None
        coords.sort(key=lambda t: t[0])
        xy = budget.ring([(x, y) for _, x, y in coords], where)
        group = a.get("PartOfGroup")
        objs.append(PolyObject([xy], None if group in (None, "", "None") else group))
    return objs


def read_asap(path: Path, shape=None, class_id=None):
    shape = need_shape(shape, path, "ASAP annotations")
    return objects_prediction(asap_objects(path), shape, "edge", path, class_id)


register(
    PredictionFormat(
        "asap-xml",
        (".xml",),
        read_asap,
        "ASAP (TIGER): <ASAP_Annotations> polygons, class = PartOfGroup",
    )
)
