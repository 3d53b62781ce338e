"""CellViT / CellViT++ cell JSON (``cells.json`` of ``cell_detection.py``).

``{"wsi_metadata": ..., "type_map": {...}, "cells": [{"bbox", "centroid", "contour", "type",
"type_prob", "patch_coordinates", "cell_status", "offset_global"}, ...]}``. Contours are OpenCV
contours in ``(x, y)`` level-0 slide pixels (``"centre"`` convention); ``origin=(x, y)`` places
a region of the slide. Classes: with a ``type_map`` (CellViT: ``{name: id}``; ``{id: name}`` is
accepted too) and a ``class_id`` the type's *name* is mapped to the dataset's classes
("Background" = none); otherwise the type id is taken as the dataset class id. ``type_prob`` is
the score. ``cell_detection.json`` (centroids only) holds no areas and is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import check_count
from cellbench.data.predictions.base import need_shape, probability, type_id
from cellbench.data.predictions.polygons import PolyObject, VertexBudget, objects_prediction


def is_cellvit_json(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("cells"), list)


def _type_names(tmap: Any, path: Path) -> dict[int, str]:
    if tmap is None:
        return {}
    if not isinstance(tmap, dict):
        raise DataError(path, "type_map must be a mapping")
    out: dict[int, str] = {}
    for k, v in tmap.items():
        if isinstance(v, str):  # {id: name}
            out[type_id(int(k) if str(k).isdigit() else k, path, "type_map")] = v
        else:  # {name: id}
            out[type_id(v, path, "type_map")] = str(k)
    return out


def parse_cellvit_json(doc, path: Path, shape=None, class_id=None, origin=(0, 0)):
    shape = need_shape(shape, path, "CellViT cell contours")
    cells = doc["cells"]
    check_count(len(cells), path, "cells")
    names = _type_names(doc.get("type_map"), path)
    budget = VertexBudget(path)
    off = np.asarray(origin, np.float64)
    objs = []
    for i, c in enumerate(cells):
        if not isinstance(c, dict) or "contour" not in c:
            raise DataError(
                path, f"cells[{i}]: no contour (cell_detection.json holds centroids only)"
            )
        xy = budget.ring(c["contour"], f"cells[{i}].contour") - off
        t = c.get("type")
        cls: int | str | None = None if t is None else type_id(t, path, f"cells[{i}]")
        if cls is not None and names and class_id is not None:
            name = names.get(cls)
            if name is None:
                raise DataError(path, f"cells[{i}]: type {cls} is not in the type_map")
            cls = 0 if name.lower() == "background" else name
        objs.append(PolyObject([xy], cls, probability(c.get("type_prob"), path, f"cells[{i}]")))
    return objects_prediction(objs, shape, "centre", path, class_id)
