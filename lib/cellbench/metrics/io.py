"""Scoring stored predictions from any tool: folders of instance maps, Grand-Challenge points.

Used by ``cellbench score instances`` and ``cellbench score points``; results are plain
JSON-serialisable dicts (``preset``, ``per_image``, ``aggregate``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core.errors import DataError
from cellbench.data.imageio import read_label_array
from cellbench.data.sample import Points
from cellbench.metrics.aggregate import aggregate_instances, aggregate_points
from cellbench.metrics.instance import instance_scores, parse_thresholds
from cellbench.metrics.overlap import check_label_map
from cellbench.metrics.points import point_scores
from cellbench.metrics.presets import get_preset

INSTANCE_SUFFIXES = (".npy", ".png", ".tif", ".tiff")


def read_instance_map(path: str | Path) -> np.ndarray:
    """Read an instance map (``.npy``, ``.png``, ``.tif``) without converting its dtype.

    Float, boolean, NaN or non-2-D content raises :class:`DataError` naming the file.
    """
    return check_label_map(read_label_array(path), Path(path))


def instance_files(folder: str | Path) -> dict[str, Path]:
    """``{stem: path}`` of the instance maps in a folder (one file per stem)."""
    d = Path(folder)
    if not d.is_dir():
        raise DataError(d, "not a folder")
    out: dict[str, Path] = {}
    for f in sorted(d.iterdir()):
        if f.suffix.lower() in INSTANCE_SUFFIXES and f.is_file():
            if f.stem in out:
                raise DataError(f, f"two instance maps for '{f.stem}' ({out[f.stem].name})")
            out[f.stem] = f
    if not out:
        raise DataError(d, f"no instance maps ({', '.join(INSTANCE_SUFFIXES)})")
    return out


def score_instance_dirs(
    gt_dir: str | Path,
    pred_dir: str | Path,
    preset: str = "hovernet",
    iou: float | Sequence[float] | str = 0.5,
    progress: Callable[[int, int, str], None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Score same-named instance maps of two folders.

    Every ground-truth stem needs a prediction (an empty map scores as "prediction only").
    Returns ``{preset, iou, gt, pred, per_image: {stem: scores}, aggregate,
    unmatched_predictions}``.
    """
    get_preset(preset, "instance")
    thrs = parse_thresholds(iou)
    gt = instance_files(gt_dir)
    pr = instance_files(pred_dir)
    missing = [s for s in gt if s not in pr]
    if missing:
        raise DataError(
            pred_dir,
            f"no prediction for {len(missing)} of {len(gt)} images: {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else ""),
        )
    per_image = {}
    for k, stem in enumerate(gt):
        t = read_instance_map(gt[stem])
        p = read_instance_map(pr[stem])
        per_image[stem] = instance_scores(
            t, p, preset, iou=thrs, true_name=gt[stem], pred_name=pr[stem], **options
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
