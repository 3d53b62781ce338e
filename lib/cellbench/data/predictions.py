"""Instance predictions made by other tools, one file per image, with classes where they have
them; and the packed form cellbench keeps its own predictions in.

A prediction is ``(instances, classes, scores)``: ``instances`` an ``(H, W) int32`` map or
:class:`~cellbench.data.sample.Objects` (when objects overlap), ``classes`` ``{instance id:
dataset class id}`` or None (class-agnostic), ``scores`` ``{instance id: probability}`` or None.

Files, by suffix (the stem is the sample id):

- ``.npy`` / ``.png`` / ``.tif``: an instance map. A **class map** next to it, named
  ``<stem>_class.<npy|png|tif>``, gives each instance the majority class of its pixels (ties to
  the lower class; class 0 = none, and an instance with only class-0 pixels stays unclassified).
- ``.mat``: HoVer-Net output, ``inst_map`` with optional ``inst_type`` ``(N, 1)`` (row k is the
  type of instance ``inst_uid[k]``, or of the k-th id of the map in increasing order) and
  ``inst_uid``; type 0 = none.
- ``.geojson``: QuPath GeoJSON (any version), one detection, cell (its nucleus) or annotation
  per object, classified by name (names are mapped to the dataset's classes; an unknown name is
  an error naming the file); a ``probability`` measurement, when present, is the score. Objects
  are rasterised one by one, so overlapping polygons stay separate objects; when none overlap the
  prediction is returned as a map.
- ``.npz``: cellbench's packed form (:func:`pack` / :func:`unpack`).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core.errors import DataError
from cellbench.data.imageio import read_label_array
from cellbench.data.sample import Objects, Points

INSTANCE_SUFFIXES = (".npy", ".png", ".tif", ".tiff")
#: What reading a damaged ``.npz`` raises (a truncated file is a bad ZIP).
NPZ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)
PREDICTION_SUFFIXES = (*INSTANCE_SUFFIXES, ".mat", ".geojson", ".npz")
#: Suffix of the stem of a class map that goes with an instance map.
CLASS_MAP = "_class"


def prediction_files(folder: str | Path, suffixes=PREDICTION_SUFFIXES) -> dict[str, Path]:
    """``{stem: path}`` of the prediction files of a folder (class maps ``*_class.*`` are read
    with their instance map, not listed). Two files for one stem are an error."""
    d = Path(folder)
    if not d.is_dir():
        raise DataError(d, "not a folder")
    out: dict[str, Path] = {}
    for f in sorted(d.iterdir()):
        if f.suffix.lower() not in suffixes or not f.is_file() or f.stem.endswith(CLASS_MAP):
            continue
        if f.stem in out:
            raise DataError(f, f"two prediction files for '{f.stem}' ({out[f.stem].name})")
        out[f.stem] = f
    if not out:
        raise DataError(d, f"no prediction files ({', '.join(suffixes)})")
    return out


def _label_map(arr: np.ndarray, path: Path) -> np.ndarray:
    """``arr`` as an ``(H, W) int32`` instance map; float, boolean or negative labels raise."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise DataError(path, f"instance map must be 2-D, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise DataError(path, f"instance map has dtype {arr.dtype}; integer instance ids expected")
    if arr.size and (arr.min() < 0 or int(arr.max()) > np.iinfo(np.int32).max):
        raise DataError(path, "instance ids must lie in 0 .. 2^31 - 1")
    return arr.astype(np.int32, copy=False)


def majority_classes(labels: np.ndarray, class_map: np.ndarray) -> dict[int, int]:
    """``{instance id: majority non-zero class of its pixels}`` (ties to the lower class)."""
    lab = np.asarray(labels).ravel()
    cm = np.asarray(class_map).ravel()
    fg = (lab > 0) & (cm > 0)
    if not fg.any():
        return {}
    ids, inv = np.unique(lab[fg], return_inverse=True)
    k = int(cm[fg].max()) + 1
    hist = np.bincount(inv * k + cm[fg].astype(np.int64), minlength=len(ids) * k)
    best = hist.reshape(len(ids), k).argmax(1)  # first maximum = lower class
    return {int(i): int(c) for i, c in zip(ids, best, strict=True)}


def class_map_for(path: Path) -> Path | None:
    """The class map beside an instance map (``<stem>_class.<npy|png|tif>``), or None."""
    for suf in INSTANCE_SUFFIXES:
        c = path.with_name(f"{path.stem}{CLASS_MAP}{suf}")
        if c.is_file():
            return c
    return None


def _read_map(path: Path):
    labels = _label_map(read_label_array(path), path)
    cpath = class_map_for(path)
    if cpath is None:
        return labels, None, None
    cm = read_label_array(cpath)
    if cm.dtype.kind not in "iu" or cm.ndim != 2:
        raise DataError(cpath, f"class map must be a 2-D integer image, got {cm.dtype} {cm.shape}")
    if cm.shape != labels.shape:
        raise DataError(cpath, f"class map is {cm.shape} but its instance map is {labels.shape}")
    return labels, majority_classes(labels, cm), None


