"""Writing what ``cellbench predict`` found: QuPath GeoJSON, the nucleus table, instance maps.

- GeoJSON: one ``detection`` per nucleus tracing its pixel edges, in the source's level-0
  pixels (QuPath's frame), classified by the model's class names, with measurements
  ``Probability``, ``Area px^2`` (``Area um^2`` with a known mpp); QuPath imports the file by
  drag-and-drop onto the image.
- Nucleus table (parquet): :func:`cellbench.runs.predict.nucleus_rows`, one row per nucleus.
- Instance map: ``<stem>.tif`` (OME-TIFF, zlib, 512 px tiles, BigTIFF beyond 4 GB) of the
  working grid (the model's mpp; the physical pixel size is recorded), written tile by tile
  from the nuclei so a whole slide never sits in memory as one array, and
  ``<stem>_class.tif`` with each nucleus's class, so that a folder written by ``predict`` is
  read back by ``evaluate --predictions``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cellbench.core.atomic import write_bytes_atomic
from cellbench.qupath.geojson import detection_features, write_geojson
from cellbench.runs.predict import Nuclei, nucleus_rows


def nuclei_features(nuc: Nuclei, class_defs=None) -> list[dict]:
    """GeoJSON features of the nuclei in level-0 pixels (see the module docstring)."""
    meas = {int(i): {"Probability": float(s)} for i, s in nuc.scores.items()}
    work_mpp = None if nuc.mpp is None else nuc.mpp * nuc.scale
    return detection_features(
        nuc.objects,
        nuc.classes,
        class_defs,
        measurements=meas,
        mpp=work_mpp,
        offset=(float(nuc.offset[0]), float(nuc.offset[1])),
        downsample=float(nuc.scale),
    )


def write_table(nuclei: list[Nuclei], path: str | Path, class_defs=None) -> Path:
    """The nucleus table of one or several sources as parquet (written atomically)."""
    import io

    import polars as pl

    names = {c.id: c.name for c in (class_defs or [])}
    rows = [r for n in nuclei for r in nucleus_rows(n, names)]
    schema = {
        "id": pl.Int64,
        "source": pl.Utf8,
        **{
            k: pl.Float64
            for k in (
                "x_px",
                "y_px",
                "x_um",
                "y_um",
                "bbox_x0",
                "bbox_y0",
                "bbox_x1",
                "bbox_y1",
                "area_px",
                "area_um2",
                "perimeter_px",
                "perimeter_um",
                "eccentricity",
            )
        },
        "class_id": pl.Int64,
        "class": pl.Utf8,
        "probability": pl.Float64,
    }
    buf = io.BytesIO()
    pl.DataFrame(rows, schema=schema).write_parquet(buf)
    return write_bytes_atomic(Path(path), buf.getvalue()) or Path(path)


#: Tile side of the written instance maps (pixels).
MAP_TILE = 512


def _tile_index(boxes: np.ndarray, t: int) -> dict[tuple[int, int], list[int]]:
    """Object indices by the ``t``-pixel tiles their boxes meet."""
    out: dict[tuple[int, int], list[int]] = {}
    for k, (r0, c0, r1, c1) in enumerate(boxes.tolist()):
        for ty in range(r0 // t, (r1 - 1) // t + 1):
            for tx in range(c0 // t, (c1 - 1) // t + 1):
                out.setdefault((ty, tx), []).append(k)
    return out


def map_tiles(objects, values: np.ndarray, dtype, t: int = MAP_TILE):
    """Yield the ``t x t`` tiles (row-major, the last ones zero-padded) of the label map that
    gives each object's pixels its ``values[k]``; only one tile is in memory at a time.
    Objects are drawn largest first, so where they overlap the smaller one wins (as
    :meth:`~cellbench.data.sample.Objects.to_label_map`)."""
    H, W = objects.shape
    index = _tile_index(objects.boxes, t)
    order = np.argsort(np.argsort(-objects.area, kind="stable"), kind="stable")
    for ty in range(-(-H // t)):
        for tx in range(-(-W // t)):
            out = np.zeros((t, t), dtype)
            y0, x0 = ty * t, tx * t
            for k in sorted(index.get((ty, tx), ()), key=order.__getitem__):
                r0, c0, r1, c1 = objects.boxes[k]
                a0, a1 = max(r0, y0), min(r1, y0 + t)
                b0, b1 = max(c0, x0), min(c1, x0 + t)
                m = objects.masks[k][a0 - r0 : a1 - r0, b0 - c0 : b1 - c0]
                out[a0 - y0 : a1 - y0, b0 - x0 : b1 - x0][m] = values[k]
            yield out


def write_instance_map(nuc: Nuclei, path: str | Path) -> Path:
    """The working-grid instance map as a tiled OME-TIFF (uint16 when the ids allow, else
    uint32; BigTIFF beyond 4 GB), and ``<stem>_class.tif`` beside it when the model has
    classes. Written tile by tile from the nuclei (whole slides never exist as one array)
    through a temporary file renamed into place."""
    import tifffile

    from cellbench.core.atomic import open_atomic

    p = Path(path)
    obj = nuc.objects
    ids = np.asarray(obj.ids, np.int64)
    dtype = np.uint16 if ids.max(initial=0) < 2**16 else np.uint32
    meta = {"axes": "YX"}
    if nuc.mpp is not None:
        um = nuc.mpp * nuc.scale
        meta.update(PhysicalSizeX=um, PhysicalSizeY=um, PhysicalSizeXUnit="µm")
    H, W = obj.shape

    def tif(dest: Path, values: np.ndarray, dt) -> None:
        big = H * W * np.dtype(dt).itemsize > 2**31
        with open_atomic(dest) as f:
            tifffile.imwrite(
                f,
                map_tiles(obj, values, dt),
                shape=(H, W),
                dtype=dt,
                tile=(MAP_TILE, MAP_TILE),
                ome=True,
                bigtiff=big,
                metadata=meta,
                compression="zlib",
            )

    tif(p, ids, dtype)
    if nuc.classes:
        cls = np.array([int(nuc.classes.get(int(i), 0)) for i in ids], np.uint8)
        tif(p.with_name(f"{p.stem}_class{p.suffix}"), cls, np.uint8)
    return p


def write_geojson_file(nuc: Nuclei, path: str | Path, class_defs=None) -> Path:
    return write_geojson(nuclei_features(nuc, class_defs), path)
