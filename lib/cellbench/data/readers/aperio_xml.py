"""Aperio ImageScope XML polygons (MoNuSeg).

File format: ``<Annotations MicronsPerPixel="...">`` holding ``<Region>`` elements, one per
nucleus, each with ``<Vertices><Vertex X=".." Y=".."/>...``. Coordinates are pixels of the tile.

Layout ``aperio_xml`` options::

    splits:                      # one entry per split
      train: {images: "glob/*.tif", annotations: "folder"}   # annotation = folder/<stem>.xml
    organs: {<image stem>: organ}   # published per-image facts (optional)
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from xml.parsers import expat

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import (
    check_count,
    check_polygons_inside,
    check_vertices,
    confined_glob,
    memoised_by_file,
    read_bytes,
)
from cellbench.data.imageio import image_size
from cellbench.data.rasterize import is_degenerate, polygons_to_instances
from cellbench.data.readers.base import DatasetReader, SampleRecord, register, tcga_fields
from cellbench.data.sample import Sample


@dataclass
class AperioAnnotation:
    """Polygons of one ImageScope XML file.

    ``mpp`` is the root's ``MicronsPerPixel`` (None when absent); ``polygons`` are ``(K, 2)``
    ``(x, y)`` arrays in file order; ``n_degenerate`` counts regions left out (< 3 distinct
    vertices or zero area).
    """

    mpp: float | None
    polygons: list[np.ndarray]
    n_regions: int
    n_degenerate: int


_VERTEX = re.compile(rb'<Vertex\s+X="([^"]*)"\s+Y="([^"]*)"')
_MPP = re.compile(rb'<Annotations\b[^>]*\bMicronsPerPixel="([^"]*)"')


def _fast_polygons(data: bytes) -> list[np.ndarray] | None:
    """Vertices by regex, split per ``<Region``; None when the file departs from the usual form.

    Well-formedness is checked separately (expat). ~3x faster than building an ElementTree.
    """
    parts = data.split(b"<Region ")[1:]
    counts = [p.count(b"<Vertex") for p in parts]
    found = _VERTEX.findall(data)
    if len(found) != sum(counts):
        return None
    try:
        xy = np.array(found, dtype="S40").astype(np.float64).reshape(-1, 2)
    except ValueError:
        return None
    if not np.isfinite(xy).all():
        return None
    return np.split(xy, np.cumsum(counts)[:-1]) if counts else []


def _tree_polygons(p: Path, data: bytes) -> tuple[ET.Element, list[np.ndarray]]:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise DataError(p, f"malformed XML: {e}") from None
    polys = []
    for region in root.iter("Region"):
        try:
            xy = np.array(
                [(float(v.get("X")), float(v.get("Y"))) for v in region.iter("Vertex")],
                dtype=np.float64,
            ).reshape(-1, 2)
        except (TypeError, ValueError):
            raise DataError(
                p, f"Region {region.get('Id')}: vertex without numeric X/Y attributes"
            ) from None
        if not np.isfinite(xy).all():
            raise DataError(p, f"Region {region.get('Id')}: non-finite vertex coordinates")
        polys.append(xy)
    return root, polys


@memoised_by_file(maxsize=64)
def read_aperio_xml(p: Path) -> AperioAnnotation:
    """Parse an ImageScope XML file; malformed XML or vertices raise :class:`DataError`.

    Results are memoised per (path, modification time, size).
    """
    data = read_bytes(p, "annotation XML")
    try:
        parser = expat.ParserCreate()
        parser.Parse(data, True)
    except expat.ExpatError as e:
        raise DataError(
            p, f"malformed XML: {expat.ErrorString(e.code)} at line {e.lineno}"
        ) from None
    head = data.lstrip()[:4096]
    if not re.match(rb"(<\?xml[^>]*\?>\s*)?<Annotations\b", head):
        raise DataError(p, "not an ImageScope annotation file (root element is not <Annotations>)")
    raw = _fast_polygons(data)
    if raw is None:
        _, raw = _tree_polygons(p, data)
    m = _MPP.search(head)
    try:
        mpp = float(m.group(1)) if m and m.group(1) else None
    except ValueError:
        raise DataError(p, f"MicronsPerPixel is not a number: {m.group(1)!r}") from None
    check_count(len(raw), p, "regions")
    for k, xy in enumerate(raw):
        check_vertices(xy, p, f"Region #{k + 1}")
    polygons = [xy for xy in raw if not is_degenerate(xy)]
    return AperioAnnotation(mpp, polygons, len(raw), len(raw) - len(polygons))


@register
class AperioXmlReader(DatasetReader):
    """MoNuSeg-style folders: TIFF tiles with same-named ImageScope XML files."""

    format = "aperio_xml"

    def records(self) -> list[SampleRecord]:
        organs = self.options.get("organs", {})
        out = []
        for split, spec in self.options["splits"].items():
            ann_dir = self.path(spec["annotations"])
            for img in confined_glob(self.location, spec["images"], self.location):
                xml = ann_dir / f"{img.stem}.xml"
                ann = read_aperio_xml(xml)
                w, h = image_size(img)
                meta = self.base_meta(
                    img.stem,
                    split,
                    organ=organs.get(img.stem),
                    slide_id=img.stem,
                    mpp=ann.mpp,
                    width=w,
                    height=h,
                    n_objects=len(ann.polygons),
                    n_regions=ann.n_regions,
                    n_degenerate=ann.n_degenerate,
                    **tcga_fields(img.stem),
                )
                out.append(SampleRecord(img.stem, split, meta, {"image": img, "annotation": xml}))
        return out

    def load(self, record: SampleRecord, pixels: bool = True) -> Sample:
        image = self.image(record, pixels)
        ann = read_aperio_xml(record.files["annotation"])
        h, w = image.shape[:2]
        check_polygons_inside(ann.polygons, w, h, record.files["annotation"], "regions")
        inst = polygons_to_instances(ann.polygons, image.shape[:2])
        return self._sample(record, image=image, instances=inst)
