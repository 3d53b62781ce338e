"""Instance maps as files: ``.npy`` / ``.png`` / ``.tif``, with an optional class map beside
them, and Cellpose's ``<stem>_cp_masks.png|tif`` (the same map under Cellpose's name).

A **class map** next to an instance map, named ``<stem>_class.<npy|png|tif>``, gives each
instance the majority class of its pixels (ties to the lower class; class 0 = none, and an
instance with only class-0 pixels stays unclassified).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cellbench.core.errors import DataError
from cellbench.data.imageio import read_label_array
from cellbench.data.predictions.base import (
    PredictionFormat,
    label_map,
    majority_classes,
    register,
)

INSTANCE_SUFFIXES = (".npy", ".png", ".tif", ".tiff")
#: File endings of instance maps (OME-TIFF pairs with the stem before ``.ome``).
MAP_ENDINGS = (".ome.tif", ".ome.tiff", *INSTANCE_SUFFIXES)
#: Suffix of the stem of a class map that goes with an instance map.
CLASS_MAP = "_class"
#: Suffix of the stem of a ground truth's ambiguous-region mask (MoNuSAC presets).
AMBIGUOUS = "_ambiguous"
#: Stems with these suffixes are companions of an instance map, never listed on their own.
COMPANIONS = (CLASS_MAP, AMBIGUOUS)


def companion_for(path: Path, suffix: str) -> Path | None:
    """The file ``<stem><suffix>.<npy|png|tif>`` beside ``path``, or None."""
    stem = Path(path).name.split(".")[0] if path.name.lower().endswith(".ome.tif") else path.stem
    for suf in INSTANCE_SUFFIXES:
        c = path.with_name(f"{stem}{suffix}{suf}")
        if c.is_file():
            return c
    return None


def class_map_for(path: Path) -> Path | None:
    """The class map beside an instance map (``<stem>_class.<npy|png|tif>``), or None."""
    return companion_for(path, CLASS_MAP)


def ambiguous_mask(path: Path) -> np.ndarray | None:
    """The ambiguous-region mask beside a ground-truth map (``<stem>_ambiguous.<ext>``, any
    non-zero pixel is ambiguous), or None."""
    a = companion_for(path, AMBIGUOUS)
    if a is None:
        return None
    arr = read_label_array(a)
    if arr.ndim == 3:
        arr = arr.max(axis=-1)
    return np.asarray(arr) > 0


def read_map(path: Path, shape=None, class_id=None):
    labels = label_map(read_label_array(path), path)
    cpath = class_map_for(path)
    if cpath is None:
        return labels, None, None
    cm = read_label_array(cpath)
    if cm.dtype.kind not in "iu" or cm.ndim != 2:
        raise DataError(cpath, f"class map must be a 2-D integer image, got {cm.dtype} {cm.shape}")
    if cm.shape != labels.shape:
        raise DataError(cpath, f"class map is {cm.shape} but its instance map is {labels.shape}")
    return labels, majority_classes(labels, cm), None


def _companions(path: Path) -> list[Path]:
    c = class_map_for(path)
    return [] if c is None else [c]


register(
    PredictionFormat(
        "cellpose-masks",
        ("_cp_masks.png", "_cp_masks.tif", "_cp_masks.tiff"),
        lambda p, shape=None, class_id=None: (label_map(read_label_array(p), p), None, None),
        "Cellpose io.save_masks: <stem>_cp_masks.png|tif, an instance map (0 = background)",
    )
)
register(
    PredictionFormat(
        "label-map",
        MAP_ENDINGS,
        read_map,
        "any tool: an integer instance map (StarDist, InstanSeg, a model's own export); "
        "optional <stem>_class.<ext> class map",
        _companions,
    )
)
