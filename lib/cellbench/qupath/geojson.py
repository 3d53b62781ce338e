"""QuPath interoperability: GeoJSON that current QuPath imports by drag-and-drop.

Written objects (``shared/DESIGN.md`` §7):

- one ``detection`` per nucleus (``objectType``), its geometry tracing the nucleus's pixel
  edges in QuPath's frame (pixel ``(x, y)`` covers ``[x, x + 1) x [y, y + 1)``), so reading
  the file back (:func:`cellbench.data.readers.qupath_geojson.objects_to_annotations`) gives the
  same pixels; holes are kept, split nuclei become MultiPolygons;
- ``classification: {name, color: [r, g, b]}`` from the dataset's classes (``TP``/``FP``/``FN``
  for error review);
- ``measurements`` as a mapping: ``Area px^2`` (full-resolution slide pixels), ``Area um^2``
  (from the sample's mpp, when known), and where
  known ``Score`` (mean foreground probability) and ``Matched IoU``;
- whole cells with their nuclei (ISBI 2014 synthetic cells): one ``cell`` per cell, its
  ``nucleusGeometry`` the nucleus it holds (the nucleus overlapping it most), as QuPath writes
  cells;
- coordinates rounded to 2 decimals, as QuPath writes them (pixel edges stay integers);
- point annotations (OCELOT-style datasets): one ``annotation`` MultiPoint per class, as QuPath's
  points tool exports them;
- ``offset`` / ``downsample`` put a region of a slide into the slide's full-resolution frame:
  ``x_slide = offset_x + downsample * x``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping

from cellbench.core.atomic import write_bytes_atomic
from cellbench.data.rasterize import crops as _crops
from cellbench.data.rasterize import instance_geometries
from cellbench.data.sample import Objects
from cellbench.viz.overlay import ERROR_COLORS, PALETTE, rgb


def _transform(geom, offset: tuple[float, float], downsample: float):
    """The geometry in the slide's frame, coordinates rounded to 2 decimals (QuPath's)."""
    return shapely.transform(
        geom, lambda xy: np.round(xy * downsample + np.asarray(offset, np.float64), 2)
    )


def nucleus_of_each(cells: np.ndarray | Objects, nuclei: np.ndarray) -> dict[int, int]:
    """``{cell id: nucleus id}``: the nucleus (instance map ``nuclei``) overlapping each cell
    most; cells over no nucleus are left out."""
    out = {}
    nuc = np.asarray(nuclei)
    for i, r0, c0, m in _crops(cells):
        ids = nuc[r0 : r0 + m.shape[0], c0 : c0 + m.shape[1]][m]
        ids = ids[ids > 0]
        if ids.size:
            vals, counts = np.unique(ids, return_counts=True)
            out[i] = int(vals[np.argmax(counts)])
    return out


def _classification(name: str, color) -> dict[str, Any]:
    return {"name": name, "color": list(rgb(color))}


def detection_features(
    labels: np.ndarray | Objects,
    classes: Mapping[int, int] | None = None,
    class_defs=None,
    names: Mapping[int, str] | None = None,
    measurements: Mapping[int, Mapping[str, float]] | None = None,
    mpp: float | None = None,
    offset: tuple[float, float] = (0, 0),
    downsample: float = 1.0,
    object_type: str = "detection",
    nuclei: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """One GeoJSON Feature per instance of ``labels`` (ids in increasing order).

    ``classes`` maps instance id to class id, named and coloured by ``class_defs`` (catalog
    classes); ``names`` maps instance id straight to a class name (e.g. ``TP``), coloured by
    :data:`~cellbench.viz.overlay.ERROR_COLORS` where it is one of those. With ``nuclei`` (an
    instance map of the nuclei of whole cells ``labels``), each instance is a QuPath ``cell``
    with its nucleus as ``nucleusGeometry``.
    """
    defs = {c.id: c for c in (class_defs or [])}
    feats = []
    inner: dict[int, Any] = {}
    if nuclei is not None:
        of = nucleus_of_each(labels, nuclei)
        nuc_geoms = instance_geometries(np.asarray(nuclei))
        inner = {i: nuc_geoms[n] for i, n in of.items() if n in nuc_geoms}
    for i, geom in instance_geometries(labels).items():
        props: dict[str, Any] = {
            "objectType": "cell" if nuclei is not None else object_type,
            "isLocked": False,
        }
        if i in inner:
            props["nucleusGeometry"] = mapping(_transform(inner[i], offset, downsample))
        name = None
        color = None
        if names is not None and i in names:
            name = names[i]
            color = ERROR_COLORS.get(name, PALETTE[0])
        elif classes is not None and classes.get(i) in defs:
            c = defs[classes[i]]
            name = c.name
            color = c.color or PALETTE[(list(defs).index(c.id)) % len(PALETTE)]
        if name is not None:
            props["classification"] = _classification(name, color)
        area = float(geom.area)
        meas = {"Area px^2": area * downsample**2}
        if mpp:
            meas["Area um^2"] = area * mpp**2  # mpp of the sample's own pixels
        meas.update((measurements or {}).get(i, {}))
        props["measurements"] = meas
        feats.append(
            {
                "type": "Feature",
                "id": str(uuid.uuid4()),
                "geometry": mapping(_transform(geom, offset, downsample)),
                "properties": props,
            }
        )
    return feats


def point_features(
    points,
    class_defs=None,
    offset=(0, 0),
    downsample: float = 1.0,
    names: Mapping[int, str] | None = None,
) -> list[dict[str, Any]]:
    """One ``annotation`` MultiPoint per class of ``points`` (a :class:`Points`).

    ``names`` (class id -> name) overrides the catalog class names. Points are stored at pixel
    centres in QuPath's frame (``x + 0.5``).
    """
    defs = {c.id: c for c in (class_defs or [])}
    feats = []
    for c in np.unique(points.cls):
        xy = points.xy[points.cls == c] + 0.5
        xy = xy * downsample + np.asarray(offset)
        props: dict[str, Any] = {"objectType": "annotation", "isLocked": False}
        name = (names or {}).get(int(c)) or (defs[int(c)].name if int(c) in defs else None)
        if name is not None:
            color = ERROR_COLORS.get(name) or (defs[int(c)].color if int(c) in defs else None)
            props["classification"] = _classification(name, color or PALETTE[int(c) % 12])
        feats.append(
            {
                "type": "Feature",
                "id": str(uuid.uuid4()),
                "geometry": {"type": "MultiPoint", "coordinates": xy.tolist()},
                "properties": props,
            }
        )
    return feats


def write_geojson(features: list[dict[str, Any]], path: str | Path) -> Path:
    """Write a FeatureCollection atomically."""
    doc = {"type": "FeatureCollection", "features": features}
    return write_bytes_atomic(path, json.dumps(doc, allow_nan=False).encode("utf-8"))


def sample_features(
    catalog,
    dataset_id: str,
    sample_id: str,
    what: str = "gt",
    run: Mapping[str, Any] | None = None,
    store=None,
) -> list[dict[str, Any]]:
    """QuPath features of one sample: ground truth, a run's prediction, or its errors.

    ``what`` = ``gt`` | ``pred`` | ``errors`` (the last two need ``run``, a run record). A
    sample that is a region of a slide (metadata ``x``/``y``/``downsample``) is written in the
    slide's full-resolution frame.
    """
    from cellbench.data.samples import load_sample

    if what not in ("gt", "pred", "errors"):
        raise ValueError(f"unknown object set '{what}' (gt, pred, errors)")
    ds = catalog.get(dataset_id)
    if what != "gt":
        if run is None:
            raise ValueError(f"'{what}' needs a run")
        from cellbench.viz.review import run_prediction

        sample, pred, ev = run_prediction(dict(run), sample_id, catalog, store)
    else:
        sample, pred, ev = load_sample(catalog, dataset_id, sample_id), None, None
    meta = sample.meta
    frame = {
        "offset": (float(meta.get("x") or 0), float(meta.get("y") or 0)),
        "downsample": float(meta.get("downsample") or 1.0),
    }
    mpp = meta.get("mpp")
    from cellbench.data.sample import Points

    def with_default(labels, classes):
        """Single-class datasets: every nucleus gets the dataset's one class."""
        if classes is None and len(ds.classes) == 1:
            ids = labels.ids if isinstance(labels, Objects) else np.unique(labels)
            return {int(i): ds.classes[0].id for i in ids if i}
        return classes

    if what == "gt":
        feats = []
        if sample.truth is not None:
            classes = with_default(sample.truth, sample.classes)
            feats = detection_features(
                sample.truth, classes, ds.classes, mpp=mpp, nuclei=sample.nuclei, **frame
            )
        if sample.points is not None and len(sample.points):  # points too, not instead
            feats += point_features(sample.points, ds.classes, **frame)
        return feats
    if isinstance(pred, Points):
        if what == "pred":
            return point_features(pred, ds.classes, **frame)
        from cellbench.metrics.errors import point_errors

        gt = sample.points or Points.empty()
        err = point_errors(gt, pred, ev.preset)
        tagged = Points(
            np.concatenate([pred.xy[err.tp_pred], pred.xy[err.fp], gt.xy[err.fn]]),
            [1] * len(err.tp_pred) + [2] * len(err.fp) + [3] * len(err.fn),
            np.ones(len(err.tp_pred) + len(err.fp) + len(err.fn)),
        )
        return point_features(tagged, names={1: "TP", 2: "FP", 3: "FN"}, **frame)
    labels, classes, scores = pred
    if what == "pred":
        meas = {i: {"Score": float(s)} for i, s in (scores or {}).items()}
        classes = with_default(labels, classes)
        return detection_features(labels, classes, ds.classes, measurements=meas, mpp=mpp, **frame)
    from cellbench.metrics.errors import instance_errors

    truth = sample.truth
    err = instance_errors(truth, labels, ev.preset, ev.spec.iou)
    names = {int(i): "TP" for i in err.tp_pred} | {int(i): "FP" for i in err.fp}
    meas = {int(p): {"Matched IoU": float(v)} for p, v in zip(err.tp_pred, err.tp_iou, strict=True)}
    feats = detection_features(labels, names=names, measurements=meas, mpp=mpp, **frame)
    if isinstance(truth, Objects):
        fn_map = truth.select(err.fn)
    else:
        fn_map = np.where(np.isin(truth, err.fn), truth, 0)
    fn_names = {int(i): "FN" for i in err.fn}
    return feats + detection_features(fn_map, names=fn_names, mpp=mpp, **frame)


