"""What the deep-zoom viewer overlays (:mod:`cellbench.app.tiles`): objects as plain dicts.

Each object is ``{"id", "layer", "cls", "color", "poly" | "pt" (+ "r"), "props"}`` in level-0
pixels of the image shown (``poly``: the exterior ring of each polygon part, ``[[x, y], ...]``;
``pt``: a point's ``[x, y]``); ``props`` are what a click shows: the probability where the
model gave one, the area (px, and µm² with the image's mpp), the perimeter, the matched IoU
of a true positive, and QuPath's own measurements for objects read from GeoJSON. Pixel
instances are traced along their pixel edges (:func:`cellbench.data.rasterize.
instance_geometries`, the frame QuPath uses), so an outline sits on the pixels it encloses.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cellbench.viz.overlay import ERROR_COLORS, class_colors, hex_color

#: Layers of an error view, their colours ("" = each object's class colour) and which start
#: hidden (the TP / FP / FN layers are the review; the raw layers are one click away).
ERROR_LAYERS = {
    "TP": ERROR_COLORS["TP"],
    "FP": ERROR_COLORS["FP"],
    "FN": ERROR_COLORS["FN"],
    "ground truth": "",
    "prediction": "",
}
ERROR_HIDDEN = ["ground truth", "prediction"]


def _rings(geom) -> list[list[list[float]]]:
    parts = getattr(geom, "geoms", [geom])
    return [
        [[round(x, 2), round(y, 2)] for x, y in p.exterior.coords]
        for p in parts
        if p.geom_type == "Polygon" and not p.is_empty
    ]


def _shape_props(geom, mpp: float | None) -> dict[str, float]:
    out = {"area (px)": float(geom.area), "perimeter (px)": float(geom.length)}
    if mpp:
        out["area (µm²)"] = float(geom.area) * mpp * mpp
        out["perimeter (µm)"] = float(geom.length) * mpp
    return out


def instance_objects(
    labels,
    layer: str,
    classes: dict[int, int] | None = None,
    scores: dict[int, float] | None = None,
    class_info: list | None = None,
    mpp: float | None = None,
    ids=None,
    extra: dict[int, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The instances of a label map (or :class:`~cellbench.data.sample.Objects`) as viewer
    objects of ``layer``; ``ids``: only these; ``classes`` ``{id: class id}`` named and
    coloured by ``class_info`` (the dataset's or card's classes); ``scores`` ``{id: prob}``;
    ``extra`` ``{id: {prop: value}}`` added to what a click shows."""
    from cellbench.data.rasterize import instance_geometries

    names = {c.id: c.name for c in class_info or []}
    colors = {k: hex_color(v) for k, v in class_colors(class_info or []).items()}
    want = None if ids is None else {int(i) for i in np.asarray(ids).ravel()}
    out = []
    for i, geom in instance_geometries(labels).items():
        if want is not None and i not in want:
            continue
        c = None if classes is None else classes.get(i)
        props = _shape_props(geom, mpp)
        if scores and i in scores:
            props = {"probability": float(scores[i]), **props}
        props.update((extra or {}).get(i, {}))
        out.append(
            {
                "id": i,
                "layer": layer,
                "cls": names.get(c, None if c is None else f"class {c}"),
                "color": colors.get(c),
                "poly": _rings(geom),
                "props": props,
            }
        )
    return out


def point_objects(
    points, layer: str, class_info: list | None = None, index=None, radius: float = 5.0
) -> list[dict[str, Any]]:
    """Points (:class:`~cellbench.data.sample.Points`) as viewer discs; ``index``: only
    these rows."""
    names = {c.id: c.name for c in class_info or []}
    colors = {k: hex_color(v) for k, v in class_colors(class_info or []).items()}
    rows = range(len(points)) if index is None else [int(k) for k in np.asarray(index).ravel()]
    out = []
    for k in rows:
        c = int(points.cls[k])
        out.append(
            {
                "id": k,
                "layer": layer,
                "cls": names.get(c, f"class {c}"),
                "color": colors.get(c),
                "pt": [float(points.xy[k, 0]), float(points.xy[k, 1])],
                "r": radius,
                "props": {"probability": float(points.score[k])},
            }
        )
    return out


