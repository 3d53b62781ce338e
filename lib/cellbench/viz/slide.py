"""A pan/zoom view of whole-slide images built from deep-zoom tiles, with objects overlaid.

Coordinates are level-0 pixels. A view is ``(cx, cy)`` (its centre) and ``zoom`` (view pixels
per level-0 pixel, 1 = full resolution); it is composed from :data:`TILE`-pixel tiles of the
pyramid level whose downsample is the largest not exceeding ``1 / zoom`` (so the view is never
upsampled from a coarser level), read once through :func:`cellbench.data.wsi.open_slide`
(tiffslide, OpenSlide for DICOM / MRXS: the same path as the CLI) and kept in memory, so panning
and zooming back read only the new tiles. Objects (QuPath GeoJSON: annotations, a QuPath export,
``predict`` output) are drawn as outlines in their class colours.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core.errors import CellbenchError, DataError

#: Tile side (pixels of its level).
TILE = 256
#: Slide file suffixes listed by :func:`list_slides`.
SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".qptiff", ".dcm", ".vms", ".bif")
#: A thumbnail with fewer distinct colours than this is a synthetic test pattern.
MIN_COLOURS = 256


@dataclass
class SlideInfo:
    """What :func:`list_slides` found about one file."""

    path: Path
    kind: str  # "tissue", "test pattern" or "unreadable"
    dimensions: tuple[int, int] | None = None
    mpp: float | None = None
    levels: int = 0
    backend: str | None = None
    error: str | None = None


def probe(path: str | Path) -> SlideInfo:
    """Open a slide and classify it: ``tissue``, ``test pattern`` (a thumbnail of fewer than
    :data:`MIN_COLOURS` colours) or ``unreadable`` (the reason in ``error``)."""
    from cellbench.data.wsi import open_slide

    p = Path(path)
    try:
        with open_slide(p) as s:
            th = s.thumbnail(128)
            colours = len(np.unique(th.reshape(-1, th.shape[-1]), axis=0))
            kind = "tissue" if colours >= MIN_COLOURS else "test pattern"
            return SlideInfo(p, kind, s.dimensions, s.mpp, len(s.level_downsamples), s.backend)
    except CellbenchError as e:
        return SlideInfo(p, "unreadable", error=str(e))


def list_slides(folder: str | Path) -> list[SlideInfo]:
    """Every slide file directly under ``folder``: tissue first, then test patterns, then
    unreadable files; by name within each."""
    d = Path(folder)
    if not d.is_dir():
        return []
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
    order = {"tissue": 0, "test pattern": 1, "unreadable": 2}
    return sorted((probe(p) for p in files), key=lambda i: (order[i.kind], i.path.name))


@functools.lru_cache(maxsize=8)
def _slide(path: str):
    from cellbench.data.wsi import open_slide

    return open_slide(path)


@functools.lru_cache(maxsize=1024)
def tile(path: str, level: int, tx: int, ty: int) -> np.ndarray:
    """Tile ``(tx, ty)`` of ``level`` (RGB uint8, at most :data:`TILE` square, clipped at the
    slide's edge)."""
    s = _slide(path)
    ds = s.level_downsamples[level]
    w0, h0 = s.dimensions
    lw, lh = int(w0 / ds), int(h0 / ds)
    x, y = tx * TILE, ty * TILE
    w, h = min(TILE, lw - x), min(TILE, lh - y)
    if w <= 0 or h <= 0:
        return np.zeros((0, 0, 3), np.uint8)
    return s.read_region(round(x * ds), round(y * ds), w, h, level)


def best_level(downsamples, zoom: float) -> int:
    """The coarsest level whose downsample does not exceed ``1 / zoom``."""
    want = 1.0 / zoom
    ok = [k for k, d in enumerate(downsamples) if d <= want * 1.001]
    return max(ok, key=lambda k: downsamples[k]) if ok else 0


def view(
    path: str | Path, cx: float, cy: float, zoom: float, width: int = 900, height: int = 600
) -> tuple[np.ndarray, tuple[float, float, float, float], int]:
    """The ``width`` x ``height`` view centred at ``(cx, cy)`` (level-0 px) at ``zoom``.

    Returns the RGB image (white outside the slide), its level-0 box ``(x0, y0, x1, y1)`` and
    the pyramid level it was read from.
    """
    s = _slide(str(path))
    level = best_level(s.level_downsamples, zoom)
    ds = s.level_downsamples[level]
    span_w, span_h = width / zoom, height / zoom
    x0, y0 = cx - span_w / 2, cy - span_h / 2
    # the region in level coordinates, then the tiles that cover it
    lx0, ly0 = x0 / ds, y0 / ds
    lx1, ly1 = (x0 + span_w) / ds, (y0 + span_h) / ds
    w0, h0 = s.dimensions
    lw, lh = w0 / ds, h0 / ds
    tx0, ty0 = max(0, int(lx0 // TILE)), max(0, int(ly0 // TILE))
    tx1 = min(int(np.ceil(lw / TILE)), int(np.ceil(lx1 / TILE)))
    ty1 = min(int(np.ceil(lh / TILE)), int(np.ceil(ly1 / TILE)))
    cw, ch = max(1, int(np.ceil(lx1 - lx0))), max(1, int(np.ceil(ly1 - ly0)))
    canvas = np.full((ch, cw, 3), 255, np.uint8)
    for ty in range(ty0, ty1):
        for tx in range(tx0, tx1):
            t = tile(str(path), level, tx, ty)
            if t.size == 0:
                continue
            ox, oy = int(round(tx * TILE - lx0)), int(round(ty * TILE - ly0))
            sx, sy = max(0, -ox), max(0, -oy)
            ex, ey = min(t.shape[1], cw - ox), min(t.shape[0], ch - oy)
            if ex > sx and ey > sy:
                canvas[oy + sy : oy + ey, ox + sx : ox + ex] = t[sy:ey, sx:ex]
    if canvas.shape[:2] != (height, width):
        from PIL import Image

        canvas = np.asarray(Image.fromarray(canvas).resize((width, height), Image.BILINEAR))
    return canvas, (x0, y0, x0 + span_w, y0 + span_h), level


def read_objects(
    source: str | Path | bytes, name: str = "objects.geojson", skipped: list[str] | None = None
) -> list:
    """QuPath objects of a GeoJSON file (``.geojson`` or ``.geojson.gz``) or its bytes (any
    QuPath version), level-0 pixels. Features that cannot be read are skipped, each named in
    ``skipped`` (a viewer shows what it can and says what it left out)."""
    from cellbench.core.safety import gunzip, parse_json, read_json
    from cellbench.data.readers.qupath_geojson import parse_qupath_features

    bad = [] if skipped is None else skipped
    if isinstance(source, bytes):
        data = gunzip(source, Path(name)) if name.lower().endswith(".gz") else source
        return parse_qupath_features(parse_json(data, name, constants=True), name, bad)
    return parse_qupath_features(read_json(Path(source), "GeoJSON", constants=True), source, bad)


def draw_objects(
    image: np.ndarray,
    box: tuple[float, float, float, float],
    objects: list,
    colors: dict[str | None, Any] | None = None,
    width: int = 2,
) -> tuple[np.ndarray, int]:
    """Outline the ``objects`` that intersect ``box`` (level-0) on the view ``image``.

    Colours: ``colors[class name]``, else the object's own QuPath colour, else green. Returns
    the image and the number of objects drawn.
    """
    from PIL import Image, ImageDraw
    from shapely.geometry import box as shape_box

    from cellbench.viz.overlay import rgb

    x0, y0, x1, y1 = box
    sx = image.shape[1] / (x1 - x0)
    sy = image.shape[0] / (y1 - y0)
    area = shape_box(x0, y0, x1, y1)
    im = Image.fromarray(image)
    d = ImageDraw.Draw(im)
    import shapely

    geoms = [o.geometry for o in objects]
    hits = shapely.STRtree(geoms).query(area, predicate="intersects") if geoms else []
    n = 0
    for k in sorted(int(i) for i in hits):
        o, g = objects[k], geoms[k]
        if g is None or g.is_empty:
            continue
        col = (colors or {}).get(o.class_name) or o.color or (0, 200, 83)
        col = rgb(col)
        n += 1
        for part in getattr(g, "geoms", [g]):
            if part.geom_type == "Point":
                px, py = (part.x - x0) * sx, (part.y - y0) * sy
                r = max(2, width + 1)
                d.ellipse([px - r, py - r, px + r, py + r], fill=col)
            elif part.geom_type == "Polygon":
                xy = [((x - x0) * sx, (y - y0) * sy) for x, y in part.exterior.coords]
                d.line(xy, fill=col, width=width)
            elif part.geom_type == "LineString":
                xy = [((x - x0) * sx, (y - y0) * sy) for x, y in part.coords]
                d.line(xy, fill=col, width=width)
    return np.asarray(im), n


def fit_zoom(dimensions: tuple[int, int], width: int, height: int) -> float:
    """The zoom at which the whole slide fits a ``width`` x ``height`` view."""
    w0, h0 = dimensions
    if w0 <= 0 or h0 <= 0:
        raise DataError(Path("slide"), "slide has no pixels")
    return min(width / w0, height / h0)
