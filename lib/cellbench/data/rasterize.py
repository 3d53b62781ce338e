"""Polygons to instance maps, and instance maps to polygons.

Coordinates are ``(x, y)`` in pixels of the full-resolution image, x along columns. A pixel
belongs to a polygon when its centre lies inside (``skimage.draw.polygon``). Where polygons
overlap, the later polygon wins (the order of the annotation file), which is what the MoNuSeg and
HoVer-Net conversion scripts do.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from skimage.draw import polygon as _fill

from cellbench.data.sample import Objects


def is_degenerate(xy: np.ndarray) -> bool:
    """True for polygons that cannot enclose a pixel: < 3 vertices or zero area.

    A non-zero shoelace area implies at least three distinct, non-collinear vertices.
    """
    if len(xy) < 3:
        return True
    x, y = xy[:, 0], xy[:, 1]
    area2 = np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))
    return abs(area2) == 0.0


def polygons_to_instances(
    polygons: list[np.ndarray], shape: tuple[int, int], ids: list[int] | None = None
) -> np.ndarray:
    """Rasterise polygons into an ``int32`` instance map of ``shape = (H, W)``.

    Parameters
    ----------
    polygons
        One ``(K, 2)`` array of ``(x, y)`` vertices per object, in pixels.
    shape
        ``(height, width)`` of the output.
    ids
        Instance id of each polygon (default ``1..N``). Degenerate polygons and polygons that
        cover no pixel centre are absent from the map.
    """
    out = np.zeros(shape, dtype=np.int32)
    if ids is None:
        ids = list(range(1, len(polygons) + 1))
    for xy, i in zip(polygons, ids, strict=True):
        if len(xy) < 3:
            continue
        rr, cc = _fill(xy[:, 1], xy[:, 0], shape=shape)
        out[rr, cc] = i
    return out


def crops(labels: np.ndarray | Objects):
    """``(id, row0, col0, mask crop)`` of every instance of a map or of overlapping objects."""
    if isinstance(labels, Objects):
        for i, (r0, c0, _, _), m in zip(labels.ids, labels.boxes, labels.masks, strict=True):
            yield int(i), int(r0), int(c0), m
        return
    from scipy import ndimage as ndi  # ~0.1 s to import: only where crops are cut

    lab = np.asarray(labels)
    for k, sl in enumerate(ndi.find_objects(lab)):
        if sl is not None:
            yield k + 1, sl[0].start, sl[1].start, lab[sl] == k + 1


def instance_geometries(labels: np.ndarray | Objects) -> dict[int, Any]:
    """``{id: shapely (Multi)Polygon}`` tracing each instance's pixel edges (QuPath frame).

    Each instance is the union of its row runs as rectangles; collinear vertices are removed.
    ``labels`` may be :class:`~cellbench.data.sample.Objects` (overlapping objects each get
    their own polygon, so they overlap in QuPath too).
    """
    out: dict[int, Any] = {}
    for i, r0, c0, m in crops(labels):
        pad = np.zeros((m.shape[0], m.shape[1] + 2), np.int8)
        pad[:, 1:-1] = m
        d = np.diff(pad, axis=1)
        rs, cs = np.nonzero(d == 1)
        _, ce = np.nonzero(d == -1)  # same order: row-major, starts and ends alternate per row
        boxes = shapely.box(c0 + cs, r0 + rs, c0 + ce, r0 + rs + 1)
        geom = shapely.union_all(boxes)
        out[i] = shapely.simplify(geom, 0)
    return out
