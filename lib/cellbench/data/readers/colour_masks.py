"""Colour class masks (the MoNuSAC subset as re-distributed with classes painted in colour).

File format: ``masks/<stem>.jpg`` (RGB, **lossy JPEG**) beside ``images/<stem>.jpg``; each class is
one pure colour on black. Decoding, as the data README prescribes:

1. threshold every channel at ``threshold`` (default 128), giving one of 8 colour codes per pixel;
2. a pixel whose code is a class colour gets that class; black is background; any other code
   (JPEG ringing where colours meet: white, cyan, ...) is background too and counted in the
   sample's ``n_ambiguous_px``;
3. **instances are approximated** by the connected components (4-connectivity) of each class
   mask; components smaller than ``min_size`` px (JPEG speckle) are dropped. Touching nuclei of
   one class therefore merge into one instance: instance metrics on such data are approximate
   and are labelled so wherever the dataset is described; class (semantic) masks are exact up to
   the JPEG loss.

Layout ``colour_masks`` options::

    images: "images/*.jpg"
    masks: "masks/{stem}.jpg"
    colours: {1: [0, 255, 0], 2: [255, 255, 0], 3: [0, 0, 255], 4: [255, 0, 0]}  # class id: RGB
    threshold: 128
    min_size: 4
    split: test                 # the split of every image, or, with test_slides:
    test_slides: [TCGA-..., ]   # a recorded split by slide: these slides test, the rest train
"""

from __future__ import annotations

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import confined_glob
from cellbench.data.imageio import check_same_size, image_size, read_image
from cellbench.data.readers.base import DatasetReader, SampleRecord, register, tcga_fields
from cellbench.data.sample import Sample

#: Approximation note shown with the dataset (catalog, stats) and on results of such runs.
APPROXIMATE = (
    "instances approximated by connected components of each class mask (lossy JPEG colour "
    "masks): touching nuclei of one class count as one"
)


def decode_colour_mask(
    rgb: np.ndarray, colours: dict[int, tuple[int, int, int]], threshold: int = 128
) -> tuple[np.ndarray, int]:
    """``(class map (H, W) int32 with 0 = background, number of ambiguous pixels)``.

    ``colours`` maps class id to an RGB triple of 0/255 values; see the module docstring.
    """
    if rgb.ndim != 3 or rgb.shape[-1] < 3:
        raise ValueError(f"expected an RGB mask, got shape {rgb.shape}")
    bits = rgb[..., :3] >= threshold
    code = bits[..., 0].astype(np.uint8) * 4 + bits[..., 1] * 2 + bits[..., 2]
    lut = np.full(8, -1, np.int32)
    lut[0] = 0
    for cid, (r, g, b) in colours.items():
        k = (r >= threshold) * 4 + (g >= threshold) * 2 + (b >= threshold)
        if k == 0 or lut[k] > 0:
            raise ValueError(f"class colours must be distinct and not black, got {colours}")
        lut[k] = cid
    cls = lut[code]
    ambiguous = int((cls < 0).sum())
    cls[cls < 0] = 0
    return cls, ambiguous


def class_map_to_instances(cls: np.ndarray, min_size: int = 4) -> tuple[np.ndarray, dict[int, int]]:
    """Instances as connected components (4-connectivity) of each class; ``{instance: class}``."""
    from scipy import ndimage as ndi

    inst = np.zeros(cls.shape, np.int32)
    classes: dict[int, int] = {}
    nxt = 1
    for c in np.unique(cls[cls > 0]):
        lab, n = ndi.label(cls == c)
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        sizes[0] = 0
        keep = sizes[lab] >= min_size
        ids, inverse = np.unique(lab[keep], return_inverse=True)
        inst[keep] = nxt + inverse.astype(np.int32)
        classes.update({nxt + k: int(c) for k in range(len(ids))})
        nxt += len(ids)
    return inst, classes


@register
class ColourMasksReader(DatasetReader):
    """Images with same-named colour class masks (see the module docstring)."""

    format = "colour_masks"

    def _colours(self) -> dict[int, tuple[int, int, int]]:
        raw = self.options.get("colours") or {}
        try:
            return {int(k): tuple(int(x) for x in v[:3]) for k, v in raw.items()}
        except (TypeError, ValueError, AttributeError):
            raise DataError(
                self.location, f"options.colours must map class ids to RGB: {raw}"
            ) from None

    def _decode(self, mask_path) -> tuple[np.ndarray, dict[int, int], int]:
        rgb = read_image(mask_path)
        try:
            cls, ambiguous = decode_colour_mask(
                rgb, self._colours(), int(self.options.get("threshold", 128))
            )
        except ValueError as e:
            raise DataError(mask_path, str(e)) from None
        inst, classes = class_map_to_instances(cls, int(self.options.get("min_size", 4)))
        return inst, classes, ambiguous

    def _split(self, slide: str) -> str | None:
        test = self.options.get("test_slides")
        if test is None:
            return self.options.get("split")
        return "test" if slide in set(test) else "train"

    def records(self) -> list[SampleRecord]:
        out = []
        for img in confined_glob(self.location, self.options["images"], self.location):
            mask = self.path(self.options["masks"].format(stem=img.stem))
            if not mask.is_file():
                raise DataError(mask, f"no class mask for {img.name}")
            _, classes, ambiguous = self._decode(mask)
            w, h = image_size(img)
            tcga = tcga_fields(img.stem)
            slide = img.stem.rsplit("_", 1)[0]
            meta = self.base_meta(
                img.stem,
                self._split(slide),
                slide_id=slide,
                width=w,
                height=h,
                n_objects=len(classes),
                n_ambiguous_px=ambiguous,
                instances_approximate=True,
                **{k: v for k, v in tcga.items() if v},
            )
            out.append(SampleRecord(img.stem, meta["split"], meta, {"image": img, "mask": mask}))
        return out

    def load(self, record: SampleRecord, pixels: bool = True) -> Sample:
        image = self.image(record, pixels)
        inst, classes, _ = self._decode(record.files["mask"])
        check_same_size(image, inst, record.files["mask"])
        return self._sample(record, image=image, instances=inst, classes=classes)
