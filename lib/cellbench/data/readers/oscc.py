"""The OSCC oral-cytology metadata schema (seed 000).

One CSV row per slide, carrying patient-level facts::

    patient_id,slide_id,stain,center,category,age,sex,smoking_history,family_history
    P001,S001,PAP,Maulana Azad Medical College,I,45,M,yes,no

Required columns: ``patient_id, slide_id, stain`` (PAP or MGG), ``center``, ``category``
(I, II, III or IV; Arabic 1-4 accepted), ``age`` (years), ``sex`` (M/F). Optional:
``smoking_history, family_history, diagnosis, mpp``. Empty cells are null. Every problem is
reported with the file, the line and the column.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from cellbench.core.errors import DataError
from cellbench.core.safety import read_bytes

REQUIRED = ("patient_id", "slide_id", "stain", "center", "category", "age", "sex")
OPTIONAL = ("smoking_history", "family_history", "diagnosis", "mpp")
_CATEGORY = {
    "I": "I",
    "II": "II",
    "III": "III",
    "IV": "IV",
    "1": "I",
    "2": "II",
    "3": "III",
    "4": "IV",
}
_BOOL = {
    "yes": True,
    "y": True,
    "true": True,
    "1": True,
    "no": False,
    "n": False,
    "false": False,
    "0": False,
}


def read_oscc_metadata(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read the slide table: ``{slide_id: {patient_id, stain, center, category, age, sex, ...}}``.

    Raises
    ------
    DataError
        Missing file or column, unknown stain/category/sex, non-numeric age, duplicate slide.
    """
    p = Path(path)
    try:
        text = read_bytes(p, "metadata table").decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(p, f"not UTF-8 text (byte {e.start})") from None
    rows = list(csv.DictReader(text.splitlines()))
    if not rows:
        raise DataError(p, "empty metadata table")
    missing = [c for c in REQUIRED if c not in rows[0]]
    if missing:
        raise DataError(p, f"missing column(s): {', '.join(missing)}")
    out: dict[str, dict[str, Any]] = {}
    for line, r in enumerate(rows, start=2):

        def bad(col: str, why: str, line=line) -> DataError:
            return DataError(p, f"line {line}, column '{col}': {why}")

        v = {k: (r.get(k) or "").strip() or None for k in REQUIRED + OPTIONAL}
        if not v["slide_id"]:
            raise bad("slide_id", "empty")
        if v["slide_id"] in out:
            raise bad("slide_id", f"duplicate slide '{v['slide_id']}'")
        stain = (v["stain"] or "").upper()
        if stain not in ("PAP", "MGG"):
            raise bad("stain", f"expected PAP or MGG, got {v['stain']!r}")
        cat = _CATEGORY.get((v["category"] or "").upper()) if v["category"] else None
        if v["category"] and cat is None:
            raise bad("category", f"expected I-IV, got {v['category']!r}")
        sex = (v["sex"] or "").upper()[:1] or None
        if sex not in (None, "M", "F"):
            raise bad("sex", f"expected M or F, got {v['sex']!r}")
        try:
            age = int(float(v["age"])) if v["age"] else None
            mpp = float(v["mpp"]) if v["mpp"] else None
        except ValueError:
            raise bad("age/mpp", "not a number") from None
        rec: dict[str, Any] = {
            "patient_id": v["patient_id"],
            "stain": stain,
            "center": v["center"],
            "center_name": v["center"],
            "category": cat,
            "age": age,
            "sex": sex,
            "smoking_history": _BOOL.get((v["smoking_history"] or "").lower()),
            "family_history": _BOOL.get((v["family_history"] or "").lower()),
            "diagnosis": v["diagnosis"],
        }
        if mpp is not None:
            rec["mpp"] = mpp
        out[v["slide_id"]] = rec
    return out
