"""HoVer-Net's outputs (vqdang/hover_net ``run_infer.py``), tile and whole-slide modes.

- ``.mat``: ``inst_map`` with optional ``inst_type`` ``(N, 1)`` (row k is the type of instance
  ``inst_uid[k]``, or of the k-th id of the map in increasing order) and ``inst_uid``; type 0 =
  none.
- ``.json``: ``{"mag": ..., "nuc": {id: {"bbox": [[rmin, cmin], [rmax, cmax]], "centroid":
  [x, y], "contour": [[x, y], ...], "type": t, "type_prob": p}}}``. Contours are OpenCV
  ``findContours`` output (``CHAIN_APPROX_SIMPLE``, the outer contour only), so they are read in
  the ``"centre"`` pixel convention (:mod:`cellbench.data.predictions.polygons`): a hole-free
  nucleus comes back pixel-exact; HoVer-Net itself drops nuclei whose contour has < 3 points.
  ``type`` is the model's type id (0 = background; None without a type branch) and is taken as
  the dataset's class id, as for ``.mat``; ``type_prob`` is the score. Whole-slide files hold
  level-0 slide pixels: ``origin=(x, y)`` places a region of the slide (its top-left pixel).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import check_count
from cellbench.data.predictions.base import (
    PredictionFormat,
    label_map,
    need_shape,
    probability,
    register,
    type_id,
)
from cellbench.data.predictions.polygons import PolyObject, VertexBudget, objects_prediction


def read_mat(path: Path, shape=None, class_id=None):
    from scipy.io import loadmat

    try:
        m = loadmat(path, variable_names=["inst_map", "inst_type", "inst_uid"])
    except Exception as e:  # noqa: BLE001 - any decoder failure is a data problem
        raise DataError(path, f"unreadable .mat file ({type(e).__name__}: {e})") from None
    if "inst_map" not in m:
        raise DataError(path, "no 'inst_map' variable (HoVer-Net output expected)")
    raw = np.asarray(m["inst_map"])
    if raw.dtype.kind == "f" and np.all(np.isfinite(raw)) and np.all(raw == np.round(raw)):
        raw = raw.astype(np.int64)  # MATLAB saves integer maps as double
    labels = label_map(raw, path)
    if "inst_type" not in m:
        return labels, None, None
    types = np.asarray(m["inst_type"]).reshape(-1)
    if types.dtype.kind not in "iuf" or not np.all(np.isfinite(types)):
        raise DataError(path, "'inst_type' must hold finite integers")
    if not np.all(types == np.round(types)) or (len(types) and types.min() < 0):
        raise DataError(path, "'inst_type' must hold non-negative integers")
    if "inst_uid" in m:
        ids = np.asarray(m["inst_uid"]).reshape(-1).astype(np.int64)
    else:
        ids = np.unique(labels[labels > 0])
    if len(ids) != len(types):
        raise DataError(path, f"{len(types)} inst_type rows for {len(ids)} instances")
    return labels, {int(i): int(t) for i, t in zip(ids, types, strict=True) if t > 0}, None


def is_hovernet_json(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("nuc"), dict)


def hovernet_objects(doc: dict, path: Path, origin=(0, 0)) -> list[PolyObject]:
    """The nuclei of a HoVer-Net JSON document, in increasing id order."""
    nuc = doc["nuc"]
    check_count(len(nuc), path, "nuclei")
    budget = VertexBudget(path)
    items = []
    for key, n in nuc.items():
        try:
            k = int(key)
        except ValueError:
            raise DataError(path, f"nuc: id {key!r:.40} is not an integer") from None
        if not isinstance(n, dict) or "contour" not in n:
            raise DataError(path, f"nuc[{key}]: no contour")
        xy = budget.ring(n["contour"], f"nuc[{key}].contour") - np.asarray(origin, np.float64)
        t = n.get("type")
        items.append(
            (
                k,
                PolyObject(
                    [xy],
                    None if t is None else type_id(t, path, f"nuc[{key}]"),
                    probability(n.get("type_prob"), path, f"nuc[{key}].type_prob"),
                ),
            )
        )
    items.sort(key=lambda kv: kv[0])
    return [o for _, o in items]


def parse_hovernet_json(doc, path: Path, shape=None, class_id=None, origin=(0, 0)):
    shape = need_shape(shape, path, "HoVer-Net JSON contours")
    objs = hovernet_objects(doc, path, origin)
    inst, classes, scores = objects_prediction(objs, shape, "centre", path)
    if classes is not None:  # type 0 = background: no class
        classes = {k: v for k, v in classes.items() if v > 0}
    return inst, classes, scores


register(
    PredictionFormat(
        "hovernet-mat",
        (".mat",),
        read_mat,
        "HoVer-Net run_infer.py tile mode: mat/<stem>.mat (inst_map, inst_type, inst_uid)",
    )
)
