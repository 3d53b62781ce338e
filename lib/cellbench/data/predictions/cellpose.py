"""Cellpose outputs (MouseLand/cellpose ``io.py``): ``<stem>_seg.npy`` and
``<stem>_cp_outlines.txt`` (``<stem>_cp_masks.png|tif`` are plain instance maps, in
:mod:`cellbench.data.predictions.maps`).

- ``_seg.npy`` is ``np.save`` of a dict, that is a *pickle*. It is read by a restricted
  unpickler that admits numpy arrays, numpy scalars and dtypes and plain containers only
  (dict, list, tuple, str, numbers, None); a file that asks for anything else (any other
  callable: the way a pickle runs code) is refused with one line, before anything runs. The
  instance map is ``masks``; Cellpose has no classes.
- ``_cp_outlines.txt`` (``io.outlines_to_text``): one line per mask, ``x0,y0,x1,y1,...``, the
  OpenCV contour of the mask (``"centre"`` convention, ``CHAIN_APPROX_NONE``); masks whose
  contour had <= 4 points are written as empty lines (kept as empty, so line k is mask k + 1).
  The file has no image size: the image's ``shape`` is needed.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import check_count, check_file_size, read_text
from cellbench.data.predictions.base import (
    PredictionFormat,
    label_map,
    need_shape,
    register,
)
from cellbench.data.predictions.polygons import PolyObject, VertexBudget, objects_prediction

#: The only globals a Cellpose ``_seg.npy`` pickle may name.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _Restricted(pickle.Unpickler):
    def __init__(self, f, path: Path):
        super().__init__(f)
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module == "builtins" and name in ("dict", "list", "tuple", "set", "frozenset"):
            return super().find_class(module, name)
        raise DataError(
            self.path,
            f"the pickle asks for '{module}.{name}'; only numpy arrays and plain containers "
            "are read (a Cellpose _seg.npy holds nothing else)",
        )


def load_seg_npy(path: Path) -> dict:
    """The dict of a Cellpose ``_seg.npy``, read without running any pickle code."""
    check_file_size(path, "Cellpose _seg.npy")
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }.get(version)
            if read_header is None:
                raise DataError(path, f".npy format version {version} is not read here")
            _shape, _fortran, dtype = read_header(f, max_header_size=10_000)
            if dtype.hasobject:
                obj = _Restricted(io.BufferedReader(f), path).load()
            else:
                raise DataError(path, "not a Cellpose _seg.npy (an array, not a saved dict)")
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoding failure is a data problem
        raise DataError(path, f"unreadable _seg.npy ({type(e).__name__}: {e})") from None
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    if not isinstance(obj, dict):
        raise DataError(path, "not a Cellpose _seg.npy (no saved dict)")
    return obj


def read_seg_npy(path: Path, shape=None, class_id=None):
    d = load_seg_npy(path)
    if "masks" not in d:
        raise DataError(path, "no 'masks' in the Cellpose _seg.npy")
    m = d["masks"]
    if not isinstance(m, np.ndarray):
        raise DataError(path, "'masks' is not an array")
    if m.ndim == 3:
        raise DataError(path, f"'masks' is 3-D {m.shape}: a z-stack; 2-D masks expected")
    return label_map(m, path), None, None


def read_outlines(path: Path, shape=None, class_id=None):
    shape = need_shape(shape, path, "Cellpose outlines")
    lines = read_text(path, "Cellpose outlines").splitlines()
    check_count(len(lines), path, "outlines")
    budget = VertexBudget(path)
    objs = []
    for k, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            objs.append(PolyObject([np.zeros((0, 2))]))
            continue
        try:
            vals = [float(v) for v in line.split(",")]
        except ValueError:
            raise DataError(path, f"line {k}: not comma-separated numbers") from None
        if len(vals) % 2:
            raise DataError(path, f"line {k}: an odd count of coordinates")
        objs.append(PolyObject([budget.ring(np.reshape(vals, (-1, 2)), f"line {k}")]))
    return objects_prediction(objs, shape, "centre", path)


register(
    PredictionFormat(
        "cellpose-seg",
        ("_seg.npy",),
        read_seg_npy,
        "Cellpose io.masks_flows_to_seg: <stem>_seg.npy (masks), read without running pickle code",
    )
)
register(
    PredictionFormat(
        "cellpose-outlines",
        ("_cp_outlines.txt",),
        read_outlines,
        "Cellpose io.outlines_to_text: <stem>_cp_outlines.txt, one contour per line",
    )
)
