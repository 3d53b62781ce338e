"""Polygons to instance maps.

Coordinates are ``(x, y)`` in pixels of the full-resolution image, x along columns. A pixel
belongs to a polygon when its centre lies inside (``skimage.draw.polygon``). Where polygons
overlap, the later polygon wins (the order of the annotation file), which is what the MoNuSeg and
HoVer-Net conversion scripts do.
"""

from __future__ import annotations

import numpy as np
from skimage.draw import polygon as _fill


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
