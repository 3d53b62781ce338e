"""ImageJ ``RoiSet.zip`` (CryoNuSeg): one freehand/polygon ROI per nucleus.

ROIs are read with ``roifile``; ``coordinates()`` gives absolute ``(x, y)`` pixels. Layout
``imagej_roi`` options::

    images: "*/*.tif"                 # one tile per folder
    rois: "{folder}/RoiSet.zip"
    cases: Dataset_List.xlsx          # CryoNuSeg sheet: one sheet per organ, one column per case

The case sheet gives race, sex, age (in days relative to diagnosis, negative; converted to whole
years), organ, microns per pixel, stain and diagnosis of each TCGA case.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from cellbench.core.errors import DataError
from cellbench.core.safety import (
    check_count,
    check_file_size,
    check_polygons_inside,
    check_vertices,
    confined_glob,
    limits,
)
from cellbench.data.imageio import image_size
from cellbench.data.rasterize import is_degenerate, polygons_to_instances
from cellbench.data.readers.base import DatasetReader, SampleRecord, register, tcga_fields
from cellbench.data.sample import Sample


def _check_zip(p: Path) -> None:
    """Refuse ROI zips whose members would unpack beyond the file-size limit (zip bombs)."""
    import zipfile

    if not zipfile.is_zipfile(p):
        return
    lim = limits()
    try:
        with zipfile.ZipFile(p) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(p, f"unreadable ZIP ({e})") from None
    check_count(len(infos), p, "ROIs")
    total = sum(i.file_size for i in infos)
    if total > lim.max_file_bytes:
        raise DataError(
            p,
            f"ZIP unpacks to {total / 2**20:.0f} MB, over the {lim.max_file_bytes / 2**20:.0f} MB "
            "limit (CELLBENCH_MAX_FILE_MB)",
        )


def read_roiset(path: str | Path) -> list[np.ndarray]:
    """Polygons ``(K, 2)`` ``(x, y)`` of an ImageJ ROI zip (or single ``.roi``), file order.

    The file size, the unpacked size of a zip, the number of ROIs and the vertices of each are
    limited (:mod:`cellbench.core.safety`).
    """
    import roifile

    p = Path(path)
    check_file_size(p, "ROI file")
    _check_zip(p)
    try:
        rois = roifile.roiread(p)
        if not isinstance(rois, list):
            rois = [rois]
        raw = [np.asarray(r.coordinates(), dtype=np.float64).reshape(-1, 2) for r in rois]
    except FileNotFoundError:
        raise DataError(p, "file not found") from None
    except Exception as e:  # noqa: BLE001
        raise DataError(p, f"unreadable ImageJ ROI file ({type(e).__name__}: {e})") from None
    out = []
    for k, xy in enumerate(raw):
        check_vertices(xy, p, f"ROI #{k + 1}")
        if not is_degenerate(xy):
            out.append(xy)
    return out


def _num(v: Any) -> float | None:
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        m = re.search(r"\d+[.,]\d+|\d+", v)
        return float(m.group(0).replace(",", ".")) if m else None
    return None


def read_cryonuseg_cases(path: str | Path) -> dict[str, dict[str, Any]]:
    """Per-case facts from CryoNuSeg's ``Dataset_List.xlsx`` (sheets transposed: rows = fields)."""
    import openpyxl

    p = Path(path)
    try:
        wb = openpyxl.load_workbook(p, read_only=True, data_only=True)
    except FileNotFoundError:
        raise DataError(p, "file not found") from None
    except Exception as e:  # noqa: BLE001
        raise DataError(p, f"unreadable spreadsheet ({type(e).__name__}: {e})") from None
    out: dict[str, dict[str, Any]] = {}
    for ws in wb.worksheets:
        rows = {
            str(r[0]).strip().lower(): r[1:]
            for r in ws.iter_rows(values_only=True)
            if r and isinstance(r[0], str)
        }
        cases = rows.get("tcga")
        if not cases:
            continue
        organ_row = rows.get("organ") or rows.get("organ of origin") or ()
        mpp_row = next((v for k, v in rows.items() if k.startswith("pixel-dimensions")), ())
        for j, case in enumerate(cases):
            if not isinstance(case, str) or not case.startswith("TCGA"):
                continue

            def cell(row, j=j):
                v = row[j] if j < len(row) else None
                v = v.strip() if isinstance(v, str) else v
                return None if v in ("x", "", None) else v

            days = cell(rows.get("age", ()))
            sex = cell(rows.get("gender", ()))
            out[case] = {
                "organ": ws.title.strip().lower(),
                "organ_site": cell(organ_row),
                "age": int(-days // 365.25) if isinstance(days, int | float) else None,
                "sex": {"f": "F", "m": "M"}.get(str(sex).lower()) if sex else None,
                "race": cell(rows.get("race", ())),
                "mpp": _num(cell(mpp_row)),
                "stain_detail": cell(rows.get("staining", ())),
                "diagnosis": cell(rows.get("disease", ())),
            }
    return out


@register
class ImageJRoiReader(DatasetReader):
    """One TIFF tile per folder with an ImageJ ``RoiSet.zip`` beside it."""

    format = "imagej_roi"

    @cached_property
    def _cases(self) -> dict[str, dict[str, Any]]:
        rel = self.options.get("cases")
        return read_cryonuseg_cases(self.path(rel)) if rel else {}

    def records(self) -> list[SampleRecord]:
        out = []
        for img in confined_glob(self.location, self.options["images"], self.location):
            folder = img.parent.name
            rois = self.path(self.options["rois"].format(folder=folder))
            polys = read_roiset(rois)
            w, h = image_size(img)
            tcga = tcga_fields(folder)
            case = self._cases.get(tcga["patient_id"] or "", {})
            meta = self.base_meta(
                folder,
                self.options.get("split"),
                slide_id=img.name.split(".")[0],
                width=w,
                height=h,
                n_objects=len(polys),
                **tcga,
                **case,
            )
            out.append(SampleRecord(folder, meta["split"], meta, {"image": img, "rois": rois}))
        return out

    def load(self, record: SampleRecord, pixels: bool = True) -> Sample:
        image = self.image(record, pixels)
        polys = read_roiset(record.files["rois"])
        h, w = image.shape[:2]
        check_polygons_inside(polys, w, h, record.files["rois"], "ROIs")
        return self._sample(
            record, image=image, instances=polygons_to_instances(polys, image.shape[:2])
        )
