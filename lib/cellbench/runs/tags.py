"""Review tags on samples and objects ("label error", "ambiguous" ...), kept in the workspace.

``$CELLBENCH_HOME/tags.json`` holds ``{"samples": [...], "objects": [...]}``; a sample tag is
``{"dataset", "sample_id", "tag"}`` (a property of the data, whatever the run), an object tag
``{"dataset", "sample_id", "run_id", "layer", "object_id", "tag"}`` (an object of a run's
error view: ``layer`` TP / FP / FN / ground truth / prediction and the object's id in its
map). The file is replaced atomically on each change; an unreadable file reads as no tags
and is kept aside (``tags.json.unreadable``) before the next write, never overwritten.

Exports: every tag as CSV (:func:`to_csv`), and a run's tagged objects of one sample as a
QuPath GeoJSON whose classifications are the tags (:func:`objects_geojson`).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from cellbench.core import config
from cellbench.core.atomic import write_json_atomic
from cellbench.core.errors import CellbenchError, DataError
from cellbench.core.safety import read_json

#: Tags offered before any is made.
DEFAULT_TAGS = ("label error", "ambiguous", "model error", "check again")
#: Longest tag, in characters.
MAX_TAG = 60


def _path():
    return config.home() / "tags.json"


def load() -> dict[str, list[dict[str, Any]]]:
    """Every tag of the workspace (empty when there is no readable file)."""
    p = _path()
    try:
        doc = read_json(p) if p.is_file() else {}
    except DataError:
        return {"samples": [], "objects": []}
    doc = doc if isinstance(doc, dict) else {}
    return {
        k: [r for r in doc.get(k, []) if isinstance(r, dict) and isinstance(r.get("tag"), str)]
        for k in ("samples", "objects")
    }


def _save(doc: dict[str, Any]) -> None:
    p = _path()
    if p.is_file():
        try:
            read_json(p)
        except DataError:  # keep what could not be read, never overwrite it
            p.replace(p.with_name("tags.json.unreadable"))
    write_json_atomic(p, doc)


def clean(tag: str) -> str:
    """A tag as stored: stripped, one line, at most :data:`MAX_TAG` characters."""
    t = " ".join(str(tag).split())
    if not t:
        raise CellbenchError("a tag cannot be empty")
    if len(t) > MAX_TAG:
        raise CellbenchError(f"a tag has at most {MAX_TAG} characters: {t[:20]}...")
    return t


def sample_tags(dataset: str, sample_id: str) -> list[str]:
    return sorted(
        r["tag"]
        for r in load()["samples"]
        if r.get("dataset") == dataset and r.get("sample_id") == sample_id
    )


def set_sample_tags(dataset: str, sample_id: str, tags) -> None:
    """Replace the tags of one sample."""
    doc = load()
    keep = [
        r
        for r in doc["samples"]
        if not (r.get("dataset") == dataset and r.get("sample_id") == sample_id)
    ]
    new = [{"dataset": dataset, "sample_id": sample_id, "tag": clean(t)} for t in tags]
    _save({**doc, "samples": keep + new})


def object_tags(run_id: str, sample_id: str) -> list[dict[str, Any]]:
    return [
        r
        for r in load()["objects"]
        if r.get("run_id") == run_id and r.get("sample_id") == sample_id
    ]


def tag_object(dataset, sample_id, run_id, layer: str, object_id: int, tag: str) -> None:
    """Tag one object of a run's error view (the same tag twice is kept once)."""
    row = {
        "dataset": dataset,
        "sample_id": sample_id,
        "run_id": run_id,
        "layer": layer,
        "object_id": int(object_id),
        "tag": clean(tag),
    }
    doc = load()
    if row not in doc["objects"]:
        _save({**doc, "objects": [*doc["objects"], row]})


def untag_object(row: dict[str, Any]) -> None:
    doc = load()
    _save({**doc, "objects": [r for r in doc["objects"] if r != row]})


def known() -> list[str]:
    """Every tag in use, then the defaults."""
    doc = load()
    used = {r["tag"] for k in ("samples", "objects") for r in doc[k]}
    return sorted(used) + [t for t in DEFAULT_TAGS if t not in used]


def tagged_samples(dataset: str, tag: str) -> set[str]:
    """Samples of ``dataset`` carrying ``tag`` (on the sample or on one of its objects)."""
    doc = load()
    return {
        r["sample_id"]
        for k in ("samples", "objects")
        for r in doc[k]
        if r.get("dataset") == dataset and r["tag"] == tag
    }


def to_csv() -> str:
    """Every tag as CSV: ``kind, dataset, sample_id, run_id, layer, object_id, tag``."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["kind", "dataset", "sample_id", "run_id", "layer", "object_id", "tag"])
    doc = load()
    for r in doc["samples"]:
        w.writerow(["sample", r.get("dataset"), r.get("sample_id"), "", "", "", r["tag"]])
    for r in doc["objects"]:
        w.writerow(
            [
                "object",
                r.get("dataset"),
                r.get("sample_id"),
                r.get("run_id"),
                r.get("layer"),
                r.get("object_id"),
                r["tag"],
            ]
        )
    return buf.getvalue()


def objects_geojson(viewer_objects: list[dict[str, Any]], tags: list[dict[str, Any]]) -> dict:
    """The tagged objects among ``viewer_objects`` (:mod:`cellbench.viz.deepzoom`) as a QuPath
    FeatureCollection: one detection per (object, tag), classified by the tag, in the image's
    pixels; QuPath lists the tags as classes."""
    by_key = {(o["layer"], o["id"]): o for o in viewer_objects}
    feats = []
    for t in tags:
        o = by_key.get((t["layer"], t["object_id"]))
        if o is None:
            continue
        if "pt" in o:
            geom = {"type": "Point", "coordinates": o["pt"]}
        else:
            geom = {"type": "MultiPolygon", "coordinates": [[ring] for ring in o["poly"]]}
        feats.append(
            {
                "type": "Feature",
                "geometry": geom,
                "properties": {
                    "objectType": "detection",
                    "classification": {"name": t["tag"]},
                    "name": f"{t['layer']} {t['object_id']} ({o.get('cls') or 'unclassified'})",
                },
            }
        )
    return {"type": "FeatureCollection", "features": feats}
