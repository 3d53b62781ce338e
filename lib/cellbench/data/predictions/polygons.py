"""Polygon objects of other tools, rasterised under the pixel convention of the tool that wrote
them.

Two conventions exist and a tool's polygons are only pixel-exact under its own:

- ``"centre"``: vertices are the centres of an object's boundary pixels, as OpenCV's
  ``findContours`` returns them (HoVer-Net, CellViT, Cellpose outlines, TIAToolbox). The object
  is every pixel inside the polygon *or on its edges* (what ``cv2.drawContours(..., FILLED)``
  paints), so the outer contour of a hole-free object gives it back exactly. A hole ring (a
  contour of the object's pixels around the hole) removes the pixels strictly inside it.
- ``"edge"``: vertices lie on pixel corners, pixel ``(x, y)`` spanning ``[x, x + 1)`` (QuPath,
  and the assumption made for HistomicsTK / DSA and ASAP). A pixel belongs when its centre lies
  inside.

Objects are rasterised one by one on their own crop, so overlapping objects stay separate
(:class:`~cellbench.data.sample.Objects`); a prediction without overlaps comes back as a map.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import check_count, check_placement, limits
from cellbench.data.sample import Objects

CONVENTIONS = ("centre", "edge")


@dataclass
class PolyObject:
    """One object: ``rings[0]`` the exterior, the others holes, each ``(K, 2)`` ``(x, y)``
    pixels; ``cls`` a dataset class id, or a name mapped later; ``score`` in [0, 1] or None."""

    rings: list[np.ndarray]
    cls: int | str | None = None
    score: float | None = None


class VertexBudget:
    """Counts vertices per object and per file against the limits: totals, not per ring, so a
    MultiPolygon of a million tiny rings is refused as one object. One object holds at most
    ``max_vertices`` vertices over all its rings; one file at most ``500 * max_vertices``
    (50 M at the default: a whole slide of ~1 M nuclei at ~40 vertices each)."""

    def __init__(self, path: Path):
        lim = limits()
        self.path = path
        self.per_object = lim.max_vertices
        self.per_file = lim.max_vertices * 500  # 50 M vertices at the default
        self.total = 0

    def ring(self, coords, where: str, taken: int = 0) -> np.ndarray:
        """``coords`` as a finite ``(K, 2)`` float array, counted; ``taken``: vertices already
        counted for the same object."""
        n = len(coords) if hasattr(coords, "__len__") else 0
        if taken + n > self.per_object:
            raise DataError(
                self.path,
                f"{where}: {taken + n} vertices in one object, over the {self.per_object} "
                "limit (CELLBENCH_MAX_VERTICES)",
            )
        self.total += n
        if self.total > self.per_file:
            raise DataError(
                self.path,
                f"more than {self.per_file} vertices in the file (500 x CELLBENCH_MAX_VERTICES)",
            )
        try:
            xy = np.asarray(coords, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(self.path, f"{where}: coordinates are not numbers") from None
        if xy.ndim == 3 and xy.shape[1] == 1:  # OpenCV's (K, 1, 2)
            xy = xy[:, 0]
        if xy.ndim != 2 or (len(xy) and xy.shape[1] not in (2, 3)):
            raise DataError(self.path, f"{where}: expected a list of (x, y) positions")
        xy = xy[:, :2].reshape(-1, 2)
        if not np.isfinite(xy).all():
            raise DataError(self.path, f"{where}: non-finite (NaN or infinite) coordinates")
        return xy


def _perimeter(ring: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixels on the closed polyline through ``ring`` (vertices rounded to pixel centres),
    inside ``shape``: what OpenCV draws between consecutive contour points."""
    from skimage.draw import line as _line  # here: imports of the predictions package stay light

    v = np.rint(ring).astype(np.int64)
    rr, cc = [], []
    for (c0, r0), (c1, r1) in zip(v, np.roll(v, -1, axis=0), strict=True):
        r, c = _line(int(r0), int(c0), int(r1), int(c1))
        rr.append(r)
        cc.append(c)
    r, c = np.concatenate(rr), np.concatenate(cc)
    ok = (r >= 0) & (r < shape[0]) & (c >= 0) & (c < shape[1])
    return r[ok], c[ok]


