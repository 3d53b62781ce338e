"""The prediction format registry and the checks every format shares.

A prediction is ``(instances, classes, scores)``: ``instances`` an ``(H, W) int32`` map or
:class:`~cellbench.data.sample.Objects` (when objects overlap), ``classes`` ``{instance id:
dataset class id}`` or None (class-agnostic), ``scores`` ``{instance id: probability}`` or None.

Each format registers the file-name endings it reads (``_seg.npy``, ``.geojson.gz``, ``.npy``
...). A file's stem is its name less the longest registered ending, so ``img1_cp_masks.png``
pairs with the ground-truth stem ``img1``. Formats whose files carry no image size (contours,
outlines, annotation stores) need the image's ``shape``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core.errors import DataError
from cellbench.data.sample import Objects

#: ``(instances, classes, scores)`` (module docstring).
Prediction = tuple[Any, dict[int, int] | None, dict[float, float] | None]
#: Maps a class name of a prediction file to a dataset class id (raises for unknown names).
ClassId = Callable[[str], int]


@dataclass(frozen=True)
class PredictionFormat:
    """One file format of predictions.

    ``endings``: lower-case file-name endings (``".npy"``, ``"_seg.npy"``); ``read(path, shape,
    class_id, **options)`` returns a :data:`Prediction`; ``companions(path)`` the other files
    it reads (hashed with it); ``source``: the tool and where its layout is documented.
    """

    name: str
    endings: tuple[str, ...]
    read: Callable[..., Prediction]
    source: str
    companions: Callable[[Path], list[Path]] = field(default=lambda p: [])


FORMATS: dict[str, PredictionFormat] = {}


def register(fmt: PredictionFormat) -> PredictionFormat:
    FORMATS[fmt.name] = fmt
    return fmt


def _endings() -> list[tuple[str, PredictionFormat]]:
    """Every registered ending, longest first (``_cp_masks.png`` before ``.png``)."""
    pairs = [(e, f) for f in FORMATS.values() for e in f.endings]
    return sorted(pairs, key=lambda p: -len(p[0]))


def split_name(path: str | Path) -> tuple[str, PredictionFormat] | None:
    """``(stem, format)`` of a prediction file by its name, or None when no format reads it."""
    name = Path(path).name
    low = name.lower()
    for end, fmt in _endings():
        if low.endswith(end) and len(name) > len(end):
            return name[: -len(end)], fmt
    return None


def known_endings() -> str:
    return ", ".join(sorted({e for f in FORMATS.values() for e in f.endings}))


def label_map(arr: np.ndarray, path: Path) -> np.ndarray:
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


def type_id(value: Any, path: Path, where: str) -> int:
    """A non-negative integer class/type id from a file (``True`` and ``2.5`` are refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise DataError(path, f"{where}: type {value!r:.40} is not an integer")
    if not np.isfinite(value) or value != int(value) or value < 0:
        raise DataError(path, f"{where}: type {value!r:.40} is not a non-negative integer")
    return int(value)


def probability(value: Any, path: Path, where: str) -> float | None:
    """A probability in [0, 1] from a file, None when absent; anything else raises."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise DataError(path, f"{where}: probability {value!r:.40} is not a number")
    if not 0.0 <= float(value) <= 1.0:
        raise DataError(path, f"{where}: probability {value} lies outside [0, 1]")
    return float(value)


def finish(pred: Prediction, path: Path, shape: tuple[int, int] | None) -> Prediction:
    """Check the size against the ground truth's and give every instance a class (0 = none)
    when the prediction is classified."""
    inst, classes, scores = pred
    got = inst.shape if isinstance(inst, Objects) else inst.shape[:2]
    if shape is not None and tuple(got) != tuple(shape):
        raise DataError(path, f"shape {tuple(got)} differs from the ground truth {tuple(shape)}")
    if classes is not None:
        ids = inst.ids if isinstance(inst, Objects) else np.unique(inst[inst > 0])
        classes = {int(i): int(classes.get(int(i), 0)) for i in ids}
    return inst, classes, scores


def need_shape(shape, path: Path, what: str) -> tuple[int, int]:
    if shape is None:
        raise DataError(path, f"the image size is needed to read {what}")
    return int(shape[0]), int(shape[1])
