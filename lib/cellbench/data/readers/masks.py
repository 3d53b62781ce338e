"""Binary masks to instances (APACS23) and PanNuke fold arrays.

APACS23 (seed 001): a single-channel PNG per image, white = cell (cytoplasm), black =
background; touching cells are one object. Instances are the 8-connected components (a
documented choice: the paper's overlapping clusters are single objects either way).
Layout ``binary_mask`` options::

    images: "train/images/*.jpg"      # and masks "train/masks/{stem}.png"
    masks: "{split}/masks/{stem}.png"
    splits: {train: "train/images/*.jpg", test: "test/images/*.jpg"}

PanNuke (Gamper et al. 2020): per fold ``images.npy`` ``(N, 256, 256, 3)`` float/uint8,
``masks.npy`` ``(N, 256, 256, 6)``: channels 0-4 are instance maps of the classes neoplastic,
inflammatory, connective, dead, epithelial (non-neoplastic); channel 5 is background; and
``types.npy`` ``(N,)`` tissue (organ) names. Layout ``pannuke`` options::

    folds: {fold1: "Fold 1", fold2: "Fold 2", fold3: "Fold 3"}   # folder per fold
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import check_pixels, confined_glob
from cellbench.data.imageio import check_same_size, image_size, read_image
from cellbench.data.readers.base import DatasetReader, SampleRecord, register
from cellbench.data.sample import Sample

PANNUKE_CHANNELS = ("neoplastic", "inflammatory", "connective", "dead", "epithelial")


def binary_to_instances(mask: np.ndarray, path: str | Path) -> np.ndarray:
    """8-connected components of a binary mask (any non-zero value is foreground)."""
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise DataError(path, f"binary mask must be 2-D, got shape {mask.shape}")
    from scipy import ndimage as ndi  # here: importing it costs every reader 0.1 s

    lab, _ = ndi.label(mask > 0, structure=np.ones((3, 3), dtype=bool))
    return lab.astype(np.int32)


@register
class BinaryMaskReader(DatasetReader):
    """Images with binary foreground masks; instances by connected components."""

    format = "binary_mask"

    def records(self) -> list[SampleRecord]:
        out = []
        for split, pattern in self.options["splits"].items():
            for img in confined_glob(self.location, pattern, self.location):
                mask = self.path(self.options["masks"].format(split=split, stem=img.stem))
                w, h = image_size(img)
                meta = self.base_meta(img.stem, split, width=w, height=h)
                out.append(SampleRecord(img.stem, split, meta, {"image": img, "mask": mask}))
        return out

    def load(self, record: SampleRecord, pixels: bool = True) -> Sample:
        image = self.image(record, pixels)
        mask = read_image(record.files["mask"])
        check_same_size(image, mask, record.files["mask"])
        return self._sample(
            record, image=image, instances=binary_to_instances(mask, record.files["mask"])
        )


def pannuke_to_instances(masks: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """Merge one PanNuke ``(H, W, 6)`` mask into an instance map and ``{id: class id}``.

    Class ids are 1-5 in :data:`PANNUKE_CHANNELS` order. Instance ids are renumbered so that
    ids of different channels never collide.
    """
    h, w = masks.shape[:2]
    inst = np.zeros((h, w), dtype=np.int32)
    classes: dict[int, int] = {}
    nxt = 1
    for c in range(5):
        ch = masks[..., c].astype(np.int64)
        for i in np.unique(ch[ch > 0]):
            inst[ch == i] = nxt
            classes[nxt] = c + 1
            nxt += 1
    return inst, classes


@cache
def _load_npy(path: Path, mmap: bool = True) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except Exception as e:  # noqa: BLE001
        raise DataError(path, f"unreadable .npy ({type(e).__name__}: {e})") from None


@register
class PanNukeReader(DatasetReader):
    """PanNuke folds (memory-mapped; only the requested image is read)."""

    format = "pannuke"

    def _arrays(self, folder: str) -> tuple[Path, Path, Path]:
        base = self.path(folder)
        return base / "images.npy", base / "masks.npy", base / "types.npy"

    def records(self) -> list[SampleRecord]:
        out = []
        for fold, folder in self.options["folds"].items():
            ip, mp, tp = self._arrays(folder)
            images, masks = _load_npy(ip), _load_npy(mp)
            types = _load_npy(tp, mmap=False) if tp.exists() else None
            if images.ndim != 4 or masks.ndim != 4:
                raise DataError(ip, f"expected (N, H, W, C) arrays, got {images.shape}")
            if masks.shape[:3] != images.shape[:3] or masks.shape[-1] != 6:
                raise DataError(mp, f"masks {masks.shape} do not match images {images.shape} x 6")
            check_pixels(int(images.shape[2]), int(images.shape[1]), ip)
            for k in range(images.shape[0]):
                sid = f"{fold}_{k:05d}"
                organ = str(types[k]).lower().replace("_", " ") if types is not None else None
                meta = self.base_meta(
                    sid, fold, organ=organ, width=images.shape[2], height=images.shape[1]
                )
                out.append(SampleRecord(sid, fold, meta, {"images": ip, "masks": mp}, {"index": k}))
        return out

    def load(self, record: SampleRecord, pixels: bool = True) -> Sample:
        k = record.extra["index"]
        image = None
        if pixels:
            image = np.asarray(_load_npy(record.files["images"])[k])
            image = np.clip(image, 0, 255).astype(np.uint8)
        inst, classes = pannuke_to_instances(np.asarray(_load_npy(record.files["masks"])[k]))
        return self._sample(record, image=image, instances=inst, classes=classes)
