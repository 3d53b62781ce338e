"""TIAToolbox outputs (TissueImageAnalytics/tiatoolbox).

- ``.db``: an ``SQLiteStore`` annotation store (``annotation/storage.py``): table
  ``annotations(id, key, objtype, cx, cy, geometry BLOB, properties TEXT, area)`` holding WKB
  geometries, zlib-compressed when the ``metadata`` table says ``compression = "zlib"`` (the
  default), and JSON properties. Read with Python's ``sqlite3`` in read-only mode, row by row;
  nothing in the file is executed. Properties ``type`` (an id, or a class name) and ``prob``
  give the class and score. Geometries from TIAToolbox's nucleus segmentors are OpenCV
  contours (``"centre"`` convention, the default; ``convention="edge"`` for stores of
  QuPath-style polygons). Point and line annotations are left out.
- dict output, saved as JSON: ``{id: {"box", "centroid", "contour" | "contours", "prob",
  "type"}}`` (``HoVerNet.postproc``), or the column form ``{"contours": [...], "prob": [...],
  "type": [...]}`` of TIAToolbox 2.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import check_count, check_depth, check_file_size, limits
from cellbench.data.predictions.base import (
    PredictionFormat,
    need_shape,
    probability,
    register,
    type_id,
)
from cellbench.data.predictions.polygons import PolyObject, VertexBudget, objects_prediction


def _cls(value: Any, path: Path, where: str) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return type_id(value, path, where)


def store_objects(path: Path) -> list[PolyObject]:
    """The area annotations of a TIAToolbox SQLite store, in row order."""
    import shapely
    from shapely import wkb

    check_file_size(path, "annotation store")
    try:
        con = sqlite3.connect(f"file:{path.resolve().as_posix()}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise DataError(path, f"cannot open as SQLite ({e})") from None
    budget = VertexBudget(path)
    objs: list[PolyObject] = []
    try:
        meta = dict(con.execute("SELECT key, value FROM metadata").fetchall())
        comp = json.loads(meta.get("compression", "null"))
        if comp not in (None, "zlib"):
            raise DataError(path, f"unknown geometry compression {comp!r}")
        n = con.execute("SELECT COUNT(*) FROM annotations").fetchone()[0]
        check_count(n, path, "annotations")
        cap = limits().max_file_bytes
        rows = con.execute("SELECT id, geometry, properties FROM annotations ORDER BY id")
        for rid, blob, props in rows:
            where = f"annotation {rid}"
            if isinstance(blob, str):
                geom = shapely.from_wkt(blob)
            else:
                data = bytes(blob)
                if comp == "zlib":
                    d = zlib.decompressobj()
                    data = d.decompress(data, cap)
                    if d.unconsumed_tail:
                        raise DataError(path, f"{where}: geometry unpacks past the size limit")
                geom = wkb.loads(data)
            p = json.loads(props) if props else {}
            if not isinstance(p, dict):
                raise DataError(path, f"{where}: properties are not a JSON object")
            check_depth(p, path)
            for part in getattr(geom, "geoms", [geom]):
                if part.geom_type != "Polygon":
                    continue
                rings = [budget.ring(np.asarray(part.exterior.coords)[:-1], where)]
                taken = len(rings[0])
                for r in part.interiors:
                    rings.append(budget.ring(np.asarray(r.coords)[:-1], where, taken))
                    taken += len(rings[-1])
                objs.append(
                    PolyObject(
                        rings,
                        _cls(p.get("type"), path, where),
                        probability(p.get("prob"), path, f"{where}.prob"),
                    )
                )
    except sqlite3.Error as e:
        raise DataError(path, f"not a TIAToolbox annotation store ({e})") from None
    except (ValueError, TypeError, shapely.errors.ShapelyError) as e:
        raise DataError(path, f"malformed annotation ({type(e).__name__}: {e})") from None
    finally:
        con.close()
    return objs


def read_store(path: Path, shape=None, class_id=None, convention: str = "centre"):
    shape = need_shape(shape, path, "an annotation store")
    return objects_prediction(store_objects(path), shape, convention, path, class_id)


def is_tiatoolbox_dict(doc: Any) -> bool:
    if not isinstance(doc, dict) or not doc:
        return False
    if "contours" in doc and isinstance(doc["contours"], list):
        return True  # column form
    first = next(iter(doc.values()))
    return (
        isinstance(first, dict)
        and ("contour" in first or "contours" in first)
        and ("box" in first or "centroid" in first)
    )


def parse_tiatoolbox_dict(doc, path: Path, shape=None, class_id=None):
    shape = need_shape(shape, path, "TIAToolbox contours")
    budget = VertexBudget(path)
    if "contours" in doc and isinstance(doc["contours"], list):
        n = len(doc["contours"])
        cols = {k: doc.get(k) for k in ("prob", "type")}
        for k, v in cols.items():
            if v is not None and (not isinstance(v, list) or len(v) != n):
                raise DataError(path, f"'{k}' must be a list of {n} values, one per contour")
        items = [
            (
                i,
                {
                    "contour": doc["contours"][i],
                    "prob": None if cols["prob"] is None else cols["prob"][i],
                    "type": None if cols["type"] is None else cols["type"][i],
                },
            )
            for i in range(n)
        ]
    else:
        items = []
        for key, v in doc.items():
            try:
                items.append((int(key), v))
            except ValueError:
                raise DataError(path, f"instance id {key!r:.40} is not an integer") from None
        items.sort(key=lambda kv: kv[0])
    check_count(len(items), path, "instances")
    objs = []
    for k, v in items:
        if not isinstance(v, dict):
            raise DataError(path, f"instance {k}: not a mapping")
        c = v.get("contour", v.get("contours"))
        objs.append(
            PolyObject(
                [budget.ring(c, f"instance {k}.contour")],
                _cls(v.get("type"), path, f"instance {k}"),
                probability(v.get("prob"), path, f"instance {k}.prob"),
            )
        )
    return objects_prediction(objs, shape, "centre", path, class_id)


register(
    PredictionFormat(
        "tiatoolbox-store",
        (".db",),
        read_store,
        "TIAToolbox SQLiteStore (annotation/storage.py): WKB geometries + JSON properties",
    )
)
