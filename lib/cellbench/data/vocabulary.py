"""One vocabulary across datasets: organ names and TCGA tissue-source-site (center) names.

Datasets spell the same organ differently ("head-and-neck" in MoNuSAC, "head and neck" in
PanNuke; "pancreatic" / "pancreas"; "thyroid gland" / "thyroid"). Every organ cellbench shows,
filters or groups by goes through :func:`organ`, which lower-cases, turns ``-`` / ``_`` into
spaces and maps the known variants to the catalog's name (:data:`ORGAN_ALIASES`).

TCGA slides name their contributing center by a two-character tissue source site (TSS) code
(``TCGA-<TSS>-<participant>``). :func:`center_name` gives the institution from the bundled copy of
the GDC code table (``cellbench/resources/tcga_tss.tsv``, source cited in the file).
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

#: Spelling variants -> the catalog's organ name (after lower-casing and ``-``/``_`` -> space).
ORGAN_ALIASES: dict[str, str] = {
    "pancreatic": "pancreas",
    "ovarian": "ovary",
    "thyroid gland": "thyroid",
    "oesophagus": "esophagus",
    "head & neck": "head and neck",
    "h&n": "head and neck",
    "adrenal": "adrenal gland",
    "lymph nodes": "lymph node",
    "uterine": "uterus",
    "renal": "kidney",
    "hepatic": "liver",
    "gastric": "stomach",
}

_SPACES = re.compile(r"[\s_\-]+")


def organ(name: Any) -> Any:
    """The vocabulary's name of an organ (None and non-strings pass through unchanged)."""
    if not isinstance(name, str):
        return name
    key = _SPACES.sub(" ", name.strip().lower()).strip()
    return ORGAN_ALIASES.get(key, key) or None


@functools.cache
def tss_table() -> dict[str, str]:
    """``{TSS code: institution}`` from the bundled GDC table."""
    text = resources.files("cellbench.resources").joinpath("tcga_tss.tsv").read_text("utf-8")
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("code\t"):
            continue
        code, _, name = line.partition("\t")
        out[code.strip()] = name.strip()
    return out


def center_name(center: Any, patient_id: Any = None) -> str | None:
    """The institution of a TCGA center code (``center`` = TSS code and ``patient_id`` a TCGA
    case id), ``"TCGA site <code>"`` for a code outside the table, None for non-TCGA centers."""
    if not isinstance(center, str) or not (
        isinstance(patient_id, str) and patient_id.startswith("TCGA-")
    ):
        return None
    return tss_table().get(center, f"TCGA site {center}")


def standardise(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with its organ in the vocabulary and ``center_name`` filled for TCGA centers
    (a name the dataset states itself is kept)."""
    out = dict(meta)
    if "organ" in out:
        out["organ"] = organ(out["organ"])
    if not out.get("center_name"):
        name = center_name(out.get("center"), out.get("patient_id"))
        if name is not None:
            out["center_name"] = name
    return out


def center_label(center: Any, name: Any = None) -> Any:
    """``"A7 · Christiana Healthcare"`` for display (the code alone where no name is known)."""
    if not isinstance(center, str):
        return center
    if not name:
        name = tss_table().get(center) if len(center) == 2 else None
    return f"{center} · {name}" if name and name != center else center
