"""Image-editor XML contours (the glioblastoma H&E sets of Kong, Zhang et al., ISBI 2016/2017).

File format (UTF-8 with a byte-order mark)::

    <Document><Layers><Layer><Shapes>
      <Shape Type="Polygon">   ... <Data><Points><Point X="170.59" Y="0.48"/> ...</Points></Data>
      <Shape Type="SmoothPolygon"> (same Points)
      <Shape Type="Oval"> ... <Data><Extent X= Y= Width= Height=/></Data>
    </Shapes></Layer></Layers></Document>

One shape per nucleus; coordinates are float pixels of the tile (x along columns). Assumptions,
stated because the editor's own rendering is not available: a ``SmoothPolygon`` is read as the
polygon through its points (the editor draws a smooth curve through them; at these point
densities the two differ by well under a pixel), and an ``Oval`` as the ellipse inscribed in its
extent (64 vertices). Shapes with fewer than three distinct points are left out and counted.

Layout ``image_editor_xml`` options::

    parts:                                   # one entry per source folder
      gbm40: {images: "gbm40/images/*.tif", contours: "gbm40/contours/{stem}_data.xml",
              meta: {center: Emory}}
      tcga:  {images: "tcga/images/*.png", contours: "tcga/contours/{stem}_data.xml"}
    slide_pattern: "^(?P<slide>TCGA-..-....-R\\d+)"   # stem -> slide id (optional)
    test: ["gbm40/3[1-9]", "gbm40/40", "center:FG"]   # the recorded test split (optional)

``test`` lists ``part/<stem regex>`` and ``center:<code>`` rules; matching samples are the
``test`` split, the others ``train`` (the split is recorded in the catalog, not drawn at run
time). TCGA stems give ``center`` (tissue source site) and ``patient_id``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

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

_OVAL_VERTICES = 64


def _ellipse(x: float, y: float, w: float, h: float) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, _OVAL_VERTICES, endpoint=False)
    return np.c_[x + w / 2 + w / 2 * np.cos(t), y + h / 2 + h / 2 * np.sin(t)]


@memoised_by_file(maxsize=128)
def read_editor_xml(p: Path) -> tuple[list[np.ndarray], int]:
    """``(polygons, n_left_out)``: one ``(K, 2)`` ``(x, y)`` array per shape, in file order.

    Malformed XML, non-numeric or non-finite coordinates and unknown shape types raise
    :class:`DataError` naming the file. Memoised per (path, modification time, size).
    """
    data = read_bytes(p, "contour XML")
    try:
        root = ET.fromstring(data)  # expat: a BOM is accepted, entity expansion is bounded
    except ET.ParseError as e:
        raise DataError(p, f"malformed XML: {e}") from None
    if root.tag != "Document":
        raise DataError(p, f"not an image-editor document (root element <{root.tag}>)")
    shapes = list(root.iter("Shape"))
    check_count(len(shapes), p, "shapes")
    out, left_out = [], 0
    for k, s in enumerate(shapes, start=1):
        kind = s.get("Type")
        try:
            if kind in ("Polygon", "SmoothPolygon"):
                xy = np.array(
                    [(float(q.get("X")), float(q.get("Y"))) for q in s.iter("Point")],
                    dtype=np.float64,
                ).reshape(-1, 2)
            elif kind == "Oval":
                e = s.find("./Data/Extent")
                if e is None:
                    raise ValueError
                xy = _ellipse(*(float(e.get(a)) for a in ("X", "Y", "Width", "Height")))
            else:
                raise DataError(p, f"shape {k}: unsupported shape type {kind!r}")
        except (TypeError, ValueError):
            raise DataError(p, f"shape {k} ({kind}): missing or non-numeric coordinates") from None
        check_vertices(xy, p, f"shape {k}")
        if is_degenerate(xy):
            left_out += 1
        else:
            out.append(xy)
    return out, left_out


@register
class ImageEditorXmlReader(DatasetReader):
    """Tiles with one image-editor contour XML each, from one or more source folders."""

    format = "image_editor_xml"

    def _split(self, part: str, stem: str, center: str | None) -> str | None:
        rules = self.options.get("test")
        if rules is None:
            return self.options.get("split")
        for r in rules:
            if r.startswith("center:"):
                if center == r.split(":", 1)[1]:
                    return "test"
            else:
                rp, _, pat = r.partition("/")
                if rp == part and re.fullmatch(pat, stem):
                    return "test"
        return "train"

    def records(self) -> list[SampleRecord]:
        pat = self.options.get("slide_pattern")
        slide_re = re.compile(pat) if pat else None
        out = []
        for part, spec in self.options["parts"].items():
            for img in confined_glob(self.location, spec["images"], self.location):
                xml = self.path(spec["contours"].format(stem=img.stem))
                polys, left_out = read_editor_xml(xml)
                w, h = image_size(img)
                tcga = tcga_fields(img.stem)
                m = slide_re.match(img.stem) if slide_re else None
                values = {**spec.get("meta", {}), **{k: v for k, v in tcga.items() if v}}
                sid = f"{part}_{img.stem}"
                split = self._split(part, img.stem, values.get("center"))
                meta = self.base_meta(
                    sid,
                    split,
                    slide_id=m.group("slide") if m else f"{part}_{img.stem}",
                    width=w,
                    height=h,
                    n_objects=len(polys),
                    n_left_out=left_out,
                    source=part,
                    **values,
                )
                out.append(SampleRecord(sid, split, meta, {"image": img, "annotation": xml}))
        return out

    def load(self, record: SampleRecord, pixels: bool = True) -> Sample:
        image = self.image(record, pixels)
        polys, _ = read_editor_xml(record.files["annotation"])
        h, w = image.shape[:2]
        check_polygons_inside(polys, w, h, record.files["annotation"], "shapes")
        inst = polygons_to_instances(polys, (h, w))
        return self._sample(record, image=image, instances=inst)
