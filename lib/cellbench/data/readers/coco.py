"""COCO instance annotations with polygon segmentations.

``segmentation`` is a list of flat ``[x1, y1, x2, y2, ...]`` rings (several rings = one object in
several parts); some exporters store that list as a JSON string, which is accepted. RLE masks
are refused with a clear error. Layout ``coco`` options::

    annotations: annotations/test/instances_test.json
    images: images/test           # folder holding the files named in images[].file_name
    split: test
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import (
    check_count,
    check_pixels,
    check_polygons_inside,
    check_relative,
    check_vertices,
    is_number,
    parse_json,
    read_json,
)
from cellbench.data.rasterize import polygons_to_instances
from cellbench.data.readers.base import DatasetReader, SampleRecord, register
from cellbench.data.sample import Sample


@dataclass
class CocoImage:
    """One image entry with its objects: ``parts[i]`` is the list of rings of object ``i``."""

    file_name: str
    width: int
    height: int
    parts: list[list[np.ndarray]] = field(default_factory=list)
    category_ids: list[int] = field(default_factory=list)


def read_coco(path: str | Path, classes: set[int] | None = None) -> dict[str, CocoImage]:
    """Parse a COCO file into ``{file_name: CocoImage}``.

    ``file_name`` must be a relative path inside the images folder; widths and heights positive
    integers within the pixel limit; polygons finite, within the vertex limit and on their image
    (:func:`cellbench.core.safety.check_placement`); with ``classes`` given, every
    ``category_id`` must be one of them.
    """
    p = Path(path)
    doc = read_json(p)
    if not isinstance(doc, dict) or not {"images", "annotations"} <= set(doc):
        raise DataError(p, "not a COCO file: needs 'images' and 'annotations'")
    if not isinstance(doc["images"], list) or not isinstance(doc["annotations"], list):
        raise DataError(p, "'images' and 'annotations' must be lists")
    check_count(len(doc["images"]), p, "images")
    check_count(len(doc["annotations"]), p, "annotations")
    images: dict[Any, CocoImage] = {}
    for i, im in enumerate(doc["images"]):
        try:
            iid, name, w, h = im["id"], im["file_name"], im["width"], im["height"]
        except (KeyError, TypeError):
            raise DataError(p, f"images[{i}]: needs id, file_name, width, height") from None
        if not all(is_number(v) and v == int(v) for v in (w, h)) or isinstance(iid, dict | list):
            raise DataError(p, f"images[{i}]: width and height must be integers, id a number")
        check_relative(name, p, f"images[{i}].file_name")
        check_pixels(int(w), int(h), p)
        if iid in images:
            raise DataError(p, f"images[{i}]: duplicate image id {iid!r}")
        images[iid] = CocoImage(name, int(w), int(h))
    for i, a in enumerate(doc["annotations"]):
        if not isinstance(a, dict):
            raise DataError(p, f"annotations[{i}]: not a mapping")
        seg = a.get("segmentation")
        if isinstance(seg, str):
            seg = parse_json(seg, f"{p} annotations[{i}].segmentation")
        if isinstance(seg, dict):
            raise DataError(p, f"annotations[{i}]: RLE segmentations are not supported")
        iid = a.get("image_id")
        if isinstance(iid, dict | list) or iid not in images:
            raise DataError(p, f"annotations[{i}]: unknown image_id {iid!r}")
        cat = a.get("category_id", 0)
        if not is_number(cat) or cat != int(cat):
            raise DataError(p, f"annotations[{i}]: category_id {cat!r} is not an integer")
        if classes is not None and int(cat) not in classes:
            raise DataError(
                p,
                f"annotations[{i}]: category_id {int(cat)} is not a class of the dataset "
                f"(ids {sorted(classes)})",
            )
        if not isinstance(seg, list) or not all(
            isinstance(r, list) and all(is_number(v) for v in r) for r in seg
        ):
            raise DataError(
                p, f"annotations[{i}]: segmentation is not a list of [x1, y1, x2, y2, ...] rings"
            )
        try:
            rings = [np.asarray(r, dtype=np.float64).reshape(-1, 2) for r in seg]
        except ValueError:
            raise DataError(p, f"annotations[{i}]: a ring has an odd number of values") from None
        for r in rings:
            check_vertices(r, p, f"annotations[{i}]")
        rings = [r for r in rings if len(r)]
        if not rings:
            raise DataError(p, f"annotations[{i}]: empty segmentation")
        im = images[iid]
        check_polygons_inside([np.concatenate(rings)], im.width, im.height, p, f"annotations[{i}]")
        im.parts.append(rings)
        im.category_ids.append(int(cat))
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
        ids = {c.id for c in self.dataset.classes} or None
        return read_coco(self.path(self.options["annotations"]), ids)

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

    def load(self, record: SampleRecord, pixels: bool = True) -> Sample:
        im = self._coco[record.extra["name"]]
        image = self.image(record, pixels)
        if image.shape[:2] != (im.height, im.width):
            raise DataError(
                self.path(self.options["annotations"]),
                f"{im.file_name}: annotated as {im.width}x{im.height} px, file is "
                f"{image.shape[1]}x{image.shape[0]} px",
            )
        inst, classes = coco_to_instances(im)
        return self._sample(record, image=image, instances=inst, classes=classes)
