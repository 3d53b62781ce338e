"""Images with label masks (TIFF / PNG / NPY): DSB 2018 as shipped with StarDist, and folders
added with ``cellbench datasets add``.

Layout ``label_tiff`` options::

    images: "img2d_*.tif"
    masks: "mask2d_{key}.tif"        # {key}: the part of the image name matched by key_pattern
    key_pattern: "^img2d_(?P<key>.+)$"
    split: null                      # or a split name for every sample
    split_map: {stem: split}         # or one split per sample (others: ``split``)
    kind: instance                   # instance: an instance map (0 = background);
                                     # binary: non-zero = object, instances = 8-connected
                                     #   components (touching objects merge: stated);
                                     # class: pixel value = class, instances = 8-connected
                                     #   components of each class value
    class_values: {value: class id}  # kind class: which pixel value is which catalog class
"""

from __future__ import annotations

import re

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import confined_glob
from cellbench.data.imageio import (
    check_same_size,
    image_size,
    read_label_image,
)
from cellbench.data.readers.base import DatasetReader, SampleRecord, register
from cellbench.data.sample import Sample


@register
class LabelTiffReader(DatasetReader):
    """Image files paired with label-image files by name."""

    format = "label_tiff"

    def records(self) -> list[SampleRecord]:
        pat = re.compile(self.options.get("key_pattern", r"^(?P<key>.+)$"))
        out = []
        for img in confined_glob(self.location, self.options["images"], self.location):
            m = pat.match(img.stem)
            if not m:
                raise DataError(img, f"name does not match key_pattern {pat.pattern!r}")
            mask = self.path(self.options["masks"].format(key=m.group("key"), stem=img.stem))
            lab, _ = self._labels(mask)
            w, h = image_size(img)
            split = (self.options.get("split_map") or {}).get(img.stem, self.options.get("split"))
            meta = self.base_meta(
                img.stem,
                split,
                width=w,
                height=h,
                n_objects=int(len(np.unique(lab[lab > 0]))),
            )
            out.append(
                SampleRecord(img.stem, meta["split"], meta, {"image": img, "instances": mask})
            )
        return out

    def load(self, record: SampleRecord, pixels: bool = True) -> Sample:
        image = self.image(record, pixels)
        inst, classes = self._labels(record.files["instances"])
        check_same_size(image, inst, record.files["instances"])
        return self._sample(record, image=image, instances=inst, classes=classes)

    def _labels(self, path) -> tuple[np.ndarray, dict[int, int] | None]:
        """The instance map of a mask file (and instance -> class id for class masks)."""
        return mask_instances(
            read_label_image(path),
            self.options.get("kind", "instance"),
            self.options.get("class_values"),
            path,
        )


def mask_instances(
    lab: np.ndarray, kind: str = "instance", class_values=None, path=None
) -> tuple[np.ndarray, dict[int, int] | None]:
    """An instance map (and instance -> class id) from a mask of ``kind`` (module docstring)."""
    from scipy import ndimage as ndi

    if kind == "instance":
        return lab, None
    eight = np.ones((3, 3), bool)
    if kind == "binary":
        inst, _ = ndi.label(lab > 0, structure=eight)
        return inst.astype(np.int32), None
    if kind != "class":
        raise DataError(path, f"unknown mask kind '{kind}' (instance, binary or class)")
    values = {int(k): int(v) for k, v in (class_values or {}).items()}
    unknown = sorted(set(np.unique(lab[lab > 0]).tolist()) - set(values))
    if unknown:
        raise DataError(path, f"pixel value(s) {unknown[:5]} have no class (class_values)")
    inst = np.zeros(lab.shape, np.int32)
    classes: dict[int, int] = {}
    for v, cid in sorted(values.items()):
        comp, n = ndi.label(lab == v, structure=eight)
        if n:
            top = int(inst.max())
            inst[comp > 0] = comp[comp > 0] + top
            classes.update({top + k: cid for k in range(1, n + 1)})
    return inst, classes
