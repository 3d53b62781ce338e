"""COCO instance annotations with polygon segmentations.

``segmentation`` is a list of flat ``[x1, y1, x2, y2, ...]`` rings (several rings = one object in
several parts); some exporters store that list as a JSON string, which is accepted. RLE masks
are refused with a clear error. Layout ``coco`` options::

    annotations: annotations/test/instances_test.json
    images: images/test           # folder holding the files named in images[].file_name
    split: test
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from cellbench.core.errors import DataError
from cellbench.data.imageio import read_image
from cellbench.data.rasterize import polygons_to_instances
from cellbench.data.readers.base import DatasetReader, SampleRecord, register
from cellbench.data.readers.grand_challenge import read_json
from cellbench.data.sample import Sample


@dataclass
class CocoImage:
    """One image entry with its objects: ``parts[i]`` is the list of rings of object ``i``."""

    file_name: str
    width: int
    height: int
    parts: list[list[np.ndarray]] = field(default_factory=list)
    category_ids: list[int] = field(default_factory=list)


def read_coco(path: str | Path) -> dict[str, CocoImage]:
    """Parse a COCO file into ``{file_name: CocoImage}``."""
    p = Path(path)
    doc = read_json(p)
    if not isinstance(doc, dict) or not {"images", "annotations"} <= set(doc):
        raise DataError(p, "not a COCO file: needs 'images' and 'annotations'")
    try:
        images = {
            im["id"]: CocoImage(im["file_name"], int(im["width"]), int(im["height"]))
            for im in doc["images"]
        }
    except (KeyError, TypeError, ValueError):
        raise DataError(p, "images[] entries need id, file_name, width, height") from None
    for i, a in enumerate(doc["annotations"]):
        seg = a.get("segmentation")
        if isinstance(seg, str):
            try:
                seg = json.loads(seg)
            except json.JSONDecodeError:
                raise DataError(p, f"annotations[{i}]: segmentation string is not JSON") from None
        if isinstance(seg, dict):
            raise DataError(p, f"annotations[{i}]: RLE segmentations are not supported")
        if a.get("image_id") not in images:
            raise DataError(p, f"annotations[{i}]: unknown image_id {a.get('image_id')!r}")
        try:
            rings = [np.asarray(r, dtype=np.float64).reshape(-1, 2) for r in seg]
        except (TypeError, ValueError):
            raise DataError(
                p, f"annotations[{i}]: segmentation is not a list of x,y rings"
            ) from None
        im = images[a["image_id"]]
        im.parts.append(rings)
        im.category_ids.append(int(a.get("category_id", 0)))
    return {im.file_name: im for im in images.values()}


def coco_to_instances(im: CocoImage) -> tuple[np.ndarray, dict[int, int]]:
    """Rasterise one image's objects (all rings of an object share its id)."""
    inst = np.zeros((im.height, im.width), dtype=np.int32)
    for k, rings in enumerate(im.parts, start=1):
        part = polygons_to_instances(rings, inst.shape, [k] * len(rings))
        inst[part > 0] = k
    present = set(np.unique(inst).tolist())
    return inst, {k: c for k, c in enumerate(im.category_ids, start=1) if k in present}


@register
class CocoReader(DatasetReader):
    """Images in a folder described by one COCO annotation file."""

    format = "coco"

    @cached_property
    def _coco(self) -> dict[str, CocoImage]:
        return read_coco(self.path(self.options["annotations"]))

    def records(self) -> list[SampleRecord]:
        folder = self.path(self.options["images"])
        out = []
        for name, im in sorted(self._coco.items()):
            stem = Path(name).stem
            meta = self.base_meta(
                stem,
                self.options.get("split"),
                width=im.width,
                height=im.height,
                n_objects=len(im.parts),
            )
            out.append(
                SampleRecord(stem, meta["split"], meta, {"image": folder / name}, {"name": name})
            )
        return out

    def load(self, record: SampleRecord) -> Sample:
        im = self._coco[record.extra["name"]]
        image = read_image(record.files["image"])
        if image.shape[:2] != (im.height, im.width):
            raise DataError(
                self.path(self.options["annotations"]),
                f"{im.file_name}: annotated as {im.width}x{im.height} px, file is "
                f"{image.shape[1]}x{image.shape[0]} px",
            )
        inst, classes = coco_to_instances(im)
        return self._sample(record, image=image, instances=inst, classes=classes)