def qupath_objects(objects, layer: str = "objects", mpp: float | None = None) -> list[dict]:
    """QuPath objects (:func:`cellbench.viz.slide.read_objects`) as viewer objects: their
    class, QuPath colour and measurements."""
    out = []
    for k, o in enumerate(objects):
        g = o.geometry
        if g is None or g.is_empty:
            continue
        base = {
            "id": o.name or o.object_id or k,
            "layer": layer,
            "cls": o.class_name,
            "color": hex_color(o.color) if o.color else None,
        }
        props = {**_shape_props(g, mpp), **dict(o.measurements)}
        if g.geom_type == "Point":
            out.append({**base, "pt": [g.x, g.y], "r": 5.0, "props": props})
        elif g.geom_type in ("Polygon", "MultiPolygon"):
            out.append({**base, "poly": _rings(g), "props": props})
    return out


def sample_objects(sample, class_info: list | None = None) -> list[dict[str, Any]]:
    """A sample's ground truth as viewer objects (layer ``ground truth``): its instances in
    their classes, or its points."""
    mpp = sample.meta.get("mpp")
    out: list[dict[str, Any]] = []
    if sample.truth is not None:
        out += instance_objects(sample.truth, "ground truth", sample.classes, None, class_info, mpp)
    if sample.points is not None:
        out += point_objects(sample.points, "ground truth", class_info)
    return out


def error_objects(run: dict[str, Any], sample_id: str, catalog=None, store=None):
    """The objects of one sample of a stored run, as the metrics engine matched them.

    Returns ``(image, objects, note)``: the sample's pixels (a grey canvas for point-only
    samples), the ground truth and prediction layers and the TP / FP / FN layers
    (:data:`ERROR_LAYERS`; a true positive shows its matched IoU), and how they were matched.
    Needs the run's prediction at hand (:func:`cellbench.viz.review.prediction_ready`).
    """
    from cellbench.data.sample import Points
    from cellbench.metrics.errors import instance_errors, point_errors
    from cellbench.metrics.instance import parse_thresholds
    from cellbench.runs.evaluate import centroid_points, within_region
    from cellbench.viz.overlay import canvas
    from cellbench.viz.review import run_prediction

    sample, pred, ev = run_prediction(run, sample_id, catalog, store)
    info = ev.dataset.classes
    mpp = sample.meta.get("mpp")
    if sample.annotated_region is not None:
        pred = within_region(pred, sample.annotated_region)
    if ev.task == "instances":
        labels, classes, scores = pred
        err = instance_errors(sample.truth, labels, ev.preset, ev.spec.iou)
        iou = {int(p): {"IoU": float(v)} for p, v in zip(err.tp_pred, err.tp_iou, strict=True)}
        tc = sample.classes

        def inst(lab, layer, cls, sc, ids=None, extra=None):
            return instance_objects(lab, layer, cls, sc, info, mpp, ids, extra)

        objs = (
            inst(labels, "TP", classes, scores, err.tp_pred, iou)
            + inst(labels, "FP", classes, scores, err.fp)
            + inst(sample.truth, "FN", tc, None, err.fn)
            + inst(sample.truth, "ground truth", tc, None)
            + inst(labels, "prediction", classes, scores)
        )
        thr = parse_thresholds(ev.spec.iou)[0]
        note = f"preset {ev.preset}, IoU {'>=' if ev.preset == 'stardist' else '>'} {thr}"
        return canvas(sample), objs, note
    pts = pred if isinstance(pred, Points) else centroid_points(*pred)
    gt = sample.points if sample.points is not None else Points.empty()
    kw = {}
    if ev.spec.radius_um is not None:
        kw = {"radius_um": ev.spec.radius_um, "mpp": mpp}
    err = point_errors(gt, pts, ev.preset, **kw)
    objs = (
        point_objects(pts, "TP", info, err.tp_pred)
        + point_objects(pts, "FP", info, err.fp)
        + point_objects(gt, "FN", info, err.fn)
        + point_objects(gt, "ground truth", info)
        + point_objects(pts, "prediction", info)
    )
    note = f"preset {ev.preset}, radius {err.extra['radius_px']:.1f} px, same class only"
    return canvas(sample), objs, note