def _paint(mask: np.ndarray, ring: np.ndarray, convention: str, value: bool) -> None:
    from skimage.draw import polygon as _fill

    if convention == "edge":
        rr, cc = _fill(ring[:, 1] - 0.5, ring[:, 0] - 0.5, shape=mask.shape)
        mask[rr, cc] = value
        return
    rr, cc = _fill(ring[:, 1], ring[:, 0], shape=mask.shape)
    if value:
        mask[rr, cc] = True
        mask[_perimeter(ring, mask.shape)] = True
    else:  # a hole: the pixels strictly inside its ring (the ring's pixels are the object's)
        hole = np.zeros_like(mask)
        hole[rr, cc] = True
        hole[_perimeter(ring, mask.shape)] = False
        mask[hole] = False


def rasterize(
    objects: list[PolyObject], shape: tuple[int, int], convention: str, path: Path
) -> tuple[Objects | np.ndarray, list[int]]:
    """``(instances, kept)``: each object rasterised on its own (ids ``1..N`` in list order;
    objects covering no pixel are left out and absent from ``kept``). Objects entirely outside
    the image or reaching far beyond it raise naming ``path``."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown pixel convention {convention!r} ({', '.join(CONVENTIONS)})")
    h, w = shape
    check_count(len(objects), path, "objects")
    boxes = np.array(
        [
            (*o.rings[0].min(0), *o.rings[0].max(0)) if len(o.rings[0]) else (0, 0, 0, 0)
            for o in objects
        ],
        np.float64,
    ).reshape(-1, 4)
    if len(boxes):
        # check_placement takes pixel-edge boxes; a centre-convention box spans +- 0.5 more
        pad = 0.5 if convention == "centre" else 0.0
        check_placement(boxes + [-pad, -pad, pad, pad], w, h, path, "objects")
    kept, origins, crops = [], [], []
    for k, (o, (x0, y0, x1, y1)) in enumerate(zip(objects, boxes, strict=True), start=1):
        if len(o.rings[0]) < 3:
            continue
        c0, r0 = max(int(np.floor(x0)) - 1, 0), max(int(np.floor(y0)) - 1, 0)
        c1, r1 = min(int(np.ceil(x1)) + 2, w), min(int(np.ceil(y1)) + 2, h)
        if c1 <= c0 or r1 <= r0:
            continue
        crop = np.zeros((r1 - r0, c1 - c0), bool)
        off = np.array([c0, r0], np.float64)
        for j, ring in enumerate(o.rings):
            if len(ring) >= 3:
                _paint(crop, ring - off, convention, j == 0)
        if crop.any():
            kept.append(k)
            origins.append((r0, c0))
            crops.append(crop.astype(np.uint8))
    obj = Objects.from_crops(shape, kept, origins, crops)
    present = obj.ids.tolist()
    return (obj if obj.overlapping else obj.to_label_map()), present


def objects_prediction(
    objects: list[PolyObject],
    shape: tuple[int, int],
    convention: str,
    path: Path,
    class_id=None,
):
    """A :data:`~cellbench.data.predictions.base.Prediction` from polygon objects: class names
    mapped by ``class_id`` (None: names are ignored), integer classes kept as dataset ids."""
    inst, present = rasterize(objects, shape, convention, path)
    classes: dict[int, int] = {}
    scores: dict[int, float] = {}
    classified = False
    for k in present:
        o = objects[k - 1]
        if isinstance(o.cls, str):
            if class_id is not None:
                classes[k] = int(class_id(o.cls))
                classified = True
        elif o.cls is not None:
            classes[k] = int(o.cls)
            classified = True
        if o.score is not None:
            scores[k] = float(o.score)
    return inst, (classes if classified else None), (scores or None)
