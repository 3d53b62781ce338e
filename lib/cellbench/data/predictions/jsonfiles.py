"""``.json`` prediction files: which tool wrote one is told by its content.

==========================  ====================================================
content                     read as
==========================  ====================================================
``{"nuc": {...}}``          HoVer-Net (:mod:`.hovernet`)
``{"cells": [...]}``        CellViT / CellViT++ (:mod:`.cellvit`)
GeoJSON                     QuPath or CellViT GeoJSON (:mod:`.geojson`)
``{"elements": [...]}``     HistomicsTK / DSA (:mod:`.viewers`)
``{id: {"contour", ...}}``  TIAToolbox dict output (:mod:`.tiatoolbox`)
==========================  ====================================================
"""

from __future__ import annotations

from pathlib import Path

from cellbench.core.errors import DataError
from cellbench.core.safety import read_json
from cellbench.data.predictions import cellvit, geojson, hovernet, tiatoolbox, viewers
from cellbench.data.predictions.base import PredictionFormat, register


def json_kind(doc) -> str | None:
    """The tool whose layout ``doc`` has, or None."""
    if hovernet.is_hovernet_json(doc):
        return "hovernet"
    if cellvit.is_cellvit_json(doc):
        return "cellvit"
    if geojson.is_geojson(doc):
        return "geojson"
    if viewers.is_histomicstk(doc):
        return "histomicstk"
    if tiatoolbox.is_tiatoolbox_dict(doc):
        return "tiatoolbox"
    return None


def read_json_prediction(path: Path, shape=None, class_id=None, origin=(0, 0), **options):
    doc = read_json(path, "prediction JSON", constants=True)
    kind = json_kind(doc)
    if kind == "hovernet":
        return hovernet.parse_hovernet_json(doc, path, shape, class_id, origin)
    if kind == "cellvit":
        return cellvit.parse_cellvit_json(doc, path, shape, class_id, origin)
    if kind == "geojson":
        return geojson.parse_geojson(doc, path, shape, class_id, **options)
    if kind == "histomicstk":
        return viewers.parse_histomicstk(doc, path, shape, class_id)
    if kind == "tiatoolbox":
        return tiatoolbox.parse_tiatoolbox_dict(doc, path, shape, class_id)
    raise DataError(
        path,
        "JSON of no known prediction layout (HoVer-Net 'nuc', CellViT 'cells', GeoJSON, "
        "HistomicsTK 'elements', TIAToolbox {id: {contour}})",
    )


register(
    PredictionFormat(
        "json",
        (".json", ".json.gz"),
        read_json_prediction,
        "HoVer-Net json/<stem>.json, CellViT cells.json, HistomicsTK / DSA annotation JSON, "
        "TIAToolbox dict output, GeoJSON; told apart by content",
    )
)
