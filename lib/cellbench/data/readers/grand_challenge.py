"""Grand-Challenge JSON: "Multiple points" (OCELOT) and "Multiple polygons" (PUMA).

"Multiple points"::

    {"type": "Multiple points", "num_images": N, "version": {...},
     "points": [{"name": "image_<k>", "point": [x, y, cls], "probability": p}, ...]}

``x, y`` are pixels of image ``k`` (0-based index into the images of the set), ``cls`` the
class id. "Multiple polygons"::

    {"type": "Multiple polygons",
     "polygons": [{"name": "<class name>", "path_points": [[x, y, z], ...],
                   "seed_point": [x, y, z], "probability": p, ...}, ...]}

Layout ``gc_points`` (OCELOT) options::

    ground_truth: fold_0/gt.json
    metadata: fold_0/metadata.json            # list indexed by k: slide, organ, mpp, coordinates
    predictions: {name: fold_0/predictions.json}
    images: {metadata: sample/metadata.json, cell: "sample/images/cell_patches/{index:03d}.tif",
             tissue: "sample/images/tissue_patches/{index:03d}.tif",   # pixels where present
             tissue_mask: "annotations/tissue/{index:03d}.png"}        # tissue labels (optional)
    unknown_tissue: 255                       # the tissue label of "unknown" (OCELOT: 255)
    prefix: fold_0

Tissue labels (OCELOT: 1 background, 2 cancer area, 255 unknown) cover the tissue field of view
(4x the cell patch's side at a quarter of its resolution); the cell patch's centre lies in it at
``patch_x_offset`` / ``patch_y_offset`` (fractions of the side). Where a sample has them, its
``tissue_mask`` is that window scaled to the cell patch (nearest neighbour; unknown -> 0) and, when
any of it is unknown, its ``annotated_region`` is the known tissue: cells predicted on unknown
tissue are neither TP nor FP (seed 004 leaves unknown tissue out of the cell evaluation's
meaning: no label there). The shared data holds no tissue labels, so the option is unused there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import check_count, check_vertices, finite_number, read_json
from cellbench.data.imageio import read_image
from cellbench.data.readers.base import DatasetReader, SampleRecord, register, tcga_fields
from cellbench.data.sample import Points, Sample

_IMAGE_NAME = re.compile(r"^image_(\d+)$")


def read_gc_points(path: str | Path, classes: set[int] | None = None) -> dict[int, Points]:
    """Parse a "Multiple points" file into ``{image index: Points}``.

    Images listed by ``num_images`` but without points get empty :class:`Points`. Coordinates
    and probabilities must be finite numbers (not booleans or strings), probabilities in
    [0, 1], classes integers >= 1, no key given twice in one object, and
    with ``classes`` given, one of those ids; ``num_images`` must be an integer that covers every
    image index.
    """
    p = Path(path)
    doc = read_json(p, unique_keys=True)
    if not isinstance(doc, dict) or doc.get("type") != "Multiple points":
        raise DataError(p, "not a Grand-Challenge 'Multiple points' JSON (type field)")
    pts = doc.get("points")
    if not isinstance(pts, list):
        raise DataError(p, "'points' must be a list")
    check_count(len(pts), p, "points")
    n = doc.get("num_images")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
        raise DataError(p, f"'num_images' must be a non-negative integer, got {n!r}")
    if n is not None:
        check_count(n, p, "images ('num_images')")
    by_img: dict[int, list[tuple[float, float, int, float]]] = {}
    for i, e in enumerate(pts):
        try:
            m = _IMAGE_NAME.match(e["name"])
            x, y, c = e["point"]
            prob = e.get("probability", 1.0)
        except (KeyError, TypeError, ValueError):
            raise DataError(
                p, f"points[{i}]: expected name 'image_<k>', point [x, y, class], probability"
            ) from None
        if m is None:
            raise DataError(p, f"points[{i}]: name {e['name']!r} is not 'image_<k>'")
        if not (finite_number(x) and finite_number(y) and finite_number(prob)):
            raise DataError(
                p,
                f"points[{i}]: non-finite or non-numeric coordinate or probability "
                f"({[x, y]!r:.60}, {prob!r:.20})",
            )
        if not 0.0 <= float(prob) <= 1.0:
            raise DataError(p, f"points[{i}]: probability {prob} lies outside [0, 1]")
        if not finite_number(c) or c != int(c):
            raise DataError(p, f"points[{i}]: class {c!r} is not an integer")
        if int(c) < 1:
            raise DataError(p, f"points[{i}]: class {int(c)}: class ids start at 1")
        if classes is not None and int(c) not in classes:
            raise DataError(
                p,
                f"points[{i}]: class {int(c)} is not a class of the dataset "
                f"(ids {sorted(classes)})",
            )
        k = int(m.group(1))
        if n is not None and k >= n:
            raise DataError(p, f"points[{i}]: image_{k} is beyond num_images = {n}")
        by_img.setdefault(k, []).append((float(x), float(y), int(c), float(prob)))
    keys = set(by_img) | (set(range(n)) if n is not None else set())
    out = {}
    for k in sorted(keys):
        rows = by_img.get(k, [])
        if rows:
            a = np.array(rows, dtype=np.float64)
            out[k] = Points(a[:, :2], a[:, 2].astype(np.int32), a[:, 3])
        else:
            out[k] = Points.empty()
    return out


@dataclass
class GCPolygon:
    """One polygon of a "Multiple polygons" file; ``xy`` is ``(K, 2)`` pixels."""

    name: str
    xy: np.ndarray
    probability: float


def read_gc_polygons(path: str | Path) -> list[GCPolygon]:
    """Parse a "Multiple polygons" file (z coordinates are dropped)."""
    p = Path(path)
    doc = read_json(p)
    if not isinstance(doc, dict) or doc.get("type") != "Multiple polygons":
        raise DataError(p, "not a Grand-Challenge 'Multiple polygons' JSON (type field)")
    polys = doc.get("polygons")
    if not isinstance(polys, list):
        raise DataError(p, "'polygons' must be a list")
    check_count(len(polys), p, "polygons")
    out = []
    for i, e in enumerate(polys):
        try:
            pp = e["path_points"]
            if not all(
                isinstance(q, list) and len(q) >= 2 and finite_number(q[0]) and finite_number(q[1])
                for q in pp
            ):
                raise ValueError
            xy = np.array([q[:2] for q in pp], dtype=np.float64).reshape(-1, 2)
            prob = e.get("probability", 1.0)
            if not finite_number(prob) or not isinstance(e["name"], str):
                raise ValueError
            out.append(GCPolygon(e["name"], xy, float(prob)))
        except (KeyError, TypeError, ValueError, IndexError):
            raise DataError(
                p,
                f"polygons[{i}]: expected a class name, path_points [[x, y, z], ...] of finite "
                "numbers and a numeric probability",
            ) from None
        check_vertices(xy, p, f"polygons[{i}]")
    return out


def check_points_inside(points: Points, width: int, height: int, path: Path, what: str) -> None:
    """Raise :class:`DataError` if any point lies outside ``[0, width) x [0, height)``."""
    if not len(points):
        return
    x, y = points.xy[:, 0], points.xy[:, 1]
    bad = np.flatnonzero((x < 0) | (y < 0) | (x >= width) | (y >= height))
    if len(bad):
        i = int(bad[0])
        raise DataError(
            path,
            f"{what}: point ({x[i]:g}, {y[i]:g}) lies outside the {width}x{height} image "
            f"({len(bad)} such points)",
        )


@register
class GCPointsReader(DatasetReader):
    """OCELOT-style point sets with per-image metadata; pixels where they are present."""

    format = "gc_points"

    @cached_property
    def _gt(self) -> dict[int, Points]:
        return read_gc_points(self.path(self.options["ground_truth"]), self._class_ids)

    @cached_property
    def _class_ids(self) -> set[int] | None:
        return {c.id for c in self.dataset.classes} or None

    @cached_property
    def _meta(self) -> list[dict]:
        p = self.path(self.options["metadata"])
        doc = read_json(p)
        if not isinstance(doc, list):
            raise DataError(p, "metadata must be a JSON list indexed by image")
        return doc

    @cached_property
    def _image_index(self) -> dict[int, int]:
        """Fold index -> index of the sample folder whose metadata matches (same cell region)."""
        spec = self.options.get("images")
        if not spec or not spec.get("metadata"):
            return {}  # no pixels (tissue labels alone need no image index)
        mp = self.path(spec["metadata"])
        if not mp.exists():
            return {}
        local = read_json(mp)

        def region(m, where):
            try:
                return (str(m["slide_name"]), m["cell"]["x_start"], m["cell"]["y_start"])
            except (KeyError, TypeError):
                raise DataError(where, "entries need slide_name and cell.x_start/y_start") from None

        if not isinstance(local, list):
            raise DataError(mp, "metadata must be a JSON list indexed by image")
        key = {region(m, mp): j for j, m in enumerate(local)}
        meta = self.path(self.options["metadata"])
        return {k: key[region(m, meta)] for k, m in enumerate(self._meta) if region(m, meta) in key}

    def records(self) -> list[SampleRecord]:
        prefix = self.options.get("prefix", "")
        meta_path = self.path(self.options["metadata"])
        if len(self._meta) < len(self._gt):
            raise DataError(meta_path, f"{len(self._meta)} entries for {len(self._gt)} images")
        out = []
        for k, m in enumerate(self._meta):
            try:
                cell = m["cell"]
                mpp = float(cell["resized_mpp_x"])
                w = round((cell["x_end"] - cell["x_start"]) * m["mpp_x"] / mpp)
                h = round((cell["y_end"] - cell["y_start"]) * m["mpp_y"] / cell["resized_mpp_y"])
                slide = str(m["slide_name"])
                if not (w > 0 and h > 0 and mpp > 0):
                    raise ValueError
            except (KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError):
                raise DataError(
                    meta_path, f"entry {k}: missing or invalid cell coordinates or mpp"
                ) from None
            sid = f"{prefix}_{k:03d}" if prefix else f"{k:03d}"
            files: dict[str, Path] = {}
            if k in self._image_index:
                j = self._image_index[k]
                spec = self.options["images"]
                files["image"] = self.path(spec["cell"].format(index=j))
                if spec.get("tissue"):
                    files["tissue_image"] = self.path(spec["tissue"].format(index=j))
            tm = (self.options.get("images") or {}).get("tissue_mask")
            if tm and self.path(tm.format(index=k)).is_file():
                files["tissue_mask"] = self.path(tm.format(index=k))
            meta = self.base_meta(
                sid,
                m.get("subset"),
                organ=m.get("organ"),
                slide_id=slide,
                mpp=mpp,
                width=w,
                height=h,
                n_objects=len(self._gt.get(k, Points.empty())),
                slide_mpp=m.get("mpp_x"),
                cell_x_start=cell["x_start"],
                cell_y_start=cell["y_start"],
                tissue_mpp=(m.get("tissue") or {}).get("resized_mpp_x"),
                patch_x_offset=m.get("patch_x_offset"),
                patch_y_offset=m.get("patch_y_offset"),
                has_pixels="image" in files,
                **tcga_fields(slide),
            )
            out.append(SampleRecord(sid, m.get("subset"), meta, files, {"index": k}))
        return out

    def load(self, record: SampleRecord, pixels: bool = True) -> Sample:
        k = record.extra["index"]
        pts = self._gt.get(k, Points.empty())
        check_points_inside(
            pts,
            record.meta["width"],
            record.meta["height"],
            self.path(self.options["ground_truth"]),
            f"image_{k}",
        )
        image = self.image(record, pixels) if "image" in record.files else None
        s = self._sample(record, image=image, points=pts)
        if "tissue_mask" in record.files:
            s.tissue_mask, s.annotated_region = self._tissue(record)
        return s

    def _tissue(self, record: SampleRecord) -> tuple[np.ndarray, np.ndarray | None]:
        """The cell patch's window of its tissue labels and the known-tissue region."""
        path = record.files["tissue_mask"]
        lab = read_image(path)
        if lab.ndim != 2 or lab.dtype.kind not in "iu":
            raise DataError(path, f"tissue labels must be a 2-D integer image, got {lab.dtype}")
        m = record.meta
        try:
            ox, oy = float(m["patch_x_offset"]), float(m["patch_y_offset"])
            scale = float(m["mpp"]) / float(m["tissue_mpp"])  # tissue px per cell px
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            raise DataError(
                path, "needs patch_x_offset / patch_y_offset and tissue mpp in the metadata"
            ) from None
        th, tw = lab.shape
        h, w = int(m["height"]), int(m["width"])
        # the offsets are the cell patch's *centre* as a fraction of the tissue field (on all
        # 81 fold-0 patches: (cell centre - tissue start) / tissue size within 0.0003 of
        # them; the top-left corner is up to 0.125 away)
        y0 = oy * th - h * scale / 2
        x0 = ox * tw - w * scale / 2
        rows = np.clip(np.floor(y0 + (np.arange(h) + 0.5) * scale).astype(int), 0, th - 1)
        cols = np.clip(np.floor(x0 + (np.arange(w) + 0.5) * scale).astype(int), 0, tw - 1)
        window = lab[np.ix_(rows, cols)]
        unknown = window == int(self.options.get("unknown_tissue", 255))
        tissue = np.where(unknown, 0, window).astype(np.int32)
        return tissue, (~unknown if unknown.any() else None)

    def region_rules(self, records) -> dict | None:
        rules = super().region_rules(records) or {}
        with_tissue = sorted(r.sample_id for r in records if "tissue_mask" in r.files)
        if with_tissue:
            rules["known_tissue"] = {
                "unknown_label": int(self.options.get("unknown_tissue", 255)),
                "samples": with_tissue,
            }
        return rules or None

    def prediction_sets(self) -> list[str]:
        return [
            n for n, rel in self.options.get("predictions", {}).items() if self.path(rel).exists()
        ]

    def prediction_files(self, name: str) -> list[Path]:
        rel = self.options.get("predictions", {}).get(name)
        return [self.path(rel)] if rel else []

    @cached_property
    def _predictions(self) -> dict[str, dict[int, Points]]:
        return {}

    def load_predictions(self, record: SampleRecord, name: str) -> Points:
        if name not in self._predictions:
            rel = self.options.get("predictions", {}).get(name)
            if rel is None:
                raise KeyError(f"no prediction set '{name}' in {self.dataset.id}")
            self._predictions[name] = read_gc_points(self.path(rel), self._class_ids)
        return self._predictions[name].get(record.extra["index"], Points.empty())
