"""The in-memory sample model shared by every reader (``shared/DESIGN.md`` §3).

Numpy only (no polars), so that training and inference code can import it on machines that
have only numpy and torch.

Conventions
-----------
- Image: ``(H, W, 3) uint8`` RGB, or ``(H, W)`` for single-channel (fluorescence) images.
- Instance map: ``(H, W) int32``, 0 = background, ids need not be contiguous.
- Overlapping instances (whole cells in cytology): :class:`Objects`, one boolean mask per
  object cropped to its bounding box; a sample holds them in ``objects`` (and ``instances``
  stays None), since a label map cannot give one pixel to two objects.
- Classes: ``{instance id: dataset class id}`` using the ids of the dataset's class set.
- Points: ``(x, y)`` in pixels of the sample's image (x = column), class id, score in [0, 1]
  (1.0 for ground truth).
- Metadata: the standard columns (:data:`STANDARD_COLUMNS`) plus dataset-specific extras;
  unknown values are ``None``, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

STANDARD_COLUMNS: tuple[str, ...] = (
    "dataset",
    "split",
    "sample_id",
    "organ",
    "stain",
    "center",
    "center_name",
    "slide_id",
    "patient_id",
    "age",
    "sex",
    "category",
    "mpp",
    "width",
    "height",
    "n_objects",
)


@dataclass
class Points:
    """Point annotations or detections of one sample.

    Attributes
    ----------
    xy
        ``(N, 2) float64`` coordinates in pixels, ``(x, y)``.
    cls
        ``(N,) int32`` class ids of the dataset's class set.
    score
        ``(N,) float32`` confidence; 1.0 for ground truth.
    """

    xy: np.ndarray
    cls: np.ndarray
    score: np.ndarray

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, dtype=np.float64).reshape(-1, 2)
        self.cls = np.asarray(self.cls, dtype=np.int32).reshape(-1)
        self.score = np.asarray(self.score, dtype=np.float32).reshape(-1)
        if not (len(self.xy) == len(self.cls) == len(self.score)):
            raise ValueError("xy, cls and score must have the same length")

    def __len__(self) -> int:
        return len(self.xy)

    @classmethod
    def empty(cls) -> Points:
        return cls(np.zeros((0, 2)), np.zeros(0), np.zeros(0))


@dataclass
class Objects:
    """Instances that may overlap: one boolean mask per object, cropped to its bounding box.

    Attributes
    ----------
    shape
        ``(H, W)`` of the image, pixels.
    ids
        ``(N,) int64`` instance ids (> 0, unique, increasing); classes and scores are keyed by
        them as for label maps.
    boxes
        ``(N, 4) int64`` bounding boxes ``(row0, col0, row1, col1)``, half-open, pixels.
    masks
        ``N`` boolean arrays of shape ``(row1 - row0, col1 - col0)``; each has at least one
        pixel set.
    """

    shape: tuple[int, int]
    ids: np.ndarray
    boxes: np.ndarray
    masks: list[np.ndarray]

    def __post_init__(self) -> None:
        self.shape = (int(self.shape[0]), int(self.shape[1]))
        self.ids = np.asarray(self.ids, dtype=np.int64).reshape(-1)
        self.boxes = np.asarray(self.boxes, dtype=np.int64).reshape(-1, 4)
        self.masks = [np.asarray(m, dtype=bool) for m in self.masks]
        if not (len(self.ids) == len(self.boxes) == len(self.masks)):
            raise ValueError("ids, boxes and masks must have the same length")
        if len(self.ids) and (self.ids.min() <= 0 or len(np.unique(self.ids)) != len(self.ids)):
            raise ValueError("object ids must be unique and > 0")
        order = np.argsort(self.ids, kind="stable")
        if (order != np.arange(len(order))).any():
            self.ids, self.boxes = self.ids[order], self.boxes[order]
            self.masks = [self.masks[i] for i in order]
        h, w = self.shape
        for (r0, c0, r1, c1), m in zip(self.boxes, self.masks, strict=True):
            if not (0 <= r0 < r1 <= h and 0 <= c0 < c1 <= w) or m.shape != (r1 - r0, c1 - c0):
                raise ValueError(f"object box {(r0, c0, r1, c1)} does not fit its mask or image")

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> Objects:
        return cls(shape, np.zeros(0), np.zeros((0, 4)), [])

    @classmethod
    def from_masks(cls, masks, ids=None, shape: tuple[int, int] | None = None) -> Objects:
        """Objects from full-size masks (an ``(N, H, W)`` stack or a list); empty masks are
        dropped. ``ids`` default to ``1..N`` in the given order."""
        masks = [np.asarray(m, dtype=bool) for m in masks]
        if shape is None:
            if not masks:
                raise ValueError("give the image shape for an empty object set")
            shape = masks[0].shape
        for m in masks:
            if m.shape != tuple(shape):
                raise ValueError(f"object mask of shape {m.shape} differs from {tuple(shape)}")
        ids = np.arange(1, len(masks) + 1) if ids is None else np.asarray(ids, np.int64)
        return cls.from_crops(shape, ids, [(0, 0)] * len(masks), masks)

    @classmethod
    def from_crops(cls, shape: tuple[int, int], ids, origins, crops) -> Objects:
        """Objects from masks whose top-left pixels lie at ``origins`` ``(row, col)``, each
        trimmed to its set pixels; empty ones are dropped."""
        keep_ids, boxes, out = [], [], []
        for i, (r, c), m in zip(ids, origins, crops, strict=True):
            m = np.asarray(m, dtype=bool)
            rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            if not len(rows):
                continue
            keep_ids.append(int(i))
            boxes.append((r + rows[0], c + cols[0], r + rows[-1] + 1, c + cols[-1] + 1))
            out.append(m[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy())
        return cls(shape, np.array(keep_ids), np.array(boxes).reshape(-1, 4), out)

    @classmethod
    def from_label_map(cls, labels: np.ndarray) -> Objects:
        """The objects of an instance map (0 = background; ids kept)."""
        from scipy import ndimage as ndi

        lab = np.asarray(labels)
        ids = np.unique(lab)
        ids = ids[ids > 0]
        compact = np.searchsorted(ids, lab) + 1
        compact[lab == 0] = 0
        boxes, crops = [], []
        for k, sl in enumerate(ndi.find_objects(compact, max_label=len(ids))):
            boxes.append((sl[0].start, sl[1].start, sl[0].stop, sl[1].stop))
            crops.append(compact[sl] == k + 1)
        return cls(lab.shape[:2], ids, np.array(boxes).reshape(-1, 4), crops)

    @property
    def area(self) -> np.ndarray:
        """``(N,) int64`` object areas in pixels."""
        return np.array([int(m.sum()) for m in self.masks], dtype=np.int64)

    def full(self, k: int) -> np.ndarray:
        """The full-size boolean mask of the ``k``-th object (index, not id)."""
        out = np.zeros(self.shape, bool)
        r0, c0, r1, c1 = self.boxes[k]
        out[r0:r1, c0:c1] = self.masks[k]
        return out

    def coverage(self) -> np.ndarray:
        """``(H, W) uint16``: how many objects cover each pixel."""
        out = np.zeros(self.shape, np.uint16)
        for (r0, c0, r1, c1), m in zip(self.boxes, self.masks, strict=True):
            out[r0:r1, c0:c1] += m
        return out

    def union(self) -> np.ndarray:
        """``(H, W) bool``: pixels covered by any object."""
        return self.coverage() > 0

    @property
    def overlapping(self) -> bool:
        """Whether any pixel belongs to two objects."""
        return bool(len(self) > 1 and self.coverage().max() > 1)

    def layers(self) -> list[np.ndarray]:
        """Non-overlapping ``(H, W) int32`` label maps that together hold every object (ids
        kept): each object goes to the first layer where it overlaps nothing. Consumers of
        label maps (outlines, QuPath polygons) draw or export each layer."""
        out: list[np.ndarray] = []
        for i, (r0, c0, r1, c1), m in zip(self.ids, self.boxes, self.masks, strict=True):
            for lab in out:
                if not lab[r0:r1, c0:c1][m].any():
                    break
            else:
                lab = np.zeros(self.shape, np.int32)
                out.append(lab)
            lab[r0:r1, c0:c1][m] = i
        return out

    def to_label_map(self) -> np.ndarray:
        """One ``(H, W) int32`` map; where objects overlap, the smaller one wins (it is the one
        seen on top). Lossy when :attr:`overlapping`; for display and pixel-level tasks."""
        out = np.zeros(self.shape, np.int32)
        for k in np.argsort(-self.area, kind="stable"):
            r0, c0, r1, c1 = self.boxes[k]
            out[r0:r1, c0:c1][self.masks[k]] = self.ids[k]
        return out

    def centroids(self) -> np.ndarray:
        """``(N, 2)`` centroids ``(x, y)`` in pixels (pixel centres at integers)."""
        out = np.zeros((len(self), 2))
        for k, ((r0, c0, _, _), m) in enumerate(zip(self.boxes, self.masks, strict=True)):
            rr, cc = np.nonzero(m)
            out[k] = (cc.mean() + c0, rr.mean() + r0)
        return out

    def select(self, ids) -> Objects:
        """The objects whose id is in ``ids``."""
        keep = np.isin(self.ids, np.asarray(list(ids), np.int64))
        return Objects(
            self.shape,
            self.ids[keep],
            self.boxes[keep],
            [m for m, k in zip(self.masks, keep, strict=True) if k],
        )

    def pack(self) -> dict[str, np.ndarray]:
        """Arrays for ``np.savez`` (``obj_*`` keys): the masks bit-packed end to end."""
        flat = np.concatenate([m.ravel() for m in self.masks]) if len(self) else np.zeros(0, bool)
        return {
            "obj_shape": np.asarray(self.shape, np.int64),
            "obj_ids": self.ids,
            "obj_boxes": self.boxes,
            "obj_bits": np.packbits(flat),
        }

    @classmethod
    def unpack(cls, z) -> Objects:
        """The inverse of :meth:`pack` (``z``: a mapping such as an open ``.npz``)."""
        boxes = np.asarray(z["obj_boxes"], np.int64).reshape(-1, 4)
        sizes = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        flat = np.unpackbits(np.asarray(z["obj_bits"], np.uint8), count=int(sizes.sum()))
        ends = np.cumsum(sizes)
        masks = [
            flat[e - s : e].astype(bool).reshape(int(b[2] - b[0]), int(b[3] - b[1]))
            for s, e, b in zip(sizes, ends, boxes, strict=True)
        ]
        return cls(tuple(np.asarray(z["obj_shape"]).tolist()), z["obj_ids"], boxes, masks)


@dataclass
class Sample:
    """One image (tile, patch or WSI region) with whatever ground truth exists."""

    dataset: str
    sample_id: str
    split: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    image: np.ndarray | None = None
    instances: np.ndarray | None = None
    #: Overlapping instances (then ``instances`` is None); ids key ``classes`` as for maps.
    objects: Objects | None = None
    classes: dict[int, int] | None = None
    points: Points | None = None
    tissue_mask: np.ndarray | None = None
    #: Where annotation is complete (bool, image-sized); None: the whole image.
    annotated_region: np.ndarray | None = None
    #: The nuclei of whole cells (an instance map) when the ground truth has both (ISBI 2014
    #: synthetic cells): written as the cells' ``nucleusGeometry`` for QuPath.
    nuclei: np.ndarray | None = None

    @property
    def n_objects(self) -> int | None:
        """Number of annotated objects: instances (map or objects) and points, None without
        either."""
        if self.objects is not None:
            return len(self.objects)
        n_points = len(self.points) if self.points is not None else 0
        if self.instances is not None:
            return int(len(np.unique(self.instances[self.instances > 0]))) + n_points
        if self.points is not None:
            return n_points
        return None

    @property
    def truth(self) -> np.ndarray | Objects | None:
        """The instance ground truth as the metrics take it: objects, else the label map."""
        return self.objects if self.objects is not None else self.instances


@dataclass
class SampleRecord:
    """A sample's metadata and the files it is read from (no pixels)."""

    sample_id: str
    split: str | None
    meta: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
