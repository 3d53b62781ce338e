"""cellbench's packed form of a prediction (``.npz``): what it keeps of its own runs.

Instance maps as ``labels`` (uint16 when the ids allow, else int32), overlapping objects as
``obj_*`` (:meth:`~cellbench.data.sample.Objects.pack`), ``cls_ids`` / ``cls`` and
``score_ids`` / ``scores`` when present; points as ``xy``, ``cls``, ``score``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core.errors import DataError
from cellbench.data.predictions.base import PredictionFormat, register
from cellbench.data.sample import Objects, Points

#: What reading a damaged ``.npz`` raises (a truncated file is a bad ZIP).
NPZ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def _dict_arrays(d: dict | None, key: str, val: str, dtype) -> dict[str, np.ndarray]:
    if d is None:
        return {}
    n = len(d)
    return {key: np.fromiter(d.keys(), np.int64, n), val: np.fromiter(d.values(), dtype, n)}


def pack(pred) -> dict[str, np.ndarray]:
    """Arrays for ``np.savez`` of a prediction (instances, classes, scores) or :class:`Points`."""
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


def read_packed(path: Path, shape=None, class_id=None):
    try:
        with np.load(path, allow_pickle=False) as z:
            pred = unpack(z)
    except NPZ_ERRORS as e:
        raise DataError(path, f"unreadable .npz prediction ({type(e).__name__}: {e})") from None
    if isinstance(pred, Points):
        raise DataError(path, "holds points, not instances")
    return pred


register(PredictionFormat("cellbench-npz", (".npz",), read_packed, "cellbench's kept predictions"))
