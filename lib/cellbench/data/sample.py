"""The in-memory sample model shared by every reader (``shared/DESIGN.md`` §3).

Numpy only (no polars), so that training and inference code can import it on machines that
have only numpy and torch.

Conventions
-----------
- Image: ``(H, W, 3) uint8`` RGB, or ``(H, W)`` for single-channel (fluorescence) images.
- Instance map: ``(H, W) int32``, 0 = background, ids need not be contiguous.
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
class Sample:
    """One image (tile, patch or WSI region) with whatever ground truth exists."""

    dataset: str
    sample_id: str
    split: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    image: np.ndarray | None = None
    instances: np.ndarray | None = None
    classes: dict[int, int] | None = None
    points: Points | None = None
    tissue_mask: np.ndarray | None = None
    #: Where annotation is complete (bool, image-sized); None: the whole image.
    annotated_region: np.ndarray | None = None

    @property
    def n_objects(self) -> int | None:
        """Number of annotated objects: instances in the map, else points, else None."""
        if self.instances is not None:
            return int(len(np.unique(self.instances[self.instances > 0])))
        if self.points is not None:
            return len(self.points)
        return None


@dataclass
class SampleRecord:
    """A sample's metadata and the files it is read from (no pixels)."""

    sample_id: str
    split: str | None
    meta: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