def prediction_geojson(path: str | Path, shape: tuple[int, int]) -> dict[str, Any]:
    """Any prediction file :mod:`cellbench.data.predictions` reads (HoVer-Net / CellViT /
    HistomicsTK / TIAToolbox JSON, Cellpose outputs, ASAP XML, a TIAToolbox store, label
    images) as a QuPath FeatureCollection: one detection per object, classified by the
    file's class names (integer types as ``type N``), its probability as a measurement."""
    from cellbench.data.predictions import read_prediction

    names: dict[str, int] = {}  # a file's class names, numbered far from integer types
    inst, classes, scores = read_prediction(
        Path(path), shape, lambda n: names.setdefault(n, len(names) + 1_000_001)
    )
    by_id = {v: k for k, v in names.items()}
    label = {i: by_id.get(c) or f"type {c}" for i, c in (classes or {}).items() if c}
    meas = {i: {"Probability": float(v)} for i, v in (scores or {}).items()}
    feats = detection_features(inst, names=label, measurements=meas)
    return json.loads(json.dumps({"type": "FeatureCollection", "features": feats}))


def import_prediction(path: str | Path, image: str | Path, dataset_id: str, **kw: Any):
    """:func:`cellbench.data.user_data.import_qupath` for QuPath GeoJSON or any other tool's
    prediction file (converted by :func:`prediction_geojson` first)."""
    import tempfile

    from cellbench.data.imageio import image_size
    from cellbench.data.predictions import split_name
    from cellbench.data.user_data import import_qupath

    p = Path(path)
    found = split_name(p)
    is_geojson = found is not None and found[1].name == "geojson"
    if found is None or is_geojson or p.suffix.lower() == ".json" and _is_geojson_file(p):
        return import_qupath(p, image, dataset_id, **kw)
    width, height = image_size(image)
    doc = prediction_geojson(p, (height, width))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d) / f"{Path(image).stem}.geojson"
        tmp.write_text(json.dumps(doc, allow_nan=False))
        return import_qupath(tmp, image, dataset_id, **kw)


def _is_geojson_file(path: Path) -> bool:
    from cellbench.core.safety import read_json
    from cellbench.data.predictions.geojson import is_geojson

    return is_geojson(read_json(path, "JSON", constants=True))
