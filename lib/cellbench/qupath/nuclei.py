"""Writing what ``cellbench predict`` found: QuPath GeoJSON, the nucleus table, instance maps.

- GeoJSON: one ``detection`` per nucleus tracing its pixel edges, in the source's level-0
  pixels (QuPath's frame), classified by the model's class names, with measurements
  ``Probability``, ``Area px^2`` (``Area um^2`` with a known mpp); QuPath imports the file by
  drag-and-drop onto the image.
- Nucleus table (parquet): :func:`cellbench.runs.predict.nucleus_rows`, one row per nucleus.
- Instance map: ``<stem>.tif`` (OME-TIFF, zlib, tiled) of the working grid (the model's mpp;
  the physical pixel size is recorded), and ``<stem>_class.tif`` with each nucleus's class,
  so that a folder written by ``predict`` is read back by ``evaluate --predictions``.
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


def write_instance_map(nuc: Nuclei, path: str | Path) -> Path:
    """The working-grid instance map as OME-TIFF (uint16 when the ids allow, else uint32),
    and ``<stem>_class.tif`` beside it when the model has classes."""
    import io

    import tifffile

    p = Path(path)
    lab = nuc.label_map()
    dtype = np.uint16 if lab.max(initial=0) < 2**16 else np.uint32
    meta = {"axes": "YX"}
    if nuc.mpp is not None:
        um = nuc.mpp * nuc.scale
        meta.update(PhysicalSizeX=um, PhysicalSizeY=um, PhysicalSizeXUnit="µm")

    def tif(arr) -> bytes:
        buf = io.BytesIO()
        tifffile.imwrite(buf, arr, ome=True, metadata=meta, compression="zlib", tile=(256, 256))
        return buf.getvalue()

    write_bytes_atomic(p, tif(lab.astype(dtype)))
    if nuc.classes:
        lut = np.zeros(int(lab.max(initial=0)) + 1, np.uint8)
        for i, c in nuc.classes.items():
            lut[int(i)] = int(c)
        write_bytes_atomic(p.with_name(f"{p.stem}_class{p.suffix}"), tif(lut[lab]))
    return p


def write_geojson_file(nuc: Nuclei, path: str | Path, class_defs=None) -> Path:
    return write_geojson(nuclei_features(nuc, class_defs), path)