def _read_mat(path: Path):
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
    labels = _label_map(raw, path)
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


def _read_geojson(path: Path, shape: tuple[int, int], class_id: Callable[[str], int] | None):
    from cellbench.data.readers.qupath_geojson import (
        area_geometry,
        check_objects_inside,
        rasterize_objects,
        read_qupath_geojson,
    )

    objs = [
        o
        for o in read_qupath_geojson(path)
        if o.object_type in ("detection", "cell", "annotation") and area_geometry(o) is not None
    ]
    check_objects_inside(objs, shape[1], shape[0], path)
    obj = rasterize_objects([area_geometry(o) for o in objs], shape, list(range(1, len(objs) + 1)))
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
    inst: np.ndarray | Objects = obj if obj.overlapping else obj.to_label_map()
    return inst, (classes if class_id is not None and classes else None), scores or None


def read_prediction(
    path: str | Path,
    shape: tuple[int, int] | None = None,
    class_id: Callable[[str], int] | None = None,
) -> tuple[np.ndarray | Objects, dict[int, int] | None, dict[int, float] | None]:
    """Read one prediction file (module docstring). ``shape`` ``(H, W)`` is the image's (needed
    for GeoJSON; checked for the others); ``class_id(name)`` maps a class name to a dataset
    class id (GeoJSON; None ignores names)."""
    p = Path(path)
    suf = p.suffix.lower()
    if suf in INSTANCE_SUFFIXES:
        pred = _read_map(p)
    elif suf == ".mat":
        pred = _read_mat(p)
    elif suf == ".npz":
        try:
            with np.load(p, allow_pickle=False) as z:
                pred = unpack(z)
        except NPZ_ERRORS as e:
            raise DataError(p, f"unreadable .npz prediction ({type(e).__name__}: {e})") from None
        if isinstance(pred, Points):
            raise DataError(p, "holds points, not instances")
    elif suf == ".geojson":
        if shape is None:
            raise DataError(p, "the image size is needed to read GeoJSON predictions")
        pred = _read_geojson(p, shape, class_id)
    else:
        raise DataError(p, f"unsupported prediction file (known: {', '.join(PREDICTION_SUFFIXES)})")
    inst, classes, scores = pred
    got = inst.shape if isinstance(inst, Objects) else inst.shape[:2]
    if shape is not None and tuple(got) != tuple(shape):
        raise DataError(p, f"shape {tuple(got)} differs from the ground truth {tuple(shape)}")
    if classes is not None:  # every instance gets a class (0 = none)
        ids = inst.ids if isinstance(inst, Objects) else np.unique(inst[inst > 0])
        classes = {int(i): int(classes.get(int(i), 0)) for i in ids}
    return inst, classes, scores


# -- packed form ------------------------------------------------------------------------------


def _dict_arrays(d: dict | None, key: str, val: str, dtype) -> dict[str, np.ndarray]:
    if d is None:
        return {}
    n = len(d)
    return {key: np.fromiter(d.keys(), np.int64, n), val: np.fromiter(d.values(), dtype, n)}


def pack(pred) -> dict[str, np.ndarray]:
    """Arrays for ``np.savez`` of a prediction (instances, classes, scores) or :class:`Points`.

    Instance maps as ``labels`` (uint16 when the ids allow, else int32), objects as ``obj_*``
    (:meth:`Objects.pack`); ``cls_ids`` / ``cls`` and ``score_ids`` / ``scores`` when present;
    points as ``xy``, ``cls``, ``score``.
    """
    if isinstance(pred, Points):
        return {"xy": pred.xy, "cls": pred.cls, "score": pred.score}
    inst, classes, scores = pred
    if isinstance(inst, Objects):
        out = inst.pack()
    else:
        lab = np.asarray(inst)
        top = int(lab.max()) if lab.size else 0
        out = {"labels": lab.astype(np.uint16 if 0 <= top < 2**16 else np.int32, copy=False)}
    out.update(_dict_arrays(classes, "cls_ids", "cls", np.int64))
    out.update(_dict_arrays(scores, "score_ids", "scores", np.float64))
    return out


def unpack(z) -> Any:
    """The inverse of :func:`pack` (``z``: an open ``.npz`` or a mapping)."""
    if "xy" in z:
        return Points(z["xy"], z["cls"], z["score"])
    inst = Objects.unpack(z) if "obj_ids" in z else np.asarray(z["labels"]).astype(np.int32)

    def as_dict(k, v):
        return dict(zip(z[k].tolist(), z[v].tolist(), strict=True)) if v in z else None

    return inst, as_dict("cls_ids", "cls"), as_dict("score_ids", "scores")
