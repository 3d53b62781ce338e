"""Predictions made by other tools, one file per image, and the packed form cellbench keeps its
own in: one home for finding, pairing, hashing and reading them (``score``, ``evaluate
--predictions`` and the app call it).

=====================  =================================================================
format                 files (the stem is the sample id)
=====================  =================================================================
label-map              ``<stem>.npy|png|tif|ome.tif`` instance map, optional
                       ``<stem>_class.<ext>`` class map (StarDist, InstanSeg, any tool)
cellpose-masks         ``<stem>_cp_masks.png|tif``
cellpose-seg           ``<stem>_seg.npy`` (pickle read without running code)
cellpose-outlines      ``<stem>_cp_outlines.txt``
hovernet-mat           ``<stem>.mat`` (``inst_map``, ``inst_type``)
json                   ``<stem>.json``: HoVer-Net, CellViT cells.json, HistomicsTK, TIAToolbox
                       dict, GeoJSON - told apart by content
geojson                ``<stem>.geojson|geojson.gz``: QuPath 0.2-0.7 / qubalab, CellViT
tiatoolbox-store       ``<stem>.db`` TIAToolbox SQLiteStore
asap-xml               ``<stem>.xml`` ASAP annotations
cellbench-npz          ``<stem>.npz`` cellbench's packed form
=====================  =================================================================

A prediction is ``(instances, classes, scores)`` (:mod:`.base`). Polygon formats are rasterised
under their tool's pixel convention (:mod:`.polygons`).
"""

from __future__ import annotations

# format modules register themselves on import (order: longer endings are matched first anyway)
from cellbench.data.predictions import (  # noqa: F401
    cellpose,
    geojson,
    hovernet,
    jsonfiles,
    maps,
    packed,
    tiatoolbox,
    viewers,
)
from cellbench.data.predictions.base import FORMATS, majority_classes, split_name
from cellbench.data.predictions.maps import CLASS_MAP, INSTANCE_SUFFIXES, class_map_for
from cellbench.data.predictions.packed import NPZ_ERRORS, pack, unpack
from cellbench.data.predictions.sources import (
    PredictionFiles,
    formats_table,
    prediction_files,
    prediction_hash,
    prediction_stat,
    read_prediction,
    sha256_file,
)

__all__ = [
    "CLASS_MAP",
    "FORMATS",
    "INSTANCE_SUFFIXES",
    "NPZ_ERRORS",
    "PredictionFiles",
    "class_map_for",
    "formats_table",
    "majority_classes",
    "pack",
    "prediction_files",
    "prediction_hash",
    "prediction_stat",
    "read_prediction",
    "sha256_file",
    "split_name",
    "unpack",
]
