"""Seed 004's cell-tissue analyses: where the cells sit in the tissue, how the tissue divides,
and tissue segmentation scored per class.

- :func:`cell_tissue_counts` (seed 004 Table 3): the cells of each class inside each tissue
  class, with each cell class's share per tissue class ("93 % of TC lie in CA");
- :func:`tissue_pixel_ratios` (Table 4): the tissue classes' shares of the annotated pixels,
  pooled over the images;
- :func:`tissue_scores`: per-class IoU and mIoU of a tissue segmentation on the tissue field
  of view, pixel counts pooled over the images (the APACS23 convention,
  :mod:`cellbench.metrics.semantic`); an ``unknown`` label is left out of both masks' scoring.

A cell is placed in the tissue by its position in the cell patch mapped into the tissue
field: :func:`cell_window` places the cell patch from OCELOT's metadata (the cell patch's
centre as a fraction of the tissue field, ``patch_x_offset`` / ``patch_y_offset``, and the two
resolutions), and :func:`tissue_of_cells` reads the tissue label under each cell (nearest
tissue pixel). Where cells and tissue share one grid (PUMA's regions of interest) the window
is the whole field.

Units: cell coordinates in cell-patch pixels, ``(x, y)`` with pixel centres at integers;
tissue masks are integer label images.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import polars as pl


def cell_window(
    meta: Mapping, tissue_shape: tuple[int, int], cell_shape: tuple[int, int]
) -> tuple[float, float, float]:
    """``(x0, y0, scale)``: the cell patch's top-left corner in tissue pixels and the tissue
    pixels per cell pixel, from OCELOT-style metadata (``patch_x_offset`` /
    ``patch_y_offset``: the cell patch's centre as a fraction of the tissue field; ``mpp`` and
    ``tissue_mpp``, or the OCELOT ``cell`` / ``tissue`` ``resized_mpp_x``)."""
    try:
        ox, oy = float(meta["patch_x_offset"]), float(meta["patch_y_offset"])
        cell_mpp = meta.get("mpp") or meta["cell"]["resized_mpp_x"]
        tissue_mpp = meta.get("tissue_mpp") or meta["tissue"]["resized_mpp_x"]
        scale = float(cell_mpp) / float(tissue_mpp)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
        raise ValueError(
            "the cell patch's place needs patch_x_offset / patch_y_offset and both mpps"
        ) from e
    th, tw = tissue_shape
    h, w = cell_shape
    return ox * tw - w * scale / 2, oy * th - h * scale / 2, scale


def tissue_of_cells(
    xy: np.ndarray, tissue: np.ndarray, window: tuple[float, float, float] = (0.0, 0.0, 1.0)
) -> np.ndarray:
    """The tissue label under each cell ``(n, 2)`` ``(x, y)`` in cell-patch pixels; the cell
    patch lies in ``tissue`` at ``window`` (:func:`cell_window`; default: the same grid).
    Cells mapped outside the tissue field take the nearest edge pixel."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    x0, y0, s = window
    th, tw = tissue.shape
    cols = np.clip(np.floor(x0 + (xy[:, 0] + 0.5) * s).astype(int), 0, tw - 1)
    rows = np.clip(np.floor(y0 + (xy[:, 1] + 0.5) * s).astype(int), 0, th - 1)
    return tissue[rows, cols]


def cell_tissue_counts(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    cell_names: Mapping[int, str],
    tissue_names: Mapping[int, str],
) -> pl.DataFrame:
    """Seed 004 Table 3: cells of each class per tissue class, pooled over images.

    ``pairs``: per image ``(cell classes (n,), tissue labels under the cells (n,))``. Returns
    rows ``cell, tissue, cells, share`` (share: of that cell class's cells, in [0, 1]); every
    named cell and tissue class appears (0 where none), tissue labels without a name are
    counted as ``other``."""
    counts: dict[tuple[str, str], int] = {}
    for cls, tis in pairs:
        cls = np.asarray(cls).astype(np.int64)
        tis = np.asarray(tis).astype(np.int64)
        for c, t in zip(cls.tolist(), tis.tolist(), strict=True):
            key = (cell_names.get(c, f"class {c}"), tissue_names.get(t, "other"))
            counts[key] = counts.get(key, 0) + 1
    cells = [*cell_names.values(), *sorted({c for c, _ in counts} - set(cell_names.values()))]
    tissues = [*tissue_names.values()]
    if any(t == "other" for _, t in counts) and "other" not in tissues:
        tissues.append("other")
    rows = [(c, t, counts.get((c, t), 0)) for c in cells for t in tissues]
    df = pl.DataFrame(rows, schema=["cell", "tissue", "cells"], orient="row")
    total = pl.col("cells").sum().over("cell")
    return df.with_columns(
        pl.when(total > 0).then(pl.col("cells") / total).otherwise(None).alias("share")
    )


def tissue_pixel_ratios(
    masks: Iterable[np.ndarray], tissue_names: Mapping[int, str], unknown: int | None = None
) -> pl.DataFrame:
    """Seed 004 Table 4: each tissue class's share of the pixels, pooled over ``masks``.

    Rows ``tissue, pixels, ratio`` for every named class (labels without a name count as
    ``other``); ``unknown`` pixels are listed as ``unknown`` and kept in the total, as the
    paper's BG 55.77 % + CA 40.17 % + UNK 4.06 % (its "non-CA" 59.83 % holds the unknown)."""
    total: dict[int, int] = {}
    for m in masks:
        v, n = np.unique(np.asarray(m), return_counts=True)
        for a, b in zip(v.tolist(), n.tolist(), strict=True):
            total[a] = total.get(a, 0) + b
    grand = sum(total.values())
    rows = []
    for label, name in tissue_names.items():
        rows.append((name, total.pop(label, 0)))
    unk = total.pop(unknown, 0) if unknown is not None else 0
    if total:
        rows.append(("other", sum(total.values())))
    if unknown is not None:
        rows.append(("unknown", unk))
    df = pl.DataFrame(rows, schema=["tissue", "pixels"], orient="row")
    return df.with_columns((pl.col("pixels") / grand if grand else pl.lit(None)).alias("ratio"))


def tissue_scores(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    classes: Sequence[int],
    unknown: int | None = None,
) -> dict:
    """Per-class IoU and mIoU of tissue segmentations, pixel counts pooled over the images.

    ``pairs``: per image ``(true labels, predicted labels)`` of one shape (the tissue field of
    view). ``classes``: the tissue classes scored (e.g. OCELOT BG 1, CA 2); ``unknown``: a
    true label whose pixels are not scored. Returns ``per_class`` ``{c: {tp, fp, fn, iou}}``
    (None where the class is in neither), ``miou`` (mean over the classes with a value) and
    ``n_images``."""
    from cellbench.metrics.semantic import semantic_scores

    sums = {int(c): {"tp": 0, "fp": 0, "fn": 0} for c in classes}
    n = 0
    for true, pred in pairs:
        true = np.asarray(true)
        pred = np.asarray(pred)
        valid = None if unknown is None else true != unknown
        r = semantic_scores(true, pred, classes=list(sums), valid=valid)
        for c, v in r["per_class"].items():
            for k in ("tp", "fp", "fn"):
                sums[int(c)][k] += int(v[k])
        n += 1
    per_class = {}
    for c, s in sums.items():
        den = s["tp"] + s["fp"] + s["fn"]
        per_class[c] = {**s, "iou": s["tp"] / den if den else None}
    vals = [v["iou"] for v in per_class.values() if v["iou"] is not None]
    return {"per_class": per_class, "miou": float(np.mean(vals)) if vals else None, "n_images": n}
