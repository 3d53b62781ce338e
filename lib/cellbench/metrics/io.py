"""Scoring stored predictions from any tool: folders of instance maps, Grand-Challenge points.

Used by ``cellbench score instances`` and ``cellbench score points``; results are plain
JSON-serialisable dicts (``preset``, ``per_image``, ``aggregate``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cellbench.core.errors import DataError
from cellbench.data.sample import Points
from cellbench.metrics.aggregate import aggregate_instances, aggregate_points
from cellbench.metrics.instance import instance_scores, parse_thresholds
from cellbench.metrics.points import point_scores
from cellbench.metrics.presets import get_preset


def score_instance_dirs(
    gt_dir: str | Path,
    pred_dir: str | Path,
    preset: str = "hovernet",
    iou: float | Sequence[float] | str = 0.5,
    progress: Callable[[int, int, str], None] | None = None,
    class_names: Mapping[str, int] | None = None,
    gt_pattern: str | None = None,
    pred_pattern: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Score same-named predictions of two folders, with classes where both sides have them.

    Files pair by stem as each tool names them (``<stem>.json``, ``<stem>_seg.npy``,
    ``<stem>_cp_masks.png``, ``<stem>.geojson.gz`` ...; :mod:`cellbench.data.predictions`), or
    by ``gt_pattern`` / ``pred_pattern`` such as ``"{stem}_label.png"``.

    Files of any form :func:`cellbench.data.predictions.read_prediction` reads: instance maps
    (with a ``<stem>_class`` class map), HoVer-Net ``.mat`` (``inst_map``, ``inst_type``),
    QuPath GeoJSON (classes by name through ``class_names``; the ground truth's size is taken
    from its own map, so a GeoJSON ground truth needs ``options['shape']``) and packed ``.npz``
    (overlapping objects too). With classes on both sides: per-class PQ, mPQ, bPQ and
    HoVer-Net's F_d / F_t; with classes in the ground truth only: F_d of the class-agnostic
    prediction. Every ground-truth stem needs a prediction (an empty map scores as "prediction
    only"). Returns ``{preset, iou, gt, pred, per_image: {stem: scores}, aggregate,
    unmatched_predictions}``.
    """
    from cellbench.data.predictions import prediction_files, read_prediction

    get_preset(preset, "instance")
    if preset == "pannuke" and (Path(gt_dir) / "masks.npy").is_file():
        from cellbench.metrics.pannuke import score_fold

        return score_fold(gt_dir, pred_dir)  # a PanNuke fold, scored as run.py does
    thrs = parse_thresholds(iou)
    shape = options.pop("shape", None)

    def class_id(path):
        def lookup(name: str) -> int:
            if class_names is None or name not in class_names:
                known = ", ".join(class_names or {}) or "none given (--classes)"
                raise DataError(path, f"unknown class name '{name}' (known: {known})")
            return int(class_names[name])

        return lookup

    gt = prediction_files(gt_dir, gt_pattern)
    pr = prediction_files(pred_dir, pred_pattern)
    pr.missing(gt)
    per_image = {}
    for k, stem in enumerate(gt):
        t, tc, _ = read_prediction(gt[stem], shape, class_id(gt[stem]))
        size = t.shape if hasattr(t, "layers") else t.shape[:2]
        p, pc, _ = read_prediction(pr[stem], size, class_id(pr[stem]))
        kw: dict[str, Any] = dict(options)
        if preset in ("monusac", "monusac_corrected"):
            from cellbench.data.predictions.maps import ambiguous_mask

            kw["ambiguous"] = ambiguous_mask(gt[stem])
        if tc is not None and pc is not None:
            kw.update(true_classes=tc, pred_classes=pc)
        elif tc is not None:
            kw["centroid_f1"] = True
        per_image[stem] = instance_scores(
            t, p, preset, iou=thrs, true_name=gt[stem], pred_name=pr[stem], **kw
        )
        if progress:
            progress(k + 1, len(gt), stem)
    return {
        "preset": preset,
        "iou": list(thrs),
        "gt": str(gt_dir),
        "pred": str(pred_dir),
        "per_image": per_image,
        "aggregate": aggregate_instances(per_image, preset),
        "unmatched_predictions": sorted(s for s in pr if s not in gt),
    }


def score_point_files(
    gt_json: str | Path,
    pred_json: str | Path,
    preset: str = "ocelot",
    *,
    radius_px: float | None = None,
    radius_um: float | None = None,
    mpp: float | None = None,
    image_size: tuple[int, int] | None = None,
    classes: Sequence[int] | None = None,
    order: str = "probability",
) -> dict[str, Any]:
    """Score two Grand-Challenge "Multiple points" files image by image.

    ``image_size`` (width, height) makes points outside the image an error; the ``ocelot``
    preset defaults to OCELOT's 1024 x 1024 patches and classes (1, 2).
    """
    from cellbench.data.readers.grand_challenge import check_points_inside, read_gc_points

    get_preset(preset, "points")
    if preset == "ocelot":
        image_size = image_size or (1024, 1024)
        classes = classes or (1, 2)
    gt = read_gc_points(gt_json)
    pr = read_gc_points(pred_json)
    extra = sorted(set(pr) - set(gt))
    if extra:
        raise DataError(
            pred_json, f"predictions for images absent from the ground truth: image_{extra[0]}"
        )
    if image_size:
        for k in gt:
            check_points_inside(gt[k], *image_size, Path(gt_json), f"image_{k}")
        for k in pr:
            check_points_inside(pr[k], *image_size, Path(pred_json), f"image_{k}")
    per_image = {}
    for k in sorted(gt):
        per_image[f"image_{k}"] = point_scores(
            gt[k],
            pr.get(k, Points.empty()),
            preset,
            radius_px=radius_px,
            radius_um=radius_um,
            mpp=mpp,
            classes=classes,
            order=order,
        )
    agg = aggregate_points(per_image, preset)
    return {
        "preset": preset,
        "radius_px": next(iter(per_image.values()))["radius_px"] if per_image else None,
        "order": order,
        "gt": str(gt_json),
        "pred": str(pred_json),
        "per_image": per_image,
        "aggregate": agg,
    }
