"""Images with instance-label TIFF masks (DSB 2018 as shipped with StarDist).

Layout ``label_tiff`` options::

    images: "img2d_*.tif"
    masks: "mask2d_{key}.tif"        # {key}: the part of the image name matched by key_pattern
    key_pattern: "^img2d_(?P<key>.+)$"
    split: null                      # or a split name for every sample
"""

from __future__ import annotations

import re

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import confined_glob
from cellbench.data.imageio import check_same_size, image_size, read_image, read_label_image
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
            lab = read_label_image(mask)
            w, h = image_size(img)
            meta = self.base_meta(
                img.stem,
                self.options.get("split"),
                width=w,
                height=h,
                n_objects=int(len(np.unique(lab[lab > 0]))),
            )
            out.append(
                SampleRecord(img.stem, meta["split"], meta, {"image": img, "instances": mask})
            )
        return out

    def load(self, record: SampleRecord) -> Sample:
        image = read_image(record.files["image"])
        inst = read_label_image(record.files["instances"])
        check_same_size(image, inst, record.files["instances"])
        return self._sample(record, image=image, instances=inst)
